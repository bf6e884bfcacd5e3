// A real headless Chromium drives the dev IdP: login form, redirect back with a code, refusal, logout.
// Skips with a reason when no Chromium is installed; fails instead when CI=true.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chromium, type Browser } from 'playwright-core'
import { createDemoClientSecret, DEMO_CLIENT_ID, startDevIdp, type DevIdp } from '../../../src/devidp/index.ts'

function findChromium(): string | undefined {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => Boolean(p))
  const found = candidates.find((p) => existsSync(p))
  if (found) return found
  try {
    return execFileSync('which', ['chromium'], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
}

const executablePath = findChromium()
if (!executablePath && process.env.CI === 'true') throw new Error('CI=true but no Chromium found (install the Debian package `chromium` or set CHROMIUM_PATH)')
if (!executablePath) console.warn('SKIP devidp browser test: no Chromium found (install `chromium` or set CHROMIUM_PATH)')

const secret = createDemoClientSecret()
let idp: DevIdp
let rp: Server
let rpUrl: string
let browser: Browser
const outsideRequests: string[] = []

beforeAll(async () => {
  if (!executablePath) return
  // The relying party: just enough to land on (shows the query it got).
  rp = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end(`<!DOCTYPE html><title>rp</title><p id="landed">${req.url?.replace(/[<>&"]/g, '') ?? ''}</p>`)
  })
  await new Promise<void>((resolve) => rp.listen(0, '127.0.0.1', resolve))
  rpUrl = `http://127.0.0.1:${(rp.address() as AddressInfo).port}`
  idp = await startDevIdp({ clients: [{ clientId: DEMO_CLIENT_ID, clientSecret: secret, redirectUris: [`${rpUrl}/cb`], postLogoutRedirectUris: [`${rpUrl}/bye`] }] })
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] })
})

afterAll(async () => {
  await browser?.close()
  await idp?.close()
  await new Promise<void>((resolve) => (rp ? rp.close(() => resolve()) : resolve()))
})

function authorizeUrl(): string {
  const url = new URL(idp.authorizationEndpoint)
  url.search = new URLSearchParams({ client_id: DEMO_CLIENT_ID, response_type: 'code', redirect_uri: `${rpUrl}/cb`, scope: 'openid profile offline_access', state: 'browser-state', nonce: 'n-1' }).toString()
  return url.href
}

async function newPage() {
  const context = await browser.newContext()
  const page = await context.newPage()
  // Nothing may leave loopback (the default oidc-provider pages would fetch web fonts).
  await page.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname
    if (host === '127.0.0.1' || host === 'localhost') return route.continue()
    outsideRequests.push(route.request().url())
    return route.abort()
  })
  return { context, page }
}

describe.skipIf(!executablePath)('dev IdP in a real browser', () => {
  it('signs in through the form, comes back with a code, then logs out to post_logout_redirect_uri', async () => {
    const { context, page } = await newPage()
    await page.goto(authorizeUrl())
    await page.fill('input[name="login"]', 'alice')
    await page.click('button[type="submit"]')
    await page.waitForURL((u) => u.href.startsWith(`${rpUrl}/cb`))
    const landed = new URL(page.url())
    expect(landed.searchParams.get('state')).toBe('browser-state')
    const code = landed.searchParams.get('code') as string

    const res = await fetch(idp.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: `${rpUrl}/cb`, client_id: DEMO_CLIENT_ID, client_secret: secret }),
    })
    const { id_token: idToken } = (await res.json()) as { id_token: string }
    expect(idToken).toBeTruthy()

    const logout = new URL(idp.endSessionEndpoint)
    logout.search = new URLSearchParams({ id_token_hint: idToken, post_logout_redirect_uri: `${rpUrl}/bye`, state: 's2' }).toString()
    await page.goto(logout.href)
    await page.waitForURL((u) => u.href.startsWith(`${rpUrl}/bye`))
    expect(new URL(page.url()).searchParams.get('state')).toBe('s2')

    // signed out at the IdP: the form is back
    await page.goto(authorizeUrl())
    await expect(page.locator('input[name="login"]').count()).resolves.toBe(1)
    await context.close()
    expect(outsideRequests).toEqual([])
  })

  it('shows an error on the form for an unknown user and stays at the IdP', async () => {
    const { context, page } = await newPage()
    await page.goto(authorizeUrl())
    await page.fill('input[name="login"]', 'nobody@contoso.test')
    await page.click('button[type="submit"]')
    await expect(page.locator('[role="alert"]').textContent()).resolves.toMatch(/AADSTS50034/)
    expect(page.url().startsWith(idp.authority)).toBe(true)
    await context.close()
  })
})
