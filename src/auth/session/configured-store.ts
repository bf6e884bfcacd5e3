/**
 * The session store named by `session.store`. With `redis` it is also how revocations reach every
 * replica (and replicas started later), so the process builds it whenever Redis is configured,
 * with or without browser sign-in; `src/server/start.ts` owns it.
 */
import type { Config } from '../../config/schema.ts'
import type { Clock } from './clock.ts'
import { deriveSessionKeys } from './keys.ts'
import { createMemoryStore } from './memory-store.ts'
import { createRedisStore } from './redis-store.ts'
import type { SessionStore } from './store.ts'

export interface ConfiguredStoreDeps {
  readonly log: { warn(obj: object, msg?: string): void }
  readonly clock: Clock
  /** Keep a local copy of session records (only worth its third connection with browser sign-in). */
  readonly localCache: boolean
}

/** True when the process needs a store: browser sign-in keeps sessions in it, `redis` shares revocations. */
export function needsSessionStore(config: Config, browserSignIn: boolean): boolean {
  return browserSignIn || config.session.store === 'redis'
}

/** Builds the configured store; a Redis store starts connecting at once (failing closed until ready). */
export function createConfiguredStore(config: Config, deps: ConfiguredStoreDeps): SessionStore {
  const session = config.session
  if (session.store === 'redis' && session.redis) {
    let storeErrors = 0
    return createRedisStore({
      url: session.redis.url,
      keyPrefix: session.redis.keyPrefix,
      ...(session.redis.password !== undefined && { password: session.redis.password }),
      indexTtlMs: session.absoluteTimeout,
      // Records are sealed with a key from session.secret: Redis alone cannot grant anyone groups.
      ...(session.secret !== undefined && { recordMac: deriveSessionKeys(session.secret).recordMac }),
      ...(!deps.localCache && { localCache: false }),
      onError: (err) => {
        // ioredis reports every failed reconnect; one line per burst is enough. The store has already
        // redacted the message (a misparsed URL once put the password in `getaddrinfo ENOTFOUND`).
        if (storeErrors++ % 50 === 0) deps.log.warn({ code: 'IAP_ERR_SESSION_STORE_UNAVAILABLE', error: err.message }, 'session store (redis) error')
      },
    })
  }
  return createMemoryStore({ maxSessions: session.maxSessions, maxBytes: session.maxSessionMemory, clock: deps.clock })
}
