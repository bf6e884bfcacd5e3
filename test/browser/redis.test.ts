import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { DEMO_USERS } from '../../src/devidp/index.ts'
import type { ServeHandle } from '../helpers/serve.ts'
import { hasRedisServer, startRedisServer, type RedisServer } from '../integration/session/redis-server.ts'
import { revoke, startStack, type Stack } from '../integration/session/stack.ts'
import { hasChromium, launchChromium, requireChromiumInCi, type Chromium } from './chromium.ts'

requireChromiumInCi('test/browser/redis.test.ts')
if (!hasRedisServer) {
  if (process.env.CI === 'true') throw new Error('redis-server is required in CI (apt-get install -y redis-server)')
  console.warn('SKIPPED test/browser/redis.test.ts: redis-server is not installed')
}
const runnable = hasChromium && hasRedisServer

let stack: Stack
let redis: RedisServer
let a: ServeHandle
let b: ServeHandle
let browser: Chromium

beforeAll(async () => {
  if (!runnable) return
  redis = await startRedisServer()
  stack = await startStack()
  a = await stack.startProxy({ store: 'redis', redisUrl: redis.url })
  b = await stack.startProxy({ store: 'redis', redisUrl: redis.url, publicUrl: a.url })
  browser = await launchChromium()
})
afterAll(async () => {
  await browser?.close()
  await stack?.close()
  await redis?.close()
})

describe.skipIf(!runnable)('Chromium: sessions in Redis across two serve processes', () => {
  it('sign in through one, browse through the other; /admin/revoke on one ends the session on both', async () => {
    const page = await browser.context.newPage()
    await page.goto(`${a.url}/group/project`)
    await page.waitForSelector('input[name="login"]')
    await page.fill('input[name="login"]', DEMO_USERS.alice.upn)
    await Promise.all([page.waitForURL(`${a.url}/group/project`), page.click('button[type="submit"], input[type="submit"]')])
    expect(await page.textContent('#user')).toBe(DEMO_USERS.alice.upn)

    // Same host, other replica: the browser sends the same cookie, the record comes from Redis.
    await page.goto(`${b.url}/group/sub/project`)
    expect(page.url()).toBe(`${b.url}/group/sub/project`)
    expect(await page.textContent('#user')).toBe(DEMO_USERS.alice.upn)
    expect(await page.textContent('#path')).toBe('/group/sub/project')

    expect((await revoke(a, DEMO_USERS.alice.oid)).body).toMatchObject({ sessionsEnded: 1 })
    for (const replica of [a, b]) {
      const who = await page.goto(`${replica.url}/-/iap/whoami`)
      expect(who!.status()).toBe(401)
      // A navigation goes back to sign-in (the IdP's own session may sign the user straight in again).
      const nav = await page.request.get(`${replica.url}/group/project`, { maxRedirects: 0, headers: { accept: 'text/html' } })
      expect(nav.status()).toBe(302)
      expect(nav.headers().location).toMatch(/^\/-\/iap\/login\?rd=/)
    }
    await page.close()
  })
})
