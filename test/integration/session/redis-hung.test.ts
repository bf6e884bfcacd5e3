/**
 * A Redis that keeps its connections open but never answers (SIGSTOP here; `DEBUG SLEEP` alike): the
 * proxy must see it as down within a few seconds, as it does a Redis whose connections close.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it, expect } from 'vitest'
import { createRedisStore } from '../../../src/auth/session/redis-store.ts'
import type { SessionRecord } from '../../../src/auth/session/record.ts'
import { isIapError } from '../../../src/errors.ts'
import { hasRedisServer } from './redis-server.ts'
import { useRedisProxy } from './redis-proxy.ts'
import { createBrowser } from './stack.ts'

const env = useRedisProxy('test/integration/session/redis-hung.test.ts')

/** Polls `/readyz` until it answers `wanted` or `timeoutMs` passes; returns the last status and how long it took. */
async function readyStatus(wanted: number, timeoutMs: number): Promise<{ status: number; ms: number }> {
  const started = Date.now()
  let status = 0
  while (Date.now() - started < timeoutMs) {
    status = (await fetch(`${env.proxy.adminUrl}/readyz`, { signal: AbortSignal.timeout(timeoutMs) })).status
    if (status === wanted) break
    await sleep(50)
  }
  return { status, ms: Date.now() - started }
}

/** A request's status and how long its answer took (aborted after `limitMs`: status 0). */
async function timed(url: string, headers: Record<string, string>, limitMs = 10_000): Promise<{ status: number; ms: number; body: string }> {
  const started = Date.now()
  try {
    const res = await fetch(url, { redirect: 'manual', headers, signal: AbortSignal.timeout(limitMs) })
    return { status: res.status, ms: Date.now() - started, body: await res.text() }
  } catch {
    return { status: 0, ms: Date.now() - started, body: '' }
  }
}

describe.skipIf(!hasRedisServer)('a hung Redis (connections open, no answers)', () => {
  it('fails closed within seconds: /readyz not ready, login 503 before Entra, session requests answered; recovers after', async () => {
    const browser = createBrowser()
    expect((await browser.navigate(`${env.proxy.url}/group/project`, 'bob')).status).toBe(200)
    const cookie = browser.jar.cookieHeader(env.proxy.url)
    expect((await readyStatus(200, 5000)).status).toBe(200)

    env.redis.pause()
    try {
      // Readiness sees the hang without any request touching Redis.
      const ready = await readyStatus(503, 8000)
      expect(ready.status).toBe(503)
      expect(ready.ms).toBeLessThan(5000)
      const detail = (await (await fetch(`${env.proxy.adminUrl}/readyz`)).json()) as Record<string, any>
      expect(JSON.stringify(detail)).toContain('not-responding')

      // Sign-in is refused before the user is sent to Entra, as with a Redis that is down.
      const authorizeBefore = env.stack.idp.stats().authorizeRequests
      const login = await timed(`${env.proxy.url}/-/iap/login?rd=%2Fgroup%2Fproject`, { accept: 'text/html', 'sec-fetch-dest': 'document', 'sec-fetch-mode': 'navigate' })
      expect(login.status).toBe(503)
      expect(login.body).toContain('session-store-unavailable')
      expect(login.ms).toBeLessThan(2000)
      expect(env.stack.idp.stats().authorizeRequests).toBe(authorizeBefore)

      // A request with a session cookie is answered (503), never left hanging; its local copy has aged out by now.
      await sleep(5000)
      for (const path of ['/group/project', '/-/iap/whoami']) {
        const res = await timed(`${env.proxy.url}${path}`, { accept: 'application/json', cookie })
        expect(res.status, path).toBe(503)
        expect(res.ms, path).toBeLessThan(2500)
        expect(JSON.parse(res.body)).toMatchObject({ reason: 'session-store-unavailable' })
      }
    } finally {
      env.redis.resume()
    }

    // Back on its own once Redis answers again; the session survived.
    expect((await readyStatus(200, 8000)).status).toBe(200)
    expect((await timed(`${env.proxy.url}/group/project`, { accept: 'application/json', cookie })).status).toBe(200)
    expect((await createBrowser().navigate(`${env.proxy.url}/group/project`, 'carol')).status).toBe(200)
  }, 60_000)
})

describe.skipIf(!hasRedisServer)('the Redis store while Redis hangs', () => {
  it('is not ready within two heartbeats with no traffic at all, refuses commands at once, and is ready again when Redis answers', async () => {
    const store = createRedisStore({ url: env.redis.url, keyPrefix: 'hung-store-test:', indexTtlMs: 3600_000, commandTimeoutMs: 500, heartbeatMs: 200, localCache: false })
    try {
      for (let i = 0; i < 100 && !store.isReady(); i++) await sleep(20)
      expect(store.isReady()).toBe(true)
      const now = Date.now()
      const record: SessionRecord = { v: 1, user: { id: 'oid-h', name: 'h@x', groups: [], roles: [], groupsSource: 'token' }, createdAt: now, lastSeenAt: now, refreshedAt: now, expiresAt: now + 3600_000 }
      await store.set('kh', record, 60_000)

      env.redis.pause()
      try {
        const started = Date.now()
        while (store.isReady() && Date.now() - started < 3000) await sleep(20)
        expect(store.isReady()).toBe(false)
        // One heartbeat interval plus the command timeout, with room for a busy machine.
        expect(Date.now() - started).toBeLessThan(1500)
        expect(store.readiness()).toMatchObject({ status: 'not-responding', error: expect.stringContaining('did not answer within 500 ms') })
        // Known hung: refused without waiting out the timeout again.
        const asked = Date.now()
        const err = await Promise.resolve(store.get('kh')).then(() => undefined, (e: unknown) => e)
        expect(isIapError(err, 'IAP_ERR_SESSION_STORE_UNAVAILABLE')).toBe(true)
        expect(Date.now() - asked).toBeLessThan(250)
      } finally {
        env.redis.resume()
      }
      const resumed = Date.now()
      while (!store.isReady() && Date.now() - resumed < 3000) await sleep(20)
      expect(store.isReady()).toBe(true)
      expect(store.readiness()).toMatchObject({ status: 'ready' })
      expect(await store.get('kh')).toMatchObject({ user: { id: 'oid-h' } })
    } finally {
      await store.close()
    }
  }, 20_000)
})
