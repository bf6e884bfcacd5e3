/**
 * `node bench/session.bench.ts`: what a browser session costs.
 * 1. Throughput (autocannon), one run: the same proxy answering a `public: true` path vs a group
 *    rule reached with a session cookie, for the `memory` store and for the `redis` store (Redis at
 *    127.0.0.1:6379 or $BENCH_REDIS_URL, a unique key prefix; skipped with a note when unreachable).
 *    Rounds alternate public/session; the ratio is computed per round and the median reported.
 * 2. Memory per 10,000 sessions in the memory store (in this process, after GC), with realistic
 *    records: 10 groups, a sealed 1.5 KiB refresh token and a sealed ID token of the size the dev
 *    IdP issues.
 *
 * Environment: BENCH_ROUNDS (3), BENCH_SECONDS (5), BENCH_CONNECTIONS (50), BENCH_REDIS_URL.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { deriveSessionKeys } from '../src/auth/session/keys.ts'
import { createMemoryStore } from '../src/auth/session/memory-store.ts'
import { createSessions } from '../src/auth/session/sessions.ts'
import { createDemoClientSecret, DEMO_CLIENT_ID, DEMO_GROUPS, startDevIdp, type DevIdp } from '../src/devidp/index.ts'
import { startIapProcess, type IapProcess } from './lib/iap.ts'
import { reachable, signIn } from './lib/sessions.ts'
import { throughput, type Target } from './lib/load.ts'
import { freePort, jsonPort, nodeBin, ROOT, startProcess } from './lib/processes.ts'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0'

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

function proxyConfig(port: number, upstreamUrl: string, idp: DevIdp, clientSecret: string, session: Record<string, unknown>) {
  return {
    server: { listen: `127.0.0.1:${port}`, publicUrl: `http://127.0.0.1:${port}` },
    admin: { listen: '127.0.0.1:0', token: 'bench-admin-token-0123456789' },
    upstream: { url: upstreamUrl },
    entra: { tenantId: idp.tenantId, clientId: DEMO_CLIENT_ID, clientSecret, authority: idp.authority, graphUrl: idp.graphUrl },
    session: { secret: randomBytes(48).toString('base64url'), ...session },
    groups: { engineering: DEMO_GROUPS.engineering.id },
    policy: {
      rules: [
        { name: 'public', paths: ['/public/**'], public: true },
        { name: 'bench', paths: ['/bench/**'], groups: ['engineering'] },
      ],
    },
    accessLog: { output: join(mkdtempSync(join(tmpdir(), 'bench-session-')), 'access.log') },
  }
}

async function measureStore(name: string, iap: IapProcess, cookie: string) {
  const publicTarget: Target = { url: iap.url, path: '/public/x', expectStatus: 200 }
  const sessionTarget: Target = { url: iap.url, path: '/bench/x', headers: { cookie }, expectStatus: 200 }
  await throughput(publicTarget, { connections: CONNECTIONS, seconds: 1 })
  await throughput(sessionTarget, { connections: CONNECTIONS, seconds: 1 })
  const rounds: { public: number; session: number; ratio: number }[] = []
  let unexpected = 0
  for (let round = 0; round < ROUNDS; round++) {
    const pub = await throughput(publicTarget, { connections: CONNECTIONS, seconds: SECONDS })
    const ses = await throughput(sessionTarget, { connections: CONNECTIONS, seconds: SECONDS })
    unexpected += pub.unexpected + pub.errors + ses.unexpected + ses.errors
    rounds.push({ public: pub.rps, session: ses.rps, ratio: ses.rps / pub.rps })
    process.stderr.write(`${name} round ${round + 1}/${ROUNDS}: public ${pub.rps.toFixed(0)} req/s, session ${ses.rps.toFixed(0)} req/s\n`)
  }
  return {
    store: name,
    publicRps: Math.round(median(rounds.map((r) => r.public))),
    sessionRps: Math.round(median(rounds.map((r) => r.session))),
    ratio: Number(median(rounds.map((r) => r.ratio)).toFixed(3)),
    unexpected,
  }
}

/** Heap bytes per 10,000 memory-store sessions, with realistic record contents. */
async function memoryPer10k(idTokenLength: number): Promise<{ bytes: number; perSession: number }> {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const clock = { now: () => Date.now() }
  const store = createMemoryStore({ maxSessions: 20_000, clock })
  const sessions = createSessions({
    cookieName: '__Host-gitlab-iap',
    secureCookies: true,
    keys: deriveSessionKeys(randomBytes(48).toString('base64url')),
    store,
    timeouts: { absoluteTimeoutMs: 12 * 3600_000, idleTimeoutMs: 3600_000, refreshIntervalMs: 600_000 },
    clock,
  })
  const groups = Array.from({ length: 10 }, (_, i) => `6c0bd1d2-0000-4000-8000-${String(i).padStart(12, '0')}`)
  const make = (i: number) => ({ id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, name: `user${i}@contoso.test`, email: `user${i}@contoso.test`, displayName: `User ${i}`, tenantId: DEMO_GROUPS.admins.id, groups: [...groups], roles: [], groupsSource: 'token' as const })
  gc()
  gc()
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < 10_000; i++) {
    await sessions.create(make(i), { refreshToken: randomBytes(1152).toString('base64url'), idToken: randomBytes(Math.ceil((idTokenLength * 3) / 4)).toString('base64url'), loginHint: randomBytes(48).toString('base64url'), sid: randomBytes(16).toString('hex') })
  }
  gc()
  gc()
  const bytes = process.memoryUsage().heapUsed - before
  await store.close()
  return { bytes, perSession: Math.round(bytes / 10_000) }
}

async function main(): Promise<void> {
  const upstream = await startProcess(nodeBin, [join(ROOT, 'bench/lib/upstream-server.ts')], jsonPort)
  const idp = await startDevIdp({ showUsersOnLoginPage: false })
  const clientSecret = createDemoClientSecret()
  const ports = [await freePort(), await freePort()]
  idp.registerClient({ clientId: DEMO_CLIENT_ID, clientSecret, redirectUris: [`http://127.0.0.1:${ports[0]}/-/iap/callback`] })
  const upstreamUrl = `http://127.0.0.1:${upstream.value}`
  const results: Awaited<ReturnType<typeof measureStore>>[] = []
  const procs: IapProcess[] = []
  let redisNote = ''
  let idTokenLength = 1200
  try {
    const memory = await startIapProcess(proxyConfig(ports[0]!, upstreamUrl, idp, clientSecret, { store: 'memory' }))
    procs.push(memory)
    const memoryCookie = await signIn(memory.url, idp)
    const who = (await (await fetch(`${memory.url}/-/iap/whoami`, { headers: { cookie: memoryCookie } })).json()) as { id: string }
    if (!who.id) throw new Error('whoami failed')
    idTokenLength = idp.mintIdToken({ user: 'bob' }).length
    results.push(await measureStore('memory', memory, memoryCookie))
    await memory.stop()
    procs.length = 0

    if (await reachable(REDIS_URL)) {
      // Same port as the memory run: the IdP knows one redirect URI per client.
      const redis = await startIapProcess(proxyConfig(ports[0]!, upstreamUrl, idp, clientSecret, { store: 'redis', redis: { url: REDIS_URL, keyPrefix: `gitlab-iap-bench-${randomBytes(4).toString('hex')}:` } }))
      procs.push(redis)
      results.push(await measureStore('redis', redis, await signIn(redis.url, idp)))
    } else {
      redisNote = `redis store skipped: ${REDIS_URL} is not reachable`
      process.stderr.write(`${redisNote}\n`)
    }
  } finally {
    for (const p of procs) await p.stop()
    await idp.close()
    await upstream.stop()
  }
  const memory = await memoryPer10k(idTokenLength)
  const unexpected = results.reduce((n, r) => n + r.unexpected, 0)
  const result = { rounds: ROUNDS, secondsPerRun: SECONDS, connections: CONNECTIONS, stores: results, memoryStore10kSessionsBytes: memory.bytes, memoryStoreBytesPerSession: memory.perSession, ...(redisNote && { note: redisNote }) }
  process.stdout.write(
    [
      '| store | public req/s | session req/s | ratio session/public |',
      '|---|---|---|---|',
      ...results.map((r) => `| ${r.store} | ${r.publicRps} | ${r.sessionRps} | ${r.ratio} |`),
      '',
      `medians of ${ROUNDS} alternating rounds × ${SECONDS} s, ${CONNECTIONS} connections; unexpected responses or errors: ${unexpected}`,
      `memory store: ${(memory.bytes / 1024 / 1024).toFixed(1)} MiB heap per 10,000 sessions (${memory.perSession} bytes each; 10 groups, sealed 1.5 KiB refresh token and ${idTokenLength}-byte ID token)`,
      ...(redisNote ? [redisNote] : []),
      JSON.stringify(result),
      '',
    ].join('\n'),
  )
  if (unexpected > 0) process.exitCode = 1
}

await main()
