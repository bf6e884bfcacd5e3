/**
 * The `rd` (return-to) of browser sign-in, end to end: the proxy's own redirect to `/-/iap/login`
 * must name a target the login endpoint accepts (GitLab's `label_name[]=` queries included), `rd` may
 * not send the browser back into the proxy's own endpoints other than its read-only pages, and a
 * fragment comes back with the browser.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rawRequest } from '../../helpers/http.ts'
import type { ServeHandle } from '../../helpers/serve.ts'
import { DEMO_USERS } from '../../../src/devidp/index.ts'
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

const html = { accept: 'text/html,application/xhtml+xml' }

/** The anonymous browser navigation's redirect, and what `/-/iap/login` then answers. */
async function loginRedirectOf(target: string): Promise<{ rd: string | null; login: number }> {
  const nav = await rawRequest(proxy.url, 'GET', target, html)
  expect(nav.status, target).toBe(302)
  const location = nav.headers.location!
  expect(location).toMatch(/^\/-\/iap\/login\?rd=/)
  const login = await rawRequest(proxy.url, 'GET', location, html)
  return { rd: new URL(location, 'http://x').searchParams.get('rd'), login: login.status }
}

describe('the login redirect names a target the login endpoint accepts', () => {
  it('a query with [ and ] (label_name[]=bug) survives sign-in and lands on the same page', async () => {
    const target = '/group/project/-/issues?label_name[]=bug&label_name[]=ux'
    expect(await loginRedirectOf(target)).toEqual({ rd: target, login: 302 })
    const page = await createBrowser().navigate(`${proxy.url}${target}`, 'bob')
    expect(page.status).toBe(200)
    expect(page.url).toBe(`${proxy.url}${target}`)
  })

  it('a query the login endpoint would refuse falls back to the path alone', async () => {
    expect(await loginRedirectOf('/group/project/-/issues?search={x}|y')).toEqual({ rd: '/group/project/-/issues', login: 302 })
  })

  it('a path the login endpoint would refuse falls back to /', async () => {
    // Canonical for the proxy (one decoding leaves `%2e%2e`), but `rd` checks three rounds of decoding.
    expect(await loginRedirectOf('/group/project/-/blob/main/%252e%252e?x=1')).toEqual({ rd: '/', login: 302 })
  })
})

describe('rd may not name the proxy own endpoints', () => {
  it.each(['/-/iap/logout', '/-/IAP/logout', '/-/Iap/login?rd=/x', '/%2D/iap/logout', '/-/%69ap/whoami', '/-/iap'])('rd=%s is refused (400 redirect-target-invalid)', async (rd) => {
    const res = await rawRequest(proxy.url, 'GET', `/-/iap/login?rd=${encodeURIComponent(rd)}`, { accept: 'application/json' })
    expect(res.status).toBe(400)
    expect(JSON.parse(res.body)).toMatchObject({ reason: 'redirect-target-invalid' })
  })
})

describe('rd may name the proxy\'s read-only pages', () => {
  it('a sign-in for /-/iap/whoami lands on it, signed in', async () => {
    const browser = createBrowser()
    const page = await browser.navigate(`${proxy.url}/-/iap/login?rd=${encodeURIComponent('/-/iap/whoami')}`, 'bob')
    expect(page.status).toBe(200)
    expect(page.url).toBe(`${proxy.url}/-/iap/whoami`)
    expect(JSON.parse(page.body)).toMatchObject({ id: DEMO_USERS.bob.oid, authMethod: 'session' })
  })

  it('a sign-in for /-/iap/jwks.json lands on it', async () => {
    const page = await createBrowser().navigate(`${proxy.url}/-/iap/login?rd=${encodeURIComponent('/-/iap/jwks.json')}`, 'bob')
    expect(page.status).toBe(200)
    expect(page.url).toBe(`${proxy.url}/-/iap/jwks.json`)
    expect(JSON.parse(page.body)).toHaveProperty('keys')
  })

  it.each([
    '/-/iap/whoami/../logout', '/-/iap/whoami/%2e%2e/logout', '/-/iap/whoami%2F..%2Flogout', '/-/iap/whoami/%252e%252e/logout',
    '/-/IAP/whoami', '/-/iap/whoami/', '/-/iap/%77hoami', '/%2D/iap/whoami', '/-/iap/jwks.json/', '/-/iap/callback', '/-/iap/unknown',
  ])('rd=%s is refused (400 redirect-target-invalid)', async (rd) => {
    const res = await rawRequest(proxy.url, 'GET', `/-/iap/login?rd=${encodeURIComponent(rd)}`, { accept: 'application/json' })
    expect(res.status).toBe(400)
    expect(JSON.parse(res.body)).toMatchObject({ reason: 'redirect-target-invalid' })
  })
})

describe('a fragment in rd', () => {
  it('comes back after sign-in; the state sent through Entra carries the target without it', async () => {
    const browser = createBrowser()
    const target = '/group/project/-/issues?state=opened#note_12'
    const start = await browser.step(`${proxy.url}/-/iap/login?rd=${encodeURIComponent(target)}`)
    expect(start.status).toBe(302)
    const authorize = new URL(start.headers.get('location')!)
    const [, carried] = authorize.searchParams.get('state')!.split('.')
    expect(Buffer.from(carried!, 'base64url').toString('utf8')).toBe('/group/project/-/issues?state=opened')
    const back = await browser.step((await stack.idp.signIn(authorize.href, 'bob')).url)
    expect(back.status).toBe(302)
    expect(back.headers.get('location')).toBe(target)
    const page = await browser.navigate(new URL(back.headers.get('location')!, proxy.url).href)
    expect(page.status).toBe(200)
  })

  it('a sign-in whose transaction was lost starts again for the page without its fragment', async () => {
    const browser = createBrowser()
    const start = await browser.step(`${proxy.url}/-/iap/login?rd=${encodeURIComponent('/explore#top')}`)
    const callback = (await stack.idp.signIn(start.headers.get('location')!, 'bob')).url
    // Delivered without the transaction cookie (another tab's sign-in took its slot).
    const lost = await fetch(callback, { redirect: 'manual', headers: { accept: 'text/html' } })
    expect(lost.status).toBe(302)
    expect(lost.headers.get('location')).toBe(`/-/iap/login?rd=${encodeURIComponent('/explore')}`)
  })

  it.each(['/group/project#a b', '/group/project#a\\b', '/group/project#a%0d%0aSet-Cookie:x=1', '/group/project#@evil.example', '/group/project#a#b', '//evil.example#x'])(
    'rd=%j is refused (400 redirect-target-invalid)',
    async (rd) => {
      const res = await rawRequest(proxy.url, 'GET', `/-/iap/login?rd=${encodeURIComponent(rd)}`, { accept: 'application/json' })
      expect(res.status).toBe(400)
      expect(JSON.parse(res.body)).toMatchObject({ reason: 'redirect-target-invalid' })
    },
  )
})
