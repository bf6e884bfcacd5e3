/**
 * The session store contract, implemented by `memory-store.ts` (one replica) and `redis-store.ts`
 * (several). Store failures throw `IapError('IAP_ERR_SESSION_STORE_UNAVAILABLE')`; callers turn
 * that into a 503 (fail closed), never into "no session" or "anonymous".
 */
import type { SessionRecord } from './record.ts'

export type MaybePromise<T> = T | Promise<T>

/** A revocation as broadcast to every replica. `at` is epoch milliseconds. */
export interface RevocationEvent {
  readonly user: string
  readonly at: number
}

export interface SessionStore {
  readonly kind: 'memory' | 'redis'
  /**
   * The record under `key`, or `undefined`. The memory store answers synchronously, and so does the
   * Redis store from its local copy; `fresh` skips that copy (the refresh path must see the latest
   * refresh token another replica may just have written).
   */
  get(key: string, fresh?: boolean): MaybePromise<SessionRecord | undefined>
  /** Creates or replaces a record; it disappears after `ttlMs`. Indexes it under `indexKeys(record)`. */
  set(key: string, record: SessionRecord, ttlMs: number): Promise<void>
  /** Writes back `lastSeenAt` (and the TTL that follows from it). */
  touch(key: string, record: SessionRecord, ttlMs: number): MaybePromise<void>
  delete(key: string): Promise<void>
  /** Deletes every session under an index key (`indexKeys`: lower-cased oid or upn, or `sid:<sid>`); returns how many ended. */
  deleteUser(user: string): Promise<number>
  /** True the first time `name` is claimed within `ttlMs`, false after (replayed callbacks). */
  claimOnce(name: string, ttlMs: number): Promise<boolean>
  /**
   * A lock held while one replica refreshes a session (refresh tokens may rotate: two concurrent
   * refreshes would burn the grant). Returns a release function, or `undefined` when another holds it.
   */
  acquireLock(key: string, ttlMs: number): Promise<(() => Promise<void>) | undefined>
  /** Tells every replica (this one included) that a user was revoked. */
  publishRevocation(event: RevocationEvent): Promise<void>
  /** Revocations recorded so far (for a replica that starts later), and new ones as they come. */
  onRevocation(listener: (event: RevocationEvent) => void): void
  isReady(): boolean
  readiness(): Record<string, unknown>
  close(): Promise<void>
}
