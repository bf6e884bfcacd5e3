/**
 * `/-/iap/login` while the Redis session store is down: the proxy already knows (its readiness says
 * so), so it answers 503 before sending the user to Entra, not after they typed their password.
 */
import { describe, it, expect } from 'vitest'
import { hasRedisServer } from './redis-server.ts'
import { useRedisProxy } from './redis-proxy.ts'
import { createBrowser } from './stack.ts'

const env = useRedisProxy('test/integration/session/redis-login.test.ts')

describe.skipIf(!hasRedisServer)('sign-in start with the Redis session store down', () => {
  it('login answers 503 session-store-unavailable with Retry-After, before any redirect to Entra; works again once Redis is back', async () => {
    await env.redis.kill()
    expect(await env.readyStatus(503)).toBe(503)
    const authorizeBefore = env.stack.idp.stats().authorizeRequests

    const browser = createBrowser()
    const res = await browser.step(`${env.proxy.url}/-/iap/login?rd=%2Fgroup%2Fproject`)
    expect(res.status).toBe(503)
    expect(res.headers.get('location')).toBeNull()
    expect(res.headers.get('retry-after')).toBe('5')
    // No transaction cookie: nothing was started.
    expect(res.headers.getSetCookie().filter((c) => c.includes('-tx-'))).toEqual([])
    expect(await res.text()).toContain('session-store-unavailable')
    const json = await fetch(`${env.proxy.url}/-/iap/login`, { headers: { accept: 'application/json' } })
    expect(json.status).toBe(503)
    expect(await json.json()).toMatchObject({ reason: 'session-store-unavailable' })
    // Navigating to a protected page ends on the same 503, never at the IdP's password form.
    const page = await createBrowser().navigate(`${env.proxy.url}/group/project`, 'bob')
    expect(page.status).toBe(503)
    expect(page.url).toBe(`${env.proxy.url}/-/iap/login?rd=%2Fgroup%2Fproject`)
    expect(env.stack.idp.stats().authorizeRequests).toBe(authorizeBefore)
    await expect
      .poll(() => env.proxy.records().findLast((r) => r['url.path'] === '/-/iap/login'), { timeout: 5000 })
      .toMatchObject({ 'iap.decision.reason': 'session-store-unavailable', 'http.response.status_code': 503 })

    await env.redis.restart()
    expect(await env.readyStatus(200)).toBe(200)
    const again = await createBrowser().navigate(`${env.proxy.url}/group/project`, 'bob')
    expect(again.status).toBe(200)
  }, 30_000)
})
