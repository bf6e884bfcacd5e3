/**
 * Answers that go out before the client's upload ended: GitLab answering without reading the body
 * (Workhorse's early 413 or 401), our 502 for an unreachable GitLab, our 408 for a stalled upload. The
 * client gets the whole answer with `Connection: close`, the connection is closed within seconds (never
 * left open with unread bytes), and the request has exactly one record. Also: a response GitLab sends
 * that is no valid HTTP response is a 502 `upstream-invalid-response`, not "could not reach GitLab".
 */
import { createServer, type Server } from 'node:http'
import { readdirSync } from 'node:fs'
import { connect, type AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { baseConfig, startServe, type ServeHandle } from '../helpers/serve.ts'

/** A GitLab that answers uploads at once, without reading them, and can send a head over the proxy's limit. */
function startEarlyGitLab(): Promise<{ url: string; server: Server }> {
  const server = createServer({ maxHeaderSize: 1024 * 1024 }, (req, res) => {
    if (req.url === '/early-413') {
      // An answer to a body over the limit, before reading it (Node then reads and drops the rest).
      res.writeHead(413, { 'content-type': 'text/plain' })
      res.end('Request Entity Too Large\n')
      return
    }
    if (req.url === '/early-413-close') {
      // Workhorse's (Go's): the answer with `Connection: close`, then its end (FIN), the rest read and
      // dropped for a while before the connection is closed.
      res.writeHead(413, { 'content-type': 'text/plain', 'content-length': 25, connection: 'close' })
      res.socket!.destroySoon = () => {
        req.resume()
        req.socket.end()
        setTimeout(() => req.socket.destroy(), 500)
      }
      res.end('Request Entity Too Large\n')
      return
    }
    if (req.url === '/huge-head') {
      req.resume()
      res.setHeader('x-huge', 'a'.repeat(80 * 1024))
      res.end('never relayed')
      return
    }
    req.resume()
    req.on('end', () => res.end('ok'))
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server })))
}

interface UploadResult {
  /** Everything the proxy sent back. */
  readonly answer: string
  /** When the answer's first bytes came, since the start (ms). */
  readonly answeredAt: number
  /** When the proxy ended the connection (its FIN), since the start (ms). */
  readonly endedAt: number
  /** An error the connection broke with, and whether the answer had arrived by then. */
  readonly error?: string
  readonly errorAfterAnswer: boolean
}

/**
 * A naive client: sends `bytes` of body as fast as the proxy takes them, whatever it answers, while reading
 * what comes back, until the proxy ends the connection (or `timeoutMs`).
 */
function upload(port: number, path: string, bytes: number, timeoutMs = 15_000): Promise<UploadResult> {
  return new Promise((resolve) => {
    const started = Date.now()
    const socket = connect(port, '127.0.0.1')
    let answer = ''
    let answeredAt = -1
    let error: string | undefined
    let errorAfterAnswer = false
    let sent = 0
    const chunk = Buffer.alloc(64 * 1024, 120)
    const finish = (endedAt: number) => {
      clearTimeout(timer)
      socket.destroy()
      resolve({ answer, answeredAt, endedAt, ...(error !== undefined && { error }), errorAfterAnswer })
    }
    const timer = setTimeout(() => finish(-1), timeoutMs)
    const pump = () => {
      while (sent < bytes && !socket.destroyed && socket.writable) {
        const piece = chunk.subarray(0, Math.min(chunk.length, bytes - sent))
        sent += piece.length
        if (!socket.write(piece)) return void socket.once('drain', pump)
      }
    }
    socket.on('connect', () => {
      socket.write(`POST ${path} HTTP/1.1\r\nHost: gitlab.example.test\r\nAccept: application/json\r\nContent-Type: application/octet-stream\r\nContent-Length: ${bytes}\r\n\r\n`)
      pump()
    })
    socket.setEncoding('latin1')
    socket.on('data', (text: string) => {
      if (answeredAt < 0) answeredAt = Date.now() - started
      answer += text
    })
    socket.on('error', (err) => {
      error ??= (err as NodeJS.ErrnoException).code ?? err.message
      errorAfterAnswer = answeredAt >= 0
    })
    socket.on('end', () => finish(Date.now() - started))
    socket.on('close', () => finish(Date.now() - started))
  })
}

const MB50 = 50 * 1024 * 1024

let gitlab: { url: string; server: Server }
let proxy: ServeHandle
const fds = (handle: ServeHandle) => readdirSync(`/proc/${handle.process.pid}/fd`).length

function recordsOf(handle: ServeHandle, path: string): Record<string, unknown>[] {
  return handle.records().filter((r) => r['url.path'] === path)
}

beforeAll(async () => {
  gitlab = await startEarlyGitLab()
  proxy = await startServe(baseConfig(gitlab.url, { upstream: { url: gitlab.url, timeoutSeconds: 1 } }))
})
afterAll(async () => {
  await proxy?.stop()
  await new Promise((resolve) => gitlab?.server.close(resolve))
})

describe('an answer before the upload ended', () => {
  it('GitLab answering a 50 MB upload at once: the client reads the 413, the connection closes within seconds, one record', async () => {
    const before = fds(proxy)
    const result = await upload(proxy.port, '/early-413', MB50)
    expect(result.answer).toMatch(/^HTTP\/1\.1 413 /)
    expect(result.answer).toMatch(/\r\nconnection: close\r\n/i)
    expect(result.answer).toContain('Request Entity Too Large')
    // Never an RST before the answer was read.
    if (result.error !== undefined) expect(result.errorAfterAnswer).toBe(true)
    expect(result.endedAt).toBeGreaterThanOrEqual(0)
    expect(result.endedAt).toBeLessThan(4000)
    // The proxy lets go of the connection too (no socket left ESTABLISHED with unread bytes).
    await expect.poll(() => fds(proxy), { timeout: 8000, interval: 100 }).toBeLessThanOrEqual(before)
    await expect.poll(() => recordsOf(proxy, '/early-413').length, { timeout: 3000 }).toBe(1)
    expect(recordsOf(proxy, '/early-413')[0]).toMatchObject({ 'http.response.status_code': 413 })
    // Nothing the parser reported afterwards became a record of its own.
    await new Promise((r) => setTimeout(r, 300))
    expect(proxy.records().filter((r) => r['http.request.method'] === '-')).toEqual([])
  })

  it('the same when GitLab closes its connection after such an answer (Workhorse)', async () => {
    const result = await upload(proxy.port, '/early-413-close', MB50)
    expect(result.answer).toMatch(/^HTTP\/1\.1 413 /)
    expect(result.answer).toMatch(/\r\nconnection: close\r\n/i)
    if (result.error !== undefined) expect(result.errorAfterAnswer).toBe(true)
    expect(result.endedAt).toBeGreaterThanOrEqual(0)
    expect(result.endedAt).toBeLessThan(4000)
  })

  it('the proxy still serves after it (other connections are unaffected)', async () => {
    const res = await fetch(`${proxy.url}/after`, { method: 'POST', body: 'small' })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('ok')
  })

  it('GitLab down: a 50 MB upload gets its 502 and the connection closes within seconds', async () => {
    const down = await startServe(baseConfig('http://127.0.0.1:9'))
    try {
      const result = await upload(down.port, '/api/v4/projects/1/uploads', MB50)
      expect(result.answer).toMatch(/^HTTP\/1\.1 502 /)
      expect(result.answer).toMatch(/\r\nconnection: close\r\n/i)
      expect(result.answer).toContain('"reason":"upstream-unreachable"')
      if (result.error !== undefined) expect(result.errorAfterAnswer).toBe(true)
      expect(result.endedAt).toBeGreaterThanOrEqual(0)
      expect(result.endedAt).toBeLessThan(4000)
      await expect.poll(() => recordsOf(down, '/api/v4/projects/1/uploads').length, { timeout: 3000 }).toBe(1)
      await new Promise((r) => setTimeout(r, 300))
      expect(down.records()).toHaveLength(1)
    } finally {
      await down.stop()
    }
  })

  it('a SIGTERM after such an answer does not wait out the grace period', async () => {
    const own = await startServe(baseConfig(gitlab.url, { server: { listen: '127.0.0.1:0', publicUrl: 'http://127.0.0.1:8080', shutdownGraceSeconds: 20 } }))
    const result = await upload(own.port, '/early-413', MB50)
    expect(result.answer).toMatch(/^HTTP\/1\.1 413 /)
    const started = Date.now()
    expect(await own.stop('SIGTERM')).toBe(0)
    expect(Date.now() - started).toBeLessThan(8000)
  })
})

describe('a stalled upload', () => {
  it('is the client\'s fault: 408 client-body-timeout with Connection: close, and one record when the client then hangs up', async () => {
    const path = '/api/v4/stalled'
    const started = Date.now()
    const socket = connect(proxy.port, '127.0.0.1')
    let answer = ''
    socket.setEncoding('latin1').on('data', (text: string) => (answer += text))
    socket.on('error', () => {})
    socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(10)}`)
    await expect.poll(() => answer, { timeout: 5000 }).toMatch(/\r\n\r\n\{.*\}\n$/s)
    expect(Date.now() - started).toBeLessThan(4000)
    expect(answer).toMatch(/^HTTP\/1\.1 408 /)
    expect(answer).toMatch(/\r\nconnection: close\r\n/i)
    const id = /\r\nx-request-id: ([^\r]+)\r\n/i.exec(answer)![1]
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ reason: 'client-body-timeout', requestId: id })
    // The client gives up on the rest of its upload.
    socket.destroy()
    await expect.poll(() => recordsOf(proxy, path).length, { timeout: 3000 }).toBe(1)
    await new Promise((r) => setTimeout(r, 500))
    expect(recordsOf(proxy, path)).toHaveLength(1)
    expect(recordsOf(proxy, path)[0]).toMatchObject({ 'http.request.id': id, 'http.response.status_code': 408, 'error.code': 'client-body-timeout' })
    expect(proxy.records().filter((r) => r['http.request.method'] === '-' || r['url.path'] === '')).toEqual([])
  })
})

describe('an invalid response from GitLab', () => {
  it('a response head over the limit is a 502 upstream-invalid-response, not "could not reach GitLab"', async () => {
    const res = await fetch(`${proxy.url}/huge-head`, { headers: { accept: 'application/json' } })
    expect(res.status).toBe(502)
    const id = res.headers.get('x-request-id')
    expect(await res.json()).toMatchObject({ reason: 'upstream-invalid-response', requestId: id })
    await expect.poll(() => recordsOf(proxy, '/huge-head').length, { timeout: 3000 }).toBe(1)
    expect(recordsOf(proxy, '/huge-head')[0]).toMatchObject({ 'http.response.status_code': 502, 'error.code': 'upstream-invalid-response' })
  })
})
