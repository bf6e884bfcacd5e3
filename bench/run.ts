/**
 * `npm run bench`: every contender on loopback against the same upstream, in the same run.
 * Contenders alternate (A B C ... A B C) for ROUNDS rounds; each round's ratios are computed within
 * that round (against the direct upstream and against bare http-proxy-3); medians are reported.
 * Writes bench/results/latest.md and bench/results/latest.json. Not part of `npm test`.
 *
 * Environment: BENCH_ROUNDS (3), BENCH_SECONDS (5), BENCH_CONNECTIONS (50), BENCH_RATE (1000),
 * BENCH_QUICK=1 (1 round, 2 s: a smoke run), BENCH_FLOOR=1 (adds `node-floor`, a bare undici pass-through).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { latency, throughput, type Target } from './lib/load.ts'
import { haveApacheOidc, haveNginx, startApacheOidc, startNginx } from './lib/peers.ts'
import { jsonPort, nodeBin, proxyNodeFlags, ROOT, startProcess, type Proc } from './lib/processes.ts'
import { startIap, type IapContenders } from './lib/iap.ts'
import { runResourceBenches, type ResourceResults } from './lib/resources.ts'
import { startSessionContenders } from './lib/sessions.ts'

const quick = process.env.BENCH_QUICK === '1'
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (quick ? 1 : 3))
const SECONDS = Number(process.env.BENCH_SECONDS ?? (quick ? 2 : 5))
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50)
const RATE = Number(process.env.BENCH_RATE ?? 1000)

interface Contender extends Target {
  readonly name: string
  readonly note: string
}

interface RoundResult {
  rps: Record<string, number>
  rps256k: Record<string, number>
  p50us: Record<string, number>
  p99us: Record<string, number>
  p999us: Record<string, number>
  unexpected: Record<string, number>
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

async function main(): Promise<void> {
  const started = Date.now()
  const stops: (() => Promise<void>)[] = []
  const cleanup = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {})
  }
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)))
  try {
    const upstream = await startProcess(nodeBin, [join(ROOT, 'bench/lib/upstream-server.ts')], jsonPort)
    stops.push(upstream.stop)
    const upstreamUrl = `http://127.0.0.1:${upstream.value}`
    const bare = await startProcess(nodeBin, [...proxyNodeFlags, join(ROOT, 'bench/lib/bare-proxy.ts'), upstreamUrl], jsonPort)
    stops.push(bare.stop)
    const floor = process.env.BENCH_FLOOR === '1' ? await startProcess(nodeBin, [...proxyNodeFlags, join(ROOT, 'bench/lib/undici-floor.ts'), upstreamUrl], jsonPort) : undefined
    if (floor) stops.push(floor.stop)
    const iap: IapContenders = await startIap(upstreamUrl)
    stops.push(iap.stop)

    const sessions = await startSessionContenders(upstreamUrl)
    stops.push(sessions.stop)
    const contenders: Contender[] = [
      { name: 'upstream', note: 'the upstream directly', url: upstreamUrl, path: '/bench/x', expectStatus: 200 },
      { name: 'http-proxy-3', note: 'bare http-proxy-3 pass-through (the Node limit)', url: `http://127.0.0.1:${bare.value}`, path: '/bench/x', expectStatus: 200 },
      ...(floor ? [{ name: 'node-floor', note: 'bare undici pass-through: what any Node proxy forwarding as gitlab-iap does pays, with no checks and no log', url: `http://127.0.0.1:${floor.value}`, path: '/bench/x', expectStatus: 200 }] : []),
      ...iap.contenders,
      ...sessions.contenders,
    ]
    const procs: Record<string, Proc> = { upstream, 'http-proxy-3': bare, ...(floor && { 'node-floor': floor }), ...iap.procs, ...sessions.procs }
    if (haveNginx()) {
      const nginx = await startNginx(upstream.value)
      stops.push(nginx.stop)
      procs.nginx = nginx
      contenders.push({ name: 'nginx', note: 'nginx 1 worker, plain pass-through (the C baseline)', url: nginx.url, path: '/bench/x', expectStatus: 200 })
    } else console.warn('nginx not installed (bench/setup): skipped')
    if (haveApacheOidc() && iap.token) {
      const apache = await startApacheOidc(upstream.value, { pem: iap.token.pem, kid: iap.token.kid }, iap.token.groupId)
      stops.push(apache.stop)
      procs['apache-oidc'] = apache
      contenders.push({ name: 'apache-oidc', note: 'Apache + mod_auth_openidc verifying the same bearer JWT, Require claim groups', url: apache.url, path: '/bench/x', headers: { authorization: `Bearer ${iap.token.value}` }, expectStatus: 200 })
    } else console.warn('apache2 + mod_auth_openidc not installed (bench/setup) or no bearer token: skipped')

    // Warm every contender up once (JIT, connection pools, token caches).
    for (const c of contenders) await throughput(c, { connections: 10, seconds: 1 })

    const rounds: RoundResult[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const result: RoundResult = { rps: {}, rps256k: {}, p50us: {}, p99us: {}, p999us: {}, unexpected: {} }
      for (const c of contenders) {
        const t = await throughput(c, { connections: CONNECTIONS, seconds: SECONDS })
        result.rps[c.name] = t.rps
        result.unexpected[c.name] = t.unexpected + t.errors
        const big = await throughput({ ...c, path: `${c.path}?bytes=262144` }, { connections: 10, seconds: Math.max(1, Math.round(SECONDS / 2)) })
        result.rps256k[c.name] = big.rps
        const l = await latency(c, { rate: RATE, seconds: SECONDS })
        result.p50us[c.name] = l.p50us
        result.p99us[c.name] = l.p99us
        result.p999us[c.name] = l.p999us
        console.log(`round ${round + 1} ${c.name.padEnd(22)} ${t.rps.toFixed(0).padStart(7)} req/s  256KiB ${big.rps.toFixed(0).padStart(6)} req/s  p50 ${l.p50us}µs p99 ${l.p99us}µs p99.9 ${l.p999us}µs${t.unexpected ? `  (${t.unexpected} unexpected statuses)` : ''}`)
      }
      rounds.push(result)
    }

    const resources: ResourceResults = await runResourceBenches({ upstreamUrl, upstreamPort: upstream.value, bareUrl: `http://127.0.0.1:${bare.value}`, barePid: bare.pid, iap, sessions, quick })
    const report = buildReport(contenders, rounds, resources, Date.now() - started)
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true })
    writeFileSync(join(ROOT, 'bench/results/latest.md'), report.markdown)
    writeFileSync(join(ROOT, 'bench/results/latest.json'), JSON.stringify(report.json, null, 2))
    console.log('\n' + report.markdown)
  } finally {
    await cleanup()
  }
}

function buildReport(contenders: Contender[], rounds: RoundResult[], resources: ResourceResults, elapsedMs: number) {
  const names = contenders.map((c) => c.name)
  const ratioMedian = (metric: keyof RoundResult, name: string, base: string) => median(rounds.map((r) => r[metric][name]! / r[metric][base]!))
  const addedP99 = (name: string) => median(rounds.map((r) => r.p99us[name]! - r.p99us.upstream!))
  const rows = names.map((name) => {
    const c = contenders.find((x) => x.name === name)!
    return {
      name,
      note: c.note,
      rps: median(rounds.map((r) => r.rps[name]!)),
      vsUpstream: ratioMedian('rps', name, 'upstream'),
      vsHttpProxy3: ratioMedian('rps', name, 'http-proxy-3'),
      vsNginx: names.includes('nginx') ? ratioMedian('rps', name, 'nginx') : null,
      rps256k: median(rounds.map((r) => r.rps256k[name]!)),
      p50us: median(rounds.map((r) => r.p50us[name]!)),
      p99us: median(rounds.map((r) => r.p99us[name]!)),
      p999us: median(rounds.map((r) => r.p999us[name]!)),
      addedP99us: addedP99(name),
      unexpected: rounds.reduce((sum, r) => sum + r.unexpected[name]!, 0),
    }
  })
  const fmt = (n: number | null, digits = 2) => (n === null ? '—' : n.toFixed(digits))
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`
  const lines = [
    `# gitlab-iap benchmark`,
    '',
    `${new Date().toISOString()} · ${machine} · load generator on the same machine · ${rounds.length} rounds × ${SECONDS}s, ${CONNECTIONS} connections, 1 KiB responses; latency with wrk paced at ${RATE} req/s${proxyNodeFlags.length > 0 ? ` · Node proxies run with \`${proxyNodeFlags.join(' ')}\`` : ''} · took ${(elapsedMs / 1000).toFixed(0)} s`,
    '',
    '| contender | req/s | × upstream | × http-proxy-3 | × nginx | 256 KiB req/s | p50 µs | p99 µs | p99.9 µs | added p99 µs | bad statuses |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.name} | ${r.rps.toFixed(0)} | ${fmt(r.vsUpstream)} | ${fmt(r.vsHttpProxy3)} | ${fmt(r.vsNginx)} | ${r.rps256k.toFixed(0)} | ${r.p50us} | ${r.p99us} | ${r.p999us} | ${r.addedP99us.toFixed(0)} | ${r.unexpected} |`),
    '',
    ...rows.map((r) => `- **${r.name}**: ${r.note}`),
    '',
    '## Resources',
    '',
    ...resources.lines,
    '',
  ]
  return { markdown: lines.join('\n'), json: { machine, rounds, rows, resources: resources.json, seconds: SECONDS, connections: CONNECTIONS, rate: RATE } }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
