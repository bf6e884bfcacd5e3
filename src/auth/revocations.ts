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
  /** True when the identity's credential was issued before a revocation of its id or name. */
  isRevoked(identity: Identity): boolean
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
    isRevoked(identity) {
      if (revoked.size === 0) return false
      const at = Math.max(revoked.get(key(identity.id)) ?? 0, identity.name ? (revoked.get(key(identity.name)) ?? 0) : 0)
      if (at === 0) return false
      // iat has whole seconds: a credential from the revocation's own second counts as earlier (fail closed).
      return identity.issuedAt === undefined || identity.issuedAt * 1000 < at
    },
    revokedAt: (user) => revoked.get(key(user)),
  }
}
