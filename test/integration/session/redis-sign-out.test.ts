/**
 * The sign-in endpoints' 503 pages while the Redis session store is down: each names its reason, says
 * when to retry (`Retry-After`) and, in a browser, links to the same step again.
 */
import { describe, it, expect } from 'vitest'
import { hasRedisServer } from './redis-server.ts'
import { useRedisProxy } from './redis-proxy.ts'
import { createBrowser } from './stack.ts'

const env = useRedisProxy('test/integration/session/redis-sign-out.test.ts')

const links = (page: string) => [...page.matchAll(/<a href="([^"]*)">([^<]*)<\/a>/g)].map((m) => ({ href: m[1]!, text: m[2]! }))

describe.skipIf(!hasRedisServer)('503 pages of the sign-in endpoints with the session store down', () => {
  it('login, logout and the front-channel logout: reason, Retry-After, and Try again for the same step', async () => {
    const browser = createBrowser()
    expect((await browser.navigate(`${env.proxy.url}/group/project`, 'bob')).status).toBe(200)
    const cookie = browser.jar.cookieHeader(env.proxy.url)
    await env.redis.kill()
    try {
      expect(await env.readyStatus(503)).toBe(503)

      const login = await fetch(`${env.proxy.url}/-/iap/login?rd=${encodeURIComponent('/group/project')}`, { redirect: 'manual', headers: { accept: 'text/html' } })
      expect(login.status).toBe(503)
      expect(login.headers.get('retry-after')).toBe('5')
      const loginPage = await login.text()
      expect(loginPage).toContain('<code>session-store-unavailable</code>')
      expect(links(loginPage)).toEqual([{ href: '/-/iap/login?rd=%2Fgroup%2Fproject', text: 'Try again' }])

      const logout = await fetch(`${env.proxy.url}/-/iap/logout`, { redirect: 'manual', headers: { accept: 'text/html', 'sec-fetch-site': 'same-origin', 'sec-fetch-dest': 'document', cookie } })
      expect(logout.status).toBe(503)
      expect(logout.headers.get('retry-after')).toBe('5')
      expect(logout.headers.getSetCookie()).toEqual([])
      const logoutPage = await logout.text()
      expect(logoutPage).toContain('<code>session-store-unavailable</code>')
      expect(links(logoutPage)).toEqual([{ href: '/-/iap/logout', text: 'Try again' }])

      const frame = await fetch(`${env.proxy.url}/-/iap/logout?sid=00000000-0000-4000-8000-00000000cafe`, { headers: { accept: 'application/json' } })
      expect(frame.status).toBe(503)
      expect(frame.headers.get('retry-after')).toBe('5')
      expect(await frame.json()).toMatchObject({ reason: 'session-store-unavailable' })
    } finally {
      await env.redis.restart()
    }
    expect(await env.readyStatus(200)).toBe(200)
  }, 30_000)
})
