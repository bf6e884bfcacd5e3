/**
 * Entra down or busy at the token endpoint (a 5xx, `temporarily_unavailable`, a reset) while a sign-in
 * redeems its code or a session refreshes: an outage the user may retry, never "the sign-in response is
 * not valid", and the operator's log says what Entra answered.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest'
import { DEMO_GROUPS, type EndpointFault } from '../../../src/devidp/index.ts'
import type { ServeHandle } from '../../helpers/serve.ts'
import { createBrowser, startStack, type Stack } from './stack.ts'

let stack: Stack
let proxy: ServeHandle

beforeAll(async () => {
  stack = await startStack()
  proxy = await stack.startProxy({ refreshInterval: '1s', refreshGrace: '30s' })
})
afterAll(async () => {
  await stack?.close()
})
afterEach(() => {
  stack.idp.setFault(null, 'token')
})

/** The serve log lines (NDJSON on stderr) that parse. */
const logLines = (p: ServeHandle) =>
  p.stderr().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)

/** Signs in at the IdP for `rd`, then delivers the callback with the token endpoint under `fault`. */
async function callbackUnder(fault: EndpointFault, rd: string, accept = 'text/html') {
  const browser = createBrowser()
  const start = await browser.step(`${proxy.url}/-/iap/login?rd=${encodeURIComponent(rd)}`)
  const hop = await stack.idp.signIn(start.headers.get('location')!, 'bob')
  stack.idp.setFault(fault, 'token')
  const res = await browser.step(hop.url, { accept })
  return { res, body: await res.text(), code: new URL(hop.url).searchParams.get('code')!, browser }
}

describe('the token endpoint down or busy at code redemption', () => {
  it.each([
    ['down', 503, 'temporarily_unavailable', /^AADSTS90033: A transient error has occurred\.$/],
    ['busy', 400, 'temporarily_unavailable', /^AADSTS90033: A transient error has occurred\. Please try again\. Trace ID: [0-9-]+$/],
  ] as const)('%s (HTTP %i, %s): 503 login-idp-unavailable with Retry-After and Try again; a warning with Entra\'s status and words', async (fault, httpStatus, error, description) => {
    const rd = '/group/project/-/issues?state=opened'
    const { res, body, code, browser } = await callbackUnder(fault, rd)
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('5')
    expect(body).toContain('<code>login-idp-unavailable</code>')
    expect(body).toContain(`<a href="/-/iap/login?rd=${encodeURIComponent(rd).replaceAll('&', '&amp;')}">Try again</a>`)
    expect(body).not.toContain('login-callback-invalid')
    expect(browser.jar.cookieHeader(proxy.url)).not.toMatch(/__Host-gitlab-iap=/)

    const id = res.headers.get('x-request-id')
    await expect.poll(() => proxy.records().find((r) => r['http.request.id'] === id), { timeout: 5000 }).toMatchObject({
      'iap.decision.result': 'deny', 'iap.decision.reason': 'login-idp-unavailable', 'http.response.status_code': 503,
    })
    await expect.poll(() => logLines(proxy).find((l) => l.requestId === id), { timeout: 5000 }).toBeDefined()
    const line = logLines(proxy).find((l) => l.requestId === id)!
    expect(line).toMatchObject({ level: 40, code: 'IAP_ERR_IDP_UNAVAILABLE', reason: 'login-idp-unavailable', httpStatus, error })
    expect(line.errorDescription).toMatch(description)
    expect(proxy.stderr()).not.toContain(stack.clientSecret)
    expect(proxy.stderr()).not.toContain(code)
  })

  it('a JSON client gets 503 login-idp-unavailable with Retry-After too', async () => {
    const { res, body } = await callbackUnder('down', '/', 'application/json')
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('5')
    expect(JSON.parse(body)).toMatchObject({ reason: 'login-idp-unavailable' })
  })

  it('a connection reset is the same outage; the warning names the network failure', async () => {
    const { res, body } = await callbackUnder('reset', '/explore')
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('5')
    expect(body).toContain('<a href="/-/iap/login?rd=%2Fexplore">Try again</a>')
    const id = res.headers.get('x-request-id')
    await expect.poll(() => logLines(proxy).find((l) => l.requestId === id), { timeout: 5000 }).toMatchObject({ level: 40, code: 'IAP_ERR_IDP_UNAVAILABLE', failure: expect.any(String) })
  })

  it('Try again, once Entra is back, signs in to the page that was asked for', async () => {
    const rd = '/group/project'
    const { body, browser } = await callbackUnder('down', rd)
    stack.idp.setFault(null, 'token')
    const href = /<a href="([^"]+)">Try again<\/a>/.exec(body)![1]!.replaceAll('&amp;', '&')
    const page = await browser.navigate(new URL(href, proxy.url).href, 'bob')
    expect(page.status).toBe(200)
    expect(page.url).toBe(`${proxy.url}${rd}`)
  })
})

describe('the token endpoint busy at a session refresh', () => {
  it('temporarily_unavailable (HTTP 400) is an outage: the session is served within its grace, not ended', async () => {
    const u = stack.idp.upsertUser({ oid: 'b05e0000-0000-4000-8000-00000000b001', upn: 'nell@contoso.test', name: 'nell', email: 'nell@contoso.test', groups: [DEMO_GROUPS.engineering.id] })
    const browser = createBrowser()
    expect((await browser.navigate(`${proxy.url}/group/project`, u.upn)).status).toBe(200)
    stack.idp.setFault('busy', 'token')
    const tokenCalls = stack.idp.stats().tokenRequests
    await sleep(1100)
    const res = await fetch(`${proxy.url}/group/project`, { headers: { accept: 'application/json', cookie: browser.jar.cookieHeader(proxy.url) } })
    expect(stack.idp.stats().tokenRequests).toBe(tokenCalls + 1)
    expect(res.status).toBe(200)
    stack.idp.setFault(null, 'token')
    expect((await fetch(`${proxy.url}/-/iap/whoami`, { headers: { cookie: browser.jar.cookieHeader(proxy.url) } })).status).toBe(200)
  })
})
