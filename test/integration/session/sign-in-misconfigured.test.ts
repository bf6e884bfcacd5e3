/**
 * A proxy whose own sign-in settings are wrong: an Entra client secret the IdP no longer accepts
 * (secrets expire every 6–24 months), and no client secret at all (browser sign-in off). Both are
 * the operator's to fix, so users are told to contact the administrator and the log says what to check.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { DEMO_CLIENT_ID } from '../../../src/devidp/index.ts'
import { startServe, type ServeHandle } from '../../helpers/serve.ts'
import { ADMIN_TOKEN, createBrowser, DEMO_GROUP_ALIASES, DEMO_POLICY, freePort, startStack, type Stack } from './stack.ts'

let stack: Stack
beforeAll(async () => {
  stack = await startStack()
})
afterAll(async () => {
  await stack?.close()
})

/** The serve log lines (NDJSON on stderr) that parse. */
const logLines = (proxy: ServeHandle) =>
  proxy
    .stderr()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)

describe('an Entra client secret the IdP refuses (expired or wrong)', () => {
  let proxy: ServeHandle
  beforeAll(async () => {
    proxy = await stack.startProxy()
    // The secret "expires": the IdP now knows another one for the same app registration.
    stack.idp.registerClient({ clientId: DEMO_CLIENT_ID, clientSecret: 'rotated-secret-the-proxy-does-not-know', redirectUris: [`${proxy.url}/-/iap/callback`], postLogoutRedirectUris: [`${proxy.url}/`] })
  })

  it('answers 502 login-client-auth-failed (not "start again"), and logs an error naming the IdP error and what to check', async () => {
    const browser = createBrowser()
    const page = await browser.navigate(`${proxy.url}/group/project`, 'bob')
    expect(page.url).toMatch(new RegExp(`^${proxy.url}/-/iap/callback\\?`))
    expect(page.status).toBe(502)
    expect(page.body).toContain('login-client-auth-failed')
    expect(page.body).toMatch(/administrator/i)
    expect(page.body).not.toMatch(/start again/i)
    const code = new URL(page.url).searchParams.get('code')!
    expect(code).toBeTruthy()

    await expect
      .poll(() => proxy.records().find((r) => r['url.path'] === '/-/iap/callback'), { timeout: 5000 })
      .toMatchObject({ 'iap.decision.reason': 'login-client-auth-failed', 'http.response.status_code': 502 })

    await expect.poll(() => logLines(proxy).find((l) => l.reason === 'login-client-auth-failed'), { timeout: 5000 }).toBeDefined()
    const line = logLines(proxy).find((l) => l.reason === 'login-client-auth-failed')
    expect(line).toMatchObject({ level: 50, reason: 'login-client-auth-failed', error: 'invalid_client' })
    expect(typeof line!.errorDescription).toBe('string')
    expect((line!.errorDescription as string).length).toBeLessThanOrEqual(500)
    expect(line!.hint).toMatch(/entra\.clientSecret.*expired.*entra\.clientId/)
    // Neither the secret nor the code ever reaches the log.
    expect(proxy.stderr()).not.toContain(stack.clientSecret)
    expect(proxy.stderr()).not.toContain(code)
  })

  it('a JSON client gets the same reason', async () => {
    const browser = createBrowser()
    const start = await browser.step(`${proxy.url}/-/iap/login?rd=%2F`)
    const hop = await stack.idp.signIn(start.headers.get('location')!, 'alice')
    const res = await browser.step(hop.url, { accept: 'application/json' })
    expect(res.status).toBe(502)
    expect(await res.json()).toMatchObject({ reason: 'login-client-auth-failed' })
  })
})

describe('no entra.clientSecret: browser sign-in is off', () => {
  let proxy: ServeHandle
  beforeAll(async () => {
    const port = await freePort()
    proxy = await startServe({
      server: { listen: `127.0.0.1:${port}`, publicUrl: `http://127.0.0.1:${port}` },
      admin: { listen: '127.0.0.1:0', token: ADMIN_TOKEN },
      upstream: { url: stack.upstream.url, timeoutSeconds: 30 },
      entra: { tenantId: stack.idp.tenantId, clientId: DEMO_CLIENT_ID, authority: stack.idp.authority, graphUrl: stack.idp.graphUrl, audiences: ['api://gitlab-iap'] },
      groups: DEMO_GROUP_ALIASES,
      policy: DEMO_POLICY,
      accessLog: { output: 'stdout' },
    })
  })
  afterAll(async () => {
    await proxy?.stop()
  })

  it('serve warns at start (IAP_WARN_SIGN_IN_OFF on entra.clientSecret)', () => {
    const warning = logLines(proxy).find((l) => l.code === 'IAP_WARN_SIGN_IN_OFF')
    expect(warning).toMatchObject({ level: 40, key: 'entra.clientSecret' })
    expect(warning!.msg).toMatch(/browser sign-in is off/)
  })

  it.each([
    ['GET', '/-/iap/login?rd=%2F'],
    ['GET', '/-/iap/callback?code=x&state=y'],
    ['GET', '/-/iap/logout'],
    ['POST', '/-/iap/logout'],
  ])('%s %s answers 503 sign-in-not-configured, not 404', async (method, path) => {
    const html = await fetch(`${proxy.url}${path}`, { method, redirect: 'manual', headers: { accept: 'text/html' } })
    expect(html.status).toBe(503)
    const body = await html.text()
    expect(body).toContain('sign-in-not-configured')
    expect(body).toMatch(/sign-in is not configured/i)
    const json = await fetch(`${proxy.url}${path}`, { method, redirect: 'manual', headers: { accept: 'application/json' } })
    expect(json.status).toBe(503)
    expect(await json.json()).toMatchObject({ reason: 'sign-in-not-configured' })
  })

  it('other unknown /-/iap/ paths stay 404; whoami still answers bearer clients', async () => {
    expect((await fetch(`${proxy.url}/-/iap/nope`)).status).toBe(404)
    const token = stack.idp.mintAccessToken({ user: 'bob', audience: 'api://gitlab-iap' })
    expect((await fetch(`${proxy.url}/-/iap/whoami`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200)
  })

  it('jwks.json answers a method it does not take with 405 and Allow, as whoami does', async () => {
    for (const path of ['/-/iap/jwks.json', '/-/iap/whoami']) {
      const res = await fetch(`${proxy.url}${path}`, { method: 'POST', headers: { accept: 'application/json' } })
      expect(res.status, path).toBe(405)
      expect(res.headers.get('allow'), path).toBe('GET, HEAD')
      expect(await res.json()).toMatchObject({ error: 'Method Not Allowed' })
    }
    expect((await fetch(`${proxy.url}/-/iap/jwks.json`)).status).toBe(200)
  })
})
