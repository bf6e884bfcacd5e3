/** The Node limit: a bare http-proxy-3 pass-through with a keep-alive agent, run as its own process. */
import { Agent, createServer } from 'node:http'
import { createProxyServer } from 'http-proxy-3'

const target = process.argv[2]!
const agent = new Agent({ keepAlive: true, maxFreeSockets: 256 })
const proxy = createProxyServer({ target, agent, xfwd: true })
proxy.on('error', (_err, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502)
  res.end()
})
const server = createServer((req, res) => proxy.web(req, res))
server.on('upgrade', (req, socket, head) => proxy.ws(req, socket, head, { target, agent: false }))
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`))
