/**
 * `GET /-/iap/whoami`: who the proxy thinks the caller is (identity, groups, credential and session
 * expiry), for any credential it accepts. Served with or without browser sign-in configured.
 */
import type { IncomingMessage } from 'node:http'
import type { AuthOutcome } from '../auth/authenticate.ts'
import { sessionEndsAt, type SessionTimeouts } from '../auth/session/record.ts'
import type { Sessions } from '../auth/session/sessions.ts'
import { wwwAuthenticate } from '../http/respond.ts'
import type { RequestContext } from '../server/context.ts'
import { deny, sendJson, type Handler } from './routes.ts'

export type Authenticate = (req: IncomingMessage, ctx: RequestContext) => AuthOutcome | Promise<AuthOutcome>

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
      return sendJson(res, 401, { error: 'Unauthorized', message: 'Not signed in.', reason: 'credentials-missing', requestId: ctx.id, ...(deps.sessions && { login: '/-/iap/login' }) }, ctx.id, { 'www-authenticate': wwwAuthenticate('credentials-missing', undefined, false)[0]! })
    }
    ctx.authMethod = outcome.method
    if (!outcome.ok) {
      deny(ctx, outcome.reason, 'challenge')
      // As on every other route: a 401 names its scheme (RFC 9110 §11.6.1), a 503 when to come back; a lapsed session's cookie is deleted.
      const headers: Record<string, string> = outcome.status === 503 ? { 'retry-after': '5' } : { 'www-authenticate': wwwAuthenticate(outcome.reason, outcome.description, false)[0]! }
      if (outcome.status === 401 && outcome.method === 'session' && deps.sessions) headers['set-cookie'] = deps.sessions.clearCookie()
      return sendJson(res, outcome.status, { error: outcome.status === 503 ? 'Service Unavailable' : 'Unauthorized', message: outcome.description, reason: outcome.reason, requestId: ctx.id }, ctx.id, headers)
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
