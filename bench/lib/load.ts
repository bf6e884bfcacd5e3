/**
 * Load generators. autocannon (whole milliseconds) measures throughput at a fixed concurrency;
 * wrk with a pacing Lua script measures latency percentiles in microseconds at a fixed rate.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import autocannon from 'autocannon'

const run = promisify(execFile)

export interface Target {
  readonly url: string
  readonly path: string
  readonly headers?: Readonly<Record<string, string>>
  readonly expectStatus: number
}

export interface Throughput {
  readonly rps: number
  readonly errors: number
  readonly non2xx: number
  readonly unexpected: number
}

export async function throughput(target: Target, options: { connections: number; seconds: number }): Promise<Throughput> {
  const statuses = new Map<number, number>()
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      { url: target.url + target.path, connections: options.connections, duration: options.seconds, headers: { ...target.headers }, pipelining: 1 },
      (err, res) => (err ? reject(err) : resolve(res)),
    )
    instance.on('response', (_client: unknown, status: number) => statuses.set(status, (statuses.get(status) ?? 0) + 1))
  })
  const unexpected = [...statuses].filter(([status]) => status !== target.expectStatus).reduce((sum, [, n]) => sum + n, 0)
  return { rps: result.requests.average, errors: result.errors + result.timeouts, non2xx: result.non2xx, unexpected }
}

export interface Latency {
  readonly rate: number
  readonly p50us: number
  readonly p99us: number
  readonly p999us: number
  readonly requests: number
  readonly errors: number
}

const PACED = `
local rate = tonumber(os.getenv("WRK_RATE"))
local conns = tonumber(os.getenv("WRK_CONNS"))
init = function(args) end
delay = function() return 1000 * conns / rate end
request = function() return wrk.format(nil, os.getenv("WRK_PATH")) end
done = function(summary, latency, requests)
  io.write(string.format('{"p50":%d,"p99":%d,"p999":%d,"requests":%d,"errors":%d}\\n',
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
`

let script: string | undefined

/** Latency at a fixed moderate rate: `connections` connections, each pacing its requests. */
export async function latency(target: Target, options: { rate: number; seconds: number; connections?: number }): Promise<Latency> {
  script ??= (() => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-wrk-'))
    writeFileSync(join(dir, 'paced.lua'), PACED)
    return join(dir, 'paced.lua')
  })()
  const connections = options.connections ?? 10
  const headerArgs = Object.entries(target.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`])
  const { stdout } = await run('wrk', ['-t1', `-c${connections}`, `-d${options.seconds}s`, '--latency', '-s', script, ...headerArgs, target.url], {
    env: { ...process.env, WRK_RATE: String(options.rate), WRK_CONNS: String(connections), WRK_PATH: target.path },
    maxBuffer: 1 << 20,
  })
  const line = stdout.split('\n').find((l) => l.startsWith('{"p50"'))
  if (!line) throw new Error(`wrk printed no summary: ${stdout.slice(-500)}`)
  const parsed = JSON.parse(line) as { p50: number; p99: number; p999: number; requests: number; errors: number }
  return { rate: parsed.requests / options.seconds, p50us: parsed.p50, p99us: parsed.p99, p999us: parsed.p999, requests: parsed.requests, errors: parsed.errors }
}
