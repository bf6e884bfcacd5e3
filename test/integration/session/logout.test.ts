/**
 * Signing out: what the end-session redirect carries (the `login_hint` claim, not the ID token), what
 * the browser is told to forget (its cache, never the domain's cookies), and the question a sign-out
 * another site started gets (only when there is a live session to end).
 */
import { createHash } from 'node:crypto'
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { DEMO_CLIENT_ID, DEMO_USERS, loginHintOf } from '../../../src/devidp/index.ts'
import type { ServeHandle } from '../../helpers/serve.ts'
import { createBrowser, startStack, type Stack } from './stack.ts'

let stack: Stack
let proxy: ServeHandle
const COOKIE = '__Host-gitlab-iap'

beforeAll(async () => {
  stack = await startStack()
  proxy = await stack.startProxy()
})
afterAll(async () => {
  await stack?.close()
})

type Browser = ReturnType<typeof createBrowser>

async function signedIn(login = 'bob'): Promise<Browser> {
  const browser = createBrowser()
  expect((await browser.navigate(`${proxy.url}/`, login)).status).toBe(200)
  return browser
}

/** A same-origin click on GitLab's Sign out link. */
const clicked = { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', accept: 'text/html' }
/** A link to the proxy's logout on another site's page. */
const fromElsewhere = { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', accept: 'text/html' }

const logout = (headers: Record<string, string>, cookie = '', method = 'GET') =>
  fetch(`${proxy.url}/-/iap/logout`, { method, redirect: 'manual', headers: { ...headers, ...(cookie && { cookie }) } })

async function recordOf(res: Response): Promise<Record<string, unknown>> {
  const id = res.headers.get('x-request-id')
  let found: Record<string, unknown> | undefined
  await expect.poll(() => (found = proxy.records().find((r) => r['http.request.id'] === id)), { timeout: 5000 }).toBeTruthy()
  return found!
}

describe('the end-session redirect', () => {
  it('names the account by logout_hint (the login_hint claim) and carries no ID token; Entra signs out and returns to publicUrl', async () => {
    const browser = await signedIn()
    const res = await browser.step(`${proxy.url}/-/iap/logout`)
    expect(res.status).toBe(302)
    const endSession = new URL(res.headers.get('location')!)
    expect(endSession.href.startsWith(stack.idp.endSessionEndpoint)).toBe(true)
    expect(endSession.searchParams.get('logout_hint')).toBe(loginHintOf(stack.idp.tenantId, DEMO_USERS.bob.oid))
    expect(endSession.searchParams.has('id_token_hint')).toBe(false)
    expect(endSession.href).not.toMatch(/eyJ[A-Za-z0-9_-]+\./)
    expect(endSession.searchParams.get('post_logout_redirect_uri')).toBe(`${proxy.url}/`)
    const back = await stack.idp.signOut(endSession.href, { jar: browser.jar })
    expect(back.url).toBe(`${proxy.url}/`)
    expect(stack.idp.lastLogout()).toMatchObject({ hasIdTokenHint: false, logoutHint: loginHintOf(stack.idp.tenantId, DEMO_USERS.bob.oid), postLogoutRedirectUri: `${proxy.url}/` })
  })

  it('a registration without the login_hint optional claim: the ID token is the hint, as before', async () => {
    const registration = { clientId: DEMO_CLIENT_ID, clientSecret: stack.clientSecret, redirectUris: [`${proxy.url}/-/iap/callback`], postLogoutRedirectUris: [`${proxy.url}/`] }
    stack.idp.registerClient({ ...registration, loginHintClaim: false })
    try {
      const browser = await signedIn()
      const res = await browser.step(`${proxy.url}/-/iap/logout`)
      const endSession = new URL(res.headers.get('location')!)
      expect(endSession.searchParams.has('logout_hint')).toBe(false)
      expect(endSession.searchParams.get('id_token_hint')).toMatch(/^eyJ/)
    } finally {
      stack.idp.registerClient(registration)
    }
  })
})

describe('what the browser is told to forget', () => {
  it('the sign-out\'s redirect clears the cache (Back shows no page of the previous user), never the cookies', async () => {
    const get = await logout(clicked, (await signedIn()).jar.cookieHeader(proxy.url))
    expect(get.status).toBe(302)
    expect(get.headers.get('clear-site-data')).toBe('"cache"')
    const post = await logout({ 'sec-fetch-site': 'same-origin', origin: new URL(proxy.url).origin }, (await signedIn()).jar.cookieHeader(proxy.url), 'POST')
    expect(post.status).toBe(302)
    expect(post.headers.get('clear-site-data')).toBe('"cache"')
    // Already signed out (an expired session): the pages of whoever used the browser last may still be cached.
    const none = await logout(clicked)
    expect(none.status).toBe(302)
    expect(none.headers.get('clear-site-data')).toBe('"cache"')
  })

  it('nothing ended, nothing cleared: the confirmation, the not-signed-in page and the front-channel logout send no Clear-Site-Data', async () => {
    const cookie = (await signedIn()).jar.cookieHeader(proxy.url)
    expect((await logout(fromElsewhere, cookie)).headers.get('clear-site-data')).toBeNull()
    expect((await logout(fromElsewhere)).headers.get('clear-site-data')).toBeNull()
    // Entra's hidden frame is a third-party context: the GitLab tab's cache is not its to clear.
    const frame = await fetch(`${proxy.url}/-/iap/logout?sid=00000000-0000-4000-8000-00000000beef`, { redirect: 'manual' })
    expect(frame.status).toBe(200)
    expect(frame.headers.get('clear-site-data')).toBeNull()
  })
})

describe('a sign-out another site started', () => {
  it('with a live session: asks "Sign out of GitLab?", names who is signed in, focuses the button, offers Cancel; ends nothing', async () => {
    const cookie = (await signedIn()).jar.cookieHeader(proxy.url)
    const res = await logout(fromElsewhere, cookie)
    expect(res.status).toBe(200)
    const html = await res.text()
    expect(html).toContain('<title>Sign out of GitLab?</title>')
    expect(html).toContain('<h1>Sign out of GitLab?</h1>')
    expect(html).toContain(`Signed in as <strong>${DEMO_USERS.bob.upn}</strong>`)
    expect(html).toContain('<form method="post" action="/-/iap/logout"><button type="submit" autofocus>Sign out</button>')
    expect(html).toContain('<a href="/">Cancel</a>')
    expect(res.headers.getSetCookie()).toEqual([])
    expect((await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie } })).status).toBe(200)
    expect(await recordOf(res)).toMatchObject({ 'iap.decision.result': 'allow', 'iap.decision.reason': 'logout-confirm' })
  })

  it('keeps its Content-Security-Policy; the one inline style is allowed by its hash, nothing else', async () => {
    const res = await logout(fromElsewhere, (await signedIn()).jar.cookieHeader(proxy.url))
    const html = await res.text()
    const policy = res.headers.get('content-security-policy')!
    const directives = policy.split(';').map((d) => d.trim())
    expect(directives).toEqual(expect.arrayContaining(["default-src 'none'", `form-action 'self' ${new URL(stack.idp.issuer).origin}`, "frame-ancestors 'none'"]))
    const styles = [...html.matchAll(/<style>([^<]*)<\/style>/g)].map((m) => m[1]!)
    expect(styles).toHaveLength(1)
    expect(directives).toContain(`style-src 'sha256-${createHash('sha256').update(styles[0]!).digest('base64')}'`)
    // The same look as the proxy's status pages.
    const statusPage = await (await fetch(`${proxy.url}/-/iap/nothing-here`, { headers: { accept: 'text/html' } })).text()
    expect(styles[0]).toContain(/<style>([^<]*)<\/style>/.exec(statusPage)![1]!)
    expect(res.headers.get('x-frame-options')).toBe('DENY')
  })

  it('without a session: nothing to ask, "You are not signed in" with a link home; a dead cookie is deleted', async () => {
    const none = await logout(fromElsewhere)
    expect(none.status).toBe(200)
    const html = await none.text()
    expect(html).toContain('<h1>You are not signed in</h1>')
    expect(html).toContain('<a href="/">Go to GitLab</a>')
    expect(html).not.toContain('<form')
    expect(none.headers.getSetCookie()).toEqual([])
    expect(await recordOf(none)).toMatchObject({ 'iap.decision.result': 'allow', 'iap.decision.reason': 'logout-not-signed-in', 'iap.auth.method': 'none' })

    const browser = await signedIn()
    const dead = browser.jar.cookieHeader(proxy.url)
    expect((await browser.step(`${proxy.url}/-/iap/logout`)).status).toBe(302)
    const stale = await logout(fromElsewhere, dead)
    expect(await stale.text()).toContain('You are not signed in')
    expect(stale.headers.getSetCookie().find((c) => c.startsWith(`${COOKIE}=`))).toMatch(/Max-Age=0/)
  })

  it('a POST from another site never carries the (SameSite=Lax) cookie, so it is always asked; one with a session still only asks', async () => {
    // What a browser sends for a signed-in user's cross-site form: no cookie. The question, not "not signed in".
    const none = await logout({ 'sec-fetch-site': 'cross-site', origin: 'https://evil.example', accept: 'text/html' }, '', 'POST')
    const asked = await none.text()
    expect(asked).toContain('Sign out of GitLab?')
    expect(asked).not.toContain('You are not signed in')
    // Nor a cross-site frame's GET.
    const framed = await logout({ 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'iframe', accept: 'text/html' }, '', 'GET')
    expect(await framed.text()).toContain('Sign out of GitLab?')
    const cookie = (await signedIn()).jar.cookieHeader(proxy.url)
    const live = await logout({ 'sec-fetch-site': 'cross-site', origin: 'https://evil.example', accept: 'text/html' }, cookie, 'POST')
    expect(await live.text()).toContain('Sign out of GitLab?')
    expect((await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie } })).status).toBe(200)
  })
})

describe('front-channel logout refusals name their reason', () => {
  it('another issuer: 400 logout-issuer-invalid in JSON and on the page', async () => {
    const iss = encodeURIComponent('https://login.example.test/00000000-0000-4000-8000-000000000000/v2.0')
    const json = await fetch(`${proxy.url}/-/iap/logout?sid=abc&iss=${iss}`, { headers: { accept: 'application/json' } })
    expect(json.status).toBe(400)
    expect(await json.json()).toMatchObject({ reason: 'logout-issuer-invalid' })
    const page = await fetch(`${proxy.url}/-/iap/logout?sid=abc&iss=${iss}`, { headers: { accept: 'text/html' } })
    expect(await page.text()).toContain('<code>logout-issuer-invalid</code>')
  })
})
