/**
 * Upstream faults: down, slow, resetting, half-closing. Each is answered (502/504) with the request id,
 * the proxy keeps serving, and no socket or file descriptor is leaked (counted in /proc).
 */
import { readdirSync } from 'node:fs'
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { baseConfig, startServe, type ServeHandle } from '../helpers/serve.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { rawClient, rawRequest } from '../helpers/http.ts'

let upstream: Upstream
let proxy: ServeHandle
const fds = () => readdirSync(`/proc/${proxy.process.pid}/fd`).length

beforeAll(async () => {
  upstream = await startUpstream()
  proxy = await startServe(baseConfig(upstream.url, { upstream: { url: upstream.url, timeoutSeconds: 1 } }))
})
afterAll(async () => {
  await proxy?.stop()
  await upstream?.close()
})

async function get(path: string): Promise<{ status: number; id: string | null; body: string }> {
  const res = await fetch(`${proxy.url}${path}`, { headers: { accept: 'application/json' } })
  return { status: res.status, id: res.headers.get('x-request-id'), body: await res.text() }
}

async function waitForRecords(path: string, n: number): Promise<Record<string, unknown>[]> {
  const mine = () => proxy.records().filter((r) => r['url.path'] === path)
  for (const end = Date.now() + 5000; mine().length < n && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20))
  expect(mine()).toHaveLength(n)
  return mine()
}

async function waitForRecord(path: string): Promise<Record<string, unknown>> {
  return (await waitForRecords(path, 1))[0]!
}

describe('upstream faults', () => {
  it.each([
    ['resetting', '/-/test/reset', 502, 'upstream-reset'],
    ['slow beyond timeoutSeconds', '/-/test/slow?ms=3000', 504, 'upstream-timeout'],
  ])('%s → %s with the request id', async (_name, path, status, reason) => {
    const res = await get(path)
    expect(res.status).toBe(status)
    expect(JSON.parse(res.body)).toMatchObject({ reason, requestId: res.id })
  })

  it('a 304 that carries the Content-Length of what it stands for (RFC 9110 §8.6) is relayed as a 304', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${proxy.url}/-/test/not-modified`)
      expect(res.status).toBe(304)
      expect(res.headers.get('etag')).toBe('"v1"')
    }
    expect((await waitForRecords('/-/test/not-modified', 2)).every((r) => r['http.response.status_code'] === 304 && r['event.outcome'] === 'success')).toBe(true)
  })

  it('half-closing after headers: the client sees a cut response, the proxy keeps serving', async () => {
    const res = await fetch(`${proxy.url}/-/test/half-close`)
    expect(res.status).toBe(200)
    await expect(res.text()).rejects.toThrow()
    expect((await get('/api/v4/after')).status).toBe(200)
  })

  it('GitLab resetting an open websocket: the client sees a clean close (never an HTTP answer inside the stream), one record with 101 and the error', async () => {
    const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/-/test/reset.ws`)
    const events: string[] = []
    const id = await new Promise<string | undefined>((resolve) => {
      let requestId: string | undefined
      ws.once('upgrade', (res) => (requestId = res.headers['x-request-id'] as string | undefined))
      ws.once('open', () => events.push('open'))
      ws.once('message', () => events.push('message'))
      ws.once('error', (err) => events.push(`error: ${err.message}`))
      ws.once('close', (code) => (events.push(`close ${code}`), resolve(requestId)))
    })
    expect(events).toEqual(['open', 'message', 'close 1006'])
    const mine = () => proxy.records().filter((r) => r['url.path'] === '/-/test/reset.ws')
    for (const end = Date.now() + 5000; mine().length === 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20))
    const record = mine()[0]
    expect(record).toMatchObject({ 'http.response.status_code': 101, 'iap.websocket': true, 'error.code': 'upstream-reset' })
    expect(record?.['http.request.id']).toBe(id)
    await new Promise((r) => setTimeout(r, 100))
    expect(mine()).toHaveLength(1)
  })

  it('GitLab closing an open websocket: the connection is logged when the client hangs up, however late', async () => {
    // A raw client that answers the proxy's FIN only after a pause: by then GitLab's side is gone and
    // the stream between them unpiped, so only the proxy reading on its own can see the client leave.
    const { socket, received, requestId } = rawClient(proxy.url, { allowHalfOpen: true })
    socket.write('GET /-/test/end.ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
    await new Promise((resolve) => socket.once('end', resolve))
    expect(received()).toMatch(/^HTTP\/1\.1 101 /)
    const id = requestId()
    await new Promise((r) => setTimeout(r, 300))
    socket.end()
    const mine = () => proxy.records().filter((r) => r['http.request.id'] === id)
    for (const end = Date.now() + 3000; mine().length === 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20))
    expect(mine()).toHaveLength(1)
    expect(mine()[0]).toMatchObject({ 'url.path': '/-/test/end.ws', 'http.response.status_code': 101 })
  })

  it.each(['chunk-size', 'trailer', 'chunk-overrun', 'header', 'reason'])(
    'a malformed response from GitLab (%s) is answered 502, logged with the error, and the proxy keeps serving',
    async (kind) => {
      const path = `/-/test/malformed/${kind}`
      // The broken bytes arrive in one packet, before any of GitLab's response went out: a clean 502
      // carrying none of GitLab's headers (its text/plain content type would mislabel our page).
      const res = await rawRequest(proxy.url, 'GET', path)
      expect(res.status).toBe(502)
      expect(res.headers['content-type']).toMatch(/^application\/json/)
      expect((await get('/api/v4/after-malformed')).status).toBe(200)
      const record = await waitForRecord(path)
      expect(record['error.code']).toMatch(/^upstream-/)
      expect(proxy.process.exitCode).toBeNull()
    },
  )

  it('a websocket handshake GitLab never answers is given up after timeoutSeconds (504), the proxy keeps serving', async () => {
    const client = rawClient(proxy.url)
    const started = Date.now()
    client.socket.write('GET /-/test/silent.ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
    await expect.poll(() => client.received(), { timeout: 6000 }).toMatch(/^HTTP\/1\.1 504 /)
    expect(Date.now() - started).toBeLessThan(5000)
    client.socket.destroy()
    expect((await get('/api/v4/after-silent')).status).toBe(200)
  })

  it('a client that stops reading the answer is cut after timeoutSeconds, and GitLab\'s side with it', async () => {
    const path = '/-/test/download'
    const before = upstream.abandoned.length
    const port = Number(new URL(proxy.url).port)
    const total = 200_000_000
    // 200 MB asked for, the head read, then nothing: the socket buffers fill and GitLab is held back.
    const socket = connect(port, '127.0.0.1', () => socket.write(`GET ${path}?bytes=${total} HTTP/1.1\r\nHost: x\r\n\r\n`))
    socket.on('error', () => {})
    let received = 0
    socket.once('data', (chunk: Buffer) => {
      received += chunk.length
      socket.pause()
    })
    // Cut after the idle period (1 s here): GitLab's side is abandoned and the record says why.
    await expect.poll(() => upstream.abandoned.length, { timeout: 8000 }).toBeGreaterThan(before)
    const record = await waitForRecord(path)
    expect(record).toMatchObject({ 'http.response.status_code': 200, 'iap.aborted': true, 'error.code': 'client-read-timeout' })
    expect(proxy.stderr()).not.toContain('"failure":"client-read-timeout"')
    // Reading again, the client finds the connection ended long before the 200 MB.
    await new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => (received += chunk.length))
      socket.once('close', () => resolve())
      socket.resume()
    })
    expect(received).toBeLessThan(total / 2)
  })

  it('leaks no file descriptors across 200 failing requests', async () => {
    await get('/api/v4/warm')
    const before = fds()
    const paths = Array.from({ length: 200 }, (_, i) => (i % 2 ? '/-/test/reset' : '/-/test/half-close'))
    // One connection per request (Connection: close), so nothing stays open on the client side.
    await Promise.all(paths.map((p) => rawRequest(proxy.url, 'GET', p).catch(() => undefined)))
    await new Promise((r) => setTimeout(r, 500))
    // Keep-alive sockets to GitLab may stay pooled; allow a small, bounded number.
    expect(fds() - before).toBeLessThan(20)
    expect((await get('/api/v4/after-burst')).status).toBe(200)
  })
})

describe('GitLab down, then back', () => {
  it('answers 502 while GitLab is down and recovers without restart', async () => {
    const gitlab = await startUpstream()
    const port = gitlab.port
    const p = await startServe(baseConfig(gitlab.url))
    try {
      expect((await fetch(`${p.url}/api/v4/x`)).status).toBe(200)
      await gitlab.close()
      expect((await fetch(`${p.url}/api/v4/x`)).status).toBe(502)
      const again = await startUpstream({ port })
      try {
        expect((await fetch(`${p.url}/api/v4/x`)).status).toBe(200)
      } finally {
        await again.close()
      }
    } finally {
      await p.stop()
    }
  })
})

describe('GitLab down for websockets', () => {
  it('refused handshakes (502) leave the open-websockets gauge where it was', async () => {
    const closed = await startUpstream()
    const url = closed.url
    await closed.close()
    const down = await startServe(baseConfig(url))
    try {
      for (let i = 0; i < 3; i++) {
        const status = await new Promise<number>((resolve) => {
          const ws = new WebSocket(`${down.url.replace('http', 'ws')}/-/cable`)
          ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
          ws.once('open', () => resolve(101))
          ws.once('error', () => {})
        })
        expect(status).toBe(502)
      }
      for (const end = Date.now() + 5000; down.records().filter((r) => r['url.path'] === '/-/cable').length < 3 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20))
      expect(down.records().filter((r) => r['url.path'] === '/-/cable')).toHaveLength(3)
      const metrics = await (await fetch(`${down.adminUrl}/metrics`)).text()
      expect(metrics).toMatch(/^gitlab_iap_websocket_connections 0$/m)
    } finally {
      await down.stop()
    }
  })
})
