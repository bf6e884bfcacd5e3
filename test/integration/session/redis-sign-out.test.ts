/**
 * The sign-in endpoints' 503 pages while the Redis session store is down: each names its reason, says
 * when to retry (`Retry-After`) and, in a browser, links to the same step again.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import type { ServeHandle } from '../../helpers/serve.ts'
import { hasRedisServer, startRedisServer, type RedisServer } from './redis-server.ts'
import { createBrowser, startStack, type Stack } from './stack.ts'

const CI = process.env.CI === 'true'
if (!hasRedisServer) {
  if (CI) throw new Error('redis-server is required in CI (apt-get install -y redis-server)')
  console.warn('SKIPPED test/integration/session/redis-sign-out.test.ts: redis-server is not installed')
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

const links = (page: string) => [...page.matchAll(/<a href="([^"]*)">([^<]*)<\/a>/g)].map((m) => ({ href: m[1]!, text: m[2]! }))

describe.skipIf(!hasRedisServer)('503 pages of the sign-in endpoints with the session store down', () => {
  it('login, logout and the front-channel logout: reason, Retry-After, and Try again for the same step', async () => {
    const browser = createBrowser()
    expect((await browser.navigate(`${proxy.url}/group/project`, 'bob')).status).toBe(200)
    const cookie = browser.jar.cookieHeader(proxy.url)
    await redis.kill()
    try {
      expect(await readyStatus(503)).toBe(503)

      const login = await fetch(`${proxy.url}/-/iap/login?rd=${encodeURIComponent('/group/project')}`, { redirect: 'manual', headers: { accept: 'text/html' } })
      expect(login.status).toBe(503)
      expect(login.headers.get('retry-after')).toBe('5')
      const loginPage = await login.text()
      expect(loginPage).toContain('<code>session-store-unavailable</code>')
      expect(links(loginPage)).toEqual([{ href: '/-/iap/login?rd=%2Fgroup%2Fproject', text: 'Try again' }])

      const logout = await fetch(`${proxy.url}/-/iap/logout`, { redirect: 'manual', headers: { accept: 'text/html', 'sec-fetch-site': 'same-origin', 'sec-fetch-dest': 'document', cookie } })
      expect(logout.status).toBe(503)
      expect(logout.headers.get('retry-after')).toBe('5')
      expect(logout.headers.getSetCookie()).toEqual([])
      const logoutPage = await logout.text()
      expect(logoutPage).toContain('<code>session-store-unavailable</code>')
      expect(links(logoutPage)).toEqual([{ href: '/-/iap/logout', text: 'Try again' }])

      const frame = await fetch(`${proxy.url}/-/iap/logout?sid=00000000-0000-4000-8000-00000000cafe`, { headers: { accept: 'application/json' } })
      expect(frame.status).toBe(503)
      expect(frame.headers.get('retry-after')).toBe('5')
      expect(await frame.json()).toMatchObject({ reason: 'session-store-unavailable' })
    } finally {
      await redis.restart()
    }
    expect(await readyStatus(200)).toBe(200)
  }, 30_000)
})
