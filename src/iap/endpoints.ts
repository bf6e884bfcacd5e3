/**
 * The reserved `/-/iap/*` endpoints (never forwarded to GitLab): `login`, `callback`, `logout` and
 * `whoami` (`jwks.json` is served by src/proxy/assertion.ts). Sign-in is the authorization code flow with PKCE S256; `state`, `nonce`
 * and the verifier travel in a sealed per-state cookie (transaction.ts), each callback is accepted
 * once (the store remembers spent states), and the session gets a fresh id.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { calculatePKCECodeChallenge, randomNonce, randomPKCECodeVerifier, randomState } from 'openid-client'
import type { AuthOutcome } from '../auth/authenticate.ts'
import { serializeCookie } from '../auth/session/cookies.ts'
import type { GraphGroups } from '../auth/graph-groups.ts'
import type { Clock } from '../auth/session/clock.ts'
import { userFromIdToken, withGraphGroups } from '../auth/session/id-token-user.ts'
import type { SessionTimeouts, SessionUser } from '../auth/session/record.ts'
import type { Sessions } from '../auth/session/sessions.ts'
import { isBrowserNavigation, isNavigationDestination, sendRedirect, sendStatusPage } from '../http/respond.ts'
import { validateRedirectTarget } from '../http/redirect-target.ts'
import type { RequestContext } from '../server/context.ts'
import type { EntraClient } from './entra-client.ts'
import { HOME, logoutConfirmPage, notSignedInPage, PAGE_STYLE_HASH, tryAgain, type NextStep } from './pages.ts'
import { chooseTransactionSlot, clearTransactionCookie, loginState, readTransaction, retryCookieName, returnTargetOfState, storedReturnTarget, transactionCookie, TRANSACTION_TTL_MS } from './transaction.ts'
import { allow, deny, IAP_ENDPOINT_METHODS, routeIapEndpoints, type Handler } from './routes.ts'
import { createWhoami } from './whoami.ts'

export interface IapLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

export interface IapEndpointDeps {
  /** `server.publicUrl`. */
  readonly publicUrl: string
  readonly tenantId: string
  readonly sessions: Sessions
  readonly entra: EntraClient
  /** Key sealing the login transaction cookie. */
  readonly transactionKey: Buffer
  readonly secureCookies: boolean
  readonly timeouts: SessionTimeouts
  readonly clock: Clock
  /** Groups overage lookups (a token with over 200 groups carries none); without it an overage sign-in is refused. */
  readonly graph?: GraphGroups
  /** The full authenticator, so whoami answers for bearer credentials too; sessions only when absent. */
  readonly authenticate?: (req: IncomingMessage, ctx: RequestContext) => AuthOutcome | Promise<AuthOutcome>
  readonly log?: IapLogger
}

/** What an operator checks when Entra refuses the proxy's client credentials (`login-client-auth-failed`). */
const CLIENT_AUTH_HINT = 'check entra.clientSecret (expired?) and entra.clientId against the app registration'

/** Entra's `error` values that mean the user was not signed in (rather than a broken response). */
const IDP_DENIALS = new Set(['access_denied', 'consent_required', 'interaction_required', 'login_required'])

/** What a sign-in failure page says happened (one sentence), and which link it offers next. */
interface LoginFailurePage {
  readonly title: string
  readonly message: string
  /** `retry`: a new sign-in for the page the user wanted; `home`: `/`; `sign-out`: to sign in with another account. */
  readonly next: 'retry' | 'home' | 'sign-out'
}

const FAILED = 'Sign-in failed'
const UNAVAILABLE = 'Sign-in temporarily unavailable'

const LOGIN_FAILURES: Record<string, LoginFailurePage> = {
  'redirect-target-invalid': { title: 'Sign-in link not valid', message: 'This sign-in link does not lead to a page of this GitLab, so it was not followed.', next: 'home' },
  'login-not-navigation': { title: 'Sign-in not started', message: 'A sign-in starts only from a page you open, not from an image or a script.', next: 'home' },
  'login-state-invalid': { title: FAILED, message: 'The sign-in response does not belong to a sign-in started here.', next: 'retry' },
  'login-transaction-missing': { title: FAILED, message: 'The sign-in response does not belong to a sign-in started in this browser.', next: 'retry' },
  'login-transaction-expired': { title: FAILED, message: 'The sign-in took more than 10 minutes and expired.', next: 'retry' },
  'login-callback-replayed': { title: FAILED, message: 'This sign-in response was already used.', next: 'retry' },
  'login-denied-at-idp': { title: FAILED, message: 'Microsoft Entra ID did not sign you in.', next: 'retry' },
  'login-callback-invalid': { title: FAILED, message: 'The sign-in response from Microsoft Entra ID is not valid.', next: 'retry' },
  'login-code-rejected': { title: FAILED, message: 'Microsoft Entra ID refused the sign-in code.', next: 'retry' },
  'login-client-auth-failed': { title: 'Sign-in misconfigured', message: 'Sign-in is misconfigured on this server: Microsoft Entra ID did not accept its credentials, so no one can sign in until your administrator fixes it.', next: 'retry' },
  'login-id-token-invalid': { title: FAILED, message: 'The identity token from Microsoft Entra ID is not valid.', next: 'retry' },
  'login-tenant-invalid': { title: FAILED, message: 'The account you signed in with belongs to another organisation.', next: 'sign-out' },
  'login-claims-invalid': { title: FAILED, message: 'The identity token from Microsoft Entra ID lacks the user object id, or its user name, email or a group contains control characters: ask your administrator to check the account.', next: 'sign-out' },
  'login-idp-unavailable': { title: UNAVAILABLE, message: 'Microsoft Entra ID cannot be reached or is too busy to sign you in right now.', next: 'retry' },
  'login-groups-unavailable': { title: UNAVAILABLE, message: 'Your group memberships cannot be read from Microsoft Entra ID right now.', next: 'retry' },
  'session-store-unavailable': { title: UNAVAILABLE, message: 'The session store is unavailable, so no session can be started right now.', next: 'retry' },
}

const SIGN_OUT_TO_SWITCH: NextStep = Object.freeze({ href: '/-/iap/logout', text: 'Sign out to use another account' })

/**
 * Tells the browser to drop what it cached for this origin at sign-out, so Back shows no page of the
 * previous user. Never `"cookies"`: that clears every cookie of the registrable domain, other apps' too.
 */
const CLEAR_CACHE = '"cache"'

/** Builds the `/-/iap/*` handler for the app (`AppDeps.iapEndpoints`). */
export function createIapEndpoints(deps: IapEndpointDeps) {
  const publicUrl = deps.publicUrl.replace(/\/+$/, '')
  const secure = deps.secureCookies
  const cookieName = deps.sessions.cookieName
  const publicOrigin = new URL(publicUrl).origin
  // The issuers a front-channel logout may name: this tenant's v2.0 issuer, and its v1 one.
  const ownIssuers = new Set([deps.entra.issuer, `https://sts.windows.net/${deps.tenantId}`].map((i) => i.toLowerCase().replace(/\/+$/, '')))

  /** A refused sign-in; `target`, when known, is where "Try again" signs in for. A 503 says when to retry. */
  const failLogin = (req: IncomingMessage, res: ServerResponse, ctx: RequestContext, reason: string, status: number, extra: Record<string, string | string[]> = {}, target?: string) => {
    deny(ctx, reason)
    const page = LOGIN_FAILURES[reason] ?? { title: status >= 500 ? UNAVAILABLE : FAILED, message: 'The sign-in did not complete.', next: 'retry' }
    const next = page.next === 'home' ? HOME : page.next === 'sign-out' ? SIGN_OUT_TO_SWITCH : tryAgain(target)
    const headers = status === 503 && extra['retry-after'] === undefined ? { ...extra, 'retry-after': '5' } : extra
    sendStatusPage(req, res, { status, title: page.title, message: page.message, requestId: ctx.id, reason, next }, headers)
  }

  const login: Handler = async (req, res, ctx) => {
    // Only a navigation starts a sign-in: an image or a script GitLab renders cannot start them by the dozen.
    if (!isNavigationDestination(req)) return failLogin(req, res, ctx, 'login-not-navigation', 403)
    const rd = new URLSearchParams(ctx.query).get('rd')
    const target = rd === null ? { ok: true as const, target: '/' } : validateRedirectTarget(rd)
    if (!target.ok) return failLogin(req, res, ctx, target.reason, 400)
    // The callback needs the store (spent states, the new session). When readiness already says it is
    // down, refuse now rather than after the user has typed their password at Entra.
    if (!deps.sessions.store.isReady()) return failLogin(req, res, ctx, 'session-store-unavailable', 503, { 'retry-after': '5' }, target.target)
    const returnTo = storedReturnTarget(target.target)
    const state = loginState(randomState(), returnTo)
    const nonce = randomNonce()
    const codeVerifier = randomPKCECodeVerifier()
    let url: URL
    try {
      url = await deps.entra.authorizationUrl({ state, nonce, codeChallenge: await calculatePKCECodeChallenge(codeVerifier) })
    } catch (err) {
      deps.log?.warn({ code: (err as { code?: string }).code, requestId: ctx.id }, 'sign-in cannot start: Entra discovery failed')
      return failLogin(req, res, ctx, 'login-idp-unavailable', 503, { 'retry-after': '5' }, target.target)
    }
    const now = deps.clock.now()
    const tx = { state, nonce, codeVerifier, returnTo, expiresAt: now + TRANSACTION_TTL_MS }
    const { slot, stale } = chooseTransactionSlot(deps.transactionKey, cookieName, req.headers.cookie, now, secure)
    // The sign-in asked for has begun: the challenge was the protected request that led here.
    allow(ctx, 'login-started')
    sendRedirect(res, url.href, ctx.id, { 'set-cookie': [...stale, transactionCookie(deps.transactionKey, cookieName, slot, tx, secure)] })
  }

  async function resolveUser(claims: Readonly<Record<string, unknown>>): Promise<{ ok: true; user: SessionUser; loginHint?: string; sid?: string } | { ok: false; reason: string; status: number }> {
    const mapped = userFromIdToken(claims, deps.tenantId)
    if (!mapped.ok) return { ok: false, reason: mapped.reason, status: 403 }
    let user = mapped.user
    if (mapped.overage) {
      if (!deps.graph) return { ok: false, reason: 'login-groups-unavailable', status: 503 }
      try {
        user = withGraphGroups(user, await deps.graph.groupsOf(deps.tenantId, user.id, { fresh: true, interactive: true }))
      } catch {
        // Fail closed: a user whose groups cannot be read gets no session.
        return { ok: false, reason: 'login-groups-unavailable', status: 503 }
      }
    }
    return { ok: true, user, ...(mapped.loginHint !== undefined && { loginHint: mapped.loginHint }), ...(mapped.sid !== undefined && { sid: mapped.sid }) }
  }

  const callback: Handler = async (req, res, ctx) => {
    const params = new URLSearchParams(ctx.query)
    const state = params.get('state')
    const found = readTransaction(deps.transactionKey, cookieName, req.headers.cookie, state, deps.clock.now())
    if (!found.ok) {
      if (found.reason !== 'login-state-invalid' && isBrowserNavigation(req)) return recoverLostTransaction(req, res, ctx, state, found.reason)
      return failLogin(req, res, ctx, found.reason, 400, {}, returnTargetOfState(state))
    }
    const { tx } = found
    const fail = (reason: string, status: number, extra: Record<string, string | string[]> = {}) => failLogin(req, res, ctx, reason, status, extra, tx.returnTo)
    const clearTx = [clearTransactionCookie(cookieName, found.slot, secure), ...(hasRetryCookie(req) ? [clearRetry] : [])]
    let first: boolean
    try {
      first = await deps.sessions.store.claimOnce(`callback:${tx.state}`, TRANSACTION_TTL_MS * 2)
    } catch {
      return fail('session-store-unavailable', 503, { 'retry-after': '5' })
    }
    if (!first) return fail('login-callback-replayed', 400, { 'set-cookie': clearTx })
    // An error answer from Entra (the user cancelled, consent missing) ends here: nothing is redeemed,
    // so it is reported as what it is even when it lacks `iss` (which openid-client would report first).
    const idpError = params.get('error')
    if (idpError !== null) {
      const denied = IDP_DENIALS.has(idpError)
      deps.log?.info({ reason: denied ? 'login-denied-at-idp' : 'login-callback-invalid', error: idpError.slice(0, 64), requestId: ctx.id }, 'sign-in failed')
      return fail(denied ? 'login-denied-at-idp' : 'login-callback-invalid', denied ? 403 : 400, { 'set-cookie': clearTx })
    }
    const callbackUrl = new URL(`${deps.entra.redirectUri}${ctx.query ? `?${ctx.query}` : ''}`)
    const redeemed = await deps.entra.redeem(callbackUrl, { state: tx.state, nonce: tx.nonce, codeVerifier: tx.codeVerifier })
    if (!redeemed.ok) {
      if (redeemed.reason === 'login-client-auth-failed') {
        // Every sign-in fails until an operator acts: an error, with the IdP's own words (never the secret, the code or a token).
        deps.log?.error(
          { code: 'IAP_ERR_ENTRA_CLIENT_AUTH', reason: redeemed.reason, error: redeemed.idpError?.error, errorDescription: redeemed.idpError?.description, hint: CLIENT_AUTH_HINT, requestId: ctx.id },
          'sign-in failed: Entra refused the proxy\'s client credentials',
        )
        return fail(redeemed.reason, 502, { 'set-cookie': clearTx })
      }
      if (redeemed.reason === 'login-idp-unavailable') {
        // Entra down, busy or unreachable (a 5xx, `temporarily_unavailable`, a reset): an outage (503, as at
        // login), and a warning with Entra's status and words, so an incident reads as one and not as users' errors.
        const outage = redeemed.outage
        deps.log?.warn(
          { code: 'IAP_ERR_IDP_UNAVAILABLE', reason: redeemed.reason, httpStatus: outage?.httpStatus, error: outage?.error, errorDescription: outage?.description, failure: outage?.failure, requestId: ctx.id },
          'sign-in failed: Entra\'s token endpoint is unavailable',
        )
        return fail(redeemed.reason, 503, { 'set-cookie': clearTx, 'retry-after': '5' })
      }
      deps.log?.info({ reason: redeemed.reason, requestId: ctx.id }, 'sign-in failed')
      return fail(redeemed.reason, redeemed.status, { 'set-cookie': clearTx })
    }
    const resolved = await resolveUser(redeemed.tokens.claims)
    if (!resolved.ok) return fail(resolved.reason, resolved.status, { 'set-cookie': clearTx })
    let setCookie: string
    try {
      // A session presented before sign-in is never reused (fixation): end it, start a new one.
      await deps.sessions.end(req).catch(() => undefined)
      const created = await deps.sessions.create(resolved.user, {
        idToken: redeemed.tokens.idToken,
        ...(redeemed.tokens.refreshToken !== undefined && { refreshToken: redeemed.tokens.refreshToken }),
        ...(resolved.loginHint !== undefined && { loginHint: resolved.loginHint }),
        ...(resolved.sid !== undefined && { sid: resolved.sid }),
      })
      setCookie = created.setCookie
    } catch {
      return fail('session-store-unavailable', 503, { 'set-cookie': clearTx, 'retry-after': '5' })
    }
    ctx.authMethod = 'session'
    ctx.identity = { kind: 'user', id: resolved.user.id, groups: resolved.user.groups, roles: resolved.user.roles, issuer: 'entra', ...(resolved.user.name !== undefined && { name: resolved.user.name }), ...(resolved.user.email !== undefined && { email: resolved.user.email }), tenantId: deps.tenantId }
    allow(ctx, 'login-succeeded')
    sendRedirect(res, tx.returnTo, ctx.id, { 'set-cookie': [setCookie, ...clearTx] })
  }

  const retryName = retryCookieName(cookieName)
  const clearRetry = serializeCookie(retryName, '', { secure, maxAgeSeconds: 0 })
  const hasRetryCookie = (req: IncomingMessage) => typeof req.headers.cookie === 'string' && req.headers.cookie.includes(`${retryName}=`)

  /**
   * A callback whose transaction is gone: another tab's sign-in, started at the same moment, took its slot
   * (or the user took too long). Already signed in (that other tab finished): on to the page. Otherwise
   * the sign-in starts again, once, for the page the state names; Entra's single sign-on makes that
   * invisible. A second loss in a row shows the error.
   */
  async function recoverLostTransaction(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, state: string | null, reason: string): Promise<void> {
    const target = returnTargetOfState(state)
    const session = await Promise.resolve(deps.sessions.authenticate(req)).catch(() => undefined)
    if (session?.ok) {
      // Signed in (by the other tab): the record names who, as for any session request.
      ctx.identity = session.identity
      ctx.authMethod = session.method
      allow(ctx, 'login-already-signed-in')
      return sendRedirect(res, target, ctx.id, hasRetryCookie(req) ? { 'set-cookie': clearRetry } : {})
    }
    if (hasRetryCookie(req)) return failLogin(req, res, ctx, reason, 400, { 'set-cookie': clearRetry }, target)
    deny(ctx, 'login-restarted', 'challenge')
    sendRedirect(res, `/-/iap/login?rd=${encodeURIComponent(target)}`, ctx.id, { 'set-cookie': serializeCookie(retryName, '1', { secure, maxAgeSeconds: 120 }) })
  }

  // Front-channel logout (OIDC Front-Channel Logout 1.0): Entra loads `/-/iap/logout?sid=…&iss=…` in a
  // hidden frame when the user signs out elsewhere. The sessions signed in under that Entra session end
  // (on every replica: the store is shared), and the frame gets an empty 200, never a redirect.
  const frontChannelLogout = async (req: IncomingMessage, res: ServerResponse, ctx: RequestContext, sid: string, iss: string | null) => {
    if (iss !== null && !ownIssuers.has(iss.toLowerCase().replace(/\/+$/, ''))) {
      deny(ctx, 'logout-issuer-invalid')
      return sendStatusPage(req, res, { status: 400, title: 'Bad request', message: 'This logout request names another issuer.', requestId: ctx.id, reason: 'logout-issuer-invalid' })
    }
    let ended = 0
    try {
      ended = await deps.sessions.endEntraSession(sid)
    } catch {
      deny(ctx, 'session-store-unavailable')
      return sendStatusPage(req, res, { status: 503, title: 'Temporarily unavailable', message: 'The session store is unavailable.', requestId: ctx.id, reason: 'session-store-unavailable' }, { 'retry-after': '5' })
    }
    deps.log?.info({ requestId: ctx.id, sessionsEnded: ended }, 'front-channel logout')
    allow(ctx, 'front-channel-logout')
    // No cookie deletion: the frame is Entra's (a cross-site context, where it would not apply), and on a
    // top-level link from another site it would be a logout without the confirmation. The records are gone.
    // No Clear-Site-Data either: in Entra's frame (third-party, with caches partitioned by top-level site) it
    // would reach at most that frame's partition, not the GitLab tab's; at the top level any site could set it off.
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': 0, 'cache-control': 'no-store', 'x-request-id': ctx.id })
    res.end()
  }

  const logout: Handler = async (req, res, ctx) => {
    const params = req.method === 'GET' && ctx.query !== '' ? new URLSearchParams(ctx.query) : undefined
    const sid = params?.get('sid')
    if (sid) return frontChannelLogout(req, res, ctx, sid, params!.get('iss'))
    // Another site linking or posting here would end the session and, through the end-session
    // redirect with its hints, the user's Microsoft sign-in: from elsewhere, ask first. So does a
    // request that is not a navigation: GitLab renders users' images and links on this same origin.
    if (fromAnotherSite(req) || !isNavigationDestination(req)) return confirmLogout(req, res, ctx)
    let hints: { idToken?: string; loginHint?: string } | undefined
    try {
      const ended = await deps.sessions.end(req)
      hints = ended
      // The record says who signed out, not an anonymous line.
      if (ended) {
        ctx.identity = ended.identity
        ctx.authMethod = 'session'
      }
    } catch {
      // The store is down: the record would outlive a cleared cookie, and a copy of the cookie with it.
      // The user is told, keeps the cookie, and can try again.
      deps.log?.warn({ requestId: ctx.id }, 'logout could not delete the session record')
      deny(ctx, 'session-store-unavailable')
      return sendStatusPage(req, res, { status: 503, title: 'Sign-out temporarily unavailable', message: 'Your session could not be ended because the session store is unavailable.', requestId: ctx.id, reason: 'session-store-unavailable', next: { href: '/-/iap/logout', text: 'Try again' } }, { 'retry-after': '5' })
    }
    const postLogout = `${publicUrl}/`
    const endSession = await deps.entra.endSessionUrl({
      postLogoutRedirectUri: postLogout,
      // `logout_hint` alone picks the account at Entra; the ID token (name, email, groups) would stay in
      // the browser's history and URL logs. It is the hint only for a session without the login_hint claim.
      ...(hints?.loginHint !== undefined ? { logoutHint: hints.loginHint } : hints?.idToken !== undefined && { idTokenHint: hints.idToken }),
    })
    // A completed sign-out, with or without a session to end: not a challenge, not a failure.
    allow(ctx, 'logout')
    sendRedirect(res, endSession?.href ?? postLogout, ctx.id, { 'set-cookie': deps.sessions.clearCookie(), 'clear-site-data': CLEAR_CACHE })
  }

  // The form posts here, and the answer redirects on to Entra's end-session endpoint: browsers hold a
  // form's redirects to `form-action` too, so Entra's origin is named beside our own. The page's one
  // inline style is allowed by its hash.
  const confirmPolicy = `default-src 'none'; style-src ${PAGE_STYLE_HASH}; form-action 'self' ${new URL(deps.entra.issuer).origin}; frame-ancestors 'none'`
  const sendPage = (res: ServerResponse, ctx: RequestContext, body: string, headers: Record<string, string> = {}) => {
    res.writeHead(200, { ...headers, 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY', 'content-security-policy': confirmPolicy, 'x-request-id': ctx.id })
    res.end(body)
  }
  const confirmLogout = async (req: IncomingMessage, res: ServerResponse, ctx: RequestContext) => {
    const found = await Promise.resolve(deps.sessions.resolve(req)).catch(() => undefined)
    // The session cookie is SameSite=Lax: a request another site started carries it only as a top-level
    // GET navigation, so a missing cookie on its POST (or in its frame) proves nothing, and the question is asked.
    const cookieWouldCome = !fromAnotherSite(req) || (req.method === 'GET' && (req.headers['sec-fetch-dest'] ?? 'document') === 'document')
    // No live session (no cookie where one would come, or one whose session is over): nothing to end, so
    // nothing to ask. A dead cookie is deleted, as any 401 does. A store that cannot tell asks.
    if ((found?.kind === 'none' && cookieWouldCome) || (found?.kind === 'failed' && found.outcome.status === 401)) {
      allow(ctx, 'logout-not-signed-in')
      return sendPage(res, ctx, notSignedInPage(), found.kind === 'failed' ? { 'set-cookie': deps.sessions.clearCookie() } : {})
    }
    const identity = found?.kind === 'ok' ? found.identity : undefined
    // Answered with a question, nothing ended: a served page, not an authentication challenge.
    allow(ctx, 'logout-confirm')
    sendPage(res, ctx, logoutConfirmPage(identity && (identity.name ?? identity.email ?? identity.id)))
  }

  /** A request another site started: `Sec-Fetch-Site` says so, or an `Origin` that is not ours (older browsers). */
  const fromAnotherSite = (req: IncomingMessage): boolean => {
    const site = req.headers['sec-fetch-site']
    if (site !== undefined) return site !== 'same-origin' && site !== 'none'
    const origin = req.headers.origin
    return origin !== undefined && origin !== publicOrigin
  }

  const whoami = createWhoami({ sessions: deps.sessions, timeouts: deps.timeouts, ...(deps.authenticate && { authenticate: deps.authenticate }) })

  const routes: Record<string, { methods: readonly string[]; handler: Handler }> = {
    '/-/iap/login': { methods: IAP_ENDPOINT_METHODS['/-/iap/login']!, handler: login },
    '/-/iap/callback': { methods: IAP_ENDPOINT_METHODS['/-/iap/callback']!, handler: callback },
    '/-/iap/logout': { methods: IAP_ENDPOINT_METHODS['/-/iap/logout']!, handler: logout },
    '/-/iap/whoami': { methods: IAP_ENDPOINT_METHODS['/-/iap/whoami']!, handler: whoami },
  }

  return routeIapEndpoints(routes)
}
