/**
 * Revoked users (SPEC `POST /admin/revoke`): a credential of that user issued before the revocation
 * is refused, even when the verified-token cache still holds it. Keyed by object id and by upn
 * (case-insensitive); kept longer than any token lives (Entra CAE tokens: up to 28 h).
 * In-process: the session store broadcasts revocations to the other replicas and calls `revoke` there.
 */
import { LRUCache } from 'lru-cache'
import type { Identity } from './identity.ts'

export interface Revocations {
  /** Revokes credentials of `user` (oid or upn) issued before `atMs` (default: now). */
  revoke(user: string, atMs?: number): void
  /**
   * True when the identity's credential was issued before a revocation of its id or name.
   * `firstSeenMs`: when this process first accepted the credential (bearer tokens), which settles a
   * credential issued in the revocation's own second.
   */
  isRevoked(identity: Identity, firstSeenMs?: number): boolean
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

export function createRevocations(options: RevocationOptions = {}): Revocations {
  const now = options.now ?? Date.now
  const revoked = new LRUCache<string, number>({ max: options.max ?? 100_000, ttl: options.ttlMs ?? 30 * 3600_000 })
  const key = (user: string) => user.trim().toLowerCase()
  return {
    revoke(user, atMs = now()) {
      const k = key(user)
      if (k === '') return
      revoked.set(k, Math.max(atMs, revoked.get(k) ?? 0))
    },
    isRevoked(identity, firstSeenMs) {
      if (revoked.size === 0) return false
      const at = Math.max(revoked.get(key(identity.id)) ?? 0, identity.name ? (revoked.get(key(identity.name)) ?? 0) : 0)
      if (at === 0) return false
      if (identity.issuedAt === undefined) return true
      const issuedMs = identity.issuedAt * 1000
      if (issuedMs + 1000 <= at) return true
      if (issuedMs >= at) return false
      // `iat` has whole seconds, and this credential comes from the revocation's own second: it counts as
      // earlier (fail closed) unless it was first presented after the revocation — the fresh token a
      // revoked user gets right after being let back in, not one they held before.
      return firstSeenMs === undefined || firstSeenMs <= at
    },
    revokedAt: (user) => revoked.get(key(user)),
  }
}
