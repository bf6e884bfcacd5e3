/**
 * Identity values at browser sign-in, through the Entra-shaped dev IdP and a real `gitlab-iap serve`:
 * a name outside Latin-1 reaches GitLab as its UTF-8 bytes from a session too, and an ID token whose
 * email carries control characters gives no session but a clear error page (`login-claims-invalid`),
 * logged like any failed sign-in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_GROUPS } from '../../../src/devidp/index.ts'
import type { ServeHandle } from '../../helpers/serve.ts'
import { createBrowser, startStack, type Stack } from './stack.ts'

let stack: Stack
let proxy: ServeHandle

const LI = { oid: '11111111-2222-4333-8444-00000000c1c1', upn: '李雷@contoso.test', name: 'Li Lei', email: 'li@contoso.test', groups: [DEMO_GROUPS.engineering.id] }
const MALLORY = { oid: '11111111-2222-4333-8444-00000000ba0d', upn: 'mallory@contoso.test', name: 'Mallory', email: 'mallory@contoso.test\r\nX-Forwarded-User: root', groups: [DEMO_GROUPS.engineering.id] }

beforeAll(async () => {
  stack = await startStack()
  stack.idp.upsertUser(LI)
  stack.idp.upsertUser(MALLORY)
  proxy = await stack.startProxy()
})
afterAll(async () => {
  await stack?.close()
})

describe('identity values at sign-in', () => {
  it('a user name outside Latin-1 reaches GitLab as its UTF-8 bytes from the session', async () => {
    const browser = createBrowser()
    const page = await browser.navigate(`${proxy.url}/group/project/-/issues`, LI.oid)
    expect(page.status, page.body.slice(0, 300)).toBe(200)
    const seen = stack.upstream.reached('/group/project/-/issues').at(-1)!
    const raw = seen.rawHeaders
    const value = raw[raw.findIndex((v, i) => i % 2 === 0 && v.toLowerCase() === 'x-forwarded-user') + 1]!
    expect(Buffer.from(value, 'latin1')).toEqual(Buffer.from(LI.upn, 'utf8'))
  })

  it('an ID token whose email carries CR/LF: no session, a 403 page naming login-claims-invalid, logged', async () => {
    const browser = createBrowser()
    const page = await browser.navigate(`${proxy.url}/group/project`, MALLORY.oid)
    expect(page.status).toBe(403)
    expect(page.url).toMatch(/\/-\/iap\/callback\?/)
    expect(page.body).toContain('Sign-in failed')
    expect(page.body).toContain('login-claims-invalid')
    expect(page.body).toContain('control characters')
    expect(browser.jar.cookieHeader(proxy.url)).not.toMatch(/__Host-gitlab-iap=/)
    const id = page.headers.get('x-request-id')
    await expect.poll(() => proxy.records().some((r) => r['http.request.id'] === id), { timeout: 5000 }).toBe(true)
    expect(proxy.records().find((r) => r['http.request.id'] === id)).toMatchObject({
      'http.response.status_code': 403, 'iap.decision.result': 'deny', 'iap.decision.reason': 'login-claims-invalid',
    })
  })
})
