/**
 * Oversized input and slow clients (mod_auth_openidc GHSA-hxr6-w4gc-7vvv, CVE-2024-24814; ws CVE-2024-37890):
 * bounded header sizes, a header deadline for slowloris, and one slow client never stalls others.
 */
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { baseConfig, startServe, type ServeHandle } from '../helpers/serve.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { rawRequest, rawSocket } from '../helpers/http.ts'

let upstream: Upstream
let proxy: ServeHandle

beforeAll(async () => {
  upstream = await startUpstream()
  const config = baseConfig(upstream.url)
  proxy = await startServe({ ...config, server: { ...(config.server as object), headersTimeoutSeconds: 2, maxHeaderBytes: 16384 } })
})
afterAll(async () => {
  await proxy?.stop()
  await upstream?.close()
})

describe('oversized requests', () => {
  it('answers 431 to a header block over server.maxHeaderBytes and forwards nothing', async () => {
    upstream.clear()
    const before = proxy.records().length
    // Larger than one read: the parser reports the overflow, then the rest of the same request arrives.
    const answer = await rawSocket(proxy.url, `GET /api/v4/big HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`)
    expect(answer).toMatch(/^HTTP\/1\.1 431 /)
    expect(upstream.requests).toHaveLength(0)
    await expect.poll(() => proxy.records().length - before, { timeout: 2000 }).toBeGreaterThan(0)
    await new Promise((r) => setTimeout(r, 300))
    // Exactly one record, and it counts the bytes of the 431 it was answered with.
    const records = proxy.records().slice(before)
    expect(records).toHaveLength(1)
    expect(records[0]).toMatchObject({ 'iap.decision.reason': 'headers-too-large', 'url.path': '/api/v4/big', 'http.response.status_code': 431 })
    expect(records[0]!['http.response.bytes']).toBeGreaterThan(0)
  })

  it('answers 431 to an oversized cookie', async () => {
    const answer = await rawSocket(proxy.url, `GET /api/v4/big HTTP/1.1\r\nHost: x\r\nCookie: ${'c=1; '.repeat(5000)}\r\n\r\n`)
    expect(answer).toMatch(/^HTTP\/1\.1 431 /)
  })

  it('answers 431 to an oversized URL', async () => {
    const answer = await rawSocket(proxy.url, `GET /api/v4/${'x'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`)
    expect(answer).toMatch(/^HTTP\/1\.1 431 /)
  })

  it('survives thousands of headers (ws CVE-2024-37890 class) without crashing', async () => {
    const headers = Array.from({ length: 3000 }, (_, i) => `X-H${i}: 1`).join('\r\n')
    const answer = await rawSocket(proxy.url, `GET /-/cable HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${headers}\r\n\r\n`)
    expect(answer).toMatch(/^HTTP\/1\.1 (400|431) /)
    const after = await rawRequest(proxy.url, 'GET', '/api/v4/still-alive')
    expect(after.status).toBe(200)
  })
})

describe('slow clients', () => {
  it('closes a connection whose headers trickle in past server.headersTimeoutSeconds (slowloris)', async () => {
    const url = new URL(proxy.url)
    const socket = connect(Number(url.port), url.hostname)
    let received = ''
    socket.setEncoding('latin1').on('data', (d: string) => (received += d))
    const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now())))
    socket.on('error', () => {})
    const started = Date.now()
    socket.write('GET /api/v4/slow HTTP/1.1\r\nHost: x\r\n')
    const trickle = setInterval(() => socket.writable && socket.write('X-Drip: 1\r\n'), 300)
    // Meanwhile other clients are served normally.
    const other = await rawRequest(proxy.url, 'GET', '/api/v4/other')
    expect(other.status).toBe(200)
    const end = await closed
    clearInterval(trickle)
    expect(end - started).toBeLessThan(6000)
    expect(received === '' || /^HTTP\/1\.1 408 /.test(received)).toBe(true)
    expect(upstream.reached('/api/v4/slow')).toHaveLength(0)
  })

  it('does not stall other clients while one uploads slowly', async () => {
    const url = new URL(proxy.url)
    const socket = connect(Number(url.port), url.hostname)
    socket.on('error', () => {})
    socket.write('POST /-/test/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n')
    const drip = setInterval(() => socket.writable && socket.write('a'), 50)
    const started = Date.now()
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => rawRequest(proxy.url, 'GET', `/api/v4/fast/${i}`)))
    clearInterval(drip)
    socket.destroy()
    expect(results.every((r) => r.status === 200)).toBe(true)
    expect(Date.now() - started).toBeLessThan(2000)
  })
})
