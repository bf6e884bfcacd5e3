/**
 * Request smuggling (Node CVE-2020-8287 / CVE-2022-32213/32214/32215 / CVE-2023-30589,
 * Puma CVE-2022-24790): an ambiguous request must never be forwarded. Pattern from Node core's own
 * regression tests: a raw TCP client and a recording upstream, asserting what reached it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { baseConfig, startServe, type ServeHandle } from '../helpers/serve.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { rawClient, rawSocket } from '../helpers/http.ts'

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

const smuggled = () => upstream.requests.filter((r) => r.url.includes('smuggled'))
/** A chunked body ending early, then the start of another request: what a Transfer-Encoding reader would see. */
const UNDERSCORE_BODY = '0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\nX: '

describe('ambiguous framing is refused, never forwarded', () => {
  it.each([
    ['CVE-2020-8287: Content-Length and Transfer-Encoding together', 'POST /api/v4/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['duplicate Content-Length with different values', 'POST /api/v4/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcdGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['CVE-2020-8287: two Transfer-Encoding headers', 'POST /api/v4/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked-false\r\n\r\n1\r\nA\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['CVE-2022-32215: obs-fold in Transfer-Encoding', 'POST /api/v4/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n , identity\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['CVE-2022-32214: bare LF as header delimiter', 'POST /api/v4/a HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n0\n\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['CVE-2023-30589: empty header separated by CR', 'POST /api/v4/a HTTP/1.1\r\nHost: x\r\n\rTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['Transfer-Encoding other than chunked', 'POST /api/v4/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['space before the colon', 'POST /api/v4/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['invalid chunk size', 'POST /api/v4/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['NUL in a header value (CVE-2019-9900)', 'GET /api/v4/a HTTP/1.1\r\nHost: x\r\nX-Test: a\u0000b\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'],
  ])('%s', async (_name, bytes) => {
    upstream.clear()
    const before = proxy.records().length
    const answer = await rawSocket(proxy.url, bytes, 1500)
    expect(answer).toMatch(/^HTTP\/1\.1 400 /)
    expect(smuggled()).toHaveLength(0)
    // The framing was refused before the pipeline: nothing at all reached GitLab...
    expect(upstream.requests).toHaveLength(0)
    // ...and the attempt still left exactly one access-log record, a denial (never the smuggled request).
    await expect.poll(() => proxy.records().length - before, { timeout: 2000 }).toBe(1)
    // Refused at the headers: the parser's denial. Refused in the body (headers were valid): the pipeline's
    // own record of a request whose body never completed.
    const record = proxy.records().at(-1)!
    // Refused by the proxy's own framing check (a transfer coding whose end cannot be found): a 400 denial too.
    if (record['iap.decision.reason'] === 'malformed-request' || record['iap.decision.reason'] === 'transfer-encoding-invalid') {
      expect(record).toMatchObject({ 'http.response.status_code': 400, 'iap.decision.result': 'deny' })
    }
    else expect(record).toMatchObject({ 'iap.aborted': true, 'url.path': '/api/v4/a' })
    expect(proxy.records().some((r) => String(r['url.path']).includes('smuggled'))).toBe(false)
  })

  it.each([
    ['two Host headers', 'GET /api/v4/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400, 'host-duplicate'],
    ['a Host that is no host', 'GET /api/v4/a HTTP/1.1\r\nHost: a b/c\r\n\r\n', 400, 'host-invalid'],
    ['a coding before chunked (its body would reach GitLab without its label)', 'POST /api/v4/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 501, 'transfer-coding-unsupported'],
    ['TRACE (it would echo cookies: cross-site tracing)', 'TRACE /api/v4/a HTTP/1.1\r\nHost: x\r\n\r\n', 405, 'method-not-allowed'],
    ['PROPFIND (GitLab serves no such method; a rule listing methods could not name it)', 'PROPFIND /api/v4/a HTTP/1.1\r\nHost: x\r\n\r\n', 405, 'method-not-allowed'],
    // Puma folds `_` to `-` and prefers Transfer-Encoding to Content-Length: behind the proxy, the bytes after
    // the chunked end would be a second request.
    ['Transfer_Encoding next to Content-Length (Puma would frame by it)', `POST /api/v4/a HTTP/1.1\r\nHost: x\r\nContent-Length: ${UNDERSCORE_BODY.length}\r\nTransfer_Encoding: chunked\r\n\r\n${UNDERSCORE_BODY}`, 400, 'framing-header-underscore'],
    ['a Content_Length spelled with underscores (Puma would read a body Node never saw)', 'GET /api/v4/a HTTP/1.1\r\nHost: x\r\nContent_Length: 0\r\n\r\n', 400, 'framing-header-underscore'],
    ['a websocket handshake with Transfer_Encoding', 'GET /-/cable HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'framing-header-underscore'],
    ['a websocket handshake with a body', 'GET /-/cable HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 34\r\n\r\nGET /admin/x HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'upgrade-with-body'],
  ])('%s is refused before the pipeline, nothing forwarded', async (_name, bytes, status, reason) => {
    upstream.clear()
    const before = proxy.records().length
    const answer = await rawSocket(proxy.url, bytes, 1500)
    expect(answer).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `))
    expect(upstream.requests).toHaveLength(0)
    await expect.poll(() => proxy.records().length - before, { timeout: 2000 }).toBe(1)
    expect(proxy.records().at(-1)).toMatchObject({ 'http.response.status_code': status, 'iap.decision.result': 'deny', 'iap.decision.reason': reason })
  })

  it('HTTP/1.0 without Host (health checks) reaches GitLab with the public host, never the upstream address', async () => {
    upstream.clear()
    const answer = await rawSocket(proxy.url, 'GET /api/v4/a HTTP/1.0\r\n\r\n', 1500)
    expect(answer).toMatch(/^HTTP\/1\.1 200 /)
    expect(upstream.requests).toHaveLength(1)
    expect(upstream.requests[0]!.headers.host).toBe('127.0.0.1:8080')
    expect(upstream.requests[0]!.headers['x-forwarded-host']).toBe('127.0.0.1:8080')
  })

  it('Connection cannot nominate Host: GitLab gets the public host, never the upstream address, websocket handshakes too', async () => {
    upstream.clear()
    const answer = await rawSocket(proxy.url, 'GET /api/v4/a HTTP/1.1\r\nHost: gitlab.example.com\r\nConnection: Host, close\r\n\r\n', 1500)
    expect(answer).toMatch(/^HTTP\/1\.1 200 /)
    const handshake = await rawSocket(proxy.url, 'GET /-/cable HTTP/1.1\r\nHost: gitlab.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade, Host\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n', 500)
    expect(handshake).toMatch(/^HTTP\/1\.1 101 /)
    expect(upstream.requests.map((r) => r.url)).toEqual(['/api/v4/a', '/-/cable'])
    for (const seen of upstream.requests) {
      expect(seen.headers.host).toBe('gitlab.example.com')
      expect(seen.headers['x-forwarded-host']).toBe('gitlab.example.com')
    }
  })

  it('Connection cannot nominate the body\'s framing or type: the body reaches GitLab whole, labelled', async () => {
    upstream.clear()
    const answer = await rawSocket(proxy.url, 'POST /api/v4/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\nConnection: Content-Length, Content-Type, close\r\n\r\ntitle=hello', 1500)
    expect(answer).toMatch(/^HTTP\/1\.1 200 /)
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ method: 'POST', bodyBytes: 11 })
    expect(upstream.requests[0]!.headers).toMatchObject({ 'content-length': '11', 'content-type': 'application/x-www-form-urlencoded' })
  })

  it('Expect: 100-continue: the 100 comes only once the policy allows the request', async () => {
    const protectedProxy = await startServe(baseConfig(upstream.url, { policy: { rules: [{ name: 'open', paths: ['/open/**'], public: true }] } }))
    try {
      const refused = await rawSocket(protectedProxy.url, 'PUT /closed/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n', 1500)
      expect(refused).toMatch(/^HTTP\/1\.1 401 /)
      expect(refused).not.toContain('100 Continue')
      const client = rawClient(protectedProxy.url)
      // As Node reads it: "100-continue" among other expectations counts too.
      client.socket.write('PUT /open/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-Continue, x-other\r\nConnection: close\r\n\r\n')
      await expect.poll(() => client.received(), { timeout: 3000 }).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n/)
      client.socket.write('hello')
      await expect.poll(() => client.received(), { timeout: 3000 }).toMatch(/\r\n\r\nHTTP\/1\.1 200 /)
      client.socket.destroy()
      const put = upstream.requests.find((r) => r.method === 'PUT' && r.url === '/open/x')
      expect(put?.headers.expect).toBeUndefined()
    } finally {
      await protectedProxy.stop()
    }
  })

  it('a CONNECT tunnel request is refused with 405 and logged once, never forwarded', async () => {
    upstream.clear()
    const before = proxy.records().length
    const answer = await rawSocket(proxy.url, 'CONNECT gitlab.example.com:443 HTTP/1.1\r\nHost: gitlab.example.com:443\r\n\r\n', 1500)
    expect(answer).toMatch(/^HTTP\/1\.1 405 /)
    expect(answer).toMatch(/x-request-id: [0-9a-f-]{36}/)
    await expect.poll(() => proxy.records().length - before, { timeout: 2000 }).toBe(1)
    expect(proxy.records().at(-1)).toMatchObject({ 'http.request.method': 'CONNECT', 'http.response.status_code': 405, 'iap.decision.reason': 'method-not-allowed' })
    expect(upstream.requests).toHaveLength(0)
  })

  it('a malformed request pipelined after valid ones: they are answered first, then its 400; one record each', async () => {
    upstream.clear()
    const before = proxy.records().length
    const answer = await rawSocket(
      proxy.url,
      'GET /api/v4/first HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v4/second HTTP/1.1\r\nHost: x\r\n\r\n' +
        'POST /api/v4/third HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd',
      3000,
    )
    expect(answer.match(/HTTP\/1\.1 \d{3}/g)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 400'])
    expect(upstream.requests.map((r) => r.url)).toEqual(['/api/v4/first', '/api/v4/second'])
    await expect.poll(() => proxy.records().length - before, { timeout: 2000 }).toBe(3)
    const byPath = Object.fromEntries(proxy.records().slice(before).map((r) => [r['url.path'], r]))
    expect(byPath['/api/v4/first']).toMatchObject({ 'http.response.status_code': 200 })
    expect(byPath['/api/v4/second']).toMatchObject({ 'http.response.status_code': 200 })
    expect(byPath['/api/v4/third']).toMatchObject({ 'http.request.method': 'POST', 'http.response.status_code': 400, 'iap.decision.reason': 'malformed-request' })
  })

  it('forwards a well-formed pipelined pair exactly as two requests', async () => {
    upstream.clear()
    const answer = await rawSocket(proxy.url, 'GET /api/v4/first HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v4/second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3000)
    expect(answer.match(/HTTP\/1\.1 200/g)).toHaveLength(2)
    expect(upstream.requests.map((r) => r.url)).toEqual(['/api/v4/first', '/api/v4/second'])
  })
})
