/**
 * Signing out in a real browser: Back shows no page of the previous user (the sign-out clears the
 * browser's cache for this origin), and the question a sign-out another site started gets looks like
 * the proxy's other pages, focuses its button and offers Cancel.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { DEMO_USERS } from '../../src/devidp/index.ts'
import type { ServeHandle } from '../helpers/serve.ts'
import { startStack, type Stack } from '../integration/session/stack.ts'
import { hasChromium, launchChromium, requireChromiumInCi, type Chromium } from './chromium.ts'

requireChromiumInCi('test/browser/sign-out.test.ts')

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

type Page = import('playwright-core').Page

/** Fills the dev IdP's login form as a user would. */
async function signInAtIdp(page: Page, login: string) {
  await page.waitForSelector('input[name="login"]')
  await page.fill('input[name="login"]', login)
  const password = await page.$('input[name="password"]')
  if (password) await password.fill('demo')
  await Promise.all([page.waitForLoadState('load'), page.click('button[type="submit"], input[type="submit"]')])
}

/** Confirms the IdP's sign-out question, when it asks one. */
async function confirmAtIdp(page: Page) {
  const confirm = await page.$('button[type="submit"], input[type="submit"]')
  if (confirm && page.url().startsWith(stack.idp.authority)) await Promise.all([page.waitForLoadState('load'), confirm.click()])
}

describe.skipIf(!hasChromium)('Chromium: signing out of gitlab-iap', () => {
  it('after sign-out, Back shows no GitLab page of the previous user from the cache', async () => {
    await browser.context.clearCookies()
    const page = await browser.context.newPage()
    const target = `${proxy.url}/group/project`
    await page.goto(target)
    await signInAtIdp(page, DEMO_USERS.bob.upn)
    await page.waitForURL(target)
    expect(await page.textContent('#user')).toBe(DEMO_USERS.bob.upn)
    // GitLab's Sign out link: a same-origin navigation.
    await page.evaluate(`(() => { const a = document.createElement('a'); a.href = '/-/iap/logout'; a.id = 'sign-out'; a.textContent = 'Sign out'; document.body.append(a) })()`)
    await Promise.all([page.waitForURL((url) => url.href.startsWith(stack.idp.authority)), page.click('#sign-out')])
    await confirmAtIdp(page)
    expect((await browser.context.cookies(proxy.url)).some((c) => c.name === '__Host-gitlab-iap')).toBe(false)
    stack.upstream.clear()
    // Back until the GitLab page's entry: it must be fetched again (and so need a sign-in), not shown from the cache.
    for (let i = 0; i < 5 && !page.url().startsWith(target); i++) await page.goBack({ waitUntil: 'load' }).catch(() => undefined)
    await page.waitForLoadState('load')
    expect(await page.content()).not.toContain(DEMO_USERS.bob.upn)
    expect(stack.upstream.reached('/group/project')).toHaveLength(0)
    await page.close()
  })

  it('a sign-out another site started: styled like the status pages, titled, names the user, button focused, Cancel goes home', async () => {
    await browser.context.clearCookies()
    const page = await browser.context.newPage()
    await page.goto(`${proxy.url}/group/project`)
    await signInAtIdp(page, DEMO_USERS.bob.upn)
    await page.waitForURL(`${proxy.url}/group/project`)
    const blocked: string[] = []
    page.on('console', (message) => message.text().includes('Content Security Policy') && blocked.push(message.text()))
    await page.goto(`${stack.idp.authority}/`).catch(() => undefined)
    await page.evaluate(`(() => { const a = document.createElement('a'); a.href = ${JSON.stringify(`${proxy.url}/-/iap/logout`)}; a.id = 'elsewhere'; a.textContent = 'sign out of GitLab'; document.body.append(a) })()`)
    await Promise.all([page.waitForURL(`${proxy.url}/-/iap/logout`), page.click('#elsewhere')])
    expect(await page.title()).toBe('Sign out of GitLab?')
    expect(await page.textContent('h1')).toBe('Sign out of GitLab?')
    expect(await page.textContent('body')).toContain(`Signed in as ${DEMO_USERS.bob.upn}`)
    // The inline style applies (the page's CSP allows it by hash): no browser-default serif.
    expect(await page.evaluate('getComputedStyle(document.body).fontFamily')).toMatch(/system-ui/)
    expect(blocked).toEqual([])
    expect(await page.evaluate('document.activeElement && document.activeElement.textContent')).toBe('Sign out')
    // Cancel: back to GitLab, still signed in.
    await Promise.all([page.waitForURL(`${proxy.url}/`), page.click('text=Cancel')])
    expect(await page.textContent('#user')).toBe(DEMO_USERS.bob.upn)
    await page.close()
  })

  it('a sign-out another site started, in a browser that is not signed in: no question, a way home', async () => {
    await browser.context.clearCookies()
    const page = await browser.context.newPage()
    await page.goto(`${stack.idp.authority}/`).catch(() => undefined)
    await page.evaluate(`(() => { const a = document.createElement('a'); a.href = ${JSON.stringify(`${proxy.url}/-/iap/logout`)}; a.id = 'elsewhere'; a.textContent = 'sign out of GitLab'; document.body.append(a) })()`)
    await Promise.all([page.waitForURL(`${proxy.url}/-/iap/logout`), page.click('#elsewhere')])
    expect(await page.textContent('h1')).toBe('You are not signed in')
    expect(await page.$('form')).toBeNull()
    expect(await page.evaluate('getComputedStyle(document.body).fontFamily')).toMatch(/system-ui/)
    await page.close()
  })
})
