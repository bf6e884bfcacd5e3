/**
 * The `redis` session store, shared by every replica. ioredis is set up to fail closed: no offline
 * queue, one retry, a command timeout and a connect timeout, so while Redis is down or slow a
 * request is refused within about a second instead of hanging (ioredis's defaults queue and retry); the client keeps
 * reconnecting in the background. A hung Redis (stopped, or busy in a long command) keeps its connections
 * open, so their status cannot tell: a heartbeat PING, and any command, left unanswered past the command
 * timeout mark the store not responding (not ready, commands refused at once) until Redis answers again.
 * Keys (under `keyPrefix`):
 *   s:<storeKey>  session record (JSON), TTL = until the absolute or idle end
 *   u:<user>      set of store keys of a user (lower-cased oid and upn), for /admin/revoke
 *   l:<storeKey>  refresh lock          o:<hash>  one-time markers (login callbacks)
 *   revoked       hash user → revocation time (ms), replayed to replicas that start later
 * Revocations are also published on the channel `<keyPrefix>revocations`.
 *
 * Session reads are served from a local copy (`near-cache.ts`) kept exact by Redis's own
 * invalidation messages (`CLIENT TRACKING ... REDIRECT`, received on a third connection speaking
 * RESP2, where they arrive as ordinary pub/sub messages): a logout or revocation on any replica,
 * an expiry or a FLUSHDB reaches every replica's copy within moments, and while either connection
 * is down nothing is served from it. Not with Redis Cluster (tracking is per node there).
 */
import { createHash, randomBytes } from 'node:crypto'
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { IapError } from '../../errors.ts'
import { NearCache } from './near-cache.ts'
import { approximateRecordBytes, indexKeys, openRecord, parseRecord, sealRecord, type SessionRecord } from './record.ts'
import { parseRedisUrl, redactRedisError } from './redis-url.ts'
import type { RevocationEvent, SessionStore } from './store.ts'

export interface RedisStoreOptions {
  readonly url: string
  readonly keyPrefix: string
  readonly password?: string
  /** How long a user index lives (the absolute session timeout). */
  readonly indexTtlMs: number
  /** Per-command deadline; a slower Redis counts as down. */
  readonly commandTimeoutMs?: number
  readonly connectTimeoutMs?: number
  /** How often the request connection is checked with a PING while it is open (default 1 s). */
  readonly heartbeatMs?: number
  /** Revocations older than this are pruned from the replay hash (bearer tokens live less). */
  readonly revocationMemoryMs?: number
  /**
   * HMAC key sealing each record (`sealRecord`); records that do not verify read as absent. Without it
   * (no browser sign-in, so no records) records are stored plain.
   */
  readonly recordMac?: Buffer
  /** The local copy of session records; `false` turns it off (every request reads Redis). */
  readonly localCache?: LocalCacheLimits | false
  /** Client errors, their message already redacted (`redactRedisError`): fit for the log. */
  readonly onError?: (err: Error) => void
}

export interface LocalCacheLimits {
  readonly max: number
  readonly maxBytes: number
  readonly maxAgeMs: number
}

const LOCAL_CACHE_DEFAULTS: LocalCacheLimits = { max: 10_000, maxBytes: 32 * 1024 * 1024, maxAgeMs: 5_000 }
const INVALIDATION_CHANNEL = '__redis__:invalidate'

type Client = Redis | Cluster

const RELEASE_LOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

/**
 * A client error as it may be logged or served in `/readyz` (unauthenticated): ioredis quotes what it
 * was given (`getaddrinfo ENOTFOUND pass@host`), so userinfo-like text and the password go.
 */
function redactedError(err: unknown, password: string | undefined): Error {
  const safe = new Error(redactRedisError((err as Error)?.message ?? String(err), password))
  const code = (err as { code?: unknown })?.code
  return typeof code === 'string' ? Object.assign(safe, { code }) : safe
}

/** ioredis's rejection of a command not answered within `commandTimeout`. */
const isCommandTimeout = (err: unknown) => (err as Error)?.message === 'Command timed out'

function unavailable(err: unknown, password: string | undefined): IapError {
  // No `cause`: it would carry the unredacted message to whoever logs this error.
  return new IapError('IAP_ERR_SESSION_STORE_UNAVAILABLE', `session store unavailable: ${redactedError(err, password).message}`)
}

/** Builds an ioredis client (standalone, Sentinel or Cluster) from the URL with fail-closed options. */
export function createRedisClient(options: Pick<RedisStoreOptions, 'url' | 'password' | 'commandTimeoutMs' | 'connectTimeoutMs'>, overrides: RedisOptions = {}): Client {
  const target = parseRedisUrl(options.url, options.password)
  const failClosed: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: options.commandTimeoutMs ?? 1000,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    // Keep reconnecting forever, at most every 2 s: recovery is automatic once Redis is back.
    retryStrategy: (times: number) => Math.min(100 * times, 2000),
    ...(target.username !== undefined && { username: target.username }),
    ...(target.password !== undefined && { password: target.password }),
    ...overrides,
  }
  if (target.mode === 'cluster') {
    return new Cluster(target.nodes.map((n) => ({ host: n.host, port: n.port })), {
      enableOfflineQueue: failClosed.enableOfflineQueue ?? false,
      clusterRetryStrategy: (times: number) => Math.min(100 * times, 2000),
      redisOptions: { ...failClosed, ...(target.tls && { tls: {} }) },
    })
  }
  if (target.mode === 'sentinel') {
    return new Redis({
      ...failClosed,
      sentinels: target.sentinels.map((n) => ({ host: n.host, port: n.port })),
      name: target.name,
      db: target.db,
      ...(target.password !== undefined && { sentinelPassword: target.password }),
    })
  }
  return new Redis({ ...failClosed, host: target.node.host, port: target.node.port, db: target.db, ...(target.tls && { tls: {} }) })
}

/** Creates the Redis-backed store and starts connecting (requests fail closed until it is ready). */
export function createRedisStore(options: RedisStoreOptions): SessionStore {
  const p = options.keyPrefix
  const channel = `${p}revocations`
  const revokedHash = `${p}revoked`
  const revocationMemoryMs = options.revocationMemoryMs ?? 48 * 3_600_000
  const target = parseRedisUrl(options.url, options.password)
  const client = createRedisClient(options)
  // Subscriptions are not on the request path: this connection may queue and retry.
  const offRequestPath: RedisOptions = { enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined as unknown as number }
  const subscriber = createRedisClient(options, offRequestPath)
  let lastError: string | undefined
  const report = (err: Error) => {
    const safe = redactedError(err, target.password)
    lastError = safe.message
    options.onError?.(safe)
  }
  client.on('error', report)
  subscriber.on('error', report)

  // False while Redis leaves commands unanswered on an open connection (hung): the connection's
  // status still says `ready`, so this is what readiness and the sign-in start go by.
  let responding = true
  const commandTimeoutMs = options.commandTimeoutMs ?? 1000
  const notResponding = () => {
    if (!responding) return
    responding = false
    report(new Error(`redis did not answer within ${commandTimeoutMs} ms`))
  }
  client.on('ready', () => {
    // A connection becomes ready only once Redis has answered on it.
    responding = true
    lastError = undefined
  })
  let probing = false
  const heartbeat = setInterval(() => {
    if (probing || client.status !== 'ready') return
    probing = true
    client.ping().then(
      () => {
        responding = true
      },
      (err: unknown) => {
        if (isCommandTimeout(err)) notResponding()
      },
    ).finally(() => (probing = false))
  }, options.heartbeatMs ?? 1000).unref()

  const sKey = (key: string) => `${p}s:${key}`
  const uKey = (user: string) => `${p}u:${user}`
  const localCache = options.localCache === false || target.mode === 'cluster' ? undefined : trackSessions(options.localCache ?? LOCAL_CACHE_DEFAULTS)

  /** Starts the local copy: a connection receiving invalidations, and tracking on `client` redirected to it. */
  function trackSessions(limits: LocalCacheLimits) {
    const cache = new NearCache<SessionRecord>({ ...limits, sizeOf: approximateRecordBytes })
    const sessionKeyPrefix = sKey('')
    // RESP2: ioredis (RESP3 by default) drops RESP3 `invalidate` pushes; redirected ones are plain messages.
    const invalidations = createRedisClient(options, { ...offRequestPath, protocol: 2, autoResubscribe: false })
    invalidations.on('error', report)
    let redirectId: string | undefined
    const track = async () => {
      cache.disable()
      if (redirectId === undefined || client.status !== 'ready') return
      const epoch = cache.epoch
      try {
        // NOLOOP: our own writes drop the entry locally (a write also ends Redis's tracking of the key).
        await client.client('TRACKING', 'ON', 'REDIRECT', redirectId, 'NOLOOP')
        cache.enable(epoch)
      } catch (err) {
        report(err as Error)
      }
    }
    invalidations.on('ready', async () => {
      try {
        const id = String(await invalidations.client('ID'))
        await invalidations.subscribe(INVALIDATION_CHANNEL)
        redirectId = id
        await track()
      } catch (err) {
        report(err as Error)
      }
    })
    invalidations.on('close', () => {
      redirectId = undefined
      cache.disable()
    })
    client.on('close', () => cache.disable())
    client.on('ready', () => void track())
    invalidations.on('messageBuffer', (channel: Buffer, keys: Buffer[] | null) => {
      if (String(channel) !== INVALIDATION_CHANNEL) return
      if (!Array.isArray(keys)) return cache.clear() // FLUSHALL / FLUSHDB
      for (const raw of keys) {
        const name = String(raw)
        if (name.startsWith(sessionKeyPrefix)) cache.invalidate(name.slice(sessionKeyPrefix.length))
      }
    })
    return { cache, close: () => invalidations.disconnect() }
  }
  const forget = (key: string) => localCache?.cache.invalidate(key)

  const listeners: ((event: RevocationEvent) => void)[] = []
  const deliver = (event: RevocationEvent) => {
    for (const listener of listeners) listener(event)
  }
  // Not ready before the first replay: a replica that serves before it knows the revocations made
  // while it was down would accept the revoked users' older bearer tokens.
  let replayed = false
  let closed = false
  let replayRetry: NodeJS.Timeout | undefined
  const replay = async () => {
    // Messages published while this replica was disconnected are lost; the hash has them all.
    let all: Record<string, string>
    try {
      all = await subscriber.hgetall(revokedHash)
    } catch (err) {
      report(err as Error)
      // The next 'ready' replays too; this retry covers a failure on a connection that stays up.
      if (!closed && replayRetry === undefined) replayRetry = setTimeout(() => ((replayRetry = undefined), void replay()), 1000).unref()
      return
    }
    for (const [user, at] of Object.entries(all)) deliver({ user, at: Number(at) })
    replayed = true
  }
  subscriber.on('message', (ch: string, message: string) => {
    if (ch !== channel) return
    try {
      const event = JSON.parse(message) as RevocationEvent
      if (typeof event.user === 'string' && typeof event.at === 'number') deliver(event)
    } catch {
      // Not ours; ignore.
    }
  })
  subscriber.on('ready', () => void replay())
  subscriber.subscribe(channel).catch(report)

  async function run<T>(command: () => Promise<T>): Promise<T> {
    // Known hung: refuse now rather than make each request wait out the timeout and pile commands
    // onto a connection Redis would replay on waking; the heartbeat notices when it answers again.
    if (!responding) throw unavailable(new Error('redis is not responding'), target.password)
    try {
      return await command()
    } catch (err) {
      if (isCommandTimeout(err)) notResponding()
      throw unavailable(err, target.password)
    }
  }
  const macKey = options.recordMac
  // Sealed under the whole Redis key, prefix included: a record copied to another deployment's prefix
  // (same secret, same Redis) does not verify there.
  const encode = (key: string, record: SessionRecord): string => (macKey ? sealRecord(macKey, p + key, record) : JSON.stringify(record))
  const decode = (key: string, text: string): SessionRecord | undefined => (macKey ? openRecord(macKey, p + key, text) : parseRecord(text))

  async function index(key: string, record: SessionRecord): Promise<void> {
    await Promise.all(
      indexKeys(record).flatMap((user) => [client.sadd(uKey(user), key), client.pexpire(uKey(user), options.indexTtlMs)]),
    )
  }

  return {
    kind: 'redis',
    get(key, fresh = false) {
      const cached = fresh ? undefined : localCache?.cache.get(key)
      if (cached) return cached
      const ticket = localCache?.cache.begin(key)
      return run(() => client.get(sKey(key))).then(
        (text) => {
          const record = text === null ? undefined : decode(key, text)
          if (ticket) localCache!.cache.complete(ticket, record)
          return record
        },
        (err: unknown) => {
          if (ticket) localCache!.cache.complete(ticket, undefined)
          throw err
        },
      )
    },
    async set(key, record, ttlMs) {
      forget(key)
      await run(async () => {
        await client.set(sKey(key), encode(key, record), 'PX', Math.max(1, Math.ceil(ttlMs)))
        await index(key, record)
      })
    },
    async touch(key, record, ttlMs) {
      forget(key)
      // XX: never resurrect a session that was deleted or revoked meanwhile.
      await run(() => client.set(sKey(key), encode(key, record), 'PX', Math.max(1, Math.ceil(ttlMs)), 'XX'))
    },
    async delete(key) {
      forget(key)
      await run(() => client.del(sKey(key)))
    },
    async deleteUser(user) {
      return run(async () => {
        const u = uKey(user.toLowerCase())
        const keys = await client.smembers(u)
        for (const key of keys) forget(key)
        // One key per command: Cluster spreads the keys over slots.
        const deleted = await Promise.all(keys.map((key) => client.del(sKey(key))))
        await client.del(u)
        return deleted.reduce((sum, n) => sum + n, 0)
      })
    },
    async claimOnce(name, ttlMs) {
      const hashed = createHash('sha256').update(name).digest('base64url')
      const result = await run(() => client.set(`${p}o:${hashed}`, '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX'))
      return result === 'OK'
    },
    async acquireLock(key, ttlMs) {
      const token = randomBytes(16).toString('base64url')
      const lockKey = `${p}l:${key}`
      const result = await run(() => client.set(lockKey, token, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX'))
      if (result !== 'OK') return undefined
      return async () => {
        await client.eval(RELEASE_LOCK, 1, lockKey, token).catch(report)
      }
    },
    async publishRevocation(event) {
      await run(async () => {
        await client.hset(revokedHash, event.user, String(event.at))
        await client.publish(channel, JSON.stringify(event))
        // Forget revocations older than any token they could still concern.
        const all = await client.hgetall(revokedHash)
        const stale = Object.entries(all).filter(([, at]) => Number(at) < event.at - revocationMemoryMs).map(([user]) => user)
        if (stale.length > 0) await client.hdel(revokedHash, ...stale)
      })
    },
    onRevocation(listener) {
      listeners.push(listener)
      if (subscriber.status === 'ready') void replay()
    },
    // Both connections: without the subscriber, revocations from other replicas would not arrive.
    isReady: () => client.status === 'ready' && responding && subscriber.status === 'ready' && replayed,
    readiness: () => ({
      store: 'redis',
      status: client.status === 'ready' && !responding ? 'not-responding' : client.status,
      revocations: subscriber.status !== 'ready' ? subscriber.status : replayed ? 'subscribed' : 'loading',
      localCache: localCache?.cache.enabled ? 'tracking' : 'off',
      ...(lastError !== undefined && (client.status !== 'ready' || !responding || subscriber.status !== 'ready' || !replayed) && { error: lastError }),
    }),
    async close() {
      closed = true
      clearInterval(heartbeat)
      clearTimeout(replayRetry)
      client.disconnect()
      subscriber.disconnect()
      localCache?.close()
    },
  }
}
