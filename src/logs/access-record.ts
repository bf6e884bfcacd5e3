/**
 * One access-log record per request, as a flat object with ECS field names ("url.path", not
 * {url:{path}}): the SPEC spells the fields that way, every ECS consumer reads dotted keys, and a
 * flat object serialises and filters fastest. Pure: the same context always gives the same record.
 * Never holds a token, cookie or secret: the context has none, and the query string and the few
 * GitLab paths that carry a secret are redacted.
 */
import type { RequestContext } from '../server/context.ts'
import { redactPath, redactProject, redactQuery } from './redact.ts'

export const ECS_VERSION = '8.11.0'

export type AccessRecord = Record<string, string | number | boolean | null | readonly string[]>

// Date#toISOString costs more than the rest of the record: format each second once, then add milliseconds.
let cachedSecond = Number.NaN
let cachedPrefix = ''

/** Exactly `new Date(epochMs).toISOString()`, cheaper. */
export function isoTimestamp(epochMs: number): string {
  const ms = Math.floor(epochMs)
  const second = Math.floor(ms / 1000)
  if (second !== cachedSecond) {
    cachedSecond = second
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, -4) // without "000Z"
  }
  const millis = ms - second * 1000
  return `${cachedPrefix}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`
}

export function toAccessRecord(ctx: RequestContext, endNs: bigint): AccessRecord {
  const status = ctx.status ?? 0
  const identity = ctx.identity
  const anonymous = identity.kind === 'anonymous'
  const record: AccessRecord = {
    '@timestamp': isoTimestamp(ctx.startMs),
    'ecs.version': ECS_VERSION,
    'event.kind': 'event',
    'event.category': ctx.websocket ? 'network' : 'web',
    'event.duration': Number(endNs - ctx.startNs),
    // A request the proxy refused or sent to sign-in failed, whatever its status (a login redirect is a 302).
    'event.outcome': status >= 100 && status < 400 && ctx.decision?.result !== 'deny' && ctx.decision?.result !== 'challenge' ? 'success' : 'failure',
    'http.request.id': ctx.id,
    'http.request.method': ctx.method,
    'http.request.body.bytes': ctx.bytesIn,
    'http.response.status_code': status,
    'http.response.bytes': ctx.bytesOut,
    'url.path': redactPath(ctx.path),
    'client.ip': ctx.clientIp,
    'user_agent.original': ctx.userAgent,
    'user.id': anonymous ? null : identity.id,
    'user.name': identity.name ?? null,
    'user.email': identity.email ?? null,
    'iap.identity.kind': identity.kind,
    'iap.identity.groups': identity.groups,
    'iap.auth.method': ctx.authMethod,
    'iap.decision.result': ctx.decision?.result ?? 'deny',
    'iap.decision.rule': ctx.decision?.rule ?? null,
    'iap.decision.reason': ctx.decision?.reason ?? 'not-evaluated',
    'iap.gitlab.route': ctx.route,
  }
  if (ctx.query !== '') record['url.query'] = redactQuery(ctx.query, ctx.path)
  if (ctx.project !== undefined) record['iap.gitlab.project'] = redactProject(ctx.project)
  if (!anonymous) {
    record['iap.identity.issuer'] = identity.issuer
    if (identity.displayName) record['user.full_name'] = identity.displayName
    if (identity.appId) record['iap.identity.app_id'] = identity.appId
    if (identity.roles.length > 0) record['iap.identity.roles'] = identity.roles
    if (identity.groupsSource && identity.groupsSource !== 'token') record['iap.identity.groups_source'] = identity.groupsSource
    const ci = identity.ci
    if (ci) {
      if (ci.projectPath !== undefined) record['iap.ci.project_path'] = ci.projectPath
      if (ci.ref !== undefined) record['iap.ci.ref'] = ci.ref
      if (ci.refProtected !== undefined) record['iap.ci.ref_protected'] = ci.refProtected
      if (ci.pipelineId !== undefined) record['iap.ci.pipeline_id'] = ci.pipelineId
      if (ci.jobId !== undefined) record['iap.ci.job_id'] = ci.jobId
    }
  }
  if (ctx.upstreamNs !== undefined) record['iap.upstream.duration'] = Number(ctx.upstreamNs)
  if (ctx.websocket) record['iap.websocket'] = true
  if (ctx.aborted) record['iap.aborted'] = true
  if (ctx.error) record['error.code'] = ctx.error
  return record
}
