/**
 * `node bench/bearer.bench.ts`: what a verified bearer token costs once it is cached.
 * One gitlab-iap process, one upstream, one run: requests per second (autocannon) on a path under a
 * `public: true` rule vs the same proxy with a cached RS256 bearer token on a group rule (credential
 * extraction, token-cache hit, revocation check, policy, identity headers and X-IAP-Assertion).
 * The two alternate for BENCH_ROUNDS rounds; the ratio is computed per round and the median reported.
 * Also checks that the bearer rounds caused no JWKS request (a cache hit does no network I/O), and
 * measures in-process what a cached token costs the authenticator (plus the X-IAP-Assertion), per request.
 *
 * Environment: BENCH_ROUNDS (3), BENCH_SECONDS (5), BENCH_CONNECTIONS (50).
 */
import type { IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { createAuthenticator } from '../src/auth/authenticate.ts'
import { configSchema } from '../src/config/schema.ts'
import type { RequestContext } from '../src/server/context.ts'
import { createAssertionSigner } from '../src/proxy/assertion.ts'
import { startBenchIdp } from './lib/idp.ts'
import { iapConfig, startIapProcess } from './lib/iap.ts'
import { throughput, type Target } from './lib/load.ts'
import { jsonPort, nodeBin, ROOT, startProcess } from './lib/processes.ts'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Microseconds per cached-token authentication + assertion, in this process (no HTTP). */
async function inProcessMicros(config: Record<string, unknown>, token: string): Promise<number> {
  const parsed = configSchema.parse(config)
  const auth = createAuthenticator({ config: parsed, metrics: { jwksFetch() {}, tokenCache() {} } })
  const signer = createAssertionSigner({ publicUrl: parsed.server.publicUrl })
  try {
    await auth.started()
    const ctx = {} as RequestContext
    const req = { headers: { authorization: `Bearer ${token}` } } as unknown as IncomingMessage
    const first = await auth.authenticate(req, ctx)
    if (!first.ok) throw new Error(`in-process token refused: ${first.reason}`)
    const n = 200_000
    const t0 = performance.now()
    for (let i = 0; i < n; i++) {
      req.headers = { authorization: `Bearer ${token}` }
      const outcome = auth.authenticate(req, ctx)
      if (outcome instanceof Promise || !outcome.ok) throw new Error('cache miss on the hot path')
      signer.assertionFor(outcome.identity)
    }
    return ((performance.now() - t0) * 1000) / n
  } finally {
    await auth.close()
  }
}

async function main(): Promise<void> {
  const stops: (() => Promise<void>)[] = []
  try {
    const upstream = await startProcess(nodeBin, [join(ROOT, 'bench/lib/upstream-server.ts')], jsonPort)
    stops.push(upstream.stop)
    const idp = await startBenchIdp()
    stops.push(idp.close)
    const config = iapConfig(`http://127.0.0.1:${upstream.value}`, idp)
    const iap = await startIapProcess(config)
    stops.push(iap.stop)
    const token = await idp.mint()
    const probe = await fetch(`${iap.url}/bench/x`, { headers: { authorization: `Bearer ${token}` } })
    await probe.arrayBuffer()
    if (probe.status !== 200) throw new Error(`the bench token is not accepted (HTTP ${probe.status})`)
    const publicTarget: Target = { url: iap.url, path: '/public/x', expectStatus: 200 }
    const bearerTarget: Target = { url: iap.url, path: '/bench/x', headers: { authorization: `Bearer ${token}` }, expectStatus: 200 }

    // Warm both paths (JIT, keep-alive pools) before measuring.
    await throughput(publicTarget, { connections: CONNECTIONS, seconds: 1 })
    await throughput(bearerTarget, { connections: CONNECTIONS, seconds: 1 })

    const rounds: { public: number; bearer: number; ratio: number }[] = []
    let unexpected = 0
    const jwksBefore = idp.jwksFetches()
    for (let round = 0; round < ROUNDS; round++) {
      const pub = await throughput(publicTarget, { connections: CONNECTIONS, seconds: SECONDS })
      const bearer = await throughput(bearerTarget, { connections: CONNECTIONS, seconds: SECONDS })
      unexpected += pub.unexpected + pub.errors + bearer.unexpected + bearer.errors
      rounds.push({ public: pub.rps, bearer: bearer.rps, ratio: bearer.rps / pub.rps })
      process.stderr.write(`round ${round + 1}/${ROUNDS}: public ${pub.rps.toFixed(0)} req/s, bearer ${bearer.rps.toFixed(0)} req/s\n`)
    }
    const jwksDuringBearer = idp.jwksFetches() - jwksBefore
    const micros = await inProcessMicros(config, token)

    const result = {
      rounds: ROUNDS,
      secondsPerRun: SECONDS,
      connections: CONNECTIONS,
      publicRps: Math.round(median(rounds.map((r) => r.public))),
      bearerCachedRps: Math.round(median(rounds.map((r) => r.bearer))),
      ratio: Number(median(rounds.map((r) => r.ratio)).toFixed(3)),
      jwksFetchesDuringRuns: jwksDuringBearer,
      inProcessMicrosPerCachedRequest: Number(micros.toFixed(2)),
      unexpectedResponses: unexpected,
    }
    process.stdout.write(
      [
        '| scenario | req/s (median) |',
        '|---|---|',
        `| public rule | ${result.publicRps} |`,
        `| cached RS256 bearer, group rule | ${result.bearerCachedRps} |`,
        '',
        `ratio bearer/public: ${result.ratio} (median of per-round ratios; ${ROUNDS} rounds × ${SECONDS} s, ${CONNECTIONS} connections)`,
        `JWKS fetches during the runs: ${jwksDuringBearer}; unexpected responses or errors: ${unexpected}`,
        `in process: ${micros.toFixed(2)} µs per cached-token authentication + assertion`,
        JSON.stringify(result),
        '',
      ].join('\n'),
    )
    if (unexpected > 0 || jwksDuringBearer > 0) process.exitCode = 1
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {})
  }
}

await main()
