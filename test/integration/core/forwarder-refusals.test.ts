/**
 * The forwarder on its own (src/proxy/forward.ts), between a real client and the test upstream: a
 * request the HTTP client refuses to send (a header value Node will not write) is answered through
 * `onError`, never thrown out of the request handler, where it would end the process.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createForwarder, type ForwardFailure, type Forwarder } from '../../../src/proxy/forward.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'

let upstream: Upstream
let server: Server
let forwarder: Forwarder
const failures: ForwardFailure[] = []

beforeAll(async () => {
  upstream = await startUpstream()
  forwarder = createForwarder({ url: upstream.url, timeoutSeconds: 5, connectTimeoutSeconds: 5 } as Parameters<typeof createForwarder>[0], {
    onResponse() {},
    onError(_req, target, failure) {
      failures.push(failure)
      if ('writeHead' in target) target.writeHead(502).end()
      else (target as Duplex).end('HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
    },
  })
  // What no client can send: a header value with a line break, as if a hook had set one.
  const poison = (req: IncomingMessage) => void (req.headers['x-poisoned'] = 'a\r\nInjected: 1')
  server = createServer((req, res) => (poison(req), forwarder.web(req, res)))
  server.on('upgrade', (req, socket, head) => (poison(req), forwarder.ws(req, socket, head)))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
})
afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()))
  await forwarder?.close()
  await upstream?.close()
})

function exchange(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1', () => socket.write(request))
    let text = ''
    socket.on('data', (d) => (text += d))
    socket.on('end', () => resolve(text))
    socket.on('error', reject)
    socket.setTimeout(5000, () => (socket.destroy(), resolve(text)))
  })
}

describe('requests the HTTP client refuses to send', () => {
  it('an ordinary request is answered 502 and nothing reaches GitLab', async () => {
    const before = upstream.requests.length
    const answer = await exchange('GET /api/v4/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    expect(answer).toMatch(/^HTTP\/1\.1 502 /)
    expect(upstream.requests.length).toBe(before)
  })

  it('a websocket handshake is answered 502 and the process keeps serving', async () => {
    const answer = await exchange('GET /-/cable HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
    expect(answer).toMatch(/^HTTP\/1\.1 502 /)
    expect(failures.length).toBeGreaterThanOrEqual(2)
  })
})
