/**
 * Revoked users (`POST /admin/revoke`, docs/bearer.md): a credential of that user issued before the revocation
 * is refused, even when the verified-token cache still holds it. Keyed case-insensitively by the id
 * and the name as they leave the proxy (`qualifiedValue`, as `users` rules and X-Forwarded-User show
 * them): Entra object id or upn; `<issuer name>:<user>` for an extra issuer, so `gitlab-ci:ada`
 * revokes that CI identity and a bare `ada` does not. Kept longer than any token lives (Entra CAE
 * tokens: up to 28 h).
 * In-process; `shareRevocations` connects it to the session store, which persists and broadcasts
 * revocations to every replica (with `session.store: redis`) and calls `revoke` there.
 */
import { LRUCache } from 'lru-cache'
import { qualifiedValue, type Identity } from './identity.ts'
import type { SessionStore } from './session/store.ts'

export interface Revocations {
  /** Revokes credentials of `user` (oid or upn; `<issuer name>:<user>` for an extra issuer) issued before `atMs` (default: now). */
  revoke(user: string, atMs?: number): void
  /**
   * True when the identity's credential was issued before a revocation of its (qualified) id or name.
   * `firstSeenMs`: when this process first accepted the credential (bearer tokens). Accepted here
   * before the revocation, it is revoked whatever its `iat`; otherwise it settles a credential issued
   * in the revocation's own second.
   */
  isRevoked(identity: Identity, firstSeenMs?: number): boolean
  /** Calls `listener` after each revocation applied here, local or from another replica. */
  onRevoke(listener: () => void): void
  /** Epoch ms of the latest revocation of `user`, if any. */
  revokedAt(user: string): number | undefined
}

export interface RevocationOptions {
  /** How long a revocation is remembered (default 30 h, longer than any access token). */
  readonly ttlMs?: number
  /** Most revoked users remembered (oldest forgotten first). */
  readonly max?: number
  readonly now?: () => number
}

/** How a revoked user (oid or upn) is keyed: any case, surrounding spaces ignored. */
const key = (user: string): string => user.trim().toLowerCase()

export function createRevocations(options: RevocationOptions = {}): Revocations {
  const now = options.now ?? Date.now
  const revoked = new LRUCache<string, number>({ max: options.max ?? 100_000, ttl: options.ttlMs ?? 30 * 3600_000, ttlResolution: 0 })
  const latest = (user: string) => revoked.get(key(user)) ?? 0
  const listeners: (() => void)[] = []
  return {
    onRevoke(listener) {
      listeners.push(listener)
    },
    revoke(user, atMs = now()) {
      const k = key(user)
      if (k === '') return
      revoked.set(k, Math.max(atMs, revoked.get(k) ?? 0))
      for (const listener of listeners) listener()
    },
    isRevoked(identity, firstSeenMs) {
      if (revoked.size === 0) return false
      // By id and name as `users` rules and identity headers show them (`gitlab-ci:ada`, not `ada`).
      const at = Math.max(latest(qualifiedValue(identity, identity.id)), identity.name ? latest(qualifiedValue(identity, identity.name)) : 0)
      if (at === 0) return false
      if (identity.issuedAt === undefined) return true
      // Accepted here before the revocation: revoked, even with an `iat` ahead of it (an IdP clock up
      // to the 60 s skew fast).
      if (firstSeenMs !== undefined && firstSeenMs <= at) return true
      const issuedMs = identity.issuedAt * 1000
      if (issuedMs + 1000 <= at) return true
      if (issuedMs >= at) return false
      // `iat` has whole seconds, and this credential comes from the revocation's own second: it counts as
      // earlier (fail closed) unless it was first presented after the revocation — the fresh token a
      // revoked user gets right after being let back in, not one they held before.
      return firstSeenMs === undefined
    },
    revokedAt: (user) => revoked.get(key(user)),
  }
}

export interface SharedRevocationDeps {
  readonly revocations: Revocations
  /** The session store: sessions to end, and the channel to the other replicas. None: this process only. */
  readonly store?: SessionStore
  readonly now?: () => number
  readonly log?: { info(obj: object, msg?: string): void }
}

/** `POST /admin/revoke`: what a revocation did. */
export interface RevokeResult {
  /** The revocation time (epoch ms): credentials issued before it are refused. */
  readonly at: number
  readonly sessionsEnded: number
  /** Whether other replicas (and replicas started later) learn it: the store is Redis. */
  readonly shared: boolean
}

/**
 * Connects `revocations` to the store: revocations recorded there (including those made before this
 * replica started) and new ones from any replica are applied here. Returns `revoke(user)`.
 *
 * `revoke` applies the revocation here first (fail closed on this replica whatever happens next),
 * then persists and publishes it, then ends the user's sessions. A store failure rejects with
 * `IAP_ERR_SESSION_STORE_UNAVAILABLE` after the local step; every step is idempotent, so the
 * caller retries until it succeeds (a retry revokes as of its own time, which covers the first).
 */
export function shareRevocations(deps: SharedRevocationDeps): (user: string) => Promise<RevokeResult> {
  const { revocations, store } = deps
  const now = deps.now ?? Date.now
  store?.onRevocation((event) => revocations.revoke(event.user, event.at))
  return async (user) => {
    const at = now()
    const revoked = key(user)
    revocations.revoke(revoked, at)
    let sessionsEnded = 0
    if (store) {
      // Published before the sessions are deleted: from here on every replica refuses the older
      // sessions (`revokedAt`) and bearer tokens even if the deletion below fails and awaits a retry.
      await store.publishRevocation({ user: revoked, at })
      sessionsEnded = await store.deleteUser(revoked)
    }
    const shared = store?.kind === 'redis'
    deps.log?.info({ user, sessionsEnded, shared }, 'user revoked')
    return { at, sessionsEnded, shared }
  }
}
