import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createRedisStore } from '../../../src/auth/session/redis-store.ts'
import type { SessionRecord } from '../../../src/auth/session/record.ts'
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

async function newStore(): Promise<SessionStore> {
  const store = createRedisStore({ url: redis.url, keyPrefix: PREFIX, indexTtlMs: 3600_000, commandTimeoutMs: 500, connectTimeoutMs: 500 })
  stores.push(store)
  for (let i = 0; i < 100 && !store.isReady(); i++) await sleep(20)
  return store
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
