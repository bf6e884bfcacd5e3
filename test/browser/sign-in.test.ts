import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { DEMO_USERS } from '../../src/devidp/index.ts'
import type { ServeHandle } from '../helpers/serve.ts'
import { startStack, type Stack } from '../integration/session/stack.ts'
import { hasChromium, launchChromium, requireChromiumInCi, type Chromium } from './chromium.ts'

requireChromiumInCi('test/browser/sign-in.test.ts')

let stack: Stack
let proxy: ServeHandle
let browser: Chromium

beforeAll(async () => {
  if (!hasChromium) return
  stack = await startStack()
  proxy = await stack.startProxy()
  browser = await launchChromium()
})
afterAll(async () => {
  await browser?.close()
  await stack?.close()
})

/** Fills the dev IdP's login form as a user would. */
async function signInAtIdp(page: import('playwright-core').Page, login: string) {
  await page.waitForSelector('input[name="login"]')
  await page.fill('input[name="login"]', login)
  const password = await page.$('input[name="password"]')
  if (password) await password.fill('demo')
  await Promise.all([page.waitForLoadState('load'), page.click('button[type="submit"], input[type="submit"]')])
}

describe.skipIf(!hasChromium)('Chromium: browser sign-in through gitlab-iap (memory store)', () => {
  it('protected page → sign-in at the IdP → back on the original page with upstream content → logout', async () => {
    const page = await browser.context.newPage()
    const target = `${proxy.url}/group/project/-/issues?state=opened`
    await page.goto(target)
    expect(page.url().startsWith(stack.idp.authority)).toBe(true)
    await signInAtIdp(page, DEMO_USERS.bob.upn)
    await page.waitForURL(target)
    expect(await page.textContent('h1')).toBe('GitLab-shaped upstream')
    expect(await page.textContent('#user')).toBe(DEMO_USERS.bob.upn)
    const cookies = await browser.context.cookies(proxy.url)
    const session = cookies.find((c) => c.name === '__Host-gitlab-iap')!
    expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Lax', path: '/' })
    expect(session.value).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}$/)
    // Not readable from page scripts.
    expect(await page.evaluate('document.cookie')).not.toContain('__Host-gitlab-iap')

    const who = await page.goto(`${proxy.url}/-/iap/whoami`)
    expect(await who!.json()).toMatchObject({ id: DEMO_USERS.bob.oid, authMethod: 'session' })

    await page.goto(`${proxy.url}/-/iap/logout`)
    // The IdP may ask to confirm sign-out; confirm like a user would.
    const confirm = await page.$('button[type="submit"], input[type="submit"]')
    if (confirm && page.url().startsWith(stack.idp.authority)) await Promise.all([page.waitForLoadState('load'), confirm.click()])
    expect((await browser.context.cookies(proxy.url)).some((c) => c.name === '__Host-gitlab-iap')).toBe(false)
    // Signed out at the IdP too: the protected page asks for a login again.
    await page.goto(`${proxy.url}/group/project`)
    expect(page.url().startsWith(stack.idp.authority)).toBe(true)
    expect(await page.$('input[name="login"]')).not.toBeNull()
    await page.close()
  })

  it('a logout link on another site asks first; its Sign out button goes on to Entra\'s sign-out', async () => {
    await browser.context.clearCookies()
    const page = await browser.context.newPage()
    await page.goto(`${proxy.url}/group/project`)
    await signInAtIdp(page, DEMO_USERS.bob.upn)
    await page.waitForURL(`${proxy.url}/group/project`)
    // A link to the proxy's logout on a page of another origin (the IdP's, here).
    await page.goto(`${stack.idp.authority}/`).catch(() => undefined)
    await page.evaluate(`(() => { const a = document.createElement('a'); a.href = ${JSON.stringify(`${proxy.url}/-/iap/logout`)}; a.id = 'elsewhere'; a.textContent = 'sign out of GitLab'; document.body.append(a) })()`)
    await Promise.all([page.waitForURL(`${proxy.url}/-/iap/logout`), page.click('#elsewhere')])
    expect(await page.textContent('h1')).toBe('Sign out of GitLab?')
    const blocked: string[] = []
    page.on('console', (message) => message.text().includes('Content Security Policy') && blocked.push(message.text()))
    // The form's redirect to Entra's end-session endpoint must not be blocked by the page's form-action.
    await Promise.all([page.waitForURL((url) => url.href.startsWith(stack.idp.authority)), page.click('button[type="submit"]')])
    expect(blocked).toEqual([])
    const confirm = await page.$('button[type="submit"], input[type="submit"]')
    if (confirm) await Promise.all([page.waitForLoadState('load'), confirm.click()])
    expect((await browser.context.cookies(proxy.url)).some((c) => c.name === '__Host-gitlab-iap')).toBe(false)
    await page.close()
  })

  it('a user without the group gets the 403 page', async () => {
    await browser.context.clearCookies()
    const page = await browser.context.newPage()
    await page.goto(`${proxy.url}/group/project`)
    await signInAtIdp(page, DEMO_USERS.dave.upn)
    await page.waitForURL(`${proxy.url}/group/project`)
    expect(await page.textContent('h1')).toBe('Access denied')
    expect(await page.content()).toContain('read-everything')
    await page.close()
  })
})
