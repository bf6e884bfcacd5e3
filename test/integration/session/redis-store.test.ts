import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createRedisStore } from '../../../src/auth/session/redis-store.ts'
import { sidKey, type SessionRecord } from '../../../src/auth/session/record.ts'
import type { RevocationEvent, SessionStore } from '../../../src/auth/session/store.ts'
import { isIapError } from '../../../src/errors.ts'
import { hasRedisServer, startRedisServer, type RedisServer } from './redis-server.ts'

if (!hasRedisServer) {
  if (process.env.CI === 'true') throw new Error('redis-server is required in CI (apt-get install -y redis-server)')
  console.warn('SKIPPED test/integration/session/redis-store.test.ts: redis-server is not installed')
}

let redis: RedisServer
let raw: Redis
const stores: SessionStore[] = []
const PREFIX = 'store-test:'

const record = (id: string, name: string): SessionRecord => ({
  v: 1,
  user: { id, name, groups: ['g'], roles: [], groupsSource: 'token' },
  createdAt: Date.now(),
  lastSeenAt: Date.now(),
  refreshedAt: Date.now(),
  expiresAt: Date.now() + 3600_000,
  refreshToken: 'v1.sealed',
})

const tracking = (store: SessionStore) => store.readiness().localCache === 'tracking'

async function newStore(): Promise<SessionStore> {
  const store = createRedisStore({ url: redis.url, keyPrefix: PREFIX, indexTtlMs: 3600_000, commandTimeoutMs: 500, connectTimeoutMs: 500 })
  stores.push(store)
  for (let i = 0; i < 100 && !(store.isReady() && tracking(store)); i++) await sleep(20)
  return store
}

/** GET commands Redis has executed so far (from INFO commandstats). */
async function redisGets(): Promise<number> {
  const match = /cmdstat_get:calls=(\d+)/.exec(await raw.info('commandstats'))
  return Number(match?.[1] ?? 0)
}

/** Reads `key` until it is gone (or `timeoutMs` passes); returns what the last read saw. */
async function readUntilGone(store: SessionStore, key: string, timeoutMs = 1000): Promise<SessionRecord | undefined> {
  const deadline = Date.now() + timeoutMs
  let seen = await store.get(key)
  while (seen && Date.now() < deadline) {
    await sleep(5)
    seen = await store.get(key)
  }
  return seen
}

beforeAll(async () => {
  if (!hasRedisServer) return
  redis = await startRedisServer()
  raw = new Redis(redis.url)
})
afterAll(async () => {
  for (const s of stores) await s.close()
  raw?.disconnect()
  await redis?.close()
})

describe.skipIf(!hasRedisServer)('redis session store', () => {
  it('stores records with a TTL under the prefix, never in clear tokens', async () => {
    const store = await newStore()
    await store.set('k1', record('oid-1', 'Ada@Contoso.com'), 5000)
    expect(await store.get('k1')).toMatchObject({ user: { id: 'oid-1' } })
    const ttl = await raw.pttl(`${PREFIX}s:k1`)
    expect(ttl).toBeGreaterThan(4000)
    expect(ttl).toBeLessThanOrEqual(5000)
    expect(await raw.smembers(`${PREFIX}u:ada@contoso.com`)).toEqual(['k1'])
    expect(await store.get('missing')).toBeUndefined()
  })

  it('a garbage record reads as no session (fail closed)', async () => {
    const store = await newStore()
    await raw.set(`${PREFIX}s:garbage`, '{"v":2,"user":{}}')
    expect(await store.get('garbage')).toBeUndefined()
    await raw.set(`${PREFIX}s:garbage`, 'not json')
    expect(await store.get('garbage')).toBeUndefined()
  })

  it('touch never resurrects a deleted session', async () => {
    const store = await newStore()
    await store.set('k2', record('oid-2', 'b@x'), 5000)
    await store.delete('k2')
    await store.touch('k2', record('oid-2', 'b@x'), 5000)
    expect(await store.get('k2')).toBeUndefined()
  })

  it('deleteUser ends all sessions of a user by oid or upn', async () => {
    const store = await newStore()
    await store.set('k3', record('oid-3', 'c@x'), 5000)
    await store.set('k4', record('oid-3', 'c@x'), 5000)
    await store.set('k5', record('oid-5', 'e@x'), 5000)
    expect(await store.deleteUser('C@X'.toLowerCase())).toBe(2)
    expect(await store.get('k3')).toBeUndefined()
    expect(await store.get('k5')).toBeDefined()
    expect(await store.deleteUser('oid-5')).toBe(1)
  })

  it('a session with an Entra sid is found by it too (front-channel logout)', async () => {
    const store = await newStore()
    await store.set('k6', { ...record('oid-6', 'f@x'), sid: 'AB12-cd' }, 5000)
    await store.set('k7', record('oid-6', 'f@x'), 5000)
    expect(await store.deleteUser(sidKey('ab12-CD'))).toBe(1)
    expect(await store.get('k6')).toBeUndefined()
    expect(await store.get('k7')).toBeDefined()
  })

  it('claimOnce and the refresh lock work across two clients', async () => {
    const [one, two] = [await newStore(), await newStore()]
    expect(await one.claimOnce('state-x', 5000)).toBe(true)
    expect(await two.claimOnce('state-x', 5000)).toBe(false)
    const release = await one.acquireLock('k6', 5000)
    expect(release).toBeTypeOf('function')
    expect(await two.acquireLock('k6', 5000)).toBeUndefined()
    await release!()
    const again = await two.acquireLock('k6', 5000)
    expect(again).toBeTypeOf('function')
    await again!()
  })

  it('revocations reach every store, including one that starts later', async () => {
    const one = await newStore()
    const seen: RevocationEvent[] = []
    one.onRevocation((e) => seen.push(e))
    await sleep(100)
    await one.publishRevocation({ user: 'ada@contoso.com', at: 1234 })
    for (let i = 0; i < 50 && seen.length === 0; i++) await sleep(20)
    expect(seen).toContainEqual({ user: 'ada@contoso.com', at: 1234 })
    const late = await newStore()
    const lateSeen: RevocationEvent[] = []
    late.onRevocation((e) => lateSeen.push(e))
    for (let i = 0; i < 50 && lateSeen.length === 0; i++) await sleep(20)
    expect(lateSeen).toContainEqual({ user: 'ada@contoso.com', at: 1234 })
  })

  it('a known session is read from the local copy: no Redis command, answered synchronously', async () => {
    const store = await newStore()
    expect(tracking(store)).toBe(true)
    await store.set('c1', record('oid-c1', 'c1@x'), 60_000)
    expect(await store.get('c1')).toMatchObject({ user: { id: 'oid-c1' } })
    const before = await redisGets()
    for (let i = 0; i < 50; i++) {
      const hit = store.get('c1')
      expect(hit).not.toBeInstanceOf(Promise)
      expect(hit).toMatchObject({ user: { id: 'oid-c1' } })
    }
    expect((await redisGets()) - before).toBe(0)
    // The refresh path asks for a fresh read: it goes to Redis even though the copy is there.
    expect(await store.get('c1', true)).toMatchObject({ user: { id: 'oid-c1' } })
    expect((await redisGets()) - before).toBe(1)
  })

  it('a change made through another replica or by hand reaches the local copy (logout, touch, DEL, FLUSHDB)', async () => {
    const [one, two] = [await newStore(), await newStore()]
    await one.set('c2', record('oid-c2', 'c2@x'), 60_000)
    await one.set('c3', record('oid-c3', 'c3@x'), 60_000)
    await one.set('c4', record('oid-c4', 'c4@x'), 60_000)
    for (const key of ['c2', 'c3', 'c4']) await one.get(key)
    expect(one.get('c2')).not.toBeInstanceOf(Promise)

    // Logout on the other replica.
    await two.delete('c2')
    expect(await readUntilGone(one, 'c2')).toBeUndefined()

    // The other replica writes a newer record: the next read here sees it.
    const newer = { ...record('oid-c3', 'c3@x'), lastSeenAt: 42 }
    await two.touch('c3', newer, 60_000)
    let seen = await one.get('c3')
    for (let i = 0; i < 200 && seen?.lastSeenAt !== 42; i++) {
      await sleep(5)
      seen = await one.get('c3')
    }
    expect(seen?.lastSeenAt).toBe(42)

    // By hand, with redis-cli.
    await raw.del(`${PREFIX}s:c4`)
    expect(await readUntilGone(one, 'c4')).toBeUndefined()

    await one.set('c5', record('oid-c5', 'c5@x'), 60_000)
    await one.get('c5')
    expect(one.get('c5')).not.toBeInstanceOf(Promise)
    await raw.flushdb()
    expect(await readUntilGone(one, 'c5')).toBeUndefined()
  })

  it('losing the invalidation connection empties the local copy: a logout meanwhile is not missed', async () => {
    const store = await newStore()
    await store.set('c6', record('oid-c6', 'c6@x'), 60_000)
    await store.get('c6')
    expect(store.get('c6')).not.toBeInstanceOf(Promise)
    // Kill every pub/sub connection (ours among them); the session is deleted before we reconnect.
    await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    await raw.del(`${PREFIX}s:c6`)
    let wentOff = false
    for (let i = 0; i < 300 && !(wentOff && tracking(store)); i++) {
      if (!tracking(store)) wentOff = true
      await sleep(10)
    }
    expect(wentOff).toBe(true)
    expect(tracking(store)).toBe(true)
    expect(await store.get('c6')).toBeUndefined()
  })

  it('while Redis is down nothing is served from the local copy', async () => {
    const store = await newStore()
    await store.set('c7', record('oid-c7', 'c7@x'), 60_000)
    await store.get('c7')
    expect(store.get('c7')).not.toBeInstanceOf(Promise)
    await redis.kill()
    try {
      for (let i = 0; i < 100 && tracking(store); i++) await sleep(10)
      const err = await Promise.resolve(store.get('c7')).then(() => undefined, (e: unknown) => e)
      expect(isIapError(err, 'IAP_ERR_SESSION_STORE_UNAVAILABLE')).toBe(true)
    } finally {
      await redis.restart()
    }
    for (let i = 0; i < 200 && !(store.isReady() && tracking(store)); i++) await sleep(20)
    expect(tracking(store)).toBe(true)
    // The AOF kept the session; it is read again and cached again.
    expect(await store.get('c7')).toMatchObject({ user: { id: 'oid-c7' } })
    expect(store.get('c7')).not.toBeInstanceOf(Promise)
  }, 15_000)

  it('with localCache: false every read goes to Redis', async () => {
    const store = createRedisStore({ url: redis.url, keyPrefix: PREFIX, indexTtlMs: 3600_000, localCache: false })
    stores.push(store)
    for (let i = 0; i < 100 && !store.isReady(); i++) await sleep(20)
    await store.set('c8', record('oid-c8', 'c8@x'), 60_000)
    const before = await redisGets()
    for (let i = 0; i < 3; i++) expect(await store.get('c8')).toMatchObject({ user: { id: 'oid-c8' } })
    expect((await redisGets()) - before).toBe(3)
    expect(store.readiness().localCache).toBe('off')
  })

  it('fails fast with IAP_ERR_SESSION_STORE_UNAVAILABLE while Redis is down, and recovers', async () => {
    const store = await newStore()
    await store.set('k7', record('oid-7', 'g@x'), 60_000)
    await redis.kill()
    const started = Date.now()
    const err = await Promise.resolve(store.get('k7')).then(() => undefined, (e: unknown) => e)
    expect(isIapError(err, 'IAP_ERR_SESSION_STORE_UNAVAILABLE')).toBe(true)
    expect(Date.now() - started).toBeLessThan(1500)
    for (let i = 0; i < 50 && store.isReady(); i++) await sleep(20)
    expect(store.isReady()).toBe(false)
    expect(store.readiness()).toMatchObject({ store: 'redis' })
    await redis.restart()
    for (let i = 0; i < 100 && !store.isReady(); i++) await sleep(50)
    expect(store.isReady()).toBe(true)
    expect(await store.get('k7')).toMatchObject({ user: { id: 'oid-7' } })
  }, 15_000)

  it('a hung Redis (SIGSTOP) fails closed within the command timeout, then recovers', async () => {
    const store = await newStore()
    await store.set('k8', record('oid-8', 'h@x'), 60_000)
    redis.pause()
    try {
      const started = Date.now()
      const err = await Promise.resolve(store.get('k8')).then(() => undefined, (e: unknown) => e)
      expect(isIapError(err, 'IAP_ERR_SESSION_STORE_UNAVAILABLE')).toBe(true)
      // commandTimeout 500 ms here (1 s by default): a slow Redis is a down Redis.
      expect(Date.now() - started).toBeLessThan(1500)
    } finally {
      redis.resume()
    }
    let found: unknown
    for (let i = 0; i < 100 && !found; i++) {
      found = await Promise.resolve(store.get('k8')).catch(() => undefined)
      if (!found) await sleep(50)
    }
    expect(found).toMatchObject({ user: { id: 'oid-8' } })
  }, 15_000)
})
