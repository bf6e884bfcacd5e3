/**
 * `GET /-/iap/whoami`: who the proxy thinks the caller is (identity, groups, credential and session
 * expiry), for any credential it accepts. Served with or without browser sign-in configured.
 * Also the small dispatcher the `/-/iap/*` endpoint sets share.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AuthOutcome } from '../auth/authenticate.ts'
import { sessionEndsAt, type SessionTimeouts } from '../auth/session/record.ts'
import type { Sessions } from '../auth/session/sessions.ts'
import { sendStatusPage } from '../http/respond.ts'
import type { RequestContext } from '../server/context.ts'

export type Handler = (req: IncomingMessage, res: ServerResponse, ctx: RequestContext) => Promise<void> | void

export type Authenticate = (req: IncomingMessage, ctx: RequestContext) => AuthOutcome | Promise<AuthOutcome>

export function sendJson(res: ServerResponse, status: number, body: unknown, requestId: string, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body) + '\n'
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-request-id': requestId,
  })
  res.end(text)
}

export const deny = (ctx: RequestContext, reason: string, result: 'deny' | 'challenge' = 'deny') => {
  ctx.decision = { result, rule: null, reason }
}

export interface WhoamiDeps {
  /** The full authenticator; without it (tests), the session cookie alone. */
  readonly authenticate?: Authenticate
  /** Browser sessions, when sign-in is configured: whoami then also shows the session's expiry. */
  readonly sessions?: Sessions
  readonly timeouts?: SessionTimeouts
}

export function createWhoami(deps: WhoamiDeps): Handler {
  return async (req, res, ctx) => {
    const resolution = deps.sessions ? await deps.sessions.resolve(req) : { kind: 'none' as const }
    let outcome: AuthOutcome | undefined
    if (deps.authenticate) outcome = await deps.authenticate(req, ctx)
    else outcome = resolution.kind === 'none' ? undefined : resolution.kind === 'failed' ? resolution.outcome : { ok: true, method: 'session', identity: resolution.identity }
    if (!outcome || (outcome.ok && outcome.identity.kind === 'anonymous')) {
      deny(ctx, 'credentials-missing', 'challenge')
      return sendJson(res, 401, { error: 'Unauthorized', message: 'Not signed in.', requestId: ctx.id, ...(deps.sessions && { login: '/-/iap/login' }) }, ctx.id, { 'www-authenticate': 'Bearer realm="gitlab-iap"' })
    }
    ctx.authMethod = outcome.method
    if (!outcome.ok) {
      deny(ctx, outcome.reason, 'challenge')
      return sendJson(res, outcome.status, { error: outcome.status === 503 ? 'Service Unavailable' : 'Unauthorized', message: outcome.description, reason: outcome.reason, requestId: ctx.id }, ctx.id)
    }
    const id = outcome.identity
    ctx.identity = id
    ctx.decision = { result: 'allow', rule: null, reason: 'whoami' }
    const session = outcome.method === 'session' && resolution.kind === 'ok' && deps.timeouts
      ? {
          createdAt: new Date(resolution.record.createdAt).toISOString(),
          refreshedAt: new Date(resolution.record.refreshedAt).toISOString(),
          expiresAt: new Date(sessionEndsAt(resolution.record, deps.timeouts)).toISOString(),
          absoluteExpiresAt: new Date(resolution.record.expiresAt).toISOString(),
        }
      : undefined
    sendJson(res, 200, {
      kind: id.kind,
      id: id.id,
      ...(id.name !== undefined && { name: id.name }),
      ...(id.email !== undefined && { email: id.email }),
      ...(id.displayName !== undefined && { displayName: id.displayName }),
      ...(id.tenantId !== undefined && { tenantId: id.tenantId }),
      issuer: id.issuer,
      authMethod: outcome.method,
      groups: id.groups,
      roles: id.roles,
      ...(id.groupsSource !== undefined && { groupsSource: id.groupsSource }),
      ...(id.expiresAt !== undefined && { credentialExpiresAt: new Date(id.expiresAt * 1000).toISOString() }),
      ...(session && { session }),
    }, ctx.id)
  }
}

/** Dispatches `/-/iap/*` paths to their handlers (405 with `Allow` for other methods); false for unknown paths. */
export function routeIapEndpoints(routes: Record<string, { methods: readonly string[]; handler: Handler }>) {
  return function iapEndpoints(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): boolean | Promise<boolean> {
    const route = routes[ctx.path]
    if (!route) return false
    if (!route.methods.includes(ctx.method)) {
      deny(ctx, 'method-not-allowed')
      sendStatusPage(req, res, { status: 405, title: 'Method not allowed', message: `Use ${route.methods.join(' or ')}.`, requestId: ctx.id }, { allow: route.methods.join(', ') })
      return true
    }
    const done = route.handler(req, res, ctx)
    return done instanceof Promise ? done.then(() => true) : true
  }
}
