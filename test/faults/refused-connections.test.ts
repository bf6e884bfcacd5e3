/**
 * Connections the HTTP parser refuses (malformed, oversized or too-slow headers): each is answered with the
 * request id of its one access-log record, carries a stable `error.code`, and is let go even when the client
 * never reads its answer; a connection that sent nothing is no request and leaves no record.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { baseConfig, ROOT, startServe, type ServeHandle } from '../helpers/serve.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { rawSocket } from '../helpers/http.ts'

let upstream: Upstream
let proxy: ServeHandle
const fds = () => readdirSync(`/proc/${proxy.process.pid}/fd`).length
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const ERROR_CODES = (JSON.parse(readFileSync(join(ROOT, 'docs/access-log.schema.json'), 'utf8')) as { properties: Record<string, { enum?: string[] }> }).properties['error.code']!.enum

beforeAll(async () => {
  upstream = await startUpstream()
  const config = baseConfig(upstream.url)
  proxy = await startServe({ ...config, server: { ...(config.server as object), headersTimeoutSeconds: 1, maxHeaderBytes: 16384 } })
})
afterAll(async () => {
  await proxy?.stop()
  await upstream?.close()
})

/** The record with this request id, once written. */
async function recordOf(id: string | undefined): Promise<Record<string, unknown>> {
  expect(id).toMatch(/^[0-9a-f-]{36}$/)
  await expect.poll(() => proxy.records().find((r) => r['http.request.id'] === id), { timeout: 3000 }).toBeDefined()
  return proxy.records().find((r) => r['http.request.id'] === id)!
}

const requestId = (answer: string) => /\r\nx-request-id: (\S+)\r\n/.exec(answer)?.[1]

describe('answers to refused requests', () => {
  it.each([
    ['a request line that is no request', 'GARBAGE\r\n\r\n', 400, 'malformed-request', 'request-syntax-invalid'],
    ['a header name with a space before the colon', 'GET /api/v4/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n', 400, 'malformed-request', 'request-syntax-invalid'],
    ['two Content-Lengths', 'POST /api/v4/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd', 400, 'malformed-request', 'request-framing-invalid'],
    ['Content-Length and Transfer-Encoding together', 'POST /api/v4/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'malformed-request', 'request-framing-invalid'],
    ['headers over server.maxHeaderBytes', `GET /api/v4/big HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'headers-too-large', 'request-headers-too-large'],
  ])('%s: the answer names its record, whose error.code is a documented one', async (_name, bytes, status, reason, code) => {
    const answer = await rawSocket(proxy.url, bytes, 3000)
    expect(answer).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `))
    const record = await recordOf(requestId(answer))
    expect(record).toMatchObject({ 'http.response.status_code': status, 'iap.decision.reason': reason, 'error.code': code })
    expect(ERROR_CODES).toContain(code)
  })

  it('headers too slow: a 408 naming its record', async () => {
    const answer = await rawSocket(proxy.url, 'GET /api/v4/slow HTTP/1.1\r\nHost: x\r\n', 5000)
    expect(answer).toMatch(/^HTTP\/1\.1 408 /)
    const record = await recordOf(requestId(answer))
    expect(record).toMatchObject({ 'http.response.status_code': 408, 'iap.decision.reason': 'headers-timeout', 'error.code': 'request-headers-timeout' })
  })

  it('a body whose framing breaks: the 400 names the record of the request it belongs to', async () => {
    const answer = await rawSocket(proxy.url, 'POST /api/v4/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n', 3000)
    expect(answer).toMatch(/^HTTP\/1\.1 400 /)
    const record = await recordOf(requestId(answer))
    expect(record).toMatchObject({ 'url.path': '/api/v4/chunked' })
  })
})

describe('connections that sent nothing', () => {
  it('one idle past the header deadline (a browser preconnect) is closed without an answer or a record', async () => {
    const before = proxy.records().length
    const started = Date.now()
    const received = await rawSocket(proxy.url, '', 8000)
    expect(received).toBe('')
    // Closed by the proxy at the deadline, not by the client's own timeout.
    expect(Date.now() - started).toBeLessThan(5000)
    // Past the deadline (1 s, checked every second) and the batching of the log.
    await sleep(500)
    expect(proxy.records().slice(before)).toEqual([])
  })
})

describe('clients that never read their answer', () => {
  it('a refused connection is let go after a short linger, its file descriptor with it', async () => {
    // Open one connection first, so the listener's own descriptors are all counted in `before`.
    await rawSocket(proxy.url, 'GET /api/v4/warm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    await expect.poll(() => proxy.records().some((r) => r['url.path'] === '/api/v4/warm'), { timeout: 3000 }).toBe(true)
    const before = fds()
    const recordsBefore = proxy.records().length
    const sockets: Socket[] = []
    for (let i = 0; i < 20; i++) {
      const socket = connect(proxy.port, '127.0.0.1')
      socket.on('error', () => {})
      // Never read: the client never sees the proxy's end, and never ends its own side.
      socket.write('GARBAGE\r\n\r\n')
      sockets.push(socket)
    }
    try {
      await expect.poll(() => proxy.records().length - recordsBefore, { timeout: 3000 }).toBe(20)
      // Still held while they linger, then released (5 s after each answer).
      expect(fds() - before).toBeGreaterThanOrEqual(20)
      await expect.poll(() => fds() - before, { timeout: 9000, interval: 250 }).toBeLessThanOrEqual(2)
    } finally {
      for (const socket of sockets) socket.destroy()
    }
  })

  it('a client that does read gets the answer, then the close', async () => {
    const answer = await rawSocket(proxy.url, 'GARBAGE\r\n\r\n', 3000)
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\nx-request-id: [0-9a-f-]{36}\r\n\r\n$/)
  })
})
