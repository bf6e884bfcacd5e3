/**
 * `accessLog.onError: deny` while the log cannot be written (/dev/full): websocket handshakes are
 * refused like plain requests (503 access-log-unavailable on the raw socket), never forwarded unrecorded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rawSocket } from '../helpers/http.ts'
import { baseConfig, startServe } from '../helpers/serve.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

let upstream: Upstream
beforeAll(async () => {
  upstream = await startUpstream()
})
afterAll(async () => {
  await upstream?.close()
})

const handshake = (path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`

describe('log destination full, onError: deny', () => {
  it('a websocket handshake is refused with 503 access-log-unavailable, and GitLab never sees it', async () => {
    const proxy = await startServe(baseConfig(upstream.url, { accessLog: { output: '/dev/full', onError: 'deny' } }))
    try {
      // Healthy until a write has failed: the first records go to /dev/full.
      await (await fetch(`${proxy.url}/api/v4/first`)).text()
      await expect.poll(async () => (await fetch(`${proxy.url}/api/v4/probe`)).status, { timeout: 3000 }).toBe(503)
      upstream.clear()
      const answer = await rawSocket(proxy.url, handshake('/-/cable'))
      expect(answer).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/)
      const [head, body] = answer.split('\r\n\r\n') as [string, string]
      const requestId = /\r\nx-request-id: ([^\r]+)/.exec(head)?.[1]
      expect(JSON.parse(body)).toEqual({ error: 'Service Unavailable', requestId, reason: 'access-log-unavailable' })
      expect(upstream.reached('/-/cable')).toHaveLength(0)
    } finally {
      await proxy.stop()
    }
  })
})
