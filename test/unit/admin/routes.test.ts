import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAdminHandler } from '../../../src/admin/routes.ts'
import { createMetrics } from '../../../src/metrics/registry.ts'

let server: Server
let url: string
const revoked: string[] = []

beforeAll(async () => {
  // A token read from a file often ends in a newline (`kubectl create secret --from-file`).
  const handler = createAdminHandler({
    metrics: createMetrics({ defaultMetrics: false }),
    token: 'file-token-0123456789abcdef\n',
    checks: [],
    accepting: () => true,
    revoke: async (user) => {
      revoked.push(user)
      return { at: Date.now(), sessionsEnded: 0, shared: false }
    },
  })
  server = createServer((req, res) => void handler(req, res))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => new Promise((resolve) => server.close(resolve)))

describe('/admin/revoke', () => {
  it('accepts the configured token without the trailing newline a file gave it, and only that token', async () => {
    const revoke = (token: string) =>
      fetch(`${url}/admin/revoke`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ user: 'ada@example.test' }) })
    expect((await revoke('file-token-0123456789abcdef')).status).toBe(200)
    expect(revoked).toEqual(['ada@example.test'])
    expect((await revoke('file-token-0123456789abcdeX')).status).toBe(401)
  })
})

describe('methods', () => {
  it.each([
    ['/healthz', 'POST', 'GET, HEAD'],
    ['/readyz', 'DELETE', 'GET, HEAD'],
    ['/metrics', 'POST', 'GET, HEAD'],
    ['/metrics', 'PUT', 'GET, HEAD'],
    ['/admin/revoke', 'GET', 'POST'],
    ['/admin/revoke', 'DELETE', 'POST'],
  ])('%s answers %s with 405 and Allow: %s', async (path, method, allow) => {
    const res = await fetch(`${url}${path}`, { method })
    expect(res.status).toBe(405)
    expect(res.headers.get('allow')).toBe(allow)
  })

  it('answers the methods it allows, HEAD included, and 404 for unknown paths whatever the method', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      expect((await fetch(`${url}${path}`)).status, `GET ${path}`).toBe(200)
      expect((await fetch(`${url}${path}`, { method: 'HEAD' })).status, `HEAD ${path}`).toBe(200)
    }
    expect((await fetch(`${url}/metrics?x=1`)).status).toBe(200)
    for (const method of ['GET', 'POST']) {
      const res = await fetch(`${url}/nope`, { method })
      expect(res.status).toBe(404)
      expect(res.headers.get('allow')).toBeNull()
    }
  })
})
