/** Resource figures: streaming upload memory, websockets held open, cold start. */
import { request } from 'node:http'
import WebSocket from 'ws'
import type { IapContenders } from './iap.ts'
import { iapConfig, startIapProcess } from './iap.ts'
import { rssMiB, sampleRss } from './processes.ts'
import type { SessionContenders } from './sessions.ts'

export interface ResourceResults {
  readonly lines: string[]
  readonly json: Record<string, unknown>
}

export interface ResourceContext {
  readonly upstreamUrl: string
  readonly upstreamPort: number
  readonly bareUrl: string
  readonly barePid: number
  readonly iap: IapContenders
  readonly sessions?: SessionContenders
  readonly quick: boolean
}

/** How long the session fill may take: real sign-ins through the dev IdP cost about 10 ms of CPU each (on a slow host the whole bench must still end within 10 minutes). */
const SESSION_FILL_SECONDS = 60

function upload(base: string, bytes: number, path = '/public/upload'): Promise<number> {
  const url = new URL(base)
  const t0 = performance.now()
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method: 'PUT', path, headers: { 'content-length': bytes }, agent: false }, (res) => {
      res.resume()
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`upload status ${res.statusCode}`))))
    })
    req.on('error', reject)
    const chunk = Buffer.alloc(1024 * 1024, 1)
    let sent = 0
    const write = () => {
      while (sent < bytes) {
        sent += chunk.length
        if (!req.write(chunk)) return void req.once('drain', write)
      }
      req.end()
    }
    write()
  })
}

async function holdWebsockets(base: string, count: number, path: string): Promise<WebSocket[]> {
  const sockets: WebSocket[] = []
  for (let i = 0; i < count; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, () => new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(`${base.replace('http', 'ws')}${path}`)
        ws.once('open', () => resolve())
        ws.once('error', reject)
        sockets.push(ws)
      })),
    )
  }
  return sockets
}

export async function runResourceBenches(ctx: ResourceContext): Promise<ResourceResults> {
  const lines: string[] = []
  const json: Record<string, unknown> = {}
  const GiB = 1024 ** 3
  const size = ctx.quick ? GiB / 4 : GiB

  // Streaming upload: time and peak RSS over idle, for gitlab-iap and bare http-proxy-3.
  for (const [name, base, pid, path] of [['gitlab-iap', ctx.iap.main.url, ctx.iap.main.pid, '/public/upload'], ['http-proxy-3', ctx.bareUrl, ctx.barePid, '/upload']] as const) {
    await upload(base, 64 * 1024 * 1024, path)
    const idle = rssMiB(pid)
    const sampler = sampleRss(pid)
    const ms = await upload(base, size, path)
    const peak = sampler.stop()
    json[`upload:${name}`] = { bytes: size, ms, idleMiB: idle, peakMiB: peak }
    lines.push(`- ${(size / GiB).toFixed(2)} GiB streaming upload through ${name}: ${(ms / 1000).toFixed(2)} s (${((size / 2 ** 20) / (ms / 1000)).toFixed(0)} MiB/s), peak RSS ${peak.toFixed(0)} MiB = idle ${idle.toFixed(0)} MiB + ${(peak - idle).toFixed(1)} MiB`)
  }

  // Websockets held open.
  const count = ctx.quick ? 200 : 1000
  for (const [name, base, pid, path] of [['gitlab-iap', ctx.iap.main.url, ctx.iap.main.pid, '/public/ws'], ['http-proxy-3', ctx.bareUrl, ctx.barePid, '/ws']] as const) {
    const before = rssMiB(pid)
    const sockets = await holdWebsockets(base, count, path)
    await new Promise((r) => setTimeout(r, 500))
    const after = rssMiB(pid)
    for (const ws of sockets) ws.terminate()
    json[`websockets:${name}`] = { count, beforeMiB: before, afterMiB: after }
    lines.push(`- ${count} websockets held open through ${name}: RSS ${before.toFixed(0)} → ${after.toFixed(0)} MiB (${(((after - before) * 1024) / count).toFixed(1)} KiB each)`)
  }

  // RSS with many distinct bearer tokens in the verified-token cache (ES256: cheap to mint in bulk).
  if (ctx.iap.token) {
    const tokens = ctx.quick ? 10_000 : 100_000
    const pid = ctx.iap.main.pid
    const before = rssMiB(pid)
    const started = performance.now()
    let sent = 0
    const worker = async () => {
      while (sent < tokens) {
        sent++
        const token = await ctx.iap.idp.mint({ alg: 'ES256' })
        const res = await fetch(`${ctx.iap.main.url}/bench/x`, { headers: { authorization: `Bearer ${token}` } })
        await res.arrayBuffer()
      }
    }
    await Promise.all(Array.from({ length: 32 }, worker))
    const after = rssMiB(pid)
    json.tokenCache = { tokens, beforeMiB: before, afterMiB: after, seconds: (performance.now() - started) / 1000 }
    lines.push(`- ${tokens.toLocaleString('en')} distinct bearer tokens verified and cached: RSS ${before.toFixed(0)} → ${after.toFixed(0)} MiB (${(((after - before) * 1024 * 1024) / tokens).toFixed(0)} bytes per cached token; the cache is bounded at 50,000 entries / 64 MiB)`)
  }

  // RSS with many browser sessions in the memory store, each a real sign-in through the dev IdP.
  const memoryContender = ctx.sessions?.procs['iap-session-memory']
  if (ctx.sessions && memoryContender) {
    const wanted = ctx.quick ? 1_000 : 10_000
    const before = rssMiB(memoryContender.pid)
    const started = performance.now()
    const signedIn = await ctx.sessions.signInMany('iap-session-memory', wanted, Date.now() + SESSION_FILL_SECONDS * 1000)
    const seconds = (performance.now() - started) / 1000
    const after = rssMiB(memoryContender.pid)
    const perSession = ((after - before) * 1024 * 1024) / signedIn
    json.sessions = { store: 'memory', wanted, signedIn, seconds, beforeMiB: before, afterMiB: after }
    const short = signedIn < wanted ? `; stopped after ${SESSION_FILL_SECONDS} s, so ${wanted.toLocaleString('en')} would be about +${((perSession * wanted) / 1024 / 1024).toFixed(0)} MiB` : ''
    lines.push(`- ${signedIn.toLocaleString('en')} browser sessions, each a real sign-in (memory store): RSS ${before.toFixed(0)} → ${after.toFixed(0)} MiB (${perSession.toFixed(0)} bytes per session; ${seconds.toFixed(0)} s of sign-ins${short})`)
  }

  // Cold start to ready (config loaded, keys fetched, listeners up).
  const starts: number[] = []
  for (let i = 0; i < 3; i++) {
    const p = await startIapProcess(iapConfig(ctx.upstreamUrl, ctx.iap.idp))
    starts.push(p.readyMs)
    await p.stop()
  }
  starts.sort((a, b) => a - b)
  json.coldStartMs = starts
  lines.push(`- cold start to ready (median of 3): ${starts[1]!.toFixed(0)} ms`)

  lines.push(`- JWKS fetches during the whole run: ${ctx.iap.idp.jwksFetches()} (a cached token costs no network I/O)`)
  json.jwksFetches = ctx.iap.idp.jwksFetches()
  return { lines, json }
}
