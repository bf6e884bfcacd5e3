/**
 * The benchmark upstream, run as its own process: fixed-size bodies, an upload sink and a websocket echo.
 * Small on purpose: every contender forwards to it, so it must not be the bottleneck.
 *   GET /<anything>?bytes=N → N bytes (default 1024)      PUT|POST /upload → counts bytes
 */
import { createServer } from 'node:http'
import { WebSocketServer } from 'ws'

const bodies = new Map<number, Buffer>()
const body = (n: number) => {
  let b = bodies.get(n)
  if (!b) bodies.set(n, (b = Buffer.alloc(n, 0x61)))
  return b
}
const server = createServer((req, res) => {
  const url = req.url ?? '/'
  if (req.method === 'PUT' || req.method === 'POST') {
    let bytes = 0
    req.on('data', (c: Buffer) => (bytes += c.length))
    req.on('end', () => res.end(JSON.stringify({ bytes })))
    return
  }
  const q = url.indexOf('?bytes=')
  const b = body(q === -1 ? 1024 : Number(url.slice(q + 7)))
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': b.length })
  res.end(b)
})
server.keepAliveTimeout = 60_000
const wss = new WebSocketServer({ server })
wss.on('connection', (ws) => ws.on('message', (m) => ws.send(m)))
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`)
})
