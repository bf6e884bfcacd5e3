import { createServer, type Server } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
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

/** A raw request, so a header can carry bytes fetch would refuse (0xA0). */
function rawPost(base: string, headerBytes: Buffer): Promise<number> {
  const { port } = new URL(base)
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ user: 'mallory@example.test' })
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.write(Buffer.concat([Buffer.from('POST /admin/revoke HTTP/1.1\r\nHost: x\r\nConnection: close\r\n'), headerBytes, Buffer.from(`\r\nContent-Length: ${body.length}\r\n\r\n${body}`)]))
    })
    let answer = ''
    socket.on('data', (d) => (answer += d))
    socket.on('end', () => resolve(Number(answer.split(' ')[1])))
    socket.on('error', reject)
  })
}

describe('/admin/revoke with a blank token', () => {
  it('a token that is only whitespace disables the admin API: no header, not even a 0xA0 byte that trims to nothing, gets in', async () => {
    const failures: string[] = []
    const handler = createAdminHandler({ metrics: createMetrics({ defaultMetrics: false }), token: '\n', checks: [], accepting: () => true, revoke: async () => ({ at: 0, sessionsEnded: 0, shared: false }), onAuthFailure: (reason) => failures.push(reason) })
    const blank = createServer((req, res) => void handler(req, res))
    await new Promise<void>((resolve) => blank.listen(0, '127.0.0.1', resolve))
    try {
      const base = `http://127.0.0.1:${(blank.address() as AddressInfo).port}`
      expect(await rawPost(base, Buffer.from([...Buffer.from('Authorization: Bearer '), 0xa0]))).toBe(401)
      expect(await rawPost(base, Buffer.from('Authorization: Bearer  '))).toBe(401)
      const res = await fetch(`${base}/admin/revoke`, { method: 'POST', body: '{}' })
      expect(await res.json()).toEqual({ error: 'admin API disabled: set admin.token' })
    } finally {
      await new Promise((resolve) => blank.close(resolve))
    }
  })

  it('a configured token is not matched by non-ASCII blanks around a wrong one, and refusals are reported', async () => {
    const failures: string[] = []
    const handler = createAdminHandler({ metrics: createMetrics({ defaultMetrics: false }), token: 'admin-token-0123456789', checks: [], accepting: () => true, revoke: async () => ({ at: 0, sessionsEnded: 0, shared: false }), onAuthFailure: (reason) => failures.push(reason) })
    const server2 = createServer((req, res) => void handler(req, res))
    await new Promise<void>((resolve) => server2.listen(0, '127.0.0.1', resolve))
    try {
      const base = `http://127.0.0.1:${(server2.address() as AddressInfo).port}`
      expect(await rawPost(base, Buffer.from([...Buffer.from('Authorization: Bearer '), 0xa0, ...Buffer.from('admin-token-0123456789')]))).toBe(401)
      expect(await rawPost(base, Buffer.from('Authorization: Bearer admin-token-0123456789  '))).toBe(200)
      expect((await fetch(`${base}/admin/revoke`, { method: 'POST', body: '{}' })).status).toBe(401)
      expect(failures).toEqual(['admin-token-invalid', 'admin-token-missing'])
    } finally {
      await new Promise((resolve) => server2.close(resolve))
    }
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
