/**
 * `node bench/logs-query.bench.ts`: `gitlab-iap logs` vs `jq` on the same 1,000,000-line access log,
 * the same filter, in one run (alternating, 3 rounds, medians), reported as a ratio.
 * Also: proxy throughput with the access log to a file vs to /dev/null (logging overhead).
 * Needs `jq` (bench/setup). LINES (default 1000000) sets the fixture size.
 */
import { execFile } from 'node:child_process'
import { createWriteStream, mkdtempSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { throughput } from './lib/load.ts'
import { iapConfig, startIapProcess } from './lib/iap.ts'
import { startBenchIdp } from './lib/idp.ts'
import { jsonPort, nodeBin, ROOT, startProcess } from './lib/processes.ts'

const run = promisify(execFile)
const LINES = Number(process.env.LINES ?? 1_000_000)
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!

async function fixture(path: string): Promise<void> {
  const out = createWriteStream(path)
  const users = ['alice@contoso.com', 'bob@contoso.com', 'carol@contoso.com', 'dave@contoso.com', null]
  const t0 = Date.parse('2026-11-01T00:00:00Z')
  for (let i = 0; i < LINES; i++) {
    const deny = i % 17 === 0
    const line = JSON.stringify({
      '@timestamp': new Date(t0 + i * 1000).toISOString(), 'ecs.version': '8.11.0', 'event.kind': 'event', 'event.category': 'web', 'event.duration': 1_000_000 + (i % 5000),
      'event.outcome': deny ? 'failure' : 'success', 'http.request.id': `req-${i}`, 'http.request.method': i % 4 ? 'GET' : 'POST', 'http.request.body.bytes': 0,
      'http.response.status_code': deny ? 403 : 200, 'http.response.bytes': 4096, 'url.path': `/group${i % 50}/project${i % 7}/-/issues/${i}`, 'client.ip': `10.0.${i % 255}.${i % 200}`,
      'user_agent.original': 'Mozilla/5.0', 'user.id': `oid-${i % 5}`, 'user.name': users[i % 5], 'user.email': users[i % 5], 'iap.identity.kind': i % 5 === 4 ? 'anonymous' : 'user',
      'iap.identity.groups': ['6c0bd1d2-0000-4000-8000-000000000002'], 'iap.auth.method': i % 5 === 4 ? 'none' : 'session', 'iap.decision.result': deny ? 'deny' : 'allow',
      'iap.decision.rule': deny ? 'secret-projects' : 'read-everything', 'iap.decision.reason': deny ? 'no-group-match' : 'group-match', 'iap.gitlab.route': 'web', 'iap.gitlab.project': `group${i % 50}/project${i % 7}`,
    })
    if (!out.write(line + '\n')) await new Promise<void>((r) => out.once('drain', () => r()))
  }
  await new Promise<void>((r) => out.end(() => r()))
}

async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now()
  await fn()
  return performance.now() - t
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-logs-'))
  const file = join(dir, 'access.log')
  await fixture(file)
  console.log(`fixture: ${LINES.toLocaleString('en')} lines, ${(statSync(file).size / 2 ** 20).toFixed(0)} MiB`)
  const bin = join(ROOT, 'bin/gitlab-iap.js')
  const queries = [
    { name: 'user bob, denied', iap: ['--user', 'bob@contoso.com', '--decision', 'deny'], jq: 'select((."user.name" == "bob@contoso.com" or ."user.id" == "bob@contoso.com" or ."user.email" == "bob@contoso.com") and ."iap.decision.result" == "deny")' },
    { name: 'status 403', iap: ['--status', '403'], jq: 'select(."http.response.status_code" == 403)' },
  ]
  const results: string[] = []
  for (const q of queries) {
    const iapTimes: number[] = []
    const jqTimes: number[] = []
    let iapCount = 0
    let jqCount = 0
    for (let round = 0; round < 3; round++) {
      iapTimes.push(await timeIt(async () => {
        const { stdout } = await run(nodeBin, [bin, 'logs', file, ...q.iap, '--output', 'json'], { maxBuffer: 1 << 30 })
        iapCount = stdout.split('\n').filter(Boolean).length
      }))
      jqTimes.push(await timeIt(async () => {
        const { stdout } = await run('jq', ['-c', q.jq, file], { maxBuffer: 1 << 30 })
        jqCount = stdout.split('\n').filter(Boolean).length
      }))
    }
    if (iapCount !== jqCount) throw new Error(`${q.name}: gitlab-iap found ${iapCount}, jq ${jqCount}`)
    const line = `- ${q.name} (${iapCount.toLocaleString('en')} matches): gitlab-iap logs ${(median(iapTimes) / 1000).toFixed(2)} s, jq ${(median(jqTimes) / 1000).toFixed(2)} s → ${(median(jqTimes) / median(iapTimes)).toFixed(1)}× faster`
    console.log(line)
    results.push(line)
  }

  // Logging overhead: the same proxy, access log to a file vs /dev/null, alternating rounds.
  const upstream = await startProcess(nodeBin, [join(ROOT, 'bench/lib/upstream-server.ts')], jsonPort)
  const idp = await startBenchIdp()
  const upstreamUrl = `http://127.0.0.1:${upstream.value}`
  const toFile = await startIapProcess(iapConfig(upstreamUrl, idp))
  const toNull = await startIapProcess({ ...iapConfig(upstreamUrl, idp), accessLog: { output: '/dev/null' } })
  const ratios: number[] = []
  for (let round = 0; round < 3; round++) {
    const a = await throughput({ url: toFile.url, path: '/public/x', expectStatus: 200 }, { connections: 50, seconds: 5 })
    const b = await throughput({ url: toNull.url, path: '/public/x', expectStatus: 200 }, { connections: 50, seconds: 5 })
    ratios.push(a.rps / b.rps)
    console.log(`round ${round + 1}: log to file ${a.rps.toFixed(0)} req/s, to /dev/null ${b.rps.toFixed(0)} req/s`)
  }
  const overhead = `- logging overhead: throughput with the access log to a file = ${median(ratios).toFixed(2)}× the same proxy logging to /dev/null (median of 3 rounds)`
  console.log(overhead)
  await toFile.stop()
  await toNull.stop()
  await upstream.stop()
  await idp.close()
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
