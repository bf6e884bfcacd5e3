/**
 * The `rd` (return-to) of browser sign-in, end to end: the proxy's own redirect to `/-/iap/login`
 * must name a target the login endpoint accepts (GitLab's `label_name[]=` queries included), and
 * `rd` may not send the browser back into the proxy's own endpoints.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rawRequest } from '../../helpers/http.ts'
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
