/**
 * The forwarder's one body rewrite (the LFS batch answer, src/gitlab/lfs-batch.ts): a successful,
 * uncompressed answer up to MAX_BATCH_BYTES is read whole and rewritten; anything else is relayed
 * byte for byte, and a large answer streams on once it passes the limit.
 */
import { createHash } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_BATCH_BYTES } from '../../../src/gitlab/lfs-batch.ts'
import { createForwarder, type Forwarder } from '../../../src/proxy/forward.ts'

const JSON_BODY = '{"objects":[{"oid":"x"}]}'
const BIG = Buffer.alloc(MAX_BATCH_BYTES + 1024 * 1024, 0x61)

const HELD_BYTES = 4_000_000
let releaseHeld: () => void = () => {}
let held = new Promise<void>((resolve) => (releaseHeld = resolve))
let heldWritten = 0

let upstream: Server
let proxy: Server
let forwarder: Forwarder
let rewritten = 0

const listen = (server: Server) => new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)))

beforeAll(async () => {
  upstream = createServer((req, res) => {
    if (req.url === '/ok') {
      // In two pieces, chunked: the rewrite sees the whole body.
      res.writeHead(200, { 'content-type': 'application/vnd.git-lfs+json' })
      res.write(JSON_BODY.slice(0, 10))
      setTimeout(() => res.end(JSON_BODY.slice(10)), 20)
    } else if (req.url === '/gzip') {
      const body = gzipSync(JSON_BODY)
      res.writeHead(200, { 'content-type': 'application/vnd.git-lfs+json', 'content-encoding': 'gzip', 'content-length': body.length }).end(body)
    } else if (req.url === '/held') {
      // Almost a whole batch answer, then nothing until the test lets it end.
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write(`{"x":"${'y'.repeat(HELD_BYTES - 10)}`, () => heldWritten++)
      void held.then(() => res.end('"}'))
    } else if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG.length }).end(BIG)
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"Not found"}')
    }
  })
  const upstreamUrl = await listen(upstream)
  forwarder = createForwarder({ url: upstreamUrl, timeoutSeconds: 5, connectTimeoutSeconds: 5 } as Parameters<typeof createForwarder>[0], {
    onResponse() {},
    onError(_req, target) {
      if ('writeHead' in target) target.writeHead(502).end()
    },
  })
  proxy = createServer((req, res) =>
    forwarder.web(req, res, {
      maxBytes: MAX_BATCH_BYTES,
      apply(body) {
        rewritten++
        return Buffer.from(body.toString().replace('"x"', '"rewritten"'))
      },
    }),
  )
  await listen(proxy)
})
afterAll(async () => {
  await new Promise<void>((resolve) => proxy?.close(() => resolve()))
  await forwarder?.close()
  await new Promise<void>((resolve) => upstream?.close(() => resolve()))
})

const get = (path: string) => fetch(`http://127.0.0.1:${(proxy.address() as AddressInfo).port}${path}`, { headers: { 'accept-encoding': 'identity' } })

describe('the batch answer rewrite in the forwarder', () => {
  it('a successful, uncompressed answer is read whole and rewritten, with its new length', async () => {
    rewritten = 0
    const res = await get('/ok')
    const text = await res.text()
    expect(text).toBe('{"objects":[{"oid":"rewritten"}]}')
    expect(res.headers.get('content-length')).toBe(String(Buffer.byteLength(text)))
    expect(rewritten).toBe(1)
  })

  it('a compressed answer, an error answer and an answer over the limit pass byte for byte, unread', async () => {
    rewritten = 0
    const gz = await get('/gzip')
    expect(gz.headers.get('content-encoding')).toBe('gzip')
    const raw = Buffer.from(await gz.arrayBuffer())
    expect(raw.equals(gzipSync(JSON_BODY)) || raw.toString() === JSON_BODY).toBe(true)
    const missing = await get('/missing')
    expect(missing.status).toBe(404)
    expect(await missing.text()).toBe('{"message":"Not found"}')
    const big = Buffer.from(await (await get('/big')).arrayBuffer())
    expect(big.length).toBe(BIG.length)
    expect(createHash('sha256').update(big).digest('hex')).toBe(createHash('sha256').update(BIG).digest('hex'))
    expect(rewritten).toBe(0)
  })

  it('answers held for rewriting share a 64 MiB budget: past it, an answer is relayed unread', async () => {
    rewritten = 0
    const n = 17 // 17 × 4 MB > 64 MiB > 16 × 4 MB
    const responses = Array.from({ length: n }, () => get('/held').then(async (res) => (await res.arrayBuffer()).byteLength))
    for (let waited = 0; heldWritten < n && waited < 10_000; waited += 20) await new Promise((r) => setTimeout(r, 20))
    await new Promise((r) => setTimeout(r, 200))
    releaseHeld()
    const lengths = await Promise.all(responses)
    expect(lengths.every((length) => length >= HELD_BYTES - 8)).toBe(true)
    expect(rewritten).toBeGreaterThan(0)
    expect(rewritten).toBeLessThan(n)
    held = new Promise<void>((resolve) => (releaseHeld = resolve))
  })
})
