/**
 * Browser sign-in, assembled from the config over a session store: the session authentication
 * step with refresh at Entra, the `/-/iap/*` endpoints, and the upstream-header hook that keeps the
 * IAP's cookies away from GitLab. `src/server/start.ts` builds the store (it also carries
 * revocations, with or without sign-in) and this once, and hands the pieces to the authenticator
 * and the app.
 */
import type { IncomingMessage } from 'node:http'
import type { AuthOutcome, SessionStep } from '../auth/authenticate.ts'
import { createGraphGroups, type GraphGroups } from '../auth/graph-groups.ts'
import type { Revocations } from '../auth/revocations.ts'
import { systemClock, type Clock } from '../auth/session/clock.ts'
import { userFromIdToken, withGraphGroups } from '../auth/session/id-token-user.ts'
import { deriveSessionKeys } from '../auth/session/keys.ts'
import type { SessionTimeouts } from '../auth/session/record.ts'
import { createSessions, type Refresher, type Sessions } from '../auth/session/sessions.ts'
import type { SessionStore } from '../auth/session/store.ts'
import type { Config } from '../config/schema.ts'
import { IapError } from '../errors.ts'
import { withoutCookies } from '../proxy/headers.ts'
import type { RequestContext } from '../server/context.ts'
import { createEntraClient, type EntraClient } from './entra-client.ts'
import { createIapEndpoints } from './endpoints.ts'
import { sessionCookieSecure } from './session-cookie.ts'

export { browserSignInConfigured } from './routes.ts'

export interface BrowserSignInDeps {
  readonly log: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void; error(obj: object, msg?: string): void }
  /** Revocations (from `/admin/revoke` on any replica): sessions begun before one are refused. */
  readonly revocations?: Revocations
  readonly graph?: GraphGroups
  readonly clock?: Clock
  /** The session store (`createConfiguredStore`); its owner closes it. */
  readonly store: SessionStore
}

export interface BrowserSignIn {
  readonly sessions: Sessions
  readonly entra: EntraClient
  /** The authenticator's `session` step. */
  readonly sessionStep: SessionStep
  /** Builds the `/-/iap/*` handler; `authenticate` lets whoami answer for bearer credentials too. */
  endpoints(extra: { authenticate?: (req: IncomingMessage, ctx: RequestContext) => AuthOutcome | Promise<AuthOutcome> }): ReturnType<typeof createIapEndpoints>
  /** Groups overage lookups (shared with bearer verification). */
  readonly graph: GraphGroups
  /** The Cookie header GitLab gets: without the IAP's own cookies (GitLab's stay); `undefined` when none is left. */
  forwardedCookie(header: string): string | undefined
  /** True for the IAP's own cookie names (the session cookie and its sign-in transaction cookies). */
  isOwnCookie(name: string): boolean
  /** Details for the `sessions` readiness check (the store's own come from the store). */
  readiness(): Record<string, unknown>
}

/** Session timeouts from the config (already milliseconds). */
export function timeoutsOf(config: Config): SessionTimeouts {
  return {
    absoluteTimeoutMs: config.session.absoluteTimeout,
    idleTimeoutMs: config.session.idleTimeout,
    refreshIntervalMs: config.session.refreshInterval,
    refreshGraceMs: config.session.refreshGrace,
  }
}

/** Builds browser sign-in; call only when `browserSignInConfigured(config)`. */
export function createBrowserSignIn(config: Config, deps: BrowserSignInDeps): BrowserSignIn {
  const entraConfig = config.entra
  const secret = config.session.secret
  if (!entraConfig?.clientSecret || !secret) throw new IapError('IAP_ERR_CONFIG_INVALID', 'browser sign-in needs entra.clientSecret and session.secret')
  const clock = deps.clock ?? systemClock
  const keys = deriveSessionKeys(secret)
  const timeouts = timeoutsOf(config)
  const cookieName = config.session.cookieName
  const publicUrl = config.server.publicUrl
  const secureCookies = sessionCookieSecure(config)

  const store = deps.store

  const graph =
    deps.graph ??
    createGraphGroups({
      tenantId: entraConfig.tenantId,
      clientId: entraConfig.clientId,
      clientSecret: entraConfig.clientSecret,
      authority: entraConfig.authority,
      graphUrl: entraConfig.graphUrl,
    })
  const entra = createEntraClient({ entra: entraConfig, publicUrl })
  void entra.warmUp()

  // Every session's refresh fails alike while the client secret is wrong: one error line a minute says so.
  let lastClientAuthLog = 0
  const refresh: Refresher = async (refreshToken, previous) => {
    const result = await entra.refresh(refreshToken)
    if (!result.ok) {
      if (result.idpError && Date.now() - lastClientAuthLog >= 60_000) {
        lastClientAuthLog = Date.now()
        deps.log.error(
          { code: 'IAP_ERR_ENTRA_CLIENT_AUTH', error: result.idpError.error, errorDescription: result.idpError.description, hint: 'check entra.clientSecret (expired?) and entra.clientId against the app registration' },
          'Entra refused the proxy\'s client credentials at a session refresh; sessions are served within session.refreshGrace, then refused (503)',
        )
      }
      return { ok: false, reason: result.reason }
    }
    const claims = result.tokens.claims
    // No new ID token: nothing re-checks the user's groups, and renewing on what we knew would keep a
    // removed group for the whole session. End it; sign-in re-checks.
    if (!claims) return { ok: false, reason: 'session-refresh-missing' }
    const mapped = userFromIdToken(claims, entraConfig.tenantId)
    // A refreshed token for another user or tenant is never accepted into this session.
    if (!mapped.ok || mapped.user.id !== previous.user.id) return { ok: false, reason: 'session-refresh-rejected' }
    let user = mapped.user
    if (mapped.overage) {
      try {
        user = withGraphGroups(user, await graph.groupsOf(entraConfig.tenantId, user.id, { fresh: true }))
      } catch {
        return { ok: false, reason: 'session-refresh-unavailable' }
      }
    }
    return {
      ok: true,
      user,
      ...(result.tokens.refreshToken !== undefined && { refreshToken: result.tokens.refreshToken }),
      ...(result.tokens.idToken !== undefined && { idToken: result.tokens.idToken }),
      ...(mapped.loginHint !== undefined && { loginHint: mapped.loginHint }),
    }
  }

  const sessions = createSessions({
    cookieName,
    secureCookies,
    keys,
    store,
    timeouts,
    clock,
    refresh,
    log: deps.log,
    ...(deps.revocations && { revokedAt: deps.revocations.revokedAt }),
  })

  const txPrefix = `${cookieName}-tx-`
  const isOwnCookie = (name: string) => name === cookieName || name.startsWith(txPrefix)

  return {
    sessions,
    entra,
    graph,
    sessionStep: { authenticate: (req) => sessions.authenticate(req) },
    endpoints: (extra) =>
      createIapEndpoints({
        publicUrl,
        tenantId: entraConfig.tenantId,
        sessions,
        entra,
        transactionKey: keys.transactionSeal,
        secureCookies,
        timeouts,
        clock,
        log: deps.log,
        graph,
        ...(extra.authenticate && { authenticate: extra.authenticate }),
      }),
    forwardedCookie(header) {
      // Transaction cookies are named `<cookieName>-tx-…`: a header without the name holds none of ours.
      if (!header.includes(cookieName)) return header
      return withoutCookies(header, isOwnCookie)
    },
    isOwnCookie,
    readiness: () => ({ entraDiscovery: entra.isReady() }),
  }
}
