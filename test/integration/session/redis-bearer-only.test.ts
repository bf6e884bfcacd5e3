/**
 * `session.store: redis` without browser sign-in (no `entra.clientSecret`): a bearer-only deployment
 * of several `gitlab-iap serve` replicas still connects to Redis, so `/readyz` reflects it and
 * `POST /admin/revoke` on one replica reaches every other one, including one started afterwards.
 * While Redis is down, a revocation answers 503 (retry) and the retry completes it everywhere.
 */
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'
import { startJwksServer, TEST_AUDIENCE, TEST_CLIENT, TEST_TENANT, type JwksServer } from '../../helpers/jwks-server.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'
import { hasRedisServer, startRedisServer, type RedisServer } from './redis-server.ts'
import { freePort } from './stack.ts'

const CI = process.env.CI === 'true'
if (!hasRedisServer) {
  if (CI) throw new Error('redis-server is required in CI (apt-get install -y redis-server)')
  console.warn('SKIPPED test/integration/session/redis-bearer-only.test.ts: redis-server is not installed')
}

const ADMIN_TOKEN = 'admin-token-for-tests-0123456789'

let idp: JwksServer
let upstream: Upstream
let redis: RedisServer
const replicas: ServeHandle[] = []
let seq = 0

/** Bearer-only: Entra without a client secret, and no session secret. */
const bearerOnlyConfig = (redisUrl: string, keyPrefix: string) =>
  baseConfig(upstream.url, {
    entra: { tenantId: TEST_TENANT, clientId: TEST_CLIENT, authority: idp.authority, audiences: [TEST_AUDIENCE] },
    session: { store: 'redis', redis: { url: redisUrl, keyPrefix } },
    groups: { engineering: 'g-eng' },
    policy: { rules: [{ name: 'engineering', paths: ['/**'], groups: ['engineering'] }] },
  })

async function replica(keyPrefix: string, options: { redisUrl?: string; waitForReady?: boolean } = {}): Promise<ServeHandle> {
  const proxy = await startServe(bearerOnlyConfig(options.redisUrl ?? redis.url, keyPrefix), { waitForReady: options.waitForReady ?? true })
  replicas.push(proxy)
  return proxy
}

beforeAll(async () => {
  if (!hasRedisServer) return
  redis = await startRedisServer()
  idp = await startJwksServer()
  upstream = await startUpstream()
})
afterAll(async () => {
  await Promise.all(replicas.map((r) => r.stop()))
  await upstream?.close()
  await idp?.close()
  await redis?.close()
})

/** A user of its own per test, and a token of theirs issued a few seconds ago. */
async function userWithToken() {
  const n = ++seq
  const user = { oid: `7a1d0c55-0000-4000-8000-0000000020${String(n).padStart(2, '0')}`, preferred_username: `bearer-only-${n}@example.test` }
  const token = await idp.mint({ ...user, iat: Math.floor(Date.now() / 1000) - 5 })
  return { user, token }
}

async function callWith(proxy: ServeHandle, token: string): Promise<number> {
  const res = await fetch(`${proxy.url}/api/v4/projects/case-${++seq}`, { headers: { accept: 'application/json', authorization: `Bearer ${token}` } })
  await res.body?.cancel()
  return res.status
}

/** The status `proxy` answers for `token`, polled until it is `want` (pub/sub takes moments) or time runs out. */
async function settle(proxy: ServeHandle, token: string, want: number, timeoutMs = 3000): Promise<number> {
  const end = Date.now() + timeoutMs
  let status = await callWith(proxy, token)
  while (status !== want && Date.now() < end) {
    await sleep(50)
    status = await callWith(proxy, token)
  }
  return status
}

async function revoke(proxy: ServeHandle, user: string) {
  const res = await fetch(`${proxy.adminUrl}/admin/revoke`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ user }),
  })
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Record<string, unknown> }
}

async function readyz(proxy: ServeHandle): Promise<{ status: number; body: { checks: Record<string, Record<string, unknown>> } }> {
  const res = await fetch(`${proxy.adminUrl}/readyz`)
  return { status: res.status, body: (await res.json()) as { checks: Record<string, Record<string, unknown>> } }
}

async function waitReady(proxy: ServeHandle, want: 200 | 503, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs
  let r = await readyz(proxy)
  while (r.status !== want && Date.now() < end) {
    await sleep(50)
    r = await readyz(proxy)
  }
  return r
}

describe.skipIf(!hasRedisServer)('session.store: redis without browser sign-in', () => {
  it('/readyz is not ready while the Redis URL points at a closed port', async () => {
    const port = await freePort()
    const proxy = await replica(`iap-bearer-only-${randomBytes(4).toString('hex')}:`, { redisUrl: `redis://127.0.0.1:${port}/0`, waitForReady: false })
    // Wait until everything else is ready (the signing keys fetched): then only Redis can hold it back.
    const end = Date.now() + 10_000
    let r = await readyz(proxy)
    while (r.body.checks.auth?.ready !== true && Date.now() < end) {
      await sleep(50)
      r = await readyz(proxy)
    }
    expect(r.body.checks.auth?.ready).toBe(true)
    await sleep(300)
    r = await readyz(proxy)
    expect(r.status).toBe(503)
    expect(r.body.checks.sessions).toMatchObject({ ready: false, store: 'redis' })
  })

  it('/readyz turns 503 when Redis dies and 200 when it is back', async () => {
    const proxy = await replica(`iap-bearer-only-${randomBytes(4).toString('hex')}:`)
    const ready = await readyz(proxy)
    expect(ready.status).toBe(200)
    expect(ready.body.checks.sessions).toMatchObject({ ready: true, store: 'redis', status: 'ready', revocations: 'subscribed', localCache: 'off' })
    await redis.kill()
    try {
      expect((await waitReady(proxy, 503)).status).toBe(503)
    } finally {
      await redis.restart()
    }
    expect((await waitReady(proxy, 200)).status).toBe(200)
  })

  it('a revocation on one replica refuses the user\'s older bearer tokens on the others, including one started afterwards', async () => {
    const prefix = `iap-bearer-only-${randomBytes(4).toString('hex')}:`
    const [a, b] = await Promise.all([replica(prefix), replica(prefix)])
    const { user, token } = await userWithToken()
    const other = await userWithToken()
    expect([await callWith(a, token), await callWith(b, token)]).toEqual([200, 200])

    const revoked = await revoke(a, user.preferred_username)
    expect(revoked.status).toBe(200)
    expect([await callWith(a, token), await settle(b, token, 401)]).toEqual([401, 401])
    expect(revoked.body).toMatchObject({ revoked: user.preferred_username, sessionsEnded: 0, shared: true })
    // A replica started (or restarted) after the revocation learns it from Redis before it is ready.
    const c = await replica(prefix)
    expect(await callWith(c, token)).toBe(401)
    // Only that user; and replicas under another key prefix (another deployment) are unaffected.
    for (const proxy of [a, b, c]) expect(await callWith(proxy, other.token)).toBe(200)
    const elsewhere = await replica(`iap-bearer-only-${randomBytes(4).toString('hex')}:`)
    expect(await callWith(elsewhere, token)).toBe(200)
  }, 40_000)

  it('Redis down: /admin/revoke answers 503 with a Retry-After; the retry, once Redis is back, completes it on every replica', async () => {
    const prefix = `iap-bearer-only-${randomBytes(4).toString('hex')}:`
    const [a, b] = await Promise.all([replica(prefix), replica(prefix)])
    const { user, token } = await userWithToken()
    expect([await callWith(a, token), await callWith(b, token)]).toEqual([200, 200])

    await redis.kill()
    let failed
    try {
      await waitReady(a, 503)
      failed = await revoke(a, user.oid)
    } finally {
      await redis.restart()
    }
    expect(failed.status).toBe(503)
    expect(failed.retryAfter).toBe('5')
    expect(failed.body).toMatchObject({ code: 'IAP_ERR_SESSION_STORE_UNAVAILABLE' })
    expect(String(failed.body.error)).toMatch(/retry/)

    expect((await waitReady(a, 200)).status).toBe(200)
    expect((await waitReady(b, 200)).status).toBe(200)
    const retried = await revoke(a, user.oid)
    expect(retried.status).toBe(200)
    expect(retried.body).toMatchObject({ revoked: user.oid, shared: true })
    expect(await callWith(a, token)).toBe(401)
    expect(await settle(b, token, 401)).toBe(401)
    const c = await replica(prefix)
    expect(await callWith(c, token)).toBe(401)
  }, 40_000)
})
