/**
 * `node bench/soak.ts`: mixed traffic against one `serve` for SOAK_SECONDS (default 600) with faults
 * injected midway, then a report: errors, RSS drift, file descriptors, and whether the access log
 * holds exactly one record per request. Loopback only, bounded, stops by itself. Not part of npm test.
 *
 * Traffic: cached bearer GETs, denied requests, public requests, anonymous requests, unknown-kid tokens,
 * websockets opened and closed, 8 MiB uploads. Faults at the half-way mark: GitLab stops for 5 s and
 * comes back on the same port; a burst of tokens with random kids (SOAK_FAULTS=0 turns them off).
 * The access log is sealed (integrity chain) and verified at the end across every rotated file;
 * SOAK_ROTATE=4MiB rotates it every second or so under load (default 1GiB).
 */
import { randomBytes } from 'node:crypto'
import { createReadStream, readdirSync, mkdtempSync } from 'node:fs'
import { request } from 'node:http'
import { createInterface } from 'node:readline'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { startUpstream, type Upstream } from '../src/upstream/index.ts'
import { GROUP, startBenchIdp } from './lib/idp.ts'
import { iapConfig, startIapProcess } from './lib/iap.ts'
import { rssMiB } from './lib/processes.ts'
import { createChainVerifier } from '../src/logs/chain.ts'
import { rotatedFiles } from '../src/logs/writer.ts'

const SECONDS = Number(process.env.SOAK_SECONDS ?? 600)
/** Rotation size of the sealed access log: small sizes rotate often under load, and every rotation is kept. */
const ROTATE = process.env.SOAK_ROTATE ?? '1GiB'
const LOG_KEY = randomBytes(32).toString('base64')
const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length

async function main(): Promise<void> {
  let upstream: Upstream = await startUpstream()
  const upstreamPort = upstream.port
  const idp = await startBenchIdp()
  const logFile = join(mkdtempSync(join(tmpdir(), 'soak-')), 'access.log')
  const base = iapConfig(upstream.url, idp)
  const proxy = await startIapProcess({
    ...base,
    upstream: { url: upstream.url, timeoutSeconds: 10 },
    policy: { rules: [{ name: 'public', paths: ['/-/test/**', '/-/cable', '/-/health'], public: true }, { name: 'denied', paths: ['/denied/**'], deny: true }, { name: 'bench', paths: ['/**'], groups: ['bench'] }] },
    accessLog: { output: logFile, rotate: { size: ROTATE, keep: 1000, compress: false }, integrity: { key: LOG_KEY } },
  })
  const token = await idp.mint({ groups: [GROUP] })
  const proxyErr: string[] = []
  proxy.child.stderr?.on('data', (chunk: Buffer) => {
    if (proxyErr.length < 10_000) proxyErr.push(...chunk.toString().split('\n').filter(Boolean))
  })
  const errorMessages = new Map<string, number>()
  const stats = { sent: 0, ok: 0, refused: 0, errors: 0, statuses: new Map<number, number>(), errorKinds: new Map<string, number>() }
  const failed = (kind: string, message?: string) => {
    if (message) errorMessages.set(`${kind}: ${message}`, (errorMessages.get(`${kind}: ${message}`) ?? 0) + 1)
    stats.errors++
    stats.errorKinds.set(kind, (stats.errorKinds.get(kind) ?? 0) + 1)
  }
  const start = { rss: rssMiB(proxy.pid), fds: fds(proxy.pid) }
  const deadline = Date.now() + SECONDS * 1000
  const count = (status: number) => {
    stats.statuses.set(status, (stats.statuses.get(status) ?? 0) + 1)
    if (status < 400) stats.ok++
    else stats.refused++
  }
  const sentBy = new Map<string, number>()
  const sentTo = (path: string) => {
    stats.sent++
    sentBy.set(path, (sentBy.get(path) ?? 0) + 1)
  }
  const get = async (path: string, headers: Record<string, string> = {}) => {
    sentTo(path)
    try {
      const res = await fetch(`${proxy.url}${path}`, { headers })
      await res.arrayBuffer()
      count(res.status)
    } catch (err) {
      failed(`fetch:${((err as { cause?: { code?: string } }).cause?.code) ?? 'unknown'}`)
    }
  }
  const upload = () =>
    new Promise<void>((resolve) => {
      sentTo('/-/test/upload')
      const url = new URL(proxy.url)
      // A fresh connection per upload: after a 502 to an unread body the proxy closes the connection, and a
      // client reusing it races the close (the request never arrives, so it cannot be logged).
      const req = request({ host: url.hostname, port: url.port, method: 'PUT', path: '/-/test/upload', headers: { 'content-length': 8 << 20 }, agent: false }, (res) => {
        res.resume()
        res.on('end', () => (count(res.statusCode ?? 0), resolve()))
      })
      req.on('error', (err: NodeJS.ErrnoException) => (failed(`upload:${err.code}`), resolve()))
      req.end(Buffer.alloc(8 << 20, 1))
    })
  // Request ids the client saw for its websockets (101 or refusal), to name any that the log lacks.
  const websocketIds = new Map<string, string>()
  let websocketsWithoutAnswer = 0
  const websocket = () =>
    new Promise<void>((resolve) => {
      sentTo('/-/cable')
      const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/-/cable`)
      let answered = false
      const answer = (id: unknown, what: string) => {
        answered = true
        if (typeof id === 'string') websocketIds.set(id, what)
      }
      ws.once('upgrade', (res) => answer(res.headers['x-request-id'], '101'))
      let refused = false
      ws.once('unexpected-response', (req, res) => {
        refused = true
        answer(res.headers['x-request-id'], String(res.statusCode))
        res.resume()
        req.destroy()
        failed(`websocket:${res.statusCode}`)
        resolve()
      })
      ws.once('message', () => {
        ws.close()
        count(101)
      })
      ws.once('close', () => resolve())
      ws.once('error', (err) => {
        if (refused) return resolve()
        if (!answered) websocketsWithoutAnswer++
        failed(`websocket:${/\d{3}/.exec(err.message)?.[0] ?? 'error'}`, err.message)
        resolve()
      })
    })
  const mix = async () => {
    let i = 0
    while (Date.now() < deadline) {
      i++
      const r = i % 20
      if (r < 10) await get('/group/project/-/issues', { authorization: `Bearer ${token}` })
      else if (r < 13) await get('/denied/x', { authorization: `Bearer ${token}` })
      else if (r < 15) await get('/-/health')
      else if (r < 17) await get('/group/project')
      else if (r === 17) await websocket()
      else if (r === 18 && i % 200 === 18) await upload()
      else await get('/api/v4/projects', { authorization: `Bearer ${token}` })
    }
  }
  const faults = (async () => {
    if (process.env.SOAK_FAULTS === '0') return
    await new Promise((r) => setTimeout(r, (SECONDS * 1000) / 2))
    console.log('fault: GitLab down for 5 s')
    await upstream.close()
    await new Promise((r) => setTimeout(r, 5000))
    upstream = await startUpstream({ port: upstreamPort })
    console.log('fault: 200 tokens with random kids')
    const [, payload, signature] = token.split('.')
    for (let i = 0; i < 200; i++) {
      const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: `random-${i}` })).toString('base64url')
      await get('/api/v4/x', { authorization: `Bearer ${header}.${payload}.${signature}` })
    }
  })()
  await Promise.all([...Array.from({ length: 16 }, mix), faults])
  await new Promise((r) => setTimeout(r, 1000))
  const end = { rss: rssMiB(proxy.pid), fds: fds(proxy.pid) }
  // stop() escalates to SIGKILL after 5 s: a drain that slow would lose what is still open.
  const stopping = performance.now()
  await proxy.stop()
  const stopMs = performance.now() - stopping
  // Count the rotated files too: a long soak writes more than one rotation's worth. Read line by line:
  // a file near its rotation size is larger than the longest string Node can hold.
  let records = 0
  const loggedBy = new Map<string, number>()
  const loggedWebsocketIds = new Set<string>()
  // The records are sealed: the chain must hold across every rotation, from the first line of each file.
  const chain = createChainVerifier(LOG_KEY)
  const files = [...rotatedFiles(logFile), logFile]
  const fileStarts: unknown[] = []
  for (const file of files) {
    let n = 0
    for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
      chain.push(line, file, ++n)
      if (n === 1) fileStarts.push(/"iap\.chain\.start":"(\w+)"/.exec(line)?.[1])
      records++
      const path = /"url\.path":"([^"]*)"/.exec(line)?.[1] ?? '?'
      loggedBy.set(path, (loggedBy.get(path) ?? 0) + 1)
      if (path === '/-/cable') loggedWebsocketIds.add(/"http\.request\.id":"([^"]*)"/.exec(line)?.[1] ?? '')
    }
  }
  for (const [path, n] of sentBy) if (loggedBy.get(path) !== n) console.log(`  ${path}: sent ${n}, logged ${loggedBy.get(path) ?? 0}`)
  for (const [id, what] of websocketIds) if (!loggedWebsocketIds.has(id)) console.log(`  websocket ${id} (client saw ${what}) has no record; proxy said: ${proxyErr.filter((l) => l.includes(id)).join(' | ') || 'nothing'}`)
  // Nothing should be open a second after the traffic stopped: a websocket the proxy still held is a leak.
  for (const line of proxyErr.filter((l) => l.includes('closing open websockets'))) console.log(`  at shutdown: ${line}`)
  if (websocketsWithoutAnswer) console.log(`  ${websocketsWithoutAnswer} websockets got no HTTP answer at all`)
  await upstream.close()
  await idp.close()
  console.log(`soak: ${SECONDS}s, ${stats.sent} requests (${stats.ok} ok, ${stats.refused} refused as intended or during the outage, ${stats.errors} client errors)`)
  console.log(`client errors: ${[...stats.errorKinds].map(([k, n]) => `${k}×${n}`).join(' ') || 'none'}`)
  for (const [message, n] of errorMessages) console.log(`  ${message} ×${n}`)
  console.log(`statuses: ${[...stats.statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ')}`)
  console.log(`shutdown took ${stopMs.toFixed(0)} ms${stopMs > 4500 ? ` (killed?) — proxy said: ${proxyErr.slice(-3).join(' | ')}` : ''}`)
  console.log(`RSS ${start.rss.toFixed(0)} → ${end.rss.toFixed(0)} MiB; file descriptors ${start.fds} → ${end.fds}`)
  console.log(`access-log records ${records} for ${stats.sent} requests: ${records === stats.sent ? 'exactly one each' : 'MISMATCH'}`)
  const verdict = chain.verdict()
  const marked = fileStarts.every((mark, i) => mark === (i === 0 ? 'process' : 'file'))
  console.log(`integrity chain over ${files.length} file${files.length === 1 ? '' : 's'}: ${verdict.ok ? 'intact' : `BROKEN ${JSON.stringify(verdict.problem)}`}; each file begins with its start mark: ${marked ? 'yes' : `NO (${fileStarts.join(', ')})`}`)
  if (records !== stats.sent || !verdict.ok || !marked) process.exitCode = 1
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
