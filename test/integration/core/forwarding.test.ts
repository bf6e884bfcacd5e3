import { request, type IncomingMessage } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'
import { rawClient, rawRequest } from '../../helpers/http.ts'
import { field } from '../../helpers/records.ts'

let upstream: Upstream
let proxy: ServeHandle

beforeAll(async () => {
  upstream = await startUpstream()
  proxy = await startServe(baseConfig(upstream.url))
})
afterAll(async () => {
  await proxy?.stop()
  await upstream?.close()
})

const last = () => upstream.requests.at(-1)!

describe('forwarding', () => {
  it.each(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])('forwards %s with its body', async (method) => {
    const body = method === 'GET' || method === 'OPTIONS' ? undefined : JSON.stringify({ hello: method })
    const res = await fetch(`${proxy.url}/api/v4/echo`, { method, body, headers: body ? { 'content-type': 'application/json' } : {} })
    expect(res.status).toBe(200)
    const echoed = (await res.json()) as { method: string; bodyBytes: number }
    expect(echoed.method).toBe(method)
    expect(echoed.bodyBytes).toBe(body ? Buffer.byteLength(body) : 0)
  })

  it.each([
    '/api/v4/projects/group%2Fsub%2Fproject/repository/files/dir%2Ffile.rb/raw?ref=main',
    '/api/v4/projects/a%2Fb/repository/branches/feature%2Fx',
    "/api/v4/search?scope=blobs&search=a%20b%2Bc&x='q'&y=%3D",
    '/api/v4/projects?search=%E2%9C%93&order_by=id&sort=asc',
    '/group/project/-/blob/main/README.md?plain=1#ignored'.replace('#ignored', ''),
  ])('keeps the request-target byte-for-byte: %s', async (target) => {
    const res = await rawRequest(proxy.url, 'GET', target)
    expect(res.status).toBe(200)
    expect(last().url).toBe(target)
  })

  it('a head GitLab sends before its body reaches the client at once (event streams, long polls)', async () => {
    const started = performance.now()
    const res = await fetch(`${proxy.url}/-/test/late-body?ms=1500`)
    const headAfter = performance.now() - started
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    expect(headAfter).toBeLessThan(1000)
    expect(await res.text()).toBe('data: late\n\n')
    expect(performance.now() - started).toBeGreaterThanOrEqual(1400)
  })

  it('keeps the client Host and sets X-Forwarded-* and X-Request-Id', async () => {
    const res = await rawRequest(proxy.url, 'GET', '/api/v4/version', { host: 'gitlab.example.com' })
    expect(res.status).toBe(200)
    const seen = last().headers
    expect(seen.host).toBe('gitlab.example.com')
    expect(seen['x-forwarded-host']).toBe('gitlab.example.com')
    expect(seen['x-forwarded-proto']).toBe('http')
    expect(seen['x-forwarded-for']).toBe('127.0.0.1')
    expect(seen['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
    expect(res.headers['x-request-id']).toBe(seen['x-request-id'])
  })

  it('behind a TLS ingress it does not trust, X-Forwarded-Proto follows server.publicUrl', async () => {
    const behindTls = await startServe(baseConfig(upstream.url, { server: { listen: '127.0.0.1:0', publicUrl: 'https://gitlab.example.com' } }))
    try {
      const res = await rawRequest(behindTls.url, 'GET', '/api/v4/version', { host: 'gitlab.example.com', 'x-forwarded-proto': 'http' })
      expect(res.status).toBe(200)
      expect(last().headers['x-forwarded-proto']).toBe('https')
    } finally {
      await behindTls.stop()
    }
  })

  it('never lets an untrusted client spoof identity or provenance headers', async () => {
    const res = await rawRequest(proxy.url, 'GET', '/api/v4/user', {
      'X-Forwarded-User': 'admin',
      'X_Forwarded_User': 'admin',
      'x-forwarded-email': 'admin@example.com',
      'X-Forwarded-User-Id': '00000000-0000-0000-0000-000000000000',
      'X-Forwarded-Groups': 'admins',
      'X-IAP-Assertion': 'forged',
      'X-Forwarded-For': '10.9.9.9',
      'X_Forwarded_For': '10.9.9.8',
      'X-Forwarded-Host': 'evil.example',
      'X-Forwarded-Proto': 'https',
      'X-Real-IP': '10.9.9.7',
      'Forwarded': 'for=10.9.9.6',
      'X-Request-Id': 'client-chosen-id',
    })
    expect(res.status).toBe(200)
    const seen = last()
    const names = seen.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase().replaceAll('_', '-'))
    for (const name of ['x-forwarded-user', 'x-forwarded-email', 'x-forwarded-user-id', 'x-forwarded-groups', 'x-iap-assertion', 'x-real-ip', 'forwarded']) {
      expect(names).not.toContain(name)
    }
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(seen.headers['x-forwarded-host']).not.toBe('evil.example')
    expect(seen.headers['x-forwarded-proto']).toBe('http')
    expect(seen.headers['x-request-id']).not.toBe('client-chosen-id')
    expect(names.filter((n) => n === 'x-forwarded-for')).toHaveLength(1)
  })

  it('drops hop-by-hop headers and headers nominated in Connection', async () => {
    const res = await rawRequest(proxy.url, 'GET', '/api/v4/hop', {
      Connection: 'keep-alive, X-Secret-Hop, X-Forwarded-User',
      'X-Secret-Hop': 'must-not-pass',
      'Keep-Alive': 'timeout=5',
      TE: 'trailers',
      'Proxy-Authorization': 'Basic Zm9vOmJhcg==',
      'X-Kept': 'yes',
    })
    expect(res.status).toBe(200)
    const seen = last().headers
    expect(seen['x-secret-hop']).toBeUndefined()
    expect(seen['keep-alive']).toBeUndefined()
    expect(seen.te).toBeUndefined()
    expect(seen['proxy-authorization']).toBeUndefined()
    expect(seen['x-kept']).toBe('yes')
  })

  it('passes GitLab credentials untouched', async () => {
    await rawRequest(proxy.url, 'GET', '/api/v4/projects', { 'PRIVATE-TOKEN': 'glpat-abc', 'JOB-TOKEN': 'job-1', Authorization: 'Bearer glpat-oauth' })
    const seen = last().headers
    expect(seen['private-token']).toBe('glpat-abc')
    expect(seen['job-token']).toBe('job-1')
    expect(seen.authorization).toBe('Bearer glpat-oauth')
  })

  it('streams a chunked upload without a size cap', async () => {
    const total = 8 * 1024 * 1024
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(proxy.url)
      const req = request({ host: url.hostname, port: url.port, method: 'POST', path: '/-/test/upload', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      })
      req.on('error', reject)
      const chunk = Buffer.alloc(64 * 1024, 1)
      let sent = 0
      const write = () => {
        while (sent < total) {
          sent += chunk.length
          if (!req.write(chunk)) return void req.once('drain', write)
        }
        req.end()
      }
      write()
    })
    expect(status).toBe(200)
    expect(upstream.uploads.at(-1)).toBe(total)
  })

  it('streams a large download', async () => {
    const res = await fetch(`${proxy.url}/-/test/download?bytes=${32 * 1024 * 1024}`)
    expect(res.status).toBe(200)
    let bytes = 0
    for await (const chunk of res.body!) bytes += (chunk as Uint8Array).length
    expect(bytes).toBe(32 * 1024 * 1024)
  })

  it('holds GitLab back while the client does not read, and stops GitLab when the client leaves', async () => {
    upstream.clear()
    const target = `/-/test/download?bytes=${1024 * 1024 * 1024}`
    const url = new URL(proxy.url)
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path: target }, resolve)
      req.on('error', reject)
      req.end()
    })
    expect(res.statusCode).toBe(200)
    // The client reads nothing: only what the socket buffers on the way hold may leave GitLab. A proxy
    // without backpressure would read GitLab's 1 GiB at loopback speed into its own memory.
    await new Promise((r) => setTimeout(r, 800))
    expect(upstream.downloaded).toBeGreaterThan(0)
    expect(upstream.downloaded).toBeLessThan(64 * 1024 * 1024)
    res.destroy()
    await expect.poll(() => upstream.abandoned, { timeout: 3000 }).toContain(target)
  })

  it('passes websocket upgrades on /-/cable and keeps them open', async () => {
    const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/-/cable`)
    const messages: string[] = []
    ws.on('message', (data) => messages.push(String(data)))
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    await new Promise((r) => setTimeout(r, 300))
    ws.send('ping-1')
    await new Promise((r) => setTimeout(r, 100))
    ws.send('ping-2')
    await expect.poll(() => messages.length, { timeout: 3000 }).toBe(3)
    expect(JSON.parse(messages[0]!).type).toBe('welcome')
    expect(messages.slice(1)).toEqual(['ping-1', 'ping-2'])
    ws.close()
  })

  it('passes websocket upgrades on *.ws routes with the path intact', async () => {
    const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/group/project/-/jobs/42/terminal.ws?x=%2F`)
    const first = await new Promise<string>((resolve, reject) => {
      ws.once('message', (data) => resolve(String(data)))
      ws.once('error', reject)
    })
    expect(JSON.parse(first).url).toBe('/group/project/-/jobs/42/terminal.ws?x=%2F')
    ws.close()
  })

  it('refuses non-websocket upgrades such as h2c', async () => {
    const res = await rawRequest(proxy.url, 'GET', '/api/v4/x', { Connection: 'Upgrade, HTTP2-Settings', Upgrade: 'h2c', 'HTTP2-Settings': 'AAMAAABkAARAAAAAAAIAAAAA' }).catch((e: Error) => e)
    // Node surfaces a refused upgrade as a normal response with the proxy's 400.
    expect(res).toMatchObject({ status: 400 })
    expect(upstream.reached('/api/v4/x')).toHaveLength(0)
  })

  it('a refused handshake closes and is logged as soon as the client hangs up, even after sending frames early', async () => {
    const { socket, received, requestId } = rawClient(proxy.url)
    // A client that does not wait for the 101 before sending: the bytes after the headers are never read by anyone.
    socket.write(`GET /api/v4/refused HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n${'early frame '.repeat(2000)}`)
    await new Promise((resolve) => socket.once('end', resolve))
    expect(received()).toMatch(/^HTTP\/1\.1 400 /)
    const id = requestId()
    socket.end()
    await expect.poll(() => proxy.records().filter((r) => field(r, 'http.request.id') === id).length, { timeout: 2000 }).toBe(1)
  })

  it('a refused handshake whose client never hangs up is closed after a few seconds, and logged', { timeout: 15_000 }, async () => {
    // allowHalfOpen: our side stays open after the proxy's FIN, as a stubborn client's would.
    const { socket, requestId } = rawClient(proxy.url, { allowHalfOpen: true })
    socket.write('GET /api/v4/lingering HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n')
    await expect.poll(() => requestId()).toBeTruthy()
    const id = requestId()
    // The proxy lets go of it (and logs it) after its linger time, whatever the client does.
    await expect.poll(() => proxy.records().filter((r) => field(r, 'http.request.id') === id).length, { timeout: 9000, interval: 100 }).toBe(1)
    socket.destroy()
  })

  it('writes one access-log record per request', async () => {
    const res = await fetch(`${proxy.url}/api/v4/one`)
    await res.text()
    const id = res.headers.get('x-request-id')
    await expect.poll(() => proxy.records().filter((r) => field(r, 'http.request.id') === id).length).toBe(1)
    const record = proxy.records().find((r) => field(r, 'http.request.id') === id)!
    expect(field(record, 'url.path')).toBe('/api/v4/one')
    expect(field(record, 'http.request.method')).toBe('GET')
    expect(field(record, 'http.response.status_code')).toBe(200)
  })
})

describe('upstream failures', () => {
  it('answers 502 with the request id when the upstream resets the connection', async () => {
    const res = await fetch(`${proxy.url}/-/test/reset`, { headers: { accept: 'application/json' } })
    expect(res.status).toBe(502)
    const body = (await res.json()) as { requestId: string }
    expect(body.requestId).toBe(res.headers.get('x-request-id'))
  })
})
