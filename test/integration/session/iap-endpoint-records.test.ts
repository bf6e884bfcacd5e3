/**
 * What the access log says about each `/-/iap/` endpoint: what happened, in the fields a security
 * team counts by (`iap.decision.result`, `event.outcome`). A completed sign-out or a started sign-in
 * is no failure and no challenge; a refused callback is.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { DEMO_USERS } from '../../../src/devidp/index.ts'
import type { ServeHandle } from '../../helpers/serve.ts'
import { createBrowser, startStack, type Stack } from './stack.ts'

let stack: Stack
let proxy: ServeHandle

beforeAll(async () => {
  stack = await startStack()
  proxy = await stack.startProxy()
})
afterAll(async () => {
  await stack?.close()
})

type Browser = ReturnType<typeof createBrowser>

/** The access-log record of the response (by its `X-Request-Id`). */
async function recordOf(res: Response): Promise<Record<string, unknown>> {
  const id = res.headers.get('x-request-id')
  expect(id).toBeTruthy()
  await res.body?.cancel()
  let found: Record<string, unknown> | undefined
  await expect.poll(() => (found = proxy.records().find((r) => r['http.request.id'] === id)), { timeout: 5000 }).toBeTruthy()
  return found!
}

const anonymous = { 'user.id': null, 'user.name': null, 'iap.identity.kind': 'anonymous', 'iap.auth.method': 'none' }
const bob = { 'user.id': DEMO_USERS.bob.oid, 'user.name': DEMO_USERS.bob.upn, 'iap.identity.kind': 'user', 'iap.auth.method': 'session' }
const allowed = (reason: string) => ({ 'iap.decision.result': 'allow', 'iap.decision.rule': null, 'iap.decision.reason': reason, 'event.outcome': 'success', 'iap.gitlab.route': 'iap' })

async function signedIn(): Promise<Browser> {
  const browser = createBrowser()
  expect((await browser.navigate(`${proxy.url}/`, 'bob')).status).toBe(200)
  return browser
}

/** A `state` as Entra returns it, from a sign-in started in a browser of its own. */
async function foreignState(): Promise<string> {
  const start = await createBrowser().step(`${proxy.url}/-/iap/login?rd=%2Fgroup%2Fproject`)
  return new URL(start.headers.get('location')!).searchParams.get('state')!
}

describe('access-log records of the /-/iap/ endpoints', () => {
  it('a completed sign-out is an allowed iap request, named logout, with who signed out, and a success', async () => {
    const browser = await signedIn()
    const get = await browser.step(`${proxy.url}/-/iap/logout`)
    expect(get.status).toBe(302)
    expect(await recordOf(get)).toMatchObject({ ...allowed('logout'), ...bob, 'http.response.status_code': 302 })

    // The confirmed form (a same-origin POST) alike.
    const again = await signedIn()
    const post = await fetch(`${proxy.url}/-/iap/logout`, { method: 'POST', redirect: 'manual', headers: { 'sec-fetch-site': 'same-origin', origin: new URL(proxy.url).origin, cookie: again.jar.cookieHeader(proxy.url) } })
    expect(post.status).toBe(302)
    expect(await recordOf(post)).toMatchObject({ ...allowed('logout'), ...bob })

    // Nobody signed in: the cookie is cleared all the same; the record names no one.
    const nobody = await createBrowser().step(`${proxy.url}/-/iap/logout`)
    expect(nobody.status).toBe(302)
    expect(await recordOf(nobody)).toMatchObject({ ...allowed('logout'), ...anonymous })
  })

  it('the sign-out confirmation page and a front-channel logout are served requests, not challenges', async () => {
    const browser = await signedIn()
    const cookie = browser.jar.cookieHeader(proxy.url)
    const confirm = await fetch(`${proxy.url}/-/iap/logout`, { redirect: 'manual', headers: { 'sec-fetch-site': 'cross-site', cookie } })
    expect(confirm.status).toBe(200)
    expect(await recordOf(confirm)).toMatchObject(allowed('logout-confirm'))
    expect((await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie } })).status).toBe(200)

    const frame = await fetch(`${proxy.url}/-/iap/logout?sid=00000000-0000-4000-8000-00000000abcd`, { redirect: 'manual' })
    expect(frame.status).toBe(200)
    expect(await recordOf(frame)).toMatchObject({ ...allowed('front-channel-logout'), ...anonymous })
    const foreign = await fetch(`${proxy.url}/-/iap/logout?sid=abc&iss=${encodeURIComponent('https://login.example.test/x/v2.0')}`, { redirect: 'manual' })
    expect(await recordOf(foreign)).toMatchObject({ 'iap.decision.result': 'deny', 'iap.decision.reason': 'logout-issuer-invalid', 'event.outcome': 'failure' })
  })

  it('starting a sign-in is an allowed request; the callback is allowed when it signs in, a failure when it is refused', async () => {
    const browser = createBrowser()
    const start = await browser.step(`${proxy.url}/-/iap/login?rd=%2Fgroup%2Fproject`)
    expect(start.status).toBe(302)
    expect(await recordOf(start)).toMatchObject({ ...allowed('login-started'), ...anonymous })

    const hop = await stack.idp.signIn(start.headers.get('location')!, 'bob')
    const done = await browser.step(hop.url)
    expect(done.status).toBe(302)
    expect(await recordOf(done)).toMatchObject({ ...allowed('login-succeeded'), ...bob })

    // A state this proxy never issued, and an error answer from Entra: failures.
    const forged = await browser.step(`${proxy.url}/-/iap/callback?state=x&code=y`)
    expect(forged.status).toBe(400)
    expect(await recordOf(forged)).toMatchObject({ 'iap.decision.result': 'deny', 'iap.decision.reason': 'login-state-invalid', 'event.outcome': 'failure' })
    const cancelled = createBrowser()
    const begun = await cancelled.step(`${proxy.url}/-/iap/login?rd=%2F`)
    const state = new URL(begun.headers.get('location')!).searchParams.get('state')!
    const idpError = await cancelled.step(`${proxy.url}/-/iap/callback?state=${encodeURIComponent(state)}&error=access_denied`)
    expect(idpError.status).toBe(403)
    expect(await recordOf(idpError)).toMatchObject({ 'iap.decision.result': 'deny', 'iap.decision.reason': 'login-denied-at-idp', 'event.outcome': 'failure' })
  })

  it('a callback whose transaction another tab took: allowed when that tab signed the browser in, a challenge when it starts sign-in again', async () => {
    const browser = await signedIn()
    const already = await browser.step(`${proxy.url}/-/iap/callback?state=${encodeURIComponent(await foreignState())}&code=y`)
    expect(already.status).toBe(302)
    expect(already.headers.get('location')).toBe('/group/project')
    expect(await recordOf(already)).toMatchObject({ ...allowed('login-already-signed-in'), ...bob })

    const restarted = await createBrowser().step(`${proxy.url}/-/iap/callback?state=${encodeURIComponent(await foreignState())}&code=y`)
    expect(restarted.status).toBe(302)
    expect(restarted.headers.get('location')).toMatch(/^\/-\/iap\/login\?rd=/)
    expect(await recordOf(restarted)).toMatchObject({ 'iap.decision.result': 'challenge', 'iap.decision.reason': 'login-restarted', 'event.outcome': 'failure' })
  })

  it('whoami is allowed with a session and a challenge without; jwks.json is allowed', async () => {
    const browser = await signedIn()
    const who = await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie: browser.jar.cookieHeader(proxy.url) } })
    expect(who.status).toBe(200)
    expect(await recordOf(who)).toMatchObject({ ...allowed('whoami'), ...bob })
    const nobody = await fetch(`${proxy.url}/-/iap/whoami`)
    expect(nobody.status).toBe(401)
    // Its body names the reason, like every refusal of the proxy's own.
    expect(await nobody.clone().json()).toMatchObject({ error: 'Unauthorized', reason: 'credentials-missing', requestId: nobody.headers.get('x-request-id') })
    expect(await recordOf(nobody)).toMatchObject({ 'iap.decision.result': 'challenge', 'iap.decision.reason': 'credentials-missing', 'event.outcome': 'failure', ...anonymous })
    const jwks = await fetch(`${proxy.url}/-/iap/jwks.json`)
    expect(jwks.status).toBe(200)
    expect(await recordOf(jwks)).toMatchObject({ ...allowed('jwks'), ...anonymous })
  })

  it.each([
    ['POST', '/-/iap/jwks.json', 'GET, HEAD'],
    ['PUT', '/-/iap/jwks.json', 'GET, HEAD'],
    ['DELETE', '/-/iap/jwks.json', 'GET, HEAD'],
    ['POST', '/-/iap/whoami', 'GET, HEAD'],
    ['POST', '/-/iap/login', 'GET, HEAD'],
    ['POST', '/-/iap/callback', 'GET'],
    ['PUT', '/-/iap/logout', 'GET, POST'],
  ])('%s %s is 405 with Allow: %s, like every /-/iap/ endpoint', async (method, path, allow) => {
    const res = await fetch(`${proxy.url}${path}`, { method, redirect: 'manual', headers: { accept: 'application/json' } })
    expect(res.status).toBe(405)
    expect(res.headers.get('allow')).toBe(allow)
    expect(await res.clone().json()).toMatchObject({ error: 'Method Not Allowed', reason: 'method-not-allowed', requestId: res.headers.get('x-request-id') })
    expect(await recordOf(res)).toMatchObject({ 'iap.decision.result': 'deny', 'iap.decision.reason': 'method-not-allowed', 'event.outcome': 'failure', 'http.response.status_code': 405 })
  })

  it('an unknown /-/iap/ path stays 404 whatever the method', async () => {
    for (const method of ['GET', 'POST']) {
      const res = await fetch(`${proxy.url}/-/iap/jwks`, { method, redirect: 'manual', headers: { accept: 'application/json' } })
      expect(res.status).toBe(404)
      expect(await res.clone().json()).toMatchObject({ error: 'Not Found', reason: 'iap-endpoint-unknown', requestId: res.headers.get('x-request-id') })
      expect(await recordOf(res)).toMatchObject({ 'iap.decision.reason': 'iap-endpoint-unknown' })
    }
    // git shows its user the text page: the reason is there too.
    const git = await fetch(`${proxy.url}/-/iap/jwks`, { headers: { 'user-agent': 'git/2.45.1' } })
    expect(git.status).toBe(404)
    expect(await git.clone().text()).toBe(`gitlab-iap: No such gitlab-iap endpoint. (iap-endpoint-unknown); request id ${git.headers.get('x-request-id')}\n`)
    await recordOf(git)
  })
})
