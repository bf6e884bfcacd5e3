/**
 * A `/-/iap/` endpoint that fails unexpectedly: a 500 whose body names its reason (`internal-error`),
 * like every other answer of the proxy's own, and a record that says the same.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp, type App } from '../../../src/app.ts'
import { ANONYMOUS } from '../../../src/auth/identity.ts'
import { validateConfig } from '../../../src/config/load.ts'
import { createMetrics } from '../../../src/metrics/registry.ts'
import type { RequestContext } from '../../../src/server/context.ts'

const records: RequestContext[] = []
const errors: { obj: object; msg?: string }[] = []
let app: App
let server: Server
let base: string

beforeAll(async () => {
  const config = validateConfig({
    server: { listen: '127.0.0.1:0', publicUrl: 'http://127.0.0.1:8080' },
    admin: { listen: '127.0.0.1:0', token: 'admin-token-for-tests-0123456789' },
    // Never reached: the request is the proxy's own.
    upstream: { url: 'http://127.0.0.1:9', timeoutSeconds: 30 },
    policy: { rules: [{ name: 'everything-public', paths: ['/**'], public: true }] },
  })
  app = createApp(config, {
    metrics: createMetrics({ defaultMetrics: false }),
    accessLog: { healthy: true, write: (ctx) => void records.push(ctx), close: async () => {} },
    authenticator: { authenticate: () => ({ ok: true, method: 'none', identity: ANONYMOUS }), isReady: () => true, readiness: () => ({}), close: async () => {} },
    log: { info() {}, warn() {}, error: (obj, msg) => void errors.push({ obj, ...(msg !== undefined && { msg }) }) },
    iapEndpoints: () => Promise.reject(new Error('the store exploded')),
  })
  server = createServer((req, res) => app.handleRequest(req, res))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve))
  await app?.close()
})

describe('a failing /-/iap/ endpoint', () => {
  it('answers 500 with the reason internal-error (JSON and HTML), logs the error, and records the reason', async () => {
    const res = await fetch(`${base}/-/iap/whoami`)
    expect(res.status).toBe(500)
    const requestId = res.headers.get('x-request-id')
    expect(await res.json()).toEqual({ error: 'Internal Server Error', message: 'The sign-in endpoint failed.', requestId, reason: 'internal-error' })
    const page = await fetch(`${base}/-/iap/login`, { headers: { accept: 'text/html' } })
    expect(page.status).toBe(500)
    expect(await page.text()).toContain('Reason: <code>internal-error</code>')
    expect(errors.map((e) => e.msg)).toEqual(['iap endpoint failed', 'iap endpoint failed'])
    await expect.poll(() => records.length).toBe(2)
    expect(records[0]).toMatchObject({ id: requestId, status: 500, decision: { result: 'deny', rule: null, reason: 'internal-error' } })
  })
})
