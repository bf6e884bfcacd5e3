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
