import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { DEMO_CLIENT_ID, DEMO_GROUPS, DEMO_USERS } from '../../../src/devidp/index.ts'
import type { ServeHandle } from '../../helpers/serve.ts'
import { createBrowser, startStack, type Stack } from './stack.ts'

let stack: Stack
let proxy: ServeHandle

beforeAll(async () => {
  stack = await startStack()
  proxy = await stack.startProxy({ refreshInterval: '1s', idleTimeout: '2s', absoluteTimeout: '4s' })
})
afterAll(async () => {
  await stack?.close()
})

/** A fresh user in the dev IdP (each test changes its own user). */
function user(name: string, groups: readonly string[]) {
  const oid = `${name.padEnd(8, '0').slice(0, 8)}-0000-4000-8000-${String(Math.floor(Math.random() * 1e12)).padStart(12, '0')}`
  return stack.idp.upsertUser({ oid, upn: `${name}@contoso.test`, name, email: `${name}@contoso.test`, groups })
}

async function get(browser: ReturnType<typeof createBrowser>, path: string, accept = 'application/json') {
  const res = await fetch(`${proxy.url}${path}`, { redirect: 'manual', headers: { accept, cookie: browser.jar.cookieHeader(proxy.url) } })
  const body = await res.text()
  return { status: res.status, body, location: res.headers.get('location') }
}

describe('session refresh and timeouts', () => {
  it('group removed at the provider → access lost after the next refresh', async () => {
    const u = user('gina', [DEMO_GROUPS.engineering.id])
    const browser = createBrowser()
    expect((await browser.navigate(`${proxy.url}/group/project`, u.upn)).status).toBe(200)
    stack.idp.updateUser(u.oid, { groups: [] })
    // Until the refresh the old groups stand.
    expect((await get(browser, '/group/project')).status).toBe(200)
    await sleep(1100)
    const after = await get(browser, '/group/project')
    expect(after.status).toBe(403)
    expect(JSON.parse(after.body)).toMatchObject({ rule: 'read-everything', reason: 'no-group-match' })
  })

  it('group added at the provider → access granted after the next refresh', async () => {
    const u = user('hank', [])
    const browser = createBrowser()
    expect((await browser.navigate(`${proxy.url}/group/project`, u.upn)).status).toBe(403)
    stack.idp.updateUser(u.oid, { groups: [DEMO_GROUPS.contractors.id] })
    await sleep(1100)
    expect((await get(browser, '/group/project')).status).toBe(200)
  })

  it('a refresh answered without an ID token cannot re-check the user: the session ends (a removed group never lingers)', async () => {
    const u = user('jill', [DEMO_GROUPS.engineering.id])
    const browser = createBrowser()
    expect((await browser.navigate(`${proxy.url}/group/project`, u.upn)).status).toBe(200)
    stack.idp.updateUser(u.oid, { groups: [] })
    stack.idp.setFault('no-id-token', 'token')
    try {
      await sleep(1100)
      const api = await get(browser, '/group/project')
      expect(api.status).toBe(401)
      expect(JSON.parse(api.body)).toMatchObject({ reason: 'session-refresh-missing' })
    } finally {
      stack.idp.setFault(null, 'token')
    }
    // Sign-in re-checks: the group is gone.
    expect((await browser.navigate(`${proxy.url}/group/project`, u.upn)).status).toBe(403)
  })

  it('user disabled at the provider → the session ends at the next refresh', async () => {
    const u = user('ivan', [DEMO_GROUPS.engineering.id])
    const browser = createBrowser()
    expect((await browser.navigate(`${proxy.url}/group/project`, u.upn)).status).toBe(200)
    stack.idp.updateUser(u.oid, { disabled: true })
    await sleep(1100)
    const api = await get(browser, '/group/project')
    expect(api.status).toBe(401)
    expect(JSON.parse(api.body)).toMatchObject({ reason: 'session-refresh-rejected' })
    // Gone for good: the next navigation goes to sign-in, which the disabled user cannot pass.
    const nav = await get(browser, '/group/project', 'text/html')
    expect(nav.status).toBe(302)
    expect(nav.location).toMatch(/^\/-\/iap\/login\?rd=/)
    expect((await get(browser, '/-/iap/whoami')).status).toBe(401)
  })

  it('concurrent requests after the interval share one refresh (single flight)', async () => {
    const browser = createBrowser()
    expect((await browser.navigate(`${proxy.url}/group/project`, DEMO_USERS.bob.upn)).status).toBe(200)
    await sleep(1100)
    const before = stack.idp.stats().tokenRequests
    const results = await Promise.all(Array.from({ length: 20 }, () => get(browser, '/group/project')))
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200))
    expect(stack.idp.stats().tokenRequests - before).toBe(1)
  })

  it('idle timeout ends a session nobody uses', async () => {
    const browser = createBrowser()
    expect((await browser.navigate(`${proxy.url}/group/project`, DEMO_USERS.carol.upn)).status).toBe(200)
    await sleep(2200)
    const res = await get(browser, '/group/project')
    expect(res.status).toBe(401)
    expect(JSON.parse(res.body).reason).toMatch(/^session-(idle-timeout|unknown)$/)
  })

  it('absolute timeout ends a session in constant use', async () => {
    const browser = createBrowser()
    const start = Date.now()
    expect((await browser.navigate(`${proxy.url}/group/project`, DEMO_USERS.alice.upn)).status).toBe(200)
    const signedInBy = Date.now()
    let status = 200
    while (Date.now() - start < 3500) {
      status = (await get(browser, '/group/project')).status
      expect(status).toBe(200)
      await sleep(400)
    }
    // The session began before `signedInBy`: 4 s after that it is over, however slow the sign-in was.
    await sleep(Math.max(0, signedInBy + 4300 - Date.now()))
    const res = await get(browser, '/group/project')
    expect(res.status).toBe(401)
    expect(JSON.parse(res.body).reason).toMatch(/^session-(expired|unknown)$/)
  }, 20_000)
})

describe('session refresh while Entra cannot be reached', () => {
  it('Entra unreachable at refresh time: served as last refreshed within session.refreshGrace, then 503; with no grace, 503 at once', async () => {
    // A stack of its own: its proxies re-register the IdP client's redirect URI.
    const own = await startStack()
    const graced = await own.startProxy({ refreshInterval: '1s', refreshGrace: '3s' })
    const u = own.idp.upsertUser({ oid: 'c0ffee00-0000-4000-8000-00000000a001', upn: 'kira@contoso.test', name: 'kira', email: 'kira@contoso.test', groups: [DEMO_GROUPS.engineering.id] })
    const browser = createBrowser()
    expect((await browser.navigate(`${graced.url}/group/project`, u.upn)).status).toBe(200)
    const call = async () => {
      const res = await fetch(`${graced.url}/group/project`, { headers: { accept: 'application/json', cookie: browser.jar.cookieHeader(graced.url) } })
      return { status: res.status, body: await res.text() }
    }
    own.idp.setFault('down', 'token')
    try {
      const tokenCalls = own.idp.stats().tokenRequests
      await sleep(1100)
      expect((await call()).status).toBe(200)
      expect(own.idp.stats().tokenRequests).toBe(tokenCalls + 1)
      expect(graced.stderr()).toContain('session refresh unavailable: serving the session as last refreshed')
      // Interval + grace since the last refresh: refused, fail closed.
      await sleep(3000)
      const refused = await call()
      expect(refused.status).toBe(503)
      expect(JSON.parse(refused.body)).toMatchObject({ reason: 'session-refresh-unavailable' })

      const strict = await own.startProxy({ refreshInterval: '1s', refreshGrace: '0s' })
      const w = own.idp.upsertUser({ oid: 'c0ffee00-0000-4000-8000-00000000a002', upn: 'lars@contoso.test', name: 'lars', email: 'lars@contoso.test', groups: [DEMO_GROUPS.engineering.id] })
      const other = createBrowser()
      own.idp.setFault(null, 'token')
      expect((await other.navigate(`${strict.url}/group/project`, w.upn)).status).toBe(200)
      own.idp.setFault('down', 'token')
      await sleep(1100)
      const res = await fetch(`${strict.url}/group/project`, { headers: { accept: 'application/json', cookie: other.jar.cookieHeader(strict.url) } })
      expect(res.status).toBe(503)
      own.idp.setFault(null, 'token')
      // Entra back: the graced session refreshes and carries on.
      expect((await call()).status).toBe(200)
    } finally {
      await own.close()
    }
  })

  it('the proxy\'s client secret refused at refresh (expired): an outage, not the end of every session; the log says what to check', async () => {
    const own = await startStack()
    try {
      const proxy = await own.startProxy({ refreshInterval: '1s', refreshGrace: '30s' })
      const u = own.idp.upsertUser({ oid: 'c0ffee00-0000-4000-8000-00000000a003', upn: 'mona@contoso.test', name: 'mona', email: 'mona@contoso.test', groups: [DEMO_GROUPS.engineering.id] })
      const browser = createBrowser()
      expect((await browser.navigate(`${proxy.url}/group/project`, u.upn)).status).toBe(200)
      // The secret "expires": the IdP now knows another one for the same app registration.
      own.idp.registerClient({ clientId: DEMO_CLIENT_ID, clientSecret: 'rotated-secret-the-proxy-does-not-know', redirectUris: [`${proxy.url}/-/iap/callback`], postLogoutRedirectUris: [`${proxy.url}/`] })
      const tokenCalls = own.idp.stats().tokenRequests
      await sleep(1100)
      const res = await fetch(`${proxy.url}/group/project`, { headers: { accept: 'application/json', cookie: browser.jar.cookieHeader(proxy.url) } })
      // Served as last refreshed within the grace: the user's grant is fine, the proxy's credentials are not.
      expect(res.status).toBe(200)
      expect(own.idp.stats().tokenRequests).toBe(tokenCalls + 1)
      await expect.poll(() => proxy.stderr(), { timeout: 5000 }).toContain('IAP_ERR_ENTRA_CLIENT_AUTH')
      const line = proxy.stderr().split('\n').find((l) => l.includes('IAP_ERR_ENTRA_CLIENT_AUTH'))!
      expect(JSON.parse(line)).toMatchObject({ level: 50, error: 'invalid_client', hint: expect.stringMatching(/entra\.clientSecret/) })
      expect(proxy.stderr()).not.toContain(own.clientSecret)
    } finally {
      await own.close()
    }
  })
})
