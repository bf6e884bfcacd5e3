/**
 * `/-/iap/login` while the Redis session store is down: the proxy already knows (its readiness says
 * so), so it answers 503 before sending the user to Entra, not after they typed their password.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import type { ServeHandle } from '../../helpers/serve.ts'
import { hasRedisServer, startRedisServer, type RedisServer } from './redis-server.ts'
import { createBrowser, startStack, type Stack } from './stack.ts'

const CI = process.env.CI === 'true'
if (!hasRedisServer) {
  if (CI) throw new Error('redis-server is required in CI (apt-get install -y redis-server)')
  console.warn('SKIPPED test/integration/session/redis-login.test.ts: redis-server is not installed')
}

let stack: Stack
let redis: RedisServer
let proxy: ServeHandle

beforeAll(async () => {
  if (!hasRedisServer) return
  redis = await startRedisServer()
  stack = await startStack()
  proxy = await stack.startProxy({ store: 'redis', redisUrl: redis.url })
})
afterAll(async () => {
  await stack?.close()
  await redis?.close()
})

async function readyStatus(wanted: number): Promise<number> {
  let status = 0
  for (let i = 0; i < 100 && status !== wanted; i++) {
    status = (await fetch(`${proxy.adminUrl}/readyz`)).status
    if (status !== wanted) await sleep(50)
  }
  return status
}

describe.skipIf(!hasRedisServer)('sign-in start with the Redis session store down', () => {
  it('login answers 503 session-store-unavailable with Retry-After, before any redirect to Entra; works again once Redis is back', async () => {
    await redis.kill()
    expect(await readyStatus(503)).toBe(503)
    const authorizeBefore = stack.idp.stats().authorizeRequests

    const browser = createBrowser()
    const res = await browser.step(`${proxy.url}/-/iap/login?rd=%2Fgroup%2Fproject`)
    expect(res.status).toBe(503)
    expect(res.headers.get('location')).toBeNull()
    expect(res.headers.get('retry-after')).toBe('5')
    // No transaction cookie: nothing was started.
    expect(res.headers.getSetCookie().filter((c) => c.includes('-tx-'))).toEqual([])
    expect(await res.text()).toContain('session-store-unavailable')
    const json = await fetch(`${proxy.url}/-/iap/login`, { headers: { accept: 'application/json' } })
    expect(json.status).toBe(503)
    expect(await json.json()).toMatchObject({ reason: 'session-store-unavailable' })
    // Navigating to a protected page ends on the same 503, never at the IdP's password form.
    const page = await createBrowser().navigate(`${proxy.url}/group/project`, 'bob')
    expect(page.status).toBe(503)
    expect(page.url).toBe(`${proxy.url}/-/iap/login?rd=%2Fgroup%2Fproject`)
    expect(stack.idp.stats().authorizeRequests).toBe(authorizeBefore)
    await expect
      .poll(() => proxy.records().findLast((r) => r['url.path'] === '/-/iap/login'), { timeout: 5000 })
      .toMatchObject({ 'iap.decision.reason': 'session-store-unavailable', 'http.response.status_code': 503 })

    await redis.restart()
    expect(await readyStatus(200)).toBe(200)
    const again = await createBrowser().navigate(`${proxy.url}/group/project`, 'bob')
    expect(again.status).toBe(200)
  }, 30_000)
})
