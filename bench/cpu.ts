/**
 * `node bench/cpu.ts`: CPU time per request (user + system, all threads, from /proc) of bare
 * http-proxy-3 and of gitlab-iap on its public, cached-bearer, deny and session-cookie paths, at a fixed moderate
 * rate, so the cost is measured without the load generator competing for the same cores.
 * Contenders alternate for BENCH_ROUNDS rounds; medians are reported. Not part of `npm test`.
 *
 *   BENCH_AGAINST=<git ref>  also runs gitlab-iap from that commit (a temporary worktree): before/after
 *   BENCH_PROFILE=1          writes V8 CPU profiles (`--cpu-prof`) to bench/results/profiles/
 *   BENCH_ONLY=<regexp>      loads only the contenders whose name matches (http-proxy-3 always runs)
 *   BENCH_RATE (2000 req/s), BENCH_SECONDS (5), BENCH_ROUNDS (5)
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { startBenchIdp } from './lib/idp.ts'
import { iapConfig, startIapProcess } from './lib/iap.ts'
import { startSessionContenders } from './lib/sessions.ts'
import { jsonPort, nodeBin, proxyNodeFlags, ROOT, startProcess, type Proc } from './lib/processes.ts'

const RATE = Number(process.env.BENCH_RATE ?? 2000)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const AGAINST = process.env.BENCH_AGAINST
const ONLY = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY) : undefined
const PROFILES = join(ROOT, 'bench/results/profiles')

/** CPU seconds a process has used so far (utime + stime; clock ticks are 1/100 s on Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

const profileEnv = (name: string): NodeJS.ProcessEnv =>
  process.env.BENCH_PROFILE === '1'
    ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${join(PROFILES, name)} --import=data:text/javascript,process.once('SIGTERM',()=>process.exit(0))` }
    : {}

/** A worktree of `ref` sharing this checkout's node_modules; removed at the end. */
function worktree(ref: string): { root: string; remove(): void } {
  const root = join(mkdtempSync(join(tmpdir(), 'bench-against-')), 'tree')
  execFileSync('git', ['worktree', 'add', '--detach', root, ref], { cwd: ROOT, stdio: 'ignore' })
  symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'))
  return { root, remove: () => execFileSync('git', ['worktree', 'remove', '--force', root], { cwd: ROOT, stdio: 'ignore' }) }
}

interface Target {
  readonly name: string
  readonly pid: number
  readonly url: string
  readonly headers: Record<string, string>
}

function load(target: Target, seconds: number): Promise<number> {
  return new Promise((resolve, reject) => {
    autocannon({ url: target.url, headers: target.headers, connections: 20, duration: seconds, overallRate: RATE }, (err, result) =>
      err ? reject(err) : resolve(result.requests.total),
    )
  })
}

async function main(): Promise<void> {
  const stops: (() => Promise<void> | void)[] = []
  try {
    if (process.env.BENCH_PROFILE === '1') {
      rmSync(PROFILES, { recursive: true, force: true })
      mkdirSync(PROFILES, { recursive: true })
    }
    const upstream = await startProcess(nodeBin, [join(ROOT, 'bench/lib/upstream-server.ts')], jsonPort)
    stops.push(upstream.stop)
    const upstreamUrl = `http://127.0.0.1:${upstream.value}`
    const bare = await startProcess(nodeBin, [...proxyNodeFlags, join(ROOT, 'bench/lib/bare-proxy.ts'), upstreamUrl], jsonPort, { env: profileEnv('http-proxy-3') })
    stops.push(bare.stop)
    const idp = await startBenchIdp()
    stops.push(() => idp.close())
    const token = await idp.mint()
    const outsider = await idp.mint({ groups: [] })
    const targets: Target[] = [{ name: 'http-proxy-3', pid: bare.pid, url: `http://127.0.0.1:${bare.value}/bench/x`, headers: {} }]
    const trees: [string, string][] = [['gitlab-iap', ROOT]]
    if (AGAINST) {
      const tree = worktree(AGAINST)
      stops.push(tree.remove)
      trees.push([`gitlab-iap@${AGAINST}`, tree.root])
    }
    for (const [name, root] of trees) {
      const label = (suffix: string) => `${name}${suffix}`.replace(/[^\w@.-]/g, '_')
      const iap: Proc & { url: string } = await startIapProcess(iapConfig(upstreamUrl, idp), profileEnv(label('')), root)
      stops.push(iap.stop)
      targets.push(
        { name: `${name} public`, pid: iap.pid, url: `${iap.url}/public/x`, headers: {} },
        { name: `${name} bearer`, pid: iap.pid, url: `${iap.url}/bench/x`, headers: { authorization: `Bearer ${token}` } },
        { name: `${name} deny`, pid: iap.pid, url: `${iap.url}/bench/x`, headers: { authorization: `Bearer ${outsider}` } },
      )
      const sessions = await startSessionContenders(upstreamUrl, root, (store) => profileEnv(label(`-session-${store}`)))
      stops.push(sessions.stop)
      for (const c of sessions.contenders) {
        targets.push({ name: `${name} ${c.name.replace('iap-', '')}`, pid: sessions.procs[c.name]!.pid, url: `${c.url}${c.path}`, headers: { ...c.headers } })
      }
    }
    if (ONLY) targets.splice(0, targets.length, ...targets.filter((t) => t.name === 'http-proxy-3' || ONLY.test(t.name)))
    for (const target of targets) await load(target, 1)
    const samples = new Map<string, number[]>()
    const served = new Map<string, number>()
    for (let round = 0; round < ROUNDS; round++) {
      for (const target of targets) {
        const before = cpuSeconds(target.pid)
        const requests = await load(target, SECONDS)
        const microseconds = ((cpuSeconds(target.pid) - before) * 1e6) / requests
        samples.set(target.name, [...(samples.get(target.name) ?? []), microseconds])
        served.set(target.name, (served.get(target.name) ?? 0) + requests)
      }
    }
    const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!
    const bareMedian = median(samples.get('http-proxy-3')!)
    console.log(`CPU per request at ${RATE} req/s (median of ${ROUNDS} rounds × ${SECONDS} s; process user + system time)`)
    console.log('| contender | µs/request | × http-proxy-3 | rounds | requests |\n|---|---:|---:|---|---:|')
    for (const [name, values] of samples) {
      console.log(`| ${name} | ${median(values).toFixed(0)} | ${(median(values) / bareMedian).toFixed(2)} | ${values.map((v) => v.toFixed(0)).join(' ')} | ${served.get(name)} |`)
    }
  } finally {
    for (const stop of stops.reverse()) await Promise.resolve(stop()).catch(() => {})
    if (process.env.BENCH_PROFILE === '1' && existsSync(PROFILES)) console.log(`profiles: ${PROFILES}`)
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
