/**
 * Verified-token cache: a repeated token costs a hash and a map lookup, no signature check.
 * Keyed by SHA-256 of the token (the token itself is never kept), bounded in entries and in
 * approximate bytes, each entry living until the token's `exp` (or less).
 */
import { hash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Identity } from '../identity.ts'
import type { IssuerSpec } from './issuers.ts'
import type { KeyVersion } from './key-set.ts'

export interface CachedToken {
  readonly identity: Identity
  readonly spec: IssuerSpec
  /** When this process first verified the token (epoch ms), for revocations in the token's own second. */
  readonly verifiedAt: number
  /** The token's `kid` and the version of the issuer's keys under it that verified it: a hit counts only while it is current. */
  readonly kid?: string
  readonly keyVersion?: KeyVersion
}

export interface TokenCache {
  get(key: string): CachedToken | undefined
  /** Caches until `ttlMs` from now; nothing when `ttlMs` is not positive. */
  set(key: string, entry: CachedToken, ttlMs: number): void
  delete(key: string): void
  readonly size: number
}

export interface TokenCacheOptions {
  readonly maxEntries?: number
  /** Approximate bytes held by identities (groups dominate). */
  readonly maxBytes?: number
  /** Longest an entry may live, whatever `exp` says (Entra CAE tokens live up to 28 h). */
  readonly maxTtlMs?: number
}

/** The cache key of a token. */
export function tokenKey(token: string): string {
  // One-shot hash: about half the cost of createHash().update().digest() for a token-sized input.
  return hash('sha256', token, 'base64url')
}

function approximateBytes(entry: CachedToken): number {
  const { identity } = entry
  let bytes = 400 + identity.id.length + (identity.name?.length ?? 0) + (identity.email?.length ?? 0) + (identity.displayName?.length ?? 0)
  for (const g of identity.groups) bytes += g.length + 16
  for (const r of identity.roles) bytes += r.length + 16
  return bytes
}

export function createTokenCache(options: TokenCacheOptions = {}): TokenCache {
  const maxTtlMs = options.maxTtlMs ?? 24 * 3600_000
  const lru = new LRUCache<string, CachedToken>({
    max: options.maxEntries ?? 50_000,
    maxSize: options.maxBytes ?? 64 * 1024 * 1024,
    sizeCalculation: approximateBytes,
    ttl: maxTtlMs,
    // lru-cache's default (1) caches the clock for 1 ms by arming a timer on a lookup: at a request a
    // millisecond, a timer and an extra event-loop wakeup per request. Reading the clock is cheaper.
    ttlResolution: 0,
  })
  return {
    get: (key) => lru.get(key),
    set(key, entry, ttlMs) {
      if (!(ttlMs > 0)) return
      lru.set(key, entry, { ttl: Math.min(ttlMs, maxTtlMs) })
    },
    delete(key) {
      lru.delete(key)
    },
    get size() {
      return lru.size
    },
  }
}
