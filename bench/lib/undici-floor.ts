/**
 * The floor of a Node proxy that forwards as gitlab-iap does: a pass-through on undici's connection
 * pool that checks nothing and logs nothing, run as its own process (`BENCH_FLOOR=1`).
 */
import { createServer } from 'node:http'
import { Pool } from 'undici'

const pool = new Pool(process.argv[2]!, { connections: 256 })
const server = createServer((req, res) => {
  pool.request({ method: req.method as 'GET', path: req.url!, headers: req.headers as Record<string, string> }).then(
    ({ statusCode, headers, body }) => {
      res.writeHead(statusCode, headers as Record<string, string>)
      body.pipe(res)
    },
    () => res.writeHead(502).end(),
  )
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`))
