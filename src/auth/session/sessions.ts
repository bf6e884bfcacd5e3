/**
 * Browser sessions: the `session` authentication step (cookie → record → Identity), creating a
 * session at sign-in, ending it at logout or revocation, and the periodic refresh that re-checks
 * the user at Entra (so a disabled user loses access): single-flight per session in this process, and across
 * replicas through the store's lock, because a rotated refresh token must never be spent twice.
 */
import type { IncomingMessage } from 'node:http'
import { LRUCache } from 'lru-cache'
import type { AuthOutcome } from '../authenticate.ts'
import { isIapError } from '../../errors.ts'
import type { Identity } from '../identity.ts'
import type { Clock } from './clock.ts'
import { cookieValues, createSessionId, serializeCookie, signSessionId, storeKeyFor, verifySessionCookie } from './cookies.ts'
import type { SessionKeys } from './keys.ts'
import { assessSession, identityOf, sidKey, storeTtlMs, withinRefreshGrace, type SessionRecord, type SessionTimeouts, type SessionUser } from './record.ts'
import { open, seal } from './seal.ts'
import type { MaybePromise, SessionStore } from './store.ts'

/** What a refresh at Entra found out. */
export type RefreshResult =
  | { readonly ok: true; readonly user: SessionUser; readonly refreshToken?: string; readonly idToken?: string; readonly loginHint?: string }
  /**
   * `session-refresh-rejected`: the grant is gone (user disabled, consent or token revoked);
   * `session-refresh-missing`: the answer cannot re-check the user (no ID token). Either ends the session.
   */
  | { readonly ok: false; readonly reason: 'session-refresh-rejected' | 'session-refresh-missing' | 'session-refresh-unavailable' }

/** Redeems a refresh token at Entra and returns the user as it is now. */
export type Refresher = (refreshToken: string, previous: SessionRecord) => Promise<RefreshResult>

export interface SessionLogger {
  warn(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
}

export interface SessionsOptions {
  readonly cookieName: string
  /** Add `Secure` to cookies (always, except plain-http loopback demos and tests; `__Host-` requires it anyway). */
  readonly secureCookies: boolean
  readonly keys: SessionKeys
  readonly store: SessionStore
  readonly timeouts: SessionTimeouts
  readonly clock: Clock
  readonly refresh?: Refresher
  readonly log?: SessionLogger
  /** How long a replica waits for another replica's refresh of the same session. */
  readonly lockWaitMs?: number
  /** Most verified cookie values remembered (default 10,000). */
  readonly verifiedCookieCacheSize?: number
  /** Latest revocation time (ms) of a user (oid or upn), from `/admin/revoke`; older sessions are refused. */
  readonly revokedAt?: (user: string) => number | undefined
}

/** A session found for a request. */
export interface ResolvedSession {
  readonly key: string
  readonly record: SessionRecord
  readonly identity: Identity
}

type Failure = Extract<AuthOutcome, { ok: false }>

export type SessionResolution =
  | { readonly kind: 'none' }
  | { readonly kind: 'failed'; readonly outcome: Failure }
  | ({ readonly kind: 'ok' } & ResolvedSession)

/** The new session's cookie and record, returned to the callback endpoint. */
export interface CreatedSession {
  readonly setCookie: string
  readonly key: string
  readonly record: SessionRecord
}

export interface TokensToKeep {
  readonly refreshToken?: string
  readonly idToken?: string
  readonly loginHint?: string
  readonly sid?: string
}

export interface Sessions {
  readonly cookieName: string
  readonly store: SessionStore
  /** The authentication step: `undefined` when the request carries no session cookie. */
  authenticate(req: IncomingMessage): AuthOutcome | Promise<AuthOutcome> | undefined
  /** Like `authenticate`, but also hands back the record (whoami, logout). */
  resolve(req: IncomingMessage): MaybePromise<SessionResolution>
  /** A new session (fresh id: never reuse one presented before sign-in). */
  create(user: SessionUser, tokens: TokensToKeep): Promise<CreatedSession>
  /** Deletes the request's session, if any, and returns what logout needs (the id_token hint). */
  /** Ends the request's session; what logout needs of it: the end-session hints, and who it was (for the access log). */
  end(req: IncomingMessage): Promise<{ idToken?: string; loginHint?: string; identity: Identity } | undefined>
  /** Ends every session of a user (oid or upn, any case). */
  endUser(user: string): Promise<number>
  /** Ends the sessions signed in under an Entra session id (`sid`): front-channel logout. */
  endEntraSession(sid: string): Promise<number>
  /** `Set-Cookie` that deletes the session cookie. */
  clearCookie(): string
}

const fail = (reason: string, description: string, status: 401 | 503 = 401): Failure => ({ ok: false, method: 'session', reason, description, status })

const STORE_DOWN = fail('session-store-unavailable', 'The session store is unavailable; try again shortly.', 503)

const isPromise = <T>(value: MaybePromise<T>): value is Promise<T> => typeof (value as Promise<T>)?.then === 'function'

const DESCRIPTIONS: Record<string, string> = {
  'session-cookie-invalid': 'The session cookie is not valid.',
  'session-unknown': 'The session has ended; sign in again.',
  'session-expired': 'The session has expired; sign in again.',
  'session-idle-timeout': 'The session ended after a period of inactivity; sign in again.',
  'session-refresh-rejected': 'Your sign-in is no longer valid at Microsoft Entra ID; sign in again.',
  'session-refresh-missing': 'The session must be renewed; sign in again.',
  'session-revoked': 'The session was ended by an administrator; sign in again.',
  'session-refresh-unavailable': 'Microsoft Entra ID cannot be reached to renew the session; try again shortly.',
}

/** While Entra cannot be reached, a session in its refresh grace tries again at most this often (per replica). */
const REFRESH_RETRY_MS = 30_000

/** Builds the session machinery over a store. */
export function createSessions(options: SessionsOptions): Sessions {
  const { keys, store, timeouts, clock, cookieName } = options
  const lockWaitMs = options.lockWaitMs ?? 10_000
  const inflight = new Map<string, Promise<SessionResolution>>()
  const identities = new WeakMap<SessionRecord, Identity>()
  /** Store key → when to try a refresh again, for sessions served in their grace after Entra could not be reached. */
  const refreshRetryAt = new LRUCache<string, number>({ max: 10_000 })

  const identityFor = (record: SessionRecord) => {
    let identity = identities.get(record)
    if (!identity) identities.set(record, (identity = identityOf(record)))
    return identity
  }
  const failed = (reason: string, status: 401 | 503 = 401): SessionResolution => ({ kind: 'failed', outcome: fail(reason, DESCRIPTIONS[reason] ?? 'The session is not valid.', status) })
  const storeDown: SessionResolution = { kind: 'failed', outcome: STORE_DOWN }

  /** The session id from the request's cookies: the first value whose MAC verifies. */
  function sessionIdOf(req: IncomingMessage): string | undefined | null {
    const values = cookieValues(req.headers.cookie, cookieName)
    if (values.length === 0) return undefined
    for (const value of values) {
      const id = verifySessionCookie(keys, value)
      if (id) return id
    }
    return null
  }

  /** Cookie value → store key, for values whose MAC verified: two HMACs saved per request (the hot path caches its crypto). */
  const verifiedKeys = new LRUCache<string, string>({ max: options.verifiedCookieCacheSize ?? 10_000 })

  /** The store key of the request's session: `undefined` without a session cookie, `null` when none verifies. */
  function storeKeyOf(req: IncomingMessage): string | undefined | null {
    const values = cookieValues(req.headers.cookie, cookieName)
    if (values.length === 0) return undefined
    for (const value of values) {
      const cached = verifiedKeys.get(value)
      if (cached) return cached
      const id = verifySessionCookie(keys, value)
      if (id) {
        const key = storeKeyFor(keys, id)
        verifiedKeys.set(value, key)
        return key
      }
    }
    return null
  }

  function onStoreError(err: unknown, op: string): SessionResolution {
    if (!isIapError(err, 'IAP_ERR_SESSION_STORE_UNAVAILABLE')) options.log?.warn({ err, op }, 'session store failed unexpectedly')
    return storeDown
  }

  /** Defence in depth: a session older than a revocation of its user is refused even if its deletion was missed. */
  function isRevoked(record: SessionRecord): boolean {
    if (!options.revokedAt) return false
    const byId = options.revokedAt(record.user.id)
    const byName = record.user.name ? options.revokedAt(record.user.name) : undefined
    const at = Math.max(byId ?? 0, byName ?? 0)
    return at > 0 && record.createdAt <= at
  }

  function afterLoad(key: string, record: SessionRecord | undefined): MaybePromise<SessionResolution> {
    if (!record) return failed('session-unknown')
    if (isRevoked(record)) {
      store.delete(key).catch(() => {})
      return failed('session-revoked')
    }
    const now = clock.now()
    const state = assessSession(record, now, timeouts)
    if (state.status === 'expired') {
      store.delete(key).catch(() => {})
      return failed(state.reason)
    }
    if (state.refreshDue) {
      const retryAt = refreshRetryAt.get(key)
      if (retryAt === undefined || !withinRefreshGrace(record, now, timeouts)) return refreshSingleFlight(key, record)
      // Entra was unreachable at this session's last try and the grace holds: served as last refreshed
      // (`lastGood`) without waiting, and tried again in the background every REFRESH_RETRY_MS.
      if (now >= retryAt) {
        refreshRetryAt.set(key, now + REFRESH_RETRY_MS)
        refreshSingleFlight(key, record).catch((err: unknown) => options.log?.warn({ err, op: 'refresh' }, 'background session refresh failed'))
      }
    }
    if (state.touchDue) {
      record.lastSeenAt = now
      try {
        const written = store.touch(key, record, storeTtlMs(record, now, timeouts))
        if (isPromise(written)) written.catch((err: unknown) => options.log?.warn({ code: (err as { code?: string }).code }, 'session touch failed'))
      } catch {
        // A failed "last seen" write only shortens the idle window; the read itself succeeded.
      }
    }
    return { kind: 'ok', key, record, identity: identityFor(record) }
  }

  function resolve(req: IncomingMessage): MaybePromise<SessionResolution> {
    const key = storeKeyOf(req)
    if (key === undefined) return { kind: 'none' }
    if (key === null) return failed('session-cookie-invalid')
    let loaded: MaybePromise<SessionRecord | undefined>
    try {
      loaded = store.get(key)
    } catch (err) {
      return onStoreError(err, 'get')
    }
    if (isPromise(loaded)) return loaded.then((record) => afterLoad(key, record), (err: unknown) => onStoreError(err, 'get'))
    return afterLoad(key, loaded)
  }

  function refreshSingleFlight(key: string, record: SessionRecord): Promise<SessionResolution> {
    let running = inflight.get(key)
    if (!running) {
      running = refreshAcrossReplicas(key, record).finally(() => inflight.delete(key))
      inflight.set(key, running)
    }
    return running
  }

  async function refreshAcrossReplicas(key: string, seen: SessionRecord): Promise<SessionResolution> {
    const deadline = clock.now() + lockWaitMs
    for (;;) {
      let release: (() => Promise<void>) | undefined
      try {
        // Held longer than anyone waits for it: a replica that gave up waiting never takes over a refresh
        // still talking to Entra (which may take as long as the wait), and so never spends its refresh token twice.
        release = await store.acquireLock(key, 2 * lockWaitMs)
      } catch (err) {
        return onStoreError(err, 'lock')
      }
      if (release) {
        try {
          // Another replica may have refreshed between our read and the lock: use its work.
          const current = await store.get(key, true)
          if (!current) return failed('session-unknown')
          if (current.refreshedAt !== seen.refreshedAt) return afterLoad(key, current)
          return await refreshNow(key, current)
        } catch (err) {
          return onStoreError(err, 'refresh')
        } finally {
          await release()
        }
      }
      // Held elsewhere: wait for that refresh to land, then read its result.
      await new Promise((r) => setTimeout(r, 50))
      let current: SessionRecord | undefined
      try {
        current = await store.get(key, true)
      } catch (err) {
        return onStoreError(err, 'get')
      }
      if (!current) return failed('session-unknown')
      if (current.refreshedAt !== seen.refreshedAt) return afterLoad(key, current)
      if (clock.now() > deadline) return lastGood(key, current, 'session-refresh-unavailable')
    }
  }

  /**
   * Entra could not be reached for a due refresh: within the grace (`session.refreshGrace`) the session
   * is served as last refreshed (its groups as Entra last gave them) and the refresh retried after
   * REFRESH_RETRY_MS; past it, or with no grace, the request is refused with 503 (fail closed).
   */
  function lastGood(key: string, record: SessionRecord, reason: string): SessionResolution {
    const now = clock.now()
    if (!withinRefreshGrace(record, now, timeouts)) return failed(reason, 503)
    // The refresh may have taken seconds: what held when the request came in is checked again.
    if (isRevoked(record)) return failed('session-revoked')
    const state = assessSession(record, now, timeouts)
    if (state.status === 'expired') return failed(state.reason)
    refreshRetryAt.set(key, now + REFRESH_RETRY_MS)
    const until = new Date(record.refreshedAt + timeouts.refreshIntervalMs + (timeouts.refreshGraceMs ?? 0)).toISOString()
    options.log?.warn({ user: record.user.id, reason, until }, 'session refresh unavailable: serving the session as last refreshed')
    return { kind: 'ok', key, record, identity: identityFor(record) }
  }

  async function refreshNow(key: string, record: SessionRecord): Promise<SessionResolution> {
    const refreshToken = record.refreshToken ? open(keys.tokenSeal, record.refreshToken, key) : undefined
    if (!refreshToken || !options.refresh) {
      // Without a refresh token the user cannot be re-checked: end the session, sign-in re-checks.
      await store.delete(key)
      return failed('session-refresh-missing')
    }
    const result = await options.refresh(refreshToken, record)
    if (!result.ok) {
      if (result.reason !== 'session-refresh-unavailable') {
        await store.delete(key)
        options.log?.info({ user: record.user.id, reason: result.reason }, 'session ended by refresh')
        return failed(result.reason)
      }
      return lastGood(key, record, result.reason)
    }
    refreshRetryAt.delete(key)
    const now = clock.now()
    const next: SessionRecord = {
      ...record,
      user: result.user,
      lastSeenAt: now,
      refreshedAt: now,
      refreshToken: seal(keys.tokenSeal, result.refreshToken ?? refreshToken, key),
      ...(result.idToken !== undefined && { idToken: seal(keys.tokenSeal, result.idToken, key) }),
      ...(result.loginHint !== undefined && { loginHint: result.loginHint }),
    }
    await store.touch(key, next, storeTtlMs(next, now, timeouts))
    return { kind: 'ok', key, record: next, identity: identityFor(next) }
  }

  const toOutcome = (r: SessionResolution): AuthOutcome | undefined =>
    r.kind === 'none' ? undefined : r.kind === 'failed' ? r.outcome : { ok: true, method: 'session', identity: r.identity }

  return {
    cookieName,
    store,
    authenticate(req) {
      const r = resolve(req)
      return isPromise(r) ? r.then((x) => toOutcome(x) ?? fail('session-unknown', DESCRIPTIONS['session-unknown']!)) : toOutcome(r)
    },
    resolve,
    async create(user, tokens) {
      const id = createSessionId()
      const key = storeKeyFor(keys, id)
      const now = clock.now()
      const record: SessionRecord = {
        v: 1,
        user,
        createdAt: now,
        lastSeenAt: now,
        refreshedAt: now,
        expiresAt: now + timeouts.absoluteTimeoutMs,
        ...(tokens.refreshToken !== undefined && { refreshToken: seal(keys.tokenSeal, tokens.refreshToken, key) }),
        ...(tokens.idToken !== undefined && { idToken: seal(keys.tokenSeal, tokens.idToken, key) }),
        ...(tokens.loginHint !== undefined && { loginHint: tokens.loginHint }),
        ...(tokens.sid !== undefined && { sid: tokens.sid }),
      }
      await store.set(key, record, storeTtlMs(record, now, timeouts))
      const setCookie = serializeCookie(cookieName, signSessionId(keys, id), {
        secure: options.secureCookies,
        maxAgeSeconds: Math.floor(timeouts.absoluteTimeoutMs / 1000),
      })
      return { setCookie, key, record }
    },
    async end(req) {
      const id = sessionIdOf(req)
      if (!id) return undefined
      const key = storeKeyFor(keys, id)
      const record = await store.get(key)
      await store.delete(key)
      if (!record) return undefined
      const idToken = record.idToken ? open(keys.tokenSeal, record.idToken, key) : undefined
      return { identity: identityOf(record), ...(idToken !== undefined && { idToken }), ...(record.loginHint !== undefined && { loginHint: record.loginHint }) }
    },
    endUser: (user) => store.deleteUser(user.toLowerCase()),
    endEntraSession: (sid) => store.deleteUser(sidKey(sid)),
    clearCookie: () => serializeCookie(cookieName, '', { secure: options.secureCookies, maxAgeSeconds: 0 }),
  }
}
