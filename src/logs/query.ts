/**
 * The access-log query engine behind `gitlab-iap logs`: filters compiled once into a cheap text
 * pre-check (run on every raw line) and an exact check (run on the few lines that get parsed),
 * line streams over files, `.gz` and stdin in constant memory, and rotation-aware ordering.
 */
import { createReadStream } from 'node:fs'
import { basename } from 'node:path'
import type { Readable } from 'node:stream'
import { createGunzip } from 'node:zlib'
import { parseDurationMs } from '../config/units.ts'
import { createCidrSet, type CidrSet } from '../net/cidr.ts'
import { compileGlob } from '../policy/glob.ts'

export type LogRecord = Record<string, unknown>

export interface QueryFilters {
  readonly user?: string
  readonly group?: string
  readonly path?: string
  readonly project?: string
  readonly method?: string
  readonly status?: string
  readonly decision?: string
  readonly auth?: string
  readonly rule?: string
  readonly ip?: string
  readonly requestId?: string
  readonly since?: string
  readonly until?: string
}

export interface CompiledQuery {
  /** Cheap test on the raw line; false means the line certainly does not match. */
  maybe(line: string): boolean
  /** Exact test on the parsed record. */
  matches(record: LogRecord): boolean
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** `24h` → now - 24 h; an ISO 8601 date as is. Throws a usage error naming the flag. */
export function parseTimeBound(flag: string, text: string, now = Date.now()): number {
  const ms = parseDurationMs(text)
  if (ms !== undefined) return now - ms
  const parsed = Date.parse(text)
  if (Number.isNaN(parsed)) throw new TypeError(`--${flag}: "${text}" is neither a duration (24h, 30m) nor an ISO 8601 time`)
  return parsed
}

export function compileQuery(filters: QueryFilters, now = Date.now()): CompiledQuery {
  const pre: RegExp[] = []
  const exact: ((r: LogRecord) => boolean)[] = []
  const str = (r: LogRecord, field: string) => (typeof r[field] === 'string' ? (r[field] as string) : undefined)

  if (filters.user !== undefined) {
    const wanted = filters.user.toLowerCase()
    pre.push(new RegExp(escapeRegExp(JSON.stringify(filters.user).slice(1, -1)), 'i'))
    exact.push((r) => ['user.id', 'user.name', 'user.email'].some((f) => str(r, f)?.toLowerCase() === wanted))
  }
  if (filters.group !== undefined) {
    const wanted = filters.group.toLowerCase()
    pre.push(new RegExp(escapeRegExp(filters.group), 'i'))
    exact.push((r) => Array.isArray(r['iap.identity.groups']) && (r['iap.identity.groups'] as unknown[]).some((g) => typeof g === 'string' && g.toLowerCase() === wanted))
  }
  if (filters.path !== undefined) {
    const glob = compileGlob(filters.path)
    exact.push((r) => glob.test((str(r, 'url.path') ?? '').toLowerCase()))
  }
  if (filters.project !== undefined) {
    const glob = compileGlob(filters.project.replace(/^\/+|\/+$/g, ''))
    exact.push((r) => {
      const project = str(r, 'iap.gitlab.project')?.toLowerCase()
      if (!project) return false
      const parts = project.split('/')
      for (let i = 1; i <= parts.length; i++) if (glob.test(parts.slice(0, i).join('/'))) return true
      return false
    })
  }
  if (filters.method !== undefined) {
    const method = filters.method.toUpperCase()
    pre.push(new RegExp(`"http\\.request\\.method":"${escapeRegExp(method)}"`))
    exact.push((r) => r['http.request.method'] === method)
  }
  if (filters.status !== undefined) {
    const s = filters.status.toLowerCase()
    const cls = /^([1-5])xx$/.exec(s)
    if (cls) {
      pre.push(new RegExp(`"http\\.response\\.status_code":${cls[1]}\\d\\d[,}]`))
      exact.push((r) => Math.floor(Number(r['http.response.status_code']) / 100) === Number(cls[1]))
    } else if (/^\d{3}$/.test(s)) {
      pre.push(new RegExp(`"http\\.response\\.status_code":${s}[,}]`))
      exact.push((r) => r['http.response.status_code'] === Number(s))
    } else throw new TypeError(`--status: "${filters.status}" must be a code (403) or a class (4xx)`)
  }
  const fieldEquals = (flag: string, field: string, value: string | undefined, allowed?: readonly string[]) => {
    if (value === undefined) return
    if (allowed && !allowed.includes(value)) throw new TypeError(`--${flag}: "${value}" must be one of ${allowed.join(', ')}`)
    pre.push(new RegExp(`"${escapeRegExp(field)}":${escapeRegExp(JSON.stringify(value))}`))
    exact.push((r) => r[field] === value)
  }
  fieldEquals('decision', 'iap.decision.result', filters.decision, ['allow', 'deny', 'challenge'])
  fieldEquals('auth', 'iap.auth.method', filters.auth, ['session', 'bearer', 'basic', 'none'])
  fieldEquals('rule', 'iap.decision.rule', filters.rule)
  fieldEquals('request-id', 'http.request.id', filters.requestId)
  if (filters.ip !== undefined) {
    let cidr: CidrSet
    try {
      cidr = createCidrSet([filters.ip])
    } catch (err) {
      throw new TypeError(`--ip: ${(err as Error).message}`)
    }
    exact.push((r) => cidr.has(str(r, 'client.ip') ?? ''))
  }
  if (filters.since !== undefined || filters.until !== undefined) {
    const since = filters.since !== undefined ? parseTimeBound('since', filters.since, now) : -Infinity
    const until = filters.until !== undefined ? parseTimeBound('until', filters.until, now) : Infinity
    exact.push((r) => {
      const t = Date.parse(str(r, '@timestamp') ?? '')
      return t >= since && t <= until
    })
  }
  return {
    maybe: (line) => {
      for (const re of pre) if (!re.test(line)) return false
      return true
    },
    matches: (record) => {
      for (const test of exact) if (!test(record)) return false
      return true
    },
  }
}

/** Streams lines (without newlines) from a readable, in constant memory. */
export async function* readLines(stream: Readable): AsyncGenerator<string> {
  let rest = ''
  stream.setEncoding('utf8')
  for await (const chunk of stream as AsyncIterable<string>) {
    const text = rest + chunk
    let start = 0
    let nl = text.indexOf('\n', start)
    while (nl !== -1) {
      yield text.slice(start, nl)
      start = nl + 1
      nl = text.indexOf('\n', start)
    }
    rest = text.slice(start)
  }
  if (rest !== '') yield rest
}

/** Opens a log file for reading, decompressing `.gz`. */
export function openLog(path: string): Readable {
  const raw = createReadStream(path, { highWaterMark: 1 << 20 })
  return path.endsWith('.gz') ? raw.pipe(createGunzip()) : raw
}

const ROTATED = /^(.*)\.(\d{8}T\d{9}Z-\d{3})(\.gz)?$/

/**
 * Chronological order for a set of log files: for each log, its rotated files (oldest first) before
 * the live file, whatever order the shell expanded `access.log*` in.
 */
export function orderLogFiles(files: readonly string[]): string[] {
  const key = (file: string) => {
    const m = ROTATED.exec(file)
    return m ? `${m[1]}\u0000${m[2]}` : `${file}\u0001`
  }
  return [...files].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
}

export const STATS_FIELDS: Record<string, string> = {
  user: 'user.name',
  path: 'url.path',
  status: 'http.response.status_code',
  decision: 'iap.decision.result',
  rule: 'iap.decision.rule',
  project: 'iap.gitlab.project',
  ip: 'client.ip',
}

export const displayName = (file: string) => (file === '-' ? 'stdin' : basename(file))
