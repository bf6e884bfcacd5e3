/** The `memory` session store: a bounded LRU (oldest sessions evicted first), for a single replica. */
import { LRUCache } from 'lru-cache'
import type { Clock } from './clock.ts'
import { approximateRecordBytes, indexKeys, type SessionRecord } from './record.ts'
import type { RevocationEvent, SessionStore } from './store.ts'

export interface MemoryStoreOptions {
  /** Most sessions kept (`session.maxSessions`). */
  readonly maxSessions: number
  /** Approximate bytes all records may hold (`session.maxSessionMemory`, default 128 MiB); the oldest go first. */
  readonly maxBytes?: number
  readonly clock: Clock
}

/** Creates the in-process store. Reads are synchronous, so a memory-backed session costs no await. */
export function createMemoryStore(options: MemoryStoreOptions): SessionStore {
  const byUser = new Map<string, Set<string>>()
  const unindex = (key: string, record: SessionRecord) => {
    for (const user of indexKeys(record)) {
      const set = byUser.get(user)
      if (!set) continue
      set.delete(key)
      if (set.size === 0) byUser.delete(user)
    }
  }
  const sessions = new LRUCache<string, SessionRecord>({
    max: options.maxSessions,
    maxSize: options.maxBytes ?? 128 * 1024 * 1024,
    sizeCalculation: approximateRecordBytes,
    ttlAutopurge: false,
    // No 1 ms clock-caching timer per lookup (see the bearer token cache).
    ttlResolution: 0,
    perf: options.clock,
    // Keep the user index in step with evictions and expiries.
    dispose: (record, key) => unindex(key, record),
  })
  const once = new LRUCache<string, true>({ max: 100_000, ttlResolution: 0, perf: options.clock })
  const locks = new Set<string>()
  const listeners: ((event: RevocationEvent) => void)[] = []
  const revocations: RevocationEvent[] = []

  return {
    kind: 'memory',
    get: (key) => sessions.get(key),
    async set(key, record, ttlMs) {
      sessions.set(key, record, { ttl: ttlMs })
      for (const user of indexKeys(record)) {
        let set = byUser.get(user)
        if (!set) byUser.set(user, (set = new Set()))
        set.add(key)
      }
    },
    touch(key, record, ttlMs) {
      // The record object is shared with readers; updating it in place is the write.
      if (sessions.has(key)) sessions.set(key, record, { ttl: ttlMs, noDisposeOnSet: true })
    },
    async delete(key) {
      sessions.delete(key)
    },
    async deleteUser(user) {
      const keys = [...(byUser.get(user.toLowerCase()) ?? [])]
      for (const key of keys) sessions.delete(key)
      return keys.length
    },
    async claimOnce(name, ttlMs) {
      if (once.has(name)) return false
      once.set(name, true, { ttl: ttlMs })
      return true
    },
    async acquireLock(key) {
      if (locks.has(key)) return undefined
      locks.add(key)
      return async () => {
        locks.delete(key)
      }
    },
    async publishRevocation(event) {
      revocations.push(event)
      for (const listener of listeners) listener(event)
    },
    onRevocation(listener) {
      listeners.push(listener)
      for (const event of revocations) listener(event)
    },
    isReady: () => true,
    readiness: () => ({ store: 'memory', sessions: sessions.size }),
    async close() {
      sessions.clear()
    },
  }
}
