/**
 * One access-log record per request, as a flat object with ECS field names ("url.path", not
 * {url:{path}}): ECS names the fields that way, every ECS consumer reads dotted keys, and a
 * flat object serialises and filters fastest. Pure: the same context always gives the same record.
 * Never holds a token, cookie or secret: the context has none, and the query string and the few
 * GitLab paths that carry a secret are redacted. The two free-form values a client chooses, the user
 * agent and the query, are cut at a fixed length: a record stays small whatever a client sends.
 */
import type { RequestContext } from '../server/context.ts'
import { redactPath, redactProject, redactQuery } from './redact.ts'

export const ECS_VERSION = '8.11.0'

/** Longest `user_agent.original` kept, in characters (real browsers and git clients send under 512). */
export const MAX_USER_AGENT_LENGTH = 1024
/** Longest `url.query` kept, in characters, after redaction. */
export const MAX_QUERY_LENGTH = 4096
/** Ends a value that was cut: the first `max` characters are kept, then this marker. */
export const TRUNCATED = '[TRUNCATED]'

/** `value` if at most `max` characters, else its first `max` (never half a surrogate pair) and the marker. */
export function truncate(value: string, max: number): string {
  if (value.length <= max) return value
  const code = value.charCodeAt(max - 1)
  const end = code >= 0xd800 && code <= 0xdbff ? max - 1 : max
  return `${value.slice(0, end)}${TRUNCATED}`
}

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
    // A request the proxy refused or sent to sign-in failed, whatever its status (a login redirect is a 302),
    // and so did one with an error: a response GitLab cut after its 200 was sent is not a success.
    'event.outcome': status >= 100 && status < 400 && ctx.decision?.result !== 'deny' && ctx.decision?.result !== 'challenge' && !ctx.error ? 'success' : 'failure',
    'http.request.id': ctx.id,
    'http.request.method': ctx.method,
    'http.request.body.bytes': ctx.bytesIn,
    'http.response.status_code': status,
    'http.response.bytes': ctx.bytesOut,
    'url.path': redactPath(ctx.path),
    'client.ip': ctx.clientIp,
    'user_agent.original': truncate(ctx.userAgent, MAX_USER_AGENT_LENGTH),
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
  if (ctx.query !== '') record['url.query'] = truncate(redactQuery(ctx.query, ctx.path), MAX_QUERY_LENGTH)
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
