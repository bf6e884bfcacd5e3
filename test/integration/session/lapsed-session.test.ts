/**
 * A session cookie that no longer opens a session (invalid, ended, revoked) is deleted with the answer
 * that sends the browser to sign in (or the 401 of a script), so later requests do not look it up
 * again; a session store that is merely unavailable (503) deletes nothing. Every redirect to sign-in
 * names `/-/iap/login` the same way: relative.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { DEMO_USERS } from '../../../src/devidp/index.ts'
import type { ServeHandle } from '../../helpers/serve.ts'
import { hasRedisServer, startRedisServer, type RedisServer } from './redis-server.ts'
import { createBrowser, revoke, startStack, type Stack } from './stack.ts'

const CI = process.env.CI === 'true'
if (!hasRedisServer) {
  if (CI) throw new Error('redis-server is required in CI (apt-get install -y redis-server)')
  console.warn('SKIPPED the Redis part of test/integration/session/lapsed-session.test.ts: redis-server is not installed')
}

const COOKIE = '__Host-gitlab-iap'
/** What the proxy's own logout sends to delete the session cookie. */
const CLEARED = /^__Host-gitlab-iap=; Path=\/; HttpOnly; SameSite=Lax; Secure; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT$/
const page = { accept: 'text/html,application/xhtml+xml', 'sec-fetch-dest': 'document', 'sec-fetch-mode': 'navigate' }
const script = { accept: 'application/json' }

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

async function signedIn(user = 'bob', target: ServeHandle = proxy): Promise<Browser> {
  const browser = createBrowser()
  expect((await browser.navigate(`${target.url}/group/project`, user)).status).toBe(200)
  return browser
}

async function get(target: ServeHandle, path: string, headers: Record<string, string>) {
  const res = await fetch(`${target.url}${path}`, { redirect: 'manual', headers })
  const body = await res.text()
  return { status: res.status, location: res.headers.get('location'), setCookie: res.headers.getSetCookie(), body, id: res.headers.get('x-request-id') }
}

/** The access-log record of a response, by its request id (records are written when responses end). */
async function recordOf(id: string | null): Promise<Record<string, unknown>> {
  expect(id).toBeTruthy()
  let found: Record<string, unknown> | undefined
  await expect.poll(() => (found = proxy.records().find((r) => r['http.request.id'] === id)), { timeout: 5000 }).toBeTruthy()
  return found!
}

describe('a lapsed session cookie is deleted with the answer', () => {
  it('an ended session (signed out elsewhere): the redirect to sign-in deletes it, the next request carries none', async () => {
    const browser = await signedIn()
    const dead = browser.jar.cookieHeader(proxy.url)
    // Another tab signed out: the record is gone, this copy of the cookie is not.
    expect((await get(proxy, '/-/iap/logout', { ...page, cookie: dead })).status).toBe(302)

    const step = await browser.step(`${proxy.url}/group/project/-/issues?state=opened`)
    expect(step.status).toBe(302)
    expect(step.headers.get('location')).toBe(`/-/iap/login?rd=${encodeURIComponent('/group/project/-/issues?state=opened')}`)
    expect(step.headers.getSetCookie()).toEqual([expect.stringMatching(CLEARED)])
    expect(browser.jar.cookieHeader(proxy.url)).not.toContain(`${COOKIE}=`)
    expect(await recordOf(step.headers.get('x-request-id'))).toMatchObject({ 'iap.decision.reason': 'session-unknown', 'http.response.status_code': 302 })

    // The dead session is not looked up again: the next request is plainly anonymous, and sign-in works.
    const next = await browser.step(`${proxy.url}/explore`)
    expect(next.status).toBe(302)
    expect(await recordOf(next.headers.get('x-request-id'))).toMatchObject({ 'iap.decision.reason': 'login-required', 'iap.auth.method': 'none' })
    expect((await browser.navigate(`${proxy.url}/explore`, 'bob')).status).toBe(200)
  })

  it('a revoked session, and a cookie that does not verify (tampered, another deployment\'s): deleted on the redirect', async () => {
    const carol = await signedIn('carol')
    const cookie = carol.jar.cookieHeader(proxy.url)
    expect((await revoke(proxy, DEMO_USERS.carol.oid)).status).toBe(200)
    const revoked = await get(proxy, '/group/project', { ...page, cookie })
    expect(revoked.status).toBe(302)
    expect(revoked.location).toBe(`/-/iap/login?rd=${encodeURIComponent('/group/project')}`)
    expect(revoked.setCookie).toEqual([expect.stringMatching(CLEARED)])

    for (const value of ['garbage', `${'A'.repeat(43)}.${'B'.repeat(22)}`]) {
      const invalid = await get(proxy, '/group/project', { ...page, cookie: `_gitlab_session=gl; ${COOKIE}=${value}` })
      expect(invalid.status).toBe(302)
      expect(invalid.location).toBe(`/-/iap/login?rd=${encodeURIComponent('/group/project')}`)
      expect(invalid.setCookie).toEqual([expect.stringMatching(CLEARED)])
      expect(await recordOf(invalid.id)).toMatchObject({ 'iap.decision.reason': 'session-cookie-invalid' })
    }
  })

  it('a script\'s request and whoami get their 401 with the deletion too', async () => {
    const browser = await signedIn()
    const cookie = browser.jar.cookieHeader(proxy.url)
    expect((await get(proxy, '/-/iap/logout', { ...page, cookie })).status).toBe(302)

    const api = await get(proxy, '/api/v4/projects', { ...script, cookie })
    expect(api.status).toBe(401)
    expect(JSON.parse(api.body)).toMatchObject({ reason: 'session-unknown' })
    expect(api.setCookie).toEqual([expect.stringMatching(CLEARED)])

    const xhr = await get(proxy, '/group/project', { ...script, cookie })
    expect(xhr.status).toBe(401)
    expect(xhr.setCookie).toEqual([expect.stringMatching(CLEARED)])

    const who = await get(proxy, '/-/iap/whoami', { ...script, cookie })
    expect(who.status).toBe(401)
    expect(JSON.parse(who.body)).toMatchObject({ reason: 'session-unknown' })
    expect(who.setCookie).toEqual([expect.stringMatching(CLEARED)])
  })

  it('no session cookie at all: the same relative redirect, and nothing to delete', async () => {
    const anonymous = await get(proxy, '/group/project/-/issues?state=opened', page)
    expect(anonymous.status).toBe(302)
    expect(anonymous.location).toBe(`/-/iap/login?rd=${encodeURIComponent('/group/project/-/issues?state=opened')}`)
    expect(anonymous.setCookie).toEqual([])
    const api = await get(proxy, '/api/v4/projects', script)
    expect(api.status).toBe(401)
    expect(api.setCookie).toEqual([])
    // A live session keeps its cookie untouched.
    const browser = await signedIn()
    const live = await get(proxy, '/group/project', { ...page, cookie: browser.jar.cookieHeader(proxy.url) })
    expect(live.status).toBe(200)
    expect(live.setCookie.filter((c) => c.startsWith(`${COOKIE}=`))).toEqual([])
  })
})

describe.skipIf(!hasRedisServer)('the session store unavailable (503)', () => {
  let redis: RedisServer
  let redisStack: Stack
  let redisProxy: ServeHandle
  beforeAll(async () => {
    redis = await startRedisServer()
    redisStack = await startStack()
    redisProxy = await redisStack.startProxy({ store: 'redis', redisUrl: redis.url })
  })
  afterAll(async () => {
    await redisStack?.close()
    await redis?.close()
  })

  it('keeps the cookie: the session may be fine, and is once Redis is back', async () => {
    const browser = await signedIn('bob', redisProxy)
    const cookie = browser.jar.cookieHeader(redisProxy.url)
    await redis.kill()
    try {
      // Until the proxy has seen its connections close, a session read a moment ago may still come from its local copy.
      await expect.poll(async () => (await fetch(`${redisProxy.adminUrl}/readyz`)).status, { timeout: 5000 }).toBe(503)
      for (const [path, headers] of [['/group/project', page], ['/api/v4/projects', script], ['/-/iap/whoami', script]] as const) {
        const down = await get(redisProxy, path, { ...headers, cookie })
        expect(down.status, path).toBe(503)
        expect(down.body).toContain('session-store-unavailable')
        expect(down.setCookie, path).toEqual([])
      }
    } finally {
      await redis.restart()
    }
    await expect.poll(async () => (await get(redisProxy, '/group/project', { ...page, cookie })).status, { timeout: 10_000 }).toBe(200)
  })
})
