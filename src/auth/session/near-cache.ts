/**
 * A replica-local copy of session records read from Redis, so a request with a known session does
 * no network I/O. It is only trusted while Redis tells us when an entry goes stale: the Redis store
 * turns on server-assisted client-side caching (`CLIENT TRACKING`, https://redis.io/docs/latest/develop/reference/client-side-caching/)
 * and feeds every invalidation here. Whenever that promise might be broken (either connection
 * closed, tracking not yet re-established) the cache is disabled and emptied, and reads go to Redis.
 *
 * The race the Redis docs warn about: an invalidation can arrive (on its own connection) before
 * the reply of a GET that read the old value. Each read therefore takes a ticket; an invalidation
 * of that key, or any disable, voids outstanding tickets, and a voided ticket's value is not kept.
 */
import { LRUCache } from 'lru-cache'

export interface NearCacheOptions<V> {
  /** Most entries kept (least recently used go first). */
  readonly max: number
  /** Most bytes kept, by `sizeOf` (least recently used go first). */
  readonly maxBytes: number
  readonly sizeOf: (value: V) => number
  /** Oldest an entry may be, whatever Redis says: bounds staleness if invalidations silently stop. */
  readonly maxAgeMs: number
}

/** A read in flight; its value is kept only if nothing voided the ticket meanwhile. */
export interface NearCacheTicket {
  readonly key: string
  readonly epoch: number
}

export class NearCache<V extends object> {
  readonly #entries: LRUCache<string, V>
  readonly #reads = new Map<string, NearCacheTicket>()
  #epoch = 0
  #enabled = false

  constructor(options: NearCacheOptions<V>) {
    this.#entries = new LRUCache<string, V>({ max: options.max, maxSize: options.maxBytes, sizeCalculation: options.sizeOf, ttl: options.maxAgeMs, ttlAutopurge: false, ttlResolution: 0 })
  }

  get enabled(): boolean {
    return this.#enabled
  }

  /** The current epoch: pass it to `enable` once tracking is confirmed for it. */
  get epoch(): number {
    return this.#epoch
  }

  /** A cached value, only while the cache is enabled. */
  get(key: string): V | undefined {
    return this.#enabled ? this.#entries.get(key) : undefined
  }

  /** Starts a read of `key` from the source; `undefined` while disabled (nothing will be kept). */
  begin(key: string): NearCacheTicket | undefined {
    if (!this.#enabled) return undefined
    const ticket = { key, epoch: this.#epoch }
    this.#reads.set(key, ticket)
    return ticket
  }

  /** Ends a read: keeps `value` unless the ticket was voided (or a newer read of the key took over). */
  complete(ticket: NearCacheTicket, value: V | undefined): void {
    if (this.#reads.get(ticket.key) !== ticket) return
    this.#reads.delete(ticket.key)
    if (value !== undefined && this.#enabled && ticket.epoch === this.#epoch) this.#entries.set(ticket.key, value)
  }

  /** The key changed at the source (or this replica wrote it): forget it and void reads in flight. */
  invalidate(key: string): void {
    this.#entries.delete(key)
    this.#reads.delete(key)
  }

  /** Everything may have changed (FLUSHDB, or tracking lost): forget all and void every read. */
  clear(): void {
    this.#entries.clear()
    this.#reads.clear()
    this.#epoch++
  }

  /** Invalidations can no longer be relied on: stop serving until `enable` is called again. */
  disable(): void {
    this.#enabled = false
    this.clear()
  }

  /** Invalidations flow again, as set up during `epoch`; ignored if a disable happened since. */
  enable(epoch: number): boolean {
    if (epoch !== this.#epoch) return false
    this.#enabled = true
    return true
  }

  get size(): number {
    return this.#entries.size
  }
}
