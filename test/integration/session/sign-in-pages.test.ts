/**
 * The pages a browser gets when a sign-in endpoint refuses: one sentence on what happened, the next
 * step as a link (home, or "Try again" for the page that was asked for), the reason and request id.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { DEMO_GROUPS } from '../../../src/devidp/index.ts'
import type { ServeHandle } from '../../helpers/serve.ts'
import { createBrowser, startStack, type Stack } from './stack.ts'

let stack: Stack
let proxy: ServeHandle

const MALLORY = { oid: '11111111-2222-4333-8444-00000000ba1d', upn: 'mallory2@contoso.test', name: 'Mallory', email: 'mallory@contoso.test\r\nX-Forwarded-User: root', groups: [DEMO_GROUPS.engineering.id] }

beforeAll(async () => {
  stack = await startStack()
  stack.idp.upsertUser(MALLORY)
  proxy = await stack.startProxy()
})
afterAll(async () => {
  await stack?.close()
})

const html = { accept: 'text/html' }

/** The page's heading, its first paragraph and its links. */
function partsOf(page: string) {
  return {
    title: /<title>([^<]*)<\/title>/.exec(page)?.[1],
    heading: /<h1>([^<]*)<\/h1>/.exec(page)?.[1],
    sentence: /<\/h1><p>([^<]*)<\/p>/.exec(page)?.[1],
    links: [...page.matchAll(/<a href="([^"]*)">([^<]*)<\/a>/g)].map((m) => ({ href: m[1]!.replaceAll('&amp;', '&'), text: m[2]! })),
  }
}

describe('sign-in failure pages', () => {
  it('an rd naming another site: says the link is not valid (not "Sign-in failed" twice) and links home', async () => {
    const res = await fetch(`${proxy.url}/-/iap/login?rd=${encodeURIComponent('https://evil.example/x')}`, { headers: html })
    expect(res.status).toBe(400)
    const page = await res.text()
    const { title, heading, sentence, links } = partsOf(page)
    expect(title).toBe('400 Sign-in link not valid')
    expect(heading).toBe('Sign-in link not valid')
    expect(sentence).toMatch(/link/)
    expect(sentence).not.toBe(heading)
    expect(page.match(/Sign-in failed/g)).toBeNull()
    expect(links).toEqual([{ href: '/', text: 'Go to GitLab' }])
    expect(page).toContain('<code>redirect-target-invalid</code>')
    expect(page).toContain(`<code>${res.headers.get('x-request-id')}</code>`)
  })

  it('login-state-invalid: says what happened and links to Try again (no bare "Start again.")', async () => {
    const res = await fetch(`${proxy.url}/-/iap/callback?code=abc`, { headers: html })
    expect(res.status).toBe(400)
    const page = await res.text()
    const { heading, sentence, links } = partsOf(page)
    expect(heading).toBe('Sign-in failed')
    expect(sentence).toBe('The sign-in response does not belong to a sign-in started here.')
    expect(links).toEqual([{ href: '/-/iap/login?rd=%2F', text: 'Try again' }])
    expect(page).not.toMatch(/start again/i)
    expect(page).toContain('<code>login-state-invalid</code>')
  })

  it('a transaction lost twice: Try again signs in for the page the sign-in was for', async () => {
    const browser = createBrowser()
    const start = await browser.step(`${proxy.url}/-/iap/login?rd=${encodeURIComponent('/explore')}`)
    const callback = (await stack.idp.signIn(start.headers.get('location')!, 'bob')).url
    const lost = await fetch(callback, { redirect: 'manual', headers: html })
    const retry = lost.headers.getSetCookie().find((c) => c.startsWith('__Host-gitlab-iap-tx-retry='))!.split(';')[0]!
    const again = await fetch(callback, { redirect: 'manual', headers: { ...html, cookie: retry } })
    expect(again.status).toBe(400)
    const page = await again.text()
    expect(partsOf(page).links).toEqual([{ href: '/-/iap/login?rd=%2Fexplore', text: 'Try again' }])
    expect(page).toContain('<code>login-transaction-missing</code>')
  })

  it('a replayed callback: Try again for the original target, query and all', async () => {
    const browser = createBrowser()
    const rd = '/group/project/-/issues?state=opened&label=x'
    const start = await browser.step(`${proxy.url}/-/iap/login?rd=${encodeURIComponent(rd)}`)
    const callback = (await stack.idp.signIn(start.headers.get('location')!, 'bob')).url
    const cookie = browser.jar.cookieHeader(proxy.url)
    expect((await fetch(callback, { redirect: 'manual', headers: { cookie } })).status).toBe(302)
    const again = await fetch(callback, { redirect: 'manual', headers: { ...html, cookie } })
    expect(again.status).toBe(400)
    const page = await again.text()
    expect(partsOf(page).links).toEqual([{ href: `/-/iap/login?rd=${encodeURIComponent(rd)}`, text: 'Try again' }])
    expect(page).toContain('<code>login-callback-replayed</code>')
  })

  it('an account the proxy cannot accept: a way to sign in with another one', async () => {
    const page = await createBrowser().navigate(`${proxy.url}/group/project`, MALLORY.oid)
    expect(page.status).toBe(403)
    expect(page.body).toContain('<code>login-claims-invalid</code>')
    expect(partsOf(page.body).links).toEqual([{ href: '/-/iap/logout', text: 'Sign out to use another account' }])
  })

  it('JSON clients get the same status and reason as before, without links', async () => {
    const res = await fetch(`${proxy.url}/-/iap/login?rd=${encodeURIComponent('https://evil.example/x')}`, { headers: { accept: 'application/json' } })
    expect(res.status).toBe(400)
    const body = (await res.json()) as Record<string, unknown>
    expect(body).toMatchObject({ error: 'Bad Request', reason: 'redirect-target-invalid', requestId: res.headers.get('x-request-id') })
  })

  it('looks like the proxy\'s other status pages', async () => {
    const styleOf = (page: string) => /<style>([^<]*)<\/style>/.exec(page)![1]!
    const failure = await (await fetch(`${proxy.url}/-/iap/callback?code=abc`, { headers: html })).text()
    const statusPage = await (await fetch(`${proxy.url}/-/iap/nothing-here`, { headers: html })).text()
    expect(styleOf(failure)).toContain(styleOf(statusPage))
  })
})
