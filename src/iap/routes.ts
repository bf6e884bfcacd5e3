/** The `/-/iap/*` endpoint sets' shared pieces: the handler shape, JSON answers, decisions, dispatch. */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Config } from '../config/schema.ts'
import { sendStatusPage } from '../http/respond.ts'
import type { RequestContext } from '../server/context.ts'

/**
 * The methods each `/-/iap/` endpoint answers; any other path under the prefix is 404. `jwks.json`
 * is served by src/proxy/assertion.ts; login, callback and logout work only with browser sign-in
 * (without it they answer 503 `sign-in-not-configured`).
 */
export const IAP_ENDPOINT_METHODS: Readonly<Record<string, readonly string[]>> = {
  '/-/iap/login': ['GET', 'HEAD'],
  '/-/iap/callback': ['GET'],
  '/-/iap/logout': ['GET', 'POST'],
  '/-/iap/whoami': ['GET', 'HEAD'],
  '/-/iap/jwks.json': ['GET', 'HEAD'],
}
export const SIGN_IN_PATHS: ReadonlySet<string> = new Set(['/-/iap/login', '/-/iap/callback', '/-/iap/logout'])

/** True when the config enables browser sign-in (an Entra client secret and a session secret). */
export function browserSignInConfigured(config: Config): boolean {
  return Boolean(config.entra?.clientSecret && config.session.secret)
}

export type Handler = (req: IncomingMessage, res: ServerResponse, ctx: RequestContext) => Promise<void> | void

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

/**
 * The endpoint did what was asked (signed out, started a sign-in, answered): `allow`, so the record's
 * outcome is a success. `challenge` is kept for sending the user to sign in, `deny` for refusals.
 */
export const allow = (ctx: RequestContext, reason: string) => {
  ctx.decision = { result: 'allow', rule: null, reason }
}

/**
 * Answers a sign-in endpoint of a proxy without browser sign-in (no `entra.clientSecret`): 503 with a
 * reason, not 404, so the user and the operator see that sign-in is off rather than a broken link.
 */
const signInNotConfigured: Handler = (req, res, ctx) => {
  deny(ctx, 'sign-in-not-configured')
  sendStatusPage(req, res, { status: 503, title: 'Sign-in not available', message: 'Browser sign-in is not configured on this server. Contact your administrator.', requestId: ctx.id, reason: 'sign-in-not-configured' })
}

/**
 * Dispatches `/-/iap/*` paths to their handlers (405 with `Allow` for other methods, also for the
 * endpoints of `IAP_ENDPOINT_METHODS` served elsewhere); false for unknown paths. Sign-in paths
 * `routes` lacks (browser sign-in off) answer `sign-in-not-configured`.
 */
export function routeIapEndpoints(given: Record<string, { methods: readonly string[]; handler: Handler }>) {
  const routes = { ...given }
  for (const path of SIGN_IN_PATHS) routes[path] ??= { methods: IAP_ENDPOINT_METHODS[path]!, handler: signInNotConfigured }
  return function iapEndpoints(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): boolean | Promise<boolean> {
    const route = routes[ctx.path]
    // An endpoint served before this dispatch (jwks.json) reaches it only with a method it does not take: its 405 too, not a 404.
    const methods = route?.methods ?? (Object.hasOwn(IAP_ENDPOINT_METHODS, ctx.path) ? IAP_ENDPOINT_METHODS[ctx.path] : undefined)
    if (!methods) return false
    if (!methods.includes(ctx.method)) {
      deny(ctx, 'method-not-allowed')
      sendStatusPage(req, res, { status: 405, title: 'Method not allowed', message: `Use ${methods.join(' or ')}.`, requestId: ctx.id, reason: 'method-not-allowed' }, { allow: methods.join(', ') })
      return true
    }
    if (!route) return false
    const done = route.handler(req, res, ctx)
    return done instanceof Promise ? done.then(() => true) : true
  }
}
