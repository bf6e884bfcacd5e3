import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it, expect, beforeAll, afterAll, onTestFinished } from 'vitest'
import { Redis } from 'ioredis'
import { DEMO_USERS } from '../../../src/devidp/index.ts'
import type { ServeHandle } from '../../helpers/serve.ts'
import { hasRedisServer, startRedisServer, type RedisServer } from './redis-server.ts'
import { ADMIN_TOKEN, createBrowser, revoke, startStack, type Stack } from './stack.ts'

const CI = process.env.CI === 'true'
if (!hasRedisServer) {
  if (CI) throw new Error('redis-server is required in CI (apt-get install -y redis-server)')
  console.warn('SKIPPED test/integration/session/redis.test.ts: redis-server is not installed')
}

let stack: Stack
let redis: RedisServer
let a: ServeHandle
let b: ServeHandle

beforeAll(async () => {
  if (!hasRedisServer) return
  redis = await startRedisServer()
  stack = await startStack()
  const options = { store: 'redis' as const, redisUrl: redis.url, keyPrefix: 'iap-test:', refreshInterval: '2s' }
  a = await stack.startProxy(options)
  // Replicas behind one load balancer: same publicUrl (the browser comes back through the balancer).
  b = await stack.startProxy({ ...options, publicUrl: a.url })
})
afterAll(async () => {
  await stack?.close()
  await redis?.close()
})

/** The session cookie a browser got from one replica, sent to another (same host: browsers share it across ports). */
const cookieFor = (browser: ReturnType<typeof createBrowser>, from: ServeHandle) => browser.jar.cookieHeader(from.url)

async function get(target: ServeHandle, path: string, cookie: string, accept = 'application/json', extra: Record<string, string> = {}) {
  const res = await fetch(`${target.url}${path}`, { redirect: 'manual', headers: { accept, cookie, ...extra } })
  return { status: res.status, body: await res.text(), location: res.headers.get('location'), retryAfter: res.headers.get('retry-after') }
}

describe.skipIf(!hasRedisServer)('sessions in Redis across two serve processes', () => {
  it('sign in through one replica, browse through the other', async () => {
    const browser = createBrowser()
    const page = await browser.navigate(`${a.url}/group/project`, 'bob')
    expect(page.status, page.body).toBe(200)
    const cookie = cookieFor(browser, a)
    const other = await get(b, '/group/project', cookie, 'text/html')
    expect(other.status).toBe(200)
    expect(other.body).toContain(`<p id="user">${DEMO_USERS.bob.upn}</p>`)
    const who = JSON.parse((await get(b, '/-/iap/whoami', cookie)).body) as { id: string; authMethod: string }
    expect(who).toMatchObject({ id: DEMO_USERS.bob.oid, authMethod: 'session' })
    expect((await fetch(`${b.adminUrl}/readyz`)).status).toBe(200)
  })

  it('a record edited in Redis (groups added) or copied under another session\'s key is refused: records are sealed', async () => {
    const bob = createBrowser()
    expect((await bob.navigate(`${a.url}/group/project`, 'bob')).status).toBe(200)
    const alice = createBrowser()
    expect((await alice.navigate(`${a.url}/group/project`, 'alice')).status).toBe(200)
    const client = new Redis(redis.url)
    try {
      const keys = await client.keys('iap-test:s:*')
      const records = await Promise.all(keys.map(async (key) => ({ key, text: (await client.get(key))! })))
      const newest = (oid: string) =>
        records.filter((r) => r.text.includes(`"id":"${oid}"`)).sort((x, y) => JSON.parse(y.text.split('\n')[0]!).createdAt - JSON.parse(x.text.split('\n')[0]!).createdAt)[0]!
      const bobs = newest(DEMO_USERS.bob.oid)
      const alices = newest(DEMO_USERS.alice.oid)
      // Unsealed JSON is nowhere to be found: each value is the JSON, a newline and its MAC.
      expect(bobs.text).toMatch(/\n[A-Za-z0-9_-]{43}$/)
      // Bob gives himself a group; Alice's key gets Bob's (intact) record.
      const [json, mac] = bobs.text.split('\n') as [string, string]
      const elevated = JSON.stringify({ ...JSON.parse(json), user: { ...JSON.parse(json).user, groups: [...JSON.parse(json).user.groups, '6c0bd1d2-0000-4000-8000-00000000dead'] } })
      await client.set(bobs.key, `${elevated}\n${mac}`, 'KEEPTTL')
      await client.set(alices.key, bobs.text, 'KEEPTTL')
      for (const [browser, target] of [[bob, b], [alice, b], [bob, a]] as const) {
        const who = await get(target, '/-/iap/whoami', cookieFor(browser, a))
        expect(who.status).toBe(401)
      }
      // Leave no sessions behind for the tests that count a user's sessions.
      await client.del(bobs.key, alices.key)
    } finally {
      client.disconnect()
    }
  })

  it('a record copied to another deployment\'s key prefix (same secret, same Redis) is refused there: the MAC covers the prefix', async () => {
    // Another deployment: its own keyPrefix, the same session secret (the stack's) and Redis.
    const other = await stack.startProxy({ store: 'redis', redisUrl: redis.url, keyPrefix: 'iap-other:', refreshInterval: '2s', publicUrl: a.url })
    onTestFinished(async () => void (await other.stop()))
    const bob = createBrowser()
    expect((await bob.navigate(`${a.url}/group/project`, 'bob')).status).toBe(200)
    const client = new Redis(redis.url)
    try {
      const keys = await client.keys('iap-test:s:*')
      const records = await Promise.all(keys.map(async (key) => ({ key, text: (await client.get(key))! })))
      const bobs = records.filter((r) => r.text.includes(`"id":"${DEMO_USERS.bob.oid}"`)).sort((x, y) => JSON.parse(y.text.split('\n')[0]!).createdAt - JSON.parse(x.text.split('\n')[0]!).createdAt)[0]!
      const copied = bobs.key.replace(/^iap-test:/, 'iap-other:')
      await client.set(copied, bobs.text, 'PX', 60_000)
      expect((await get(a, '/-/iap/whoami', cookieFor(bob, a))).status).toBe(200)
      expect((await get(other, '/-/iap/whoami', cookieFor(bob, a))).status).toBe(401)
      await client.del(bobs.key, copied)
    } finally {
      client.disconnect()
    }
  })

  it('logout on one replica ends the session on the other, which had it in its local copy', async () => {
    const browser = createBrowser()
    expect((await browser.navigate(`${a.url}/group/project`, 'bob')).status).toBe(200)
    const cookie = cookieFor(browser, a)
    for (let i = 0; i < 3; i++) expect((await get(b, '/group/project', cookie)).status).toBe(200)
    expect((await fetch(`${b.adminUrl}/readyz`).then((r) => r.json())) as unknown).toMatchObject({ checks: { sessions: { store: 'redis', localCache: 'tracking' } } })
    const out = await browser.step(`${a.url}/-/iap/logout`)
    expect(out.status).toBe(302)
    // Redis sent the invalidation before it answered the logout's DEL: no window worth a retry loop.
    let status = (await get(b, '/group/project', cookie)).status
    for (let i = 0; i < 10 && status !== 401; i++) {
      await sleep(20)
      status = (await get(b, '/group/project', cookie)).status
    }
    expect(status).toBe(401)
  })

  it('one refresh across replicas when both see the session due at once', async () => {
    const browser = createBrowser()
    expect((await browser.navigate(`${a.url}/group/project`, 'carol')).status).toBe(200)
    const cookie = cookieFor(browser, a)
    await sleep(2100)
    const before = stack.idp.stats().tokenRequests
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => get(i % 2 ? a : b, '/group/project', cookie)))
    expect(results.map((r) => r.status)).toEqual(Array(16).fill(200))
    expect(stack.idp.stats().tokenRequests - before).toBe(1)
  })

  it('/admin/revoke on one replica ends the session on both and refuses older bearer tokens everywhere', async () => {
    const browser = createBrowser()
    expect((await browser.navigate(`${a.url}/group/project`, 'alice')).status).toBe(200)
    const second = createBrowser()
    expect((await second.navigate(`${a.url}/group/project`, 'alice')).status).toBe(200)
    const token = stack.idp.mintAccessToken({ user: 'alice', audience: 'api://gitlab-iap' })
    const bearer = { authorization: `Bearer ${token}` }
    expect((await get(b, '/group/project', '', 'application/json', bearer)).status).toBe(200)
    await sleep(1000) // the token's iat (whole seconds) must precede the revocation
    const revoked = await revoke(a, DEMO_USERS.alice.upn)
    expect(revoked.status).toBe(200)
    expect(revoked.body.sessionsEnded).toBe(2)
    for (const target of [a, b]) {
      for (const c of [cookieFor(browser, a), cookieFor(second, a)]) {
        const res = await get(target, '/group/project', c)
        expect(res.status).toBe(401)
        const nav = await get(target, '/group/project', c, 'text/html')
        expect(nav.status).toBe(302)
        expect(nav.location).toMatch(/^\/-\/iap\/login\?rd=/)
      }
    }
    // Pub/sub carries the revocation to the other replica within moments.
    let status = 0
    for (let i = 0; i < 40 && status !== 401; i++) {
      status = (await get(b, '/group/project', '', 'application/json', bearer)).status
      if (status !== 401) await sleep(50)
    }
    expect(status).toBe(401)
    // Signing in again afterwards works.
    const again = createBrowser()
    expect((await again.navigate(`${a.url}/group/project`, 'alice')).status).toBe(200)
    expect((await get(b, '/group/project', cookieFor(again, a))).status).toBe(200)
  })

  it('Redis killed → clean 503s for sessions, bearer keeps working; Redis back → recovery', async () => {
    const browser = createBrowser()
    expect((await browser.navigate(`${a.url}/group/project`, 'bob')).status).toBe(200)
    const cookie = cookieFor(browser, a)
    const bearer = { authorization: `Bearer ${stack.idp.mintAccessToken({ user: 'bob', audience: 'api://gitlab-iap' })}` }

    await redis.kill()
    // Each replica serves known sessions from its local copy until it sees its Redis connections
    // close (Redis is gone, so nothing can change them meanwhile); from then on the copy is empty.
    for (const target of [a, b]) {
      let ready = 200
      for (let i = 0; i < 100 && ready === 200; i++) {
        ready = (await fetch(`${target.adminUrl}/readyz`)).status
        if (ready === 200) await sleep(10)
      }
      expect(ready).toBe(503)
    }
    for (const target of [a, b]) {
      const started = Date.now()
      const html = await get(target, '/group/project', cookie, 'text/html')
      expect(Date.now() - started).toBeLessThan(2500)
      expect(html.status).toBe(503)
      expect(html.body).toContain('Sign-in temporarily unavailable')
      expect(html.body).toContain('session-store-unavailable')
      expect(html.retryAfter).toBe('5')
      const api = await get(target, '/api/v4/projects', cookie)
      expect(api.status).toBe(503)
      expect(JSON.parse(api.body)).toMatchObject({ reason: 'session-store-unavailable' })
      // Bearer requests do not need the store.
      expect((await get(target, '/group/project', '', 'application/json', bearer)).status).toBe(200)
      // Sign-in cannot complete without the store, and says so (the callback lands on the shared publicUrl).
      const fresh = createBrowser()
      const login = await fresh.navigate(`${a.url}/-/iap/login?rd=%2F`, 'carol')
      expect(login.status).toBe(503)
      expect(login.body).toContain('session-store-unavailable')
    }
    expect((await fetch(`${a.adminUrl}/readyz`)).status).toBe(503)
    // A logout that cannot delete the record says so and keeps the cookie: clearing it would leave
    // the record, and any copy of the cookie, valid after the user believes they signed out.
    const logout = await fetch(`${a.url}/-/iap/logout`, { redirect: 'manual', headers: { cookie, accept: 'application/json' } })
    expect(logout.status).toBe(503)
    expect(logout.headers.get('retry-after')).toBe('5')
    expect(await logout.json()).toMatchObject({ reason: 'session-store-unavailable' })
    expect(logout.headers.getSetCookie()).toEqual([])

    await redis.restart()
    // Automatic reconnection; the AOF kept the session.
    let status = 0
    for (let i = 0; i < 100 && status !== 200; i++) {
      status = (await get(b, '/group/project', cookie)).status
      if (status !== 200) await sleep(100)
    }
    expect(status).toBe(200)
    let ready = 0
    for (let i = 0; i < 50 && ready !== 200; i++) {
      ready = (await fetch(`${a.adminUrl}/readyz`)).status
      if (ready !== 200) await sleep(100)
    }
    expect(ready).toBe(200)
    expect((await get(a, '/group/project', cookie)).status).toBe(200)
    expect((await createBrowser().navigate(`${a.url}/group/project`, 'carol')).status).toBe(200)
    // The retried logout ends the session everywhere.
    expect((await fetch(`${a.url}/-/iap/logout`, { redirect: 'manual', headers: { cookie } })).status).toBe(302)
    expect((await get(b, '/group/project', cookie)).status).toBe(401)
  }, 30_000)
})

describe.skipIf(!hasRedisServer)('/admin/revoke while Redis is down', () => {
  it('answers 503 with a Retry-After; the retry, once Redis is back, ends the sessions and reaches the other replica', async () => {
    const browser = createBrowser()
    expect((await browser.navigate(`${a.url}/group/project`, 'carol')).status).toBe(200)
    const cookie = cookieFor(browser, a)
    const bearer = { authorization: `Bearer ${stack.idp.mintAccessToken({ user: 'carol', audience: 'api://gitlab-iap' })}` }
    expect((await get(b, '/group/project', cookie)).status).toBe(200)
    expect((await get(b, '/group/project', '', 'application/json', bearer)).status).toBe(200)
    await sleep(1000) // the token's iat (whole seconds) must precede the revocation

    await redis.kill()
    let failed: Awaited<ReturnType<typeof revoke>> & { retryAfter?: string | null }
    try {
      let ready = 200
      for (let i = 0; i < 100 && ready === 200; i++) {
        ready = (await fetch(`${a.adminUrl}/readyz`)).status
        if (ready === 200) await sleep(20)
      }
      const res = await fetch(`${a.adminUrl}/admin/revoke`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ user: DEMO_USERS.carol.upn }) })
      failed = { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Record<string, unknown> }
    } finally {
      await redis.restart()
    }
    expect(failed.status).toBe(503)
    expect(failed.retryAfter).toBe('5')
    expect(failed.body).toMatchObject({ code: 'IAP_ERR_SESSION_STORE_UNAVAILABLE' })
    expect(String(failed.body.error)).toMatch(/retry/)

    for (const target of [a, b]) {
      let ready = 0
      for (let i = 0; i < 100 && ready !== 200; i++) {
        ready = (await fetch(`${target.adminUrl}/readyz`)).status
        if (ready !== 200) await sleep(100)
      }
      expect(ready).toBe(200)
    }
    // The same request again completes everything.
    const retried = await revoke(a, DEMO_USERS.carol.upn)
    expect(retried.status).toBe(200)
    expect(retried.body).toMatchObject({ revoked: DEMO_USERS.carol.upn, shared: true })
    // This session and any carol opened in the tests above.
    expect(retried.body.sessionsEnded).toBeGreaterThanOrEqual(1)
    for (const target of [a, b]) expect((await get(target, '/group/project', cookie)).status).toBe(401)
    let status = 0
    for (let i = 0; i < 40 && status !== 401; i++) {
      status = (await get(b, '/group/project', '', 'application/json', bearer)).status
      if (status !== 401) await sleep(50)
    }
    expect(status).toBe(401)
  }, 30_000)
})
