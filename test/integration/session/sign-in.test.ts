import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { deriveSessionKeys } from '../../../src/auth/session/keys.ts'
import { open, seal } from '../../../src/auth/session/seal.ts'
import { calculatePKCECodeChallenge, randomNonce, randomPKCECodeVerifier, randomState } from 'openid-client'
import { DEMO_CLIENT_ID, DEMO_GROUPS, DEMO_USERS, loginHintOf } from '../../../src/devidp/index.ts'
import type { ServeHandle } from '../../helpers/serve.ts'
import { rawClient } from '../../helpers/http.ts'
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

/** Starts a sign-in at the proxy and returns the IdP's redirect back (callback URL with code + state), not yet delivered. */
async function callbackFor(browser: ReturnType<typeof createBrowser>, login: string, rd = '/') {
  const start = await browser.step(`${proxy.url}/-/iap/login?rd=${encodeURIComponent(rd)}`)
  expect(start.status).toBe(302)
  const authorize = start.headers.get('location')!
  expect(authorize.startsWith(stack.idp.authorizationEndpoint)).toBe(true)
  const hop = await stack.idp.signIn(authorize, login)
  return new URL(hop.url)
}

/**
 * The `sid` of the browser's Entra session, as Entra names it in a front-channel logout: from the ID
 * token of one more sign-in in that session (redeemed here, never delivered to the proxy).
 */
async function entraSidOf(browser: ReturnType<typeof createBrowser>, login: string): Promise<string> {
  const verifier = randomPKCECodeVerifier()
  const redirectUri = `${proxy.url}/-/iap/callback`
  const authorize = new URL(stack.idp.authorizationEndpoint)
  const params = { client_id: DEMO_CLIENT_ID, response_type: 'code', redirect_uri: redirectUri, scope: 'openid', state: randomState(), nonce: randomNonce(), code_challenge: await calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' }
  for (const [name, value] of Object.entries(params)) authorize.searchParams.set(name, value)
  const hop = await stack.idp.signIn(authorize.href, login, { jar: browser.jar })
  const code = new URL(hop.url).searchParams.get('code')!
  const res = await fetch(stack.idp.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: DEMO_CLIENT_ID, client_secret: stack.clientSecret, code_verifier: verifier }),
  })
  const { id_token: idToken } = (await res.json()) as { id_token: string }
  return (JSON.parse(Buffer.from(idToken.split('.')[1]!, 'base64url').toString()) as { sid: string }).sid
}

const sessionCookieOf = (browser: ReturnType<typeof createBrowser>) => /__Host-gitlab-iap=([^;]+)/.exec(browser.jar.cookieHeader(proxy.url))?.[1]

describe('browser sign-in (memory store)', () => {
  it('protected page → login → IdP → back on the original page with upstream content', async () => {
    const browser = createBrowser()
    const page = await browser.navigate(`${proxy.url}/group/project/-/issues?state=opened`, 'bob')
    expect(page.status).toBe(200)
    expect(page.url).toBe(`${proxy.url}/group/project/-/issues?state=opened`)
    expect(page.body).toContain('GitLab-shaped upstream')
    expect(page.body).toContain(`<p id="user">${DEMO_USERS.bob.upn}</p>`)
  })

  it('the login request asks for code + PKCE S256 + state + nonce and sets a sealed HttpOnly transaction cookie', async () => {
    const browser = createBrowser()
    const res = await browser.step(`${proxy.url}/-/iap/login?rd=%2Fgroup%2Fproject`)
    const authorize = new URL(res.headers.get('location')!)
    expect(authorize.searchParams.get('response_type')).toBe('code')
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256')
    expect(authorize.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/)
    // Random, then the return target (so a tab whose transaction another tab overwrote can start again for its page).
    const [random, carried] = authorize.searchParams.get('state')!.split('.')
    expect(random).toMatch(/^[A-Za-z0-9_-]{22,}$/)
    expect(Buffer.from(carried!, 'base64url').toString('utf8')).toBe('/group/project')
    expect(authorize.searchParams.get('nonce')).toMatch(/^[A-Za-z0-9_-]{22,}$/)
    expect(authorize.searchParams.get('redirect_uri')).toBe(`${proxy.url}/-/iap/callback`)
    expect(authorize.searchParams.get('scope')!.split(' ')).toEqual(expect.arrayContaining(['openid', 'offline_access']))
    const tx = res.headers.getSetCookie().find((c) => c.startsWith(`${COOKIE}-tx-`))!
    expect(tx).toMatch(/; Path=\/; HttpOnly; SameSite=Lax; Secure; Max-Age=600$/)
    // Sealed: neither the verifier nor the nonce is readable in the cookie.
    expect(tx).not.toContain(authorize.searchParams.get('nonce')!)
  })

  it('the state sent through Entra carries no token of the return target; the sealed transaction still returns to all of it', async () => {
    const browser = createBrowser()
    const feed = '/dashboard/projects.atom?feed_token=glft-AbCdEfGhIjKlMnOpQrSt'
    const start = await browser.step(`${proxy.url}/-/iap/login?rd=${encodeURIComponent(feed)}`)
    const authorize = new URL(start.headers.get('location')!)
    expect(authorize.href).not.toContain('glft-')
    const [, carried] = authorize.searchParams.get('state')!.split('.')
    expect(Buffer.from(carried!, 'base64url').toString('utf8')).toBe('/dashboard/projects.atom')
    const back = await browser.step(new URL((await stack.idp.signIn(authorize.href, 'bob')).url).href)
    expect(back.headers.get('location')).toBe(feed)
    // A path holding a secret is not carried at all.
    const invite = await browser.step(`${proxy.url}/-/iap/login?rd=${encodeURIComponent('/-/invites/s3cr3tInviteToken/accept')}`)
    expect(new URL(invite.headers.get('location')!).searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{22,128}$/)
  })

  it('a 403 page in the browser names who is signed in and links to sign-out (the wrong account is the usual cause); JSON does not', async () => {
    const browser = createBrowser()
    const page = await browser.navigate(`${proxy.url}/admin`, 'bob')
    expect(page.status).toBe(403)
    expect(page.body).toContain(`Signed in as <strong>${DEMO_USERS.bob.upn}</strong>`)
    expect(page.body).toContain('<a href="/-/iap/logout">Sign out</a>')
    const json = await fetch(`${proxy.url}/admin`, { headers: { accept: 'application/json', cookie: browser.jar.cookieHeader(proxy.url) } })
    expect(json.status).toBe(403)
    expect(await json.text()).not.toContain(DEMO_USERS.bob.upn)
  })

  it('sets an opaque __Host- session cookie: Secure, HttpOnly, SameSite=Lax, Path=/, no Domain, no token', async () => {
    const browser = createBrowser()
    const callback = await callbackFor(browser, 'bob', '/explore')
    const res = await browser.step(callback.href)
    expect(res.status).toBe(302)
    expect(res.headers.get('location')).toBe('/explore')
    const cookies = res.headers.getSetCookie()
    const session = cookies.find((c) => c.startsWith(`${COOKIE}=`))!
    expect(session).toMatch(/^__Host-gitlab-iap=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}; Path=\/; HttpOnly; SameSite=Lax; Secure; Max-Age=43200$/)
    expect(session).not.toMatch(/domain=/i)
    // The transaction cookie is spent.
    expect(cookies.some((c) => c.startsWith(`${COOKIE}-tx-`) && /Max-Age=0/.test(c))).toBe(true)
  })

  it('GitLab receives identity headers and its own cookie, never the IAP cookies', async () => {
    const browser = createBrowser()
    await browser.navigate(`${proxy.url}/-/profile`, 'alice')
    stack.upstream.clear()
    const cookie = `_gitlab_session=gl-own; ${COOKIE}=${sessionCookieOf(browser)}; ${COOKIE}-tx-abcdefabcdefabcd=junk`
    const res = await fetch(`${proxy.url}/group/project`, { headers: { cookie, accept: 'text/html' } })
    expect(res.status).toBe(200)
    const seen = stack.upstream.reached('/group/project').at(-1)!
    expect(seen.headers.cookie).toBe('_gitlab_session=gl-own')
    expect(seen.headers['x-forwarded-user']).toBe(DEMO_USERS.alice.upn)
    expect(seen.headers['x-forwarded-user-id']).toBe(DEMO_USERS.alice.oid)
    expect(String(seen.headers['x-forwarded-groups']).split(',')).toEqual(expect.arrayContaining([DEMO_GROUPS.admins.id, DEMO_GROUPS.engineering.id]))
  })

  it('GitLab cannot set or clear the IAP cookies in the browser; its own cookies pass', async () => {
    const browser = createBrowser()
    await browser.navigate(`${proxy.url}/-/profile`, 'alice')
    const cookie = `${COOKIE}=${sessionCookieOf(browser)}`
    for (const name of [COOKIE, `${COOKIE}-tx-0123456789abcdef`]) {
      const res = await fetch(`${proxy.url}/-/test/set-cookie?name=${encodeURIComponent(name)}`, { headers: { cookie } })
      expect(res.status).toBe(200)
      expect(res.headers.getSetCookie()).toEqual(['_gitlab_session=gl; path=/'])
    }
  })

  it('websocket handshake answers are cleaned too: GitLab cannot set the IAP cookies (nameless ones included) or pass hop-by-hop headers; a refusal is logged with its status', async () => {
    const browser = createBrowser()
    await browser.navigate(`${proxy.url}/-/profile`, 'alice')
    const cookie = `${COOKIE}=${sessionCookieOf(browser)}`
    const handshake = async (path: string) => {
      const client = rawClient(proxy.url)
      client.socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nCookie: ${cookie}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`)
      await expect.poll(() => client.received(), { timeout: 5000 }).toMatch(/\r\n\r\n/)
      client.socket.destroy()
      return client.received().split('\r\n\r\n')[0]!.toLowerCase()
    }
    const accepted = await handshake('/-/test/cookie.ws')
    expect(accepted).toMatch(/^http\/1\.1 101 /)
    expect(accepted).toContain('set-cookie: gl=kept; path=/')
    expect(accepted).not.toContain('gitlab-iap')
    expect(accepted).not.toContain('x-hop')
    expect(accepted).toMatch(/\r\nx-request-id: /)
    const refused = await handshake('/-/test/refuse-cookie.ws')
    expect(refused).toMatch(/^http\/1\.1 403 /)
    expect(refused).toContain('set-cookie: gl=kept; path=/')
    expect(refused).not.toContain('gitlab-iap')
    const id = /\r\nx-request-id: (\S+)/.exec(refused)?.[1]
    expect(id).toBeTruthy()
    await expect.poll(() => proxy.records().find((r) => r['http.request.id'] === id), { timeout: 5000 }).toMatchObject({ 'http.response.status_code': 403, 'event.outcome': 'failure' })
  })

  it('a user without the group gets the 403 page naming the rule', async () => {
    const browser = createBrowser()
    const page = await browser.navigate(`${proxy.url}/group/project`, 'dave')
    expect(page.status).toBe(403)
    expect(page.body).toContain('Access denied')
    expect(page.body).toContain('read-everything')
    const admin = await browser.navigate(`${proxy.url}/admin/users`)
    expect(admin.status).toBe(403)
  })

  it('an engineer is refused the admin area but a contractor may read', async () => {
    const bob = createBrowser()
    expect((await bob.navigate(`${proxy.url}/admin`, 'bob')).status).toBe(403)
    const carol = createBrowser()
    expect((await carol.navigate(`${proxy.url}/group/project`, 'carol')).status).toBe(200)
  })

  it('unauthenticated: browser navigation → 302 to login with rd; API → 401 WWW-Authenticate Bearer', async () => {
    const nav = await fetch(`${proxy.url}/group/project/-/merge_requests?x=1`, { redirect: 'manual', headers: { accept: 'text/html' } })
    expect(nav.status).toBe(302)
    expect(nav.headers.get('location')).toBe(`/-/iap/login?rd=${encodeURIComponent('/group/project/-/merge_requests?x=1')}`)
    const api = await fetch(`${proxy.url}/api/v4/projects`, { headers: { accept: 'application/json' } })
    expect(api.status).toBe(401)
    expect(api.headers.get('www-authenticate')).toMatch(/^Bearer realm="gitlab-iap"/)
    const xhr = await fetch(`${proxy.url}/group/project`, { headers: { accept: 'application/json' } })
    expect(xhr.status).toBe(401)
    // A page's script fetching an HTML fragment names text/html too, but is no navigation: its 401, not a sign-in it cannot follow.
    const fragment = await fetch(`${proxy.url}/group/project/-/refs/switch`, { redirect: 'manual', headers: { accept: 'text/html, */*; q=0.01', 'sec-fetch-dest': 'empty', 'sec-fetch-mode': 'cors' } })
    expect(fragment.status).toBe(401)
    expect(fragment.headers.get('www-authenticate')).toMatch(/^Bearer realm="gitlab-iap"/)
    const page = await fetch(`${proxy.url}/group/project`, { redirect: 'manual', headers: { accept: 'text/html', 'sec-fetch-dest': 'document', 'sec-fetch-mode': 'navigate' } })
    expect(page.status).toBe(302)
  })

  it('whoami returns identity, groups and session expiry, never a token', async () => {
    const browser = createBrowser()
    await browser.navigate(`${proxy.url}/`, 'alice')
    const res = await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie: browser.jar.cookieHeader(proxy.url) } })
    expect(res.status).toBe(200)
    const text = await res.text()
    const body = JSON.parse(text) as Record<string, any>
    expect(body).toMatchObject({ kind: 'user', id: DEMO_USERS.alice.oid, name: DEMO_USERS.alice.upn, email: DEMO_USERS.alice.email, authMethod: 'session', groupsSource: 'token' })
    expect(body.groups).toEqual(expect.arrayContaining([DEMO_GROUPS.admins.id]))
    const expires = Date.parse(body.session.expiresAt)
    expect(expires).toBeGreaterThan(Date.now() + 50 * 60_000)
    expect(expires).toBeLessThanOrEqual(Date.now() + 60 * 60_000 + 1000)
    expect(Date.parse(body.session.absoluteExpiresAt)).toBeGreaterThan(Date.now() + 11 * 3600_000)
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]+\./)
    expect(text).not.toMatch(/refresh_?token|id_?token/i)
    const anonymous = await fetch(`${proxy.url}/-/iap/whoami`)
    expect(anonymous.status).toBe(401)
  })

  it('logout deletes the session and cookie, then goes to end_session with post_logout_redirect_uri and the logout hint', async () => {
    const browser = createBrowser()
    await browser.navigate(`${proxy.url}/`, 'bob')
    const oldCookie = browser.jar.cookieHeader(proxy.url)
    expect(oldCookie).toContain(`${COOKIE}=`)
    const res = await browser.step(`${proxy.url}/-/iap/logout`)
    expect(res.status).toBe(302)
    expect(res.headers.getSetCookie().find((c) => c.startsWith(`${COOKIE}=`))).toMatch(/^__Host-gitlab-iap=; .*Max-Age=0/)
    // The access log says who signed out.
    const logoutId = res.headers.get('x-request-id')
    await expect.poll(() => proxy.records().find((r) => r['http.request.id'] === logoutId), { timeout: 3000 }).toMatchObject({
      'iap.decision.reason': 'logout', 'iap.auth.method': 'session', 'user.id': DEMO_USERS.bob.oid, 'user.name': DEMO_USERS.bob.upn,
    })
    const endSession = new URL(res.headers.get('location')!)
    expect(endSession.href.startsWith(stack.idp.endSessionEndpoint)).toBe(true)
    expect(endSession.searchParams.get('post_logout_redirect_uri')).toBe(`${proxy.url}/`)
    // The login_hint claim names the account; the ID token (name, email, groups) stays out of the URL.
    expect(endSession.searchParams.get('logout_hint')).toBe(loginHintOf(stack.idp.tenantId, DEMO_USERS.bob.oid))
    expect(endSession.searchParams.get('id_token_hint')).toBeNull()
    expect(browser.jar.cookieHeader(proxy.url)).not.toContain(`${COOKIE}=`)
    const back = await stack.idp.signOut(endSession.href)
    expect(back.url).toBe(`${proxy.url}/`)
    expect(stack.idp.lastLogout()).toMatchObject({ hasIdTokenHint: false, postLogoutRedirectUri: `${proxy.url}/` })
    // The old cookie is dead server-side too.
    const replay = await fetch(`${proxy.url}/group/project`, { redirect: 'manual', headers: { cookie: oldCookie, accept: 'application/json' } })
    expect(replay.status).toBe(401)
    expect(await replay.json()).toMatchObject({ reason: 'session-unknown' })
    const nav = await fetch(`${proxy.url}/group/project`, { redirect: 'manual', headers: { cookie: oldCookie, accept: 'text/html' } })
    expect(nav.status).toBe(302)
    expect(nav.headers.get('location')).toMatch(/^\/-\/iap\/login\?rd=/)
  })

  it('front-channel logout from Entra (?sid=) ends the sessions of that Entra session, with an empty 200', async () => {
    const browser = createBrowser()
    await browser.navigate(`${proxy.url}/`, 'bob')
    const first = browser.jar.cookieHeader(proxy.url)
    // A second sign-in in the same IdP session (single sign-on): a second proxy session with the same sid.
    // The first cookie is set aside, or the sign-in would end its session (fixation defence).
    browser.jar.store(proxy.url, [`${COOKIE}=; Path=/; Max-Age=0`])
    await browser.navigate(`${proxy.url}/-/iap/login?rd=/`, 'bob')
    expect(browser.jar.cookieHeader(proxy.url)).not.toBe(first)
    const stillAlive = await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie: first } })
    expect(stillAlive.status).toBe(200)
    const second = browser.jar.cookieHeader(proxy.url)
    const sid = await entraSidOf(browser, 'bob')
    expect(sid).toBeTruthy()
    const foreign = await fetch(`${proxy.url}/-/iap/logout?sid=${sid}&iss=${encodeURIComponent('https://login.example.test/00000000-0000-4000-8000-000000000000/v2.0')}`)
    expect(foreign.status).toBe(400)
    expect((await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie: first } })).status).toBe(200)
    const frame = await fetch(`${proxy.url}/-/iap/logout?sid=${sid}`, { redirect: 'manual' })
    expect(frame.status).toBe(200)
    expect(await frame.text()).toBe('')
    // No cookie deletion: a link from another site naming any sid would otherwise sign the browser out.
    expect(frame.headers.getSetCookie()).toEqual([])
    expect(frame.headers.get('cache-control')).toBe('no-store')
    const ended = await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie: first } })
    expect(ended.status).toBe(401)
    expect((await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie: second } })).status).toBe(401)
    const id = frame.headers.get('x-request-id')
    await expect.poll(() => proxy.records().some((r) => r['http.request.id'] === id), { timeout: 3000 }).toBe(true)
    expect(proxy.records().find((r) => r['http.request.id'] === id)).toMatchObject({ 'iap.decision.reason': 'front-channel-logout', 'http.response.status_code': 200 })
    expect(JSON.stringify(proxy.records())).not.toContain(sid)
  })

  it('tampered, foreign and malformed session cookies are rejected', async () => {
    const browser = createBrowser()
    await browser.navigate(`${proxy.url}/`, 'bob')
    const value = sessionCookieOf(browser)!
    const flipped = value.slice(0, 10) + (value[10] === 'A' ? 'B' : 'A') + value.slice(11)
    const foreignKeys = deriveSessionKeys('a-different-deployment-secret-0123456789')
    const { signSessionId } = await import('../../../src/auth/session/cookies.ts')
    const foreign = signSessionId(foreignKeys, value.split('.')[0]!)
    for (const [cookie, reason] of [
      [flipped, 'session-cookie-invalid'],
      [foreign, 'session-cookie-invalid'],
      ['not-a-session', 'session-cookie-invalid'],
      [`${value.split('.')[0]}.`, 'session-cookie-invalid'],
    ] as const) {
      const res = await fetch(`${proxy.url}/group/project`, { headers: { cookie: `${COOKIE}=${cookie}`, accept: 'application/json' } })
      expect(res.status, cookie).toBe(401)
      expect(await res.json()).toMatchObject({ reason })
    }
    stack.upstream.clear()
    await fetch(`${proxy.url}/group/project`, { headers: { cookie: `${COOKIE}=${flipped}` } })
    expect(stack.upstream.reached('/group/project')).toHaveLength(0)
  })

  it('refuses every line of the open-redirect corpus at /-/iap/login', async () => {
    const lines = readFileSync(join(import.meta.dirname, '../../fixtures/open-redirects.txt'), 'utf8').split('\n').slice(0, -1).filter((l) => !l.startsWith('# '))
    expect(lines.length).toBeGreaterThanOrEqual(100)
    const accepted: string[] = []
    for (const line of lines) {
      const value = new URL(`http://x/-/iap/login?rd=${line}`).searchParams.get('rd') ?? ''
      const res = await fetch(`${proxy.url}/-/iap/login?rd=${encodeURIComponent(value)}`, { redirect: 'manual', headers: { accept: 'application/json' } })
      await res.body?.cancel()
      if (res.status !== 400) accepted.push(`${res.status} ${line}`)
    }
    expect(accepted).toEqual([])
    const good = await fetch(`${proxy.url}/-/iap/login?rd=%2Fgroup%2Fproject`, { redirect: 'manual' })
    expect(good.status).toBe(302)
  })

  it('rejects a callback without its transaction cookie (foreign callback) and a forged state', async () => {
    const attacker = createBrowser()
    const callback = await callbackFor(attacker, 'bob')
    // The victim's browser never started this sign-in: no transaction cookie.
    const victim = createBrowser()
    const res = await fetch(callback.href, { redirect: 'manual', headers: { accept: 'application/json', cookie: victim.jar.cookieHeader(proxy.url) } })
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ reason: 'login-transaction-missing' })
    expect(res.headers.getSetCookie().some((c) => c.startsWith(`${COOKIE}=`))).toBe(false)
    const noState = await fetch(`${proxy.url}/-/iap/callback?code=abc`, { headers: { accept: 'application/json' } })
    expect(await noState.json()).toMatchObject({ reason: 'login-state-invalid' })
  })

  it('rejects a state mismatch: code from one sign-in delivered with another sign-in state', async () => {
    const browser = createBrowser()
    const first = await callbackFor(browser, 'bob')
    const second = await callbackFor(browser, 'bob')
    const swapped = new URL(first.href)
    swapped.searchParams.set('state', second.searchParams.get('state')!)
    const res = await fetch(swapped.href, { redirect: 'manual', headers: { accept: 'application/json', cookie: browser.jar.cookieHeader(proxy.url) } })
    expect(res.status).toBe(400)
    expect(((await res.json()) as { reason: string }).reason).toMatch(/^login-(code-rejected|id-token-invalid|callback-invalid)$/)
  })

  it('rejects a nonce mismatch (transaction re-sealed with another nonce)', async () => {
    const browser = createBrowser()
    const callback = await callbackFor(browser, 'bob')
    const [, name, sealed] = /(__Host-gitlab-iap-tx-\d)=([^;]+)/.exec(browser.jar.cookieHeader(proxy.url))! as unknown as [string, string, string]
    const key = deriveSessionKeys(stack.sessionSecret).transactionSeal
    const tx = JSON.parse(open(key, sealed, name)!) as Record<string, unknown>
    const forged = seal(key, JSON.stringify({ ...tx, nonce: 'another-nonce-value-0123456789' }), name)
    const res = await fetch(callback.href, { redirect: 'manual', headers: { accept: 'application/json', cookie: `${name}=${forged}` } })
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ reason: 'login-id-token-invalid' })
  })

  it('rejects a replayed callback', async () => {
    const browser = createBrowser()
    const callback = await callbackFor(browser, 'bob')
    const cookies = browser.jar.cookieHeader(proxy.url)
    const first = await fetch(callback.href, { redirect: 'manual', headers: { cookie: cookies } })
    expect(first.status).toBe(302)
    const again = await fetch(callback.href, { redirect: 'manual', headers: { cookie: cookies, accept: 'application/json' } })
    expect(again.status).toBe(400)
    expect(await again.json()).toMatchObject({ reason: 'login-callback-replayed' })
    expect(again.headers.getSetCookie().some((c) => c.startsWith(`${COOKIE}=`) && !/Max-Age=0/.test(c))).toBe(false)
  })

  it('an error answer from the IdP is refused without a session', async () => {
    const browser = createBrowser()
    const start = await browser.step(`${proxy.url}/-/iap/login`)
    const state = new URL(start.headers.get('location')!).searchParams.get('state')!
    const res = await fetch(`${proxy.url}/-/iap/callback?error=access_denied&error_description=no&state=${state}&iss=${encodeURIComponent(stack.idp.issuer)}`, { redirect: 'manual', headers: { accept: 'application/json', cookie: browser.jar.cookieHeader(proxy.url) } })
    expect(res.status).toBe(403)
    expect(await res.json()).toMatchObject({ reason: 'login-denied-at-idp' })
  })

  it('an error answer without iss is still reported as the IdP refusing, not as a bad identity token', async () => {
    const browser = createBrowser()
    const start = await browser.step(`${proxy.url}/-/iap/login`)
    const state = new URL(start.headers.get('location')!).searchParams.get('state')!
    const res = await fetch(`${proxy.url}/-/iap/callback?error=access_denied&state=${state}`, { redirect: 'manual', headers: { accept: 'application/json', cookie: browser.jar.cookieHeader(proxy.url) } })
    expect(res.status).toBe(403)
    expect(await res.json()).toMatchObject({ reason: 'login-denied-at-idp' })
    const odd = createBrowser()
    const oddState = new URL((await odd.step(`${proxy.url}/-/iap/login`)).headers.get('location')!).searchParams.get('state')!
    const broken = await fetch(`${proxy.url}/-/iap/callback?error=server_error&state=${oddState}`, { redirect: 'manual', headers: { accept: 'application/json', cookie: odd.jar.cookieHeader(proxy.url) } })
    expect(broken.status).toBe(400)
    expect(await broken.json()).toMatchObject({ reason: 'login-callback-invalid' })
  })

  it('unfinished sign-ins never pile up: a new one takes the oldest one\'s slot, the Cookie header stays small', async () => {
    const browser = createBrowser()
    const longRd = `/group/project/-/issues?search=${'a'.repeat(1500)}`
    const sizes: number[] = []
    for (let i = 0; i < 12; i++) {
      const res = await browser.step(`${proxy.url}/-/iap/login?rd=${encodeURIComponent(i % 2 ? longRd : '/group/project')}`)
      expect(res.status).toBe(302)
      sizes.push(browser.jar.cookieHeader(proxy.url).length)
    }
    const pending = browser.jar.cookieHeader(proxy.url).split(';').filter((c) => c.trim().startsWith(`${COOKIE}-tx-`))
    expect(pending.length).toBeLessThanOrEqual(3)
    // Under the 8 KB a proxy in front (nginx's default header buffer) accepts, however many sign-ins were started.
    expect(Math.max(...sizes)).toBeLessThan(6000)
    // The latest sign-in still completes.
    const page = await browser.navigate(`${proxy.url}/-/iap/login?rd=${encodeURIComponent('/explore')}`, 'bob')
    expect(page.url).toBe(`${proxy.url}/explore`)
  })

  it('sign-ins started in parallel from the same cookies share three slots: the Cookie header stays bounded and the user can still sign in', async () => {
    const browser = createBrowser()
    await browser.navigate(`${proxy.url}/`, 'bob')
    const cookie = browser.jar.cookieHeader(proxy.url)
    const rd = encodeURIComponent(`/group/project/-/issues?search=${'a'.repeat(2000)}`)
    // What a restored window of tabs, or a page of `<img src="/-/iap/login?rd=…">`, does: all at once, none seeing the others' cookies.
    const answers = await Promise.all(Array.from({ length: 30 }, () => fetch(`${proxy.url}/-/iap/login?rd=${rd}`, { redirect: 'manual', headers: { cookie, 'sec-fetch-mode': 'navigate' } })))
    const set = answers.flatMap((res) => res.headers.getSetCookie())
    const names = new Set(set.map((c) => c.split('=')[0]))
    expect(names.size).toBeGreaterThan(1)
    expect([...names].every((n) => /^__Host-gitlab-iap-tx-[012]$/.test(n!))).toBe(true)
    // The browser keeps the last value per name: at most three pending sign-ins, whatever their return targets.
    const kept = new Map(set.map((c) => [c.split('=')[0]!, c.split(';')[0]!]))
    const header = `${cookie}; ${[...kept.values()].join('; ')}`
    expect(header.length).toBeLessThan(6000)
    expect((await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie: header } })).status).toBe(200)
    const again = await fetch(`${proxy.url}/-/iap/login?rd=%2Fexplore`, { redirect: 'manual', headers: { cookie: header } })
    expect(again.status).toBe(302)
  })

  it('six tabs signing in at once all end on their own pages: a tab whose transaction another took starts again for its page, or goes on once a sibling signed in', async () => {
    const browser = createBrowser()
    const pages = ['/group/project/-/issues?state=opened', '/group/project/-/merge_requests', '/explore', '/group/project', '/group/project/-/tree/main', '/dashboard/todos']
    // Six navigations at once, all with the same (empty) cookies: three slots cannot hold six transactions.
    const starts = await Promise.all(pages.map((page) => browser.step(`${proxy.url}/-/iap/login?rd=${encodeURIComponent(page)}`)))
    const callbacks: URL[] = []
    for (const start of starts) {
      expect(start.status).toBe(302)
      callbacks.push(new URL((await stack.idp.signIn(start.headers.get('location')!, 'bob')).url))
    }
    const outcomes: string[] = []
    for (const [i, callback] of callbacks.entries()) {
      const res = await browser.step(callback.href)
      expect(res.status, pages[i]).toBe(302)
      const location = res.headers.get('location')!
      if (location.startsWith('/-/iap/login?')) {
        outcomes.push('restarted')
        expect(new URL(location, proxy.url).searchParams.get('rd')).toBe(pages[i])
        const page = await browser.navigate(new URL(location, proxy.url).href, 'bob')
        expect(page.url).toBe(`${proxy.url}${pages[i]}`)
      } else {
        outcomes.push('landed')
        expect(location).toBe(pages[i])
      }
    }
    // At least three transactions were overwritten; none of those tabs saw an error.
    expect(outcomes).toHaveLength(6)
    expect((await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie: browser.jar.cookieHeader(proxy.url) } })).status).toBe(200)
  })

  it('a transaction lost twice in a row shows the error instead of starting again without end', async () => {
    const browser = createBrowser()
    const start = await browser.step(`${proxy.url}/-/iap/login?rd=${encodeURIComponent('/explore')}`)
    const callback = new URL((await stack.idp.signIn(start.headers.get('location')!, 'bob')).url)
    // Its transaction cookie is gone (another tab's took the slot): delivered without it.
    const lost = await fetch(callback.href, { redirect: 'manual', headers: { accept: 'text/html' } })
    expect(lost.status).toBe(302)
    expect(lost.headers.get('location')).toBe(`/-/iap/login?rd=${encodeURIComponent('/explore')}`)
    const retry = lost.headers.getSetCookie().find((c) => c.startsWith('__Host-gitlab-iap-tx-retry=1'))!
    expect(retry).toBeDefined()
    const again = await fetch(callback.href, { redirect: 'manual', headers: { accept: 'text/html', cookie: retry.split(';')[0]! } })
    expect(again.status).toBe(400)
    expect(await again.text()).toContain('login-transaction-missing')
    // A state whose carried target is not a same-origin path starts again for / only.
    const forged = new URL(callback.href)
    forged.searchParams.set('state', `${forged.searchParams.get('state')!.split('.')[0]}.${Buffer.from('//evil.example/x').toString('base64url')}`)
    const evil = await fetch(forged.href, { redirect: 'manual', headers: { accept: 'text/html' } })
    expect(evil.headers.get('location')).toBe(`/-/iap/login?rd=${encodeURIComponent('/')}`)
  })

  it('only a navigation starts a sign-in: an image or a fetch of /-/iap/login is refused and sets no cookie', async () => {
    for (const [mode, dest] of [['no-cors', 'image'], ['cors', 'empty'], ['no-cors', 'script']]) {
      const res = await fetch(`${proxy.url}/-/iap/login?rd=%2F`, { redirect: 'manual', headers: { accept: 'application/json', 'sec-fetch-mode': mode!, 'sec-fetch-site': 'same-origin', 'sec-fetch-dest': dest! } })
      expect(res.status).toBe(403)
      expect(await res.json()).toMatchObject({ reason: 'login-not-navigation' })
      expect(res.headers.getSetCookie()).toEqual([])
    }
    const navigation = await fetch(`${proxy.url}/-/iap/login?rd=%2F`, { redirect: 'manual', headers: { 'sec-fetch-mode': 'navigate', 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'document' } })
    expect(navigation.status).toBe(302)
  })

  it('a sign-in cookie of an older release (one name per sign-in) is deleted at the next sign-in', async () => {
    const res = await fetch(`${proxy.url}/-/iap/login`, { redirect: 'manual', headers: { cookie: `${COOKIE}-tx-0123456789abcdef=old; _gitlab_session=gl` } })
    const set = res.headers.getSetCookie()
    expect(set.some((c) => c.startsWith(`${COOKIE}-tx-0123456789abcdef=;`) && /Max-Age=0/.test(c))).toBe(true)
    expect(set.filter((c) => !/Max-Age=0/.test(c)).map((c) => c.split('=')[0])).toEqual([expect.stringMatching(/^__Host-gitlab-iap-tx-[012]$/)])
  })

  it('a same-origin logout that is not a navigation (an image GitLab renders) asks first and ends nothing', async () => {
    const browser = createBrowser()
    await browser.navigate(`${proxy.url}/`, 'bob')
    const cookie = browser.jar.cookieHeader(proxy.url)
    for (const [method, mode, dest] of [['GET', 'no-cors', 'image'], ['GET', 'cors', 'empty'], ['POST', 'same-origin', 'empty']] as const) {
      const res = await fetch(`${proxy.url}/-/iap/logout`, { method, redirect: 'manual', headers: { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': mode, 'sec-fetch-dest': dest, cookie } })
      expect(res.status).toBe(200)
      expect(await res.text()).toContain('<form method="post" action="/-/iap/logout">')
      expect(res.headers.getSetCookie()).toEqual([])
    }
    expect((await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie } })).status).toBe(200)
    const clicked = await fetch(`${proxy.url}/-/iap/logout`, { redirect: 'manual', headers: { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', cookie } })
    expect(clicked.status).toBe(302)
    expect((await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie } })).status).toBe(401)
  })

  it('logout another site started asks first (a POST form); the same-origin POST signs out', async () => {
    const browser = createBrowser()
    await browser.navigate(`${proxy.url}/`, 'bob')
    const cookie = browser.jar.cookieHeader(proxy.url)
    for (const headers of [{ 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'same-site' }, { origin: 'https://evil.example' }]) {
      const res = await fetch(`${proxy.url}/-/iap/logout`, { redirect: 'manual', headers: { ...headers, cookie } })
      expect(res.status).toBe(200)
      expect(await res.text()).toContain('<form method="post" action="/-/iap/logout">')
      expect(res.headers.getSetCookie()).toEqual([])
    }
    expect((await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie } })).status).toBe(200)
    const confirmed = await fetch(`${proxy.url}/-/iap/logout`, { method: 'POST', redirect: 'manual', headers: { 'sec-fetch-site': 'same-origin', origin: new URL(proxy.url).origin, cookie } })
    expect(confirmed.status).toBe(302)
    expect((await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie } })).status).toBe(401)
  })

  it('front-channel logout accepts only this tenant\'s issuer, exactly', async () => {
    const tenantInPath = `https://evil.example/${stack.idp.issuer.split('/').slice(-2, -1)[0]}/v2.0`
    const res = await fetch(`${proxy.url}/-/iap/logout?sid=abc&iss=${encodeURIComponent(tenantInPath)}`, { redirect: 'manual' })
    expect(res.status).toBe(400)
    const own = await fetch(`${proxy.url}/-/iap/logout?sid=abc&iss=${encodeURIComponent(stack.idp.issuer)}`, { redirect: 'manual' })
    expect(own.status).toBe(200)
  })

  it('groups overage: groups are read from Graph at sign-in', async () => {
    const browser = createBrowser()
    // Sign in without following the return to `/`, then ask whoami: 250 group ids make the identity
    // headers too large for the test upstream's default header limit.
    const back = await browser.step((await callbackFor(browser, 'erin')).href)
    expect(back.status).toBe(302)
    const page = await browser.navigate(`${proxy.url}/-/iap/whoami`)
    expect(page.status).toBe(200)
    const who = JSON.parse(page.body) as { groups: string[]; groupsSource: string }
    expect(who.groupsSource).toBe('graph')
    expect(who.groups).toHaveLength(250)
    expect(who.groups).toContain(DEMO_GROUPS.engineering.id)
  })

  it('groups overage: a removal in the directory takes effect at the next sign-in, whatever bearer tokens cached', async () => {
    const erin = stack.idp.getUser('erin')!
    const browser = createBrowser()
    await browser.step((await callbackFor(browser, 'erin')).href)
    const groupsNow = async (b: ReturnType<typeof createBrowser>) => (JSON.parse((await b.navigate(`${proxy.url}/-/iap/whoami`)).body) as { groups: string[] }).groups
    expect(await groupsNow(browser)).toContain(DEMO_GROUPS.engineering.id)
    stack.idp.updateUser(erin.oid, { groups: erin.groups.filter((g) => g !== DEMO_GROUPS.engineering.id) })
    try {
      const again = createBrowser()
      await again.step((await callbackFor(again, 'erin')).href)
      expect(await groupsNow(again)).not.toContain(DEMO_GROUPS.engineering.id)
    } finally {
      stack.idp.updateUser(erin.oid, { groups: erin.groups })
    }
  })

  it('groups overage with Graph down fails closed', async () => {
    // A user Graph has not been asked about yet (erin's groups are cached by now).
    stack.idp.upsertUser({ ...DEMO_USERS.erin, oid: 'f2a40000-0000-4000-8000-000000000f2a', upn: 'frank@contoso.test', name: 'Frank Overage', email: 'frank@contoso.test' })
    stack.idp.setGraphFault('down')
    try {
      const other = createBrowser()
      const page = await other.navigate(`${proxy.url}/-/iap/login?rd=%2F`, 'frank@contoso.test')
      expect(page.status).toBe(503)
      expect(page.body).toContain('login-groups-unavailable')
      expect(other.jar.cookieHeader(proxy.url)).not.toContain(`${COOKIE}=`)
    } finally {
      stack.idp.setGraphFault(null)
    }
  })

  it('access-log records of sign-ins and refusals never hold a token or cookie', async () => {
    const records = proxy.records()
    const callbacks = records.filter((r) => r['url.path'] === '/-/iap/callback')
    expect(callbacks.filter((r) => r['http.response.status_code'] === 302 && r['iap.decision.result'] === 'allow').length).toBeGreaterThan(5)
    expect(callbacks.filter((r) => r['http.response.status_code'] === 400 && r['iap.decision.result'] === 'deny').length).toBeGreaterThan(3)
    const all = JSON.stringify(records)
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./)
    expect(all).not.toContain('__Host-gitlab-iap=')
  })
})
