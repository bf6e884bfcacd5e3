/**
 * The access-log query engine behind `gitlab-iap logs`: filters compiled once into a cheap text
 * pre-check (run on every raw line) and an exact check (run on the few lines that get parsed),
 * records read flat or nested, line streams over files, `.gz` and stdin in constant memory, and
 * rotation-aware ordering.
 */
import { createReadStream } from 'node:fs'
import { basename } from 'node:path'
import { pipeline, type Readable } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'
import { createGunzip } from 'node:zlib'
import { parseDurationMs } from '../config/units.ts'
import { IapError } from '../errors.ts'
import { foldCase, percentDecode } from '../http/canonical-path.ts'
import { createCidrSet, type CidrSet } from '../net/cidr.ts'
import { compileGlob } from '../policy/glob.ts'
import { compareRotated, parseRotatedName } from './rotated-name.ts'
import { pathCandidates, projectCandidates } from '../policy/index.ts'

export type LogRecord = Record<string, unknown>

/** One value, or several (a repeated flag): a record matches a filter when it matches any of its values. */
export type FilterValue = string | readonly string[]

export interface QueryFilters {
  readonly user?: FilterValue
  readonly group?: FilterValue
  readonly path?: FilterValue
  readonly project?: FilterValue
  readonly method?: FilterValue
  readonly status?: FilterValue
  readonly decision?: FilterValue
  readonly auth?: FilterValue
  readonly rule?: FilterValue
  readonly ip?: FilterValue
  readonly requestId?: FilterValue
  readonly since?: string
  readonly until?: string
}

export interface CompiledQuery {
  /** Cheap test on the raw line; false means the line certainly does not match. */
  maybe(line: string): boolean
  /** Exact test on the parsed (flattened) record. */
  matches(record: LogRecord): boolean
  /** True for a record `--since`/`--until` cannot place (no readable `@timestamp`): it never matches them. */
  untimed(record: LogRecord): boolean
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
const valuesOf = (value: FilterValue | undefined): readonly string[] => (value === undefined ? [] : typeof value === 'string' ? [value] : value)

/**
 * An ISO 8601 date or date-time: `2026-11-28`, `2026-11-28T10:00`, `2026-11-28 10:00:00.5`, each with an
 * optional zone (`Z`, `+02:00`, `+0200`, `+02`) on a time. A time without a zone is UTC, as the table prints it.
 */
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/i

/**
 * `text` as an ISO 8601 time: its start in ms since the epoch and the length of the last unit written
 * (a day for a date alone, a minute, a second, or the fraction's last digit), or undefined when it is
 * not one. Never depends on the local time zone.
 */
export function parseIsoTime(text: string): { start: number; unit: number } | undefined {
  const m = ISO_TIME.exec(text)
  if (!m) return undefined
  const [, y, mo, d, h, mi, s, frac, zone] = m
  const year = Number(y), month = Number(mo), day = Number(d)
  const hour = h === undefined ? 0 : Number(h), minute = mi === undefined ? 0 : Number(mi), second = s === undefined ? 0 : Number(s)
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined
  let start = Date.UTC(year, month - 1, day, hour, minute, second, frac === undefined ? 0 : Number(frac.slice(0, 3).padEnd(3, '0')))
  if (new Date(start).getUTCDate() !== day) return undefined // 2026-02-30
  if (zone !== undefined && zone.toUpperCase() !== 'Z') {
    const oh = Number(zone.slice(1, 3))
    const om = zone.length > 3 ? Number(zone.slice(-2)) : 0
    if (oh > 23 || om > 59) return undefined
    start -= (zone[0] === '-' ? -1 : 1) * (oh * 60 + om) * 60_000
  }
  const unit = h === undefined ? 86_400_000 : s === undefined ? 60_000 : frac === undefined ? 1000 : Math.max(1, 10 ** (3 - frac.length))
  return { start, unit }
}

/** A zone at the end of another writer's time: an offset, `Z`, or a zone name (`GMT`, `UTC`, `CET`). */
const TRAILING_ZONE = /(?:[+-]\d{2}:?\d{2}|\b[A-Za-z]{1,5})\s*$/

/**
 * A record's `@timestamp` in ms: ISO 8601 as `parseIsoTime` reads it (no zone: UTC); NaN when unreadable.
 * Another writer's format gets the best reading there is, and without a zone that is UTC too, never the
 * local time of whoever runs the query.
 */
export function recordTime(value: unknown): number {
  if (typeof value !== 'string') return NaN
  const iso = parseIsoTime(value)
  if (iso) return iso.start
  const asUtc = TRAILING_ZONE.test(value) ? NaN : Date.parse(`${value} UTC`)
  return Number.isNaN(asUtc) ? Date.parse(value) : asUtc
}

/**
 * `24h` → now - 24 h; an ISO 8601 time (`parseIsoTime`: without a zone it is UTC). `--until` covers the
 * whole of what it names, at the precision written: `--until 2026-11-28` is through the end of that
 * UTC day, `--until 2026-11-28T10:00` through 10:00:59.999, so a time copied from the table (whole
 * seconds) keeps its row. Throws a usage error naming the flag.
 */
export function parseTimeBound(flag: string, text: string, now = Date.now()): number {
  // A bare number is seconds, as in every duration, but `2025` or `20261125` reads as a year or a date
  // (ISO 8601's reduced and basic forms) to anyone typing it: refused rather than read the other way.
  const bare = text.trim()
  if (/^(?:19[7-9]\d|2[01]\d\d)$|^(?:19[7-9]\d|2[01]\d\d)(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])$/.test(bare)) {
    throw new TypeError(`--${flag}: "${bare}" could be seconds or a date: write ${bare}s for seconds, or the date as ${bare.length === 4 ? `${bare}-01-01` : `${bare.slice(0, 4)}-${bare.slice(4, 6)}-${bare.slice(6)}`}`)
  }
  const ms = parseDurationMs(text)
  if (ms !== undefined) return now - ms
  const iso = parseIsoTime(text.trim())
  if (!iso) throw new TypeError(`--${flag}: "${text}" is neither a duration (24h, 30m) nor an ISO 8601 time (2026-11-28, 2026-11-28T10:00:00Z; without a zone, UTC)`)
  return flag === 'until' ? iso.start + iso.unit - 1 : iso.start
}

/**
 * A value whose JSON spelling is unique apart from `\u` escapes: no `"`, `\`, `/` (may be `\/`) or
 * control character. Only such values may be looked for as text: lines holding `\u` skip the text
 * test (see `maybe`), so the text test is a necessary condition for every valid JSON spelling.
 */
const hasOneSpelling = (value: string) => !/["\\/\u0000-\u001f]/.test(value)
const NON_ASCII = /[^\u0000-\u007f]/
const NFC_SENSITIVE = /[^\u0000-\u007f]|[;`]/

/**
 * String equality for a field, and the text a line must then contain. `caseless` compares with
 * Unicode case folding on both sides (the same folding as the text test, so that test never
 * rejects a line the exact test would accept).
 */
function stringMatcher(values: readonly string[], caseless: boolean): { pre?: RegExp; test: (value: unknown) => boolean } {
  const alternatives = values.map(escapeRegExp).join('|')
  const pre = values.every(hasOneSpelling) ? new RegExp(`"(?:${alternatives})"`, caseless ? 'iu' : '') : undefined
  if (caseless) {
    const whole = new RegExp(`^(?:${alternatives})$`, 'iu')
    return { pre, test: (value) => typeof value === 'string' && whole.test(value) }
  }
  const wanted = new Set(values)
  return { pre, test: (value) => typeof value === 'string' && wanted.has(value) }
}

/** A status code as the record holds it: a number, or a string of digits from a foreign writer. */
const statusOf = (value: unknown) => (typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN)

export function compileQuery(filters: QueryFilters, now = Date.now()): CompiledQuery {
  const pre: { test(line: string): boolean }[] = []
  const exact: ((r: LogRecord) => boolean)[] = []
  const str = (r: LogRecord, field: string) => (typeof r[field] === 'string' ? (r[field] as string) : undefined)
  const addStrings = (fields: readonly string[], values: readonly string[], caseless: boolean) => {
    if (values.length === 0) return
    const m = stringMatcher(values, caseless)
    if (m.pre) pre.push(m.pre)
    exact.push(fields.length === 1 ? (r) => m.test(r[fields[0]!]) : (r) => fields.some((f) => m.test(r[f])))
  }
  const enumValues = (flag: string, value: FilterValue | undefined, allowed: readonly string[]) =>
    valuesOf(value).map((v) => {
      const lower = v.toLowerCase()
      if (!allowed.includes(lower)) throw new TypeError(`--${flag}: "${v}" must be one of ${allowed.join(', ')}`)
      return lower
    })

  // User names compare in NFC as well: `José` typed precomposed finds `Jose\u0301` and the other way round.
  const users = valuesOf(filters.user).map((u) => u.normalize('NFC'))
  if (users.length > 0) {
    const m = stringMatcher(users, true)
    // An extra issuer's user is logged unqualified beside its issuer (`"user.name":"jdoe"`, `"iap.identity.issuer":"gitlab-ci"`):
    // the line test looks for what follows the issuer's name too.
    const p = stringMatcher(users.flatMap((u) => (u.includes(':') ? [u, u.slice(u.indexOf(':') + 1)] : [u])), true)
    if (p.pre) {
      const re = p.pre
      // A line that fails as written may hold the name in another normalization form; NFC of a whole
      // line holds `"NFC(name)"` (a `"` never composes with its neighbours), so testing it stays a
      // necessary condition. Not needed for a name in ASCII without ";" or "`": no other character
      // normalizes to one of its characters but U+212A (Kelvin sign), which the caseless test reads as k.
      if (users.some((u) => NFC_SENSITIVE.test(u))) pre.push({ test: (line) => re.test(line) || (NON_ASCII.test(line) && re.test(line.normalize('NFC'))) })
      else pre.push(re)
    }
    const test = (value: unknown) => typeof value === 'string' && m.test(value.normalize('NFC'))
    // Qualified (`gitlab-ci:jdoe`) finds that issuer's user only; a bare value finds it under any issuer, and the
    // table and `--stats user` show whose it is (`gitlab-ci:<oid>` is not the Entra user with that object id).
    // An app-only identity is found by its client id too: what `apps` rules and the app registration name.
    // `user.name` is the UPN; the display name people know a user by is `user.full_name`.
    exact.push((r) => test(r['user.id']) || test(r['user.name']) || test(r['user.email']) || test(r['user.full_name']) || test(qualifiedUser(r, 'user.id')) || test(qualifiedUser(r, 'user.name')) || test(r['iap.identity.app_id']))
  }

  const groups = valuesOf(filters.group)
  if (groups.length > 0) {
    const m = stringMatcher(groups, true)
    if (m.pre) pre.push(m.pre)
    exact.push((r) => Array.isArray(r['iap.identity.groups']) && (r['iap.identity.groups'] as unknown[]).some(m.test))
  }
  // Paths and projects are compared in the form the policy reads them (`pathCandidates`,
  // `projectCandidates`: percent-decoded, case-folded as GitLab resolves names), on the record's side as
  // on the pattern's (`compileGlob`): `secr%65t.txt`, `café.txt` and `%C4%B0nternal/vault` are each found
  // under any spelling of them, so no spelling of a request hides it from "who fetched X".
  const globOf = (flag: string, pattern: string, form: 'path' | 'project') => {
    try {
      return compileGlob(pattern, form)
    } catch (err) {
      throw new TypeError(`--${flag}: ${(err as Error).message}`)
    }
  }
  const paths = valuesOf(filters.path).map((p) => {
    // Paths start with "/": a pattern without one would silently match nothing.
    if (!p.startsWith('/') && !p.startsWith('*')) throw new Error(`--path: "${p}" must start with / (a glob over url.path, e.g. /${p}/**)`)
    return globOf('path', p, 'path')
  })
  if (paths.length > 0) {
    exact.push((r) => pathCandidates(str(r, 'url.path') ?? '').some((path) => paths.some((glob) => glob.test(path))))
  }
  const projects = valuesOf(filters.project).map((p) => globOf('project', p.replace(/^\/+|\/+$/g, ''), 'project'))
  if (projects.length > 0) {
    exact.push((r) => {
      const project = str(r, 'iap.gitlab.project')
      // The project and each namespace above it: `--project group` finds group/sub/project.
      return !!project && projectCandidates(project).some((candidate) => projects.some((glob) => glob.test(candidate)))
    })
  }
  addStrings(['http.request.method'], valuesOf(filters.method).map((m) => m.toUpperCase()), true)

  const statuses = valuesOf(filters.status).map((s) => {
    const cls = /^([1-5])xx$/i.exec(s)
    if (cls) return { text: `${cls[1]}\\d\\d`, test: (n: number) => Math.floor(n / 100) === Number(cls[1]) }
    if (/^\d{3}$/.test(s)) return { text: s, test: (n: number) => n === Number(s) }
    throw new TypeError(`--status: "${s}" must be a code (403) or a class (4xx)`)
  })
  if (statuses.length > 0) {
    // Keyed on the last name segment, so flat ("http.response.status_code") and nested
    // ({"response":{"status_code"}}) records both pass, with any whitespace around ':'. A number may
    // also be spelled 403.0 or 4.03e2: any number with a fraction or exponent passes to the exact test.
    pre.push(new RegExp(`status_code"\\s*:\\s*(?:"?(?:${statuses.map((s) => s.text).join('|')})(?![\\d.eE])|-?\\d+[.eE])`))
    exact.push((r) => {
      const n = statusOf(r['http.response.status_code'])
      return statuses.some((s) => s.test(n))
    })
  }
  addStrings(['iap.decision.result'], enumValues('decision', filters.decision, ['allow', 'deny', 'challenge']), true)
  addStrings(['iap.auth.method'], enumValues('auth', filters.auth, ['session', 'bearer', 'basic', 'none']), true)
  addStrings(['iap.decision.rule'], valuesOf(filters.rule), false)
  addStrings(['http.request.id'], valuesOf(filters.requestId), false)

  const ips = valuesOf(filters.ip)
  if (ips.length > 0) {
    let cidr: CidrSet
    try {
      cidr = createCidrSet([...ips])
    } catch (err) {
      throw new TypeError(`--ip: ${(err as Error).message}`)
    }
    exact.push((r) => cidr.has(str(r, 'client.ip') ?? ''))
  }
  const timed = filters.since !== undefined || filters.until !== undefined
  if (timed) {
    const since = filters.since !== undefined ? parseTimeBound('since', filters.since, now) : -Infinity
    const until = filters.until !== undefined ? parseTimeBound('until', filters.until, now) : Infinity
    exact.push((r) => {
      const t = recordTime(r['@timestamp'])
      return t >= since && t <= until
    })
  }
  return {
    // A line spelled with `\u` escapes may hold any text in any form: it goes to the exact test.
    // Checked only once a text test fails, so lines that pass pay nothing for it.
    maybe: (line) => {
      for (const re of pre) if (!re.test(line)) return line.includes('\\u')
      return true
    },
    matches: (record) => {
      for (const test of exact) if (!test(record)) return false
      return true
    },
    untimed: (record) => timed && Number.isNaN(recordTime(record['@timestamp'])),
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value)

/**
 * A line as a record, or undefined when it is not a JSON object. ECS may be written nested
 * (`{"http":{"request":{"method":"GET"}}}`) as well as flat: nested objects are read under their
 * dotted names. A flat record (what `serve` writes) has no `{` after its first, so it is returned as
 * parsed, without a walk.
 */
export function parseRecord(line: string): LogRecord | undefined {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return undefined // not a record (a truncated last line, a foreign line)
  }
  if (!isObject(value)) return undefined
  return line.indexOf('{', line.indexOf('{') + 1) === -1 ? value : flattenRecord(value)
}

/**
 * True for a JSON line no access-log writer wrote: the proxy's own messages (pino, on stderr) that
 * `kubectl logs` merges with the access log on stdout. Every access record has `http.request.id` and
 * `url.path`; the state records earlier versions wrote have neither, and are told apart by `event.kind`.
 */
export function isForeignRecord(record: LogRecord): boolean {
  return record['http.request.id'] === undefined && record['url.path'] === undefined && record['event.kind'] !== 'state'
}

/** `{"a":{"b":1},"c":[{}]}` → `{"a.b":1,"c":[{}]}`; arrays are values. The record itself when nothing is nested. */
export function flattenRecord(record: Record<string, unknown>): LogRecord {
  if (!Object.values(record).some(isObject)) return record
  const flat: LogRecord = {}
  const walk = (object: Record<string, unknown>, prefix: string) => {
    for (const [key, value] of Object.entries(object)) {
      if (isObject(value)) walk(value, `${prefix}${key}.`)
      else flat[`${prefix}${key}`] = value
    }
  }
  walk(record, '')
  return flat
}

/**
 * The longest line read, in characters: well above any record `serve` writes (user agents and queries
 * are cut to 1 KiB and 4 KiB; the longest is a user's groups from Graph, at most 50 pages of 999 ids,
 * about 2 MB), and what keeps one enormous line (a corrupt or hostile file) from taking the memory.
 */
export const MAX_LINE_LENGTH = 4 * 1024 * 1024

/**
 * What the line readers give for a line longer than their limit, in its place (so line numbers stay
 * right), without ever holding the line. A lone surrogate: no line decoded from UTF-8 can equal it.
 */
export const OVERLONG_LINE = '\ud800 line longer than 4 MiB'

/**
 * Splits text, given chunk by chunk, into lines (without newlines), holding at most `max` characters
 * of a line: a longer one is dropped as it arrives and stands as `OVERLONG_LINE`.
 */
export function createLineSplitter(max = MAX_LINE_LENGTH): { lines(text: string): string[]; end(): string | undefined } {
  let rest = ''
  let skipping = false
  return {
    lines(text) {
      const out: string[] = []
      let start = 0
      let nl = text.indexOf('\n')
      while (nl !== -1) {
        if (skipping || rest.length + nl - start > max) out.push(OVERLONG_LINE)
        else out.push(rest === '' ? text.slice(start, nl) : rest + text.slice(start, nl))
        skipping = false
        rest = ''
        start = nl + 1
        nl = text.indexOf('\n', start)
      }
      if (!skipping && start < text.length) {
        if (rest.length + text.length - start > max) {
          skipping = true
          rest = ''
        } else rest += text.slice(start)
      }
      return out
    },
    end() {
      const last = skipping ? OVERLONG_LINE : rest === '' ? undefined : rest
      skipping = false
      rest = ''
      return last
    },
  }
}

/** Streams lines (without newlines) from a readable, in constant memory (see `createLineSplitter`). */
export async function* readLines(stream: Readable, max = MAX_LINE_LENGTH): AsyncGenerator<string> {
  yield* splitLines(stream as AsyncIterable<Buffer | string>, max)
}

async function* splitLines(chunks: AsyncIterable<Buffer | string>, max: number): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8')
  const splitter = createLineSplitter(max)
  for await (const chunk of chunks) {
    for (const line of splitter.lines(typeof chunk === 'string' ? chunk : decoder.write(chunk))) yield line
  }
  for (const line of splitter.lines(decoder.end())) yield line
  const last = splitter.end()
  if (last !== undefined) yield last
}

/** Opens a log file for reading, its first `bytes` only when given (see `readLogLines` for decompression). */
export function openLog(path: string, bytes?: number): Readable {
  return createReadStream(path, { highWaterMark: 1 << 20, ...(bytes !== undefined && bytes > 0 && { end: bytes - 1 }) })
}

const GZIP_MAGIC = [0x1f, 0x8b]

/**
 * The lines of a log, whatever its name: gzip data is recognised by its magic bytes (so `.gz`
 * piped to stdin works too). A read or decompression failure is one error naming the source.
 * A line longer than `max` comes as `OVERLONG_LINE`.
 */
export async function* readLogLines(stream: Readable, source: string, max = MAX_LINE_LENGTH): AsyncGenerator<string> {
  const fail = (reason: string, cause?: unknown): never => {
    throw new IapError('IAP_ERR_CLI_USAGE', `cannot read ${source}: ${reason}`, { cause })
  }
  const describe = (err: unknown) => {
    const e = err as NodeJS.ErrnoException
    if (e.code === 'EISDIR') return 'is a directory'
    if (e.code === 'ENOENT') return 'no such file'
    if (e.code === 'EACCES') return 'permission denied'
    if (e.code?.startsWith('Z_') || e.code === 'ERR_ZLIB_INITIALIZATION_FAILED') return `corrupt gzip data (${e.message})`
    return e.message
  }
  try {
    const input = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>
    // Enough of the start to see the magic bytes (a pipe may deliver one byte at a time).
    const head: Buffer[] = []
    let headBytes = 0
    let ended = false
    while (headBytes < GZIP_MAGIC.length) {
      const next = await input.next()
      if (next.done) {
        ended = true
        break
      }
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value
      head.push(chunk)
      headBytes += chunk.length
    }
    const start = Buffer.concat(head)
    const gzipped = start.length >= 2 && start[0] === GZIP_MAGIC[0] && start[1] === GZIP_MAGIC[1]
    if (!gzipped && source.endsWith('.gz') && start.length > 0) fail('not gzip data')
    async function* rest(): AsyncGenerator<Buffer> {
      if (start.length > 0) yield start
      if (ended) return
      for (;;) {
        const next = await input.next()
        if (next.done) return
        yield typeof next.value === 'string' ? Buffer.from(next.value) : next.value
      }
    }
    if (!gzipped) {
      yield* splitLines(rest(), max)
      return
    }
    const gunzip = createGunzip()
    pipeline(rest(), gunzip, () => {}) // an error ends `gunzip` with it, and so the loop below
    yield* splitLines(gunzip as AsyncIterable<Buffer>, max)
  } catch (err) {
    if (err instanceof IapError) throw err
    fail(describe(err), err)
  } finally {
    stream.destroy() // also when the reader stops early (--limit): stdin must not keep the process alive
  }
}

/**
 * Reading order for log files: as given, except that a log's rotated files
 * (`NAME.<UTC timestamp>-<n>[.gz]`) are read oldest first and before NAME itself, wherever they
 * were given, so `access.log*` reads in time order whatever order the shell expanded it in.
 * Each log (NAME and its rotated files) keeps the place of the first of its files given.
 */
export function orderLogFiles(files: readonly string[]): string[] {
  const logs = new Map<string, { stamp: string; counter: number; file: string }[]>()
  for (const file of files) {
    const rotated = parseRotatedName(file)
    const name = rotated ? rotated.log : file
    const group = logs.get(name) ?? []
    // The live file sorts last: '~' is above every digit of a timestamp.
    group.push({ stamp: rotated ? rotated.stamp : '~', counter: rotated ? rotated.counter : 0, file })
    logs.set(name, group)
  }
  return [...logs.values()].flatMap((group) => group.sort(compareRotated).map((entry) => entry.file))
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

/**
 * The group a `--stats` value counts under; a group shows the spelling it was first seen with.
 * `project` as `--project` compares it (percent-decoded, case-folded: GitLab resolves namespaces
 * case-insensitively, so `Secret-Group/vault` and `%53ecret-group/Vault` are one row); `user` ignoring
 * case, in NFC, as `--user` matches (usernames and Entra UPNs are case-insensitive); `path`
 * percent-decoded (except `%2F`) but keeping case: past the namespace (a file in a repository) case
 * makes a different resource.
 */
/**
 * A record's user id or name as the policy, the identity headers and `/admin/revoke` name it: plain for
 * Entra, `<issuer>:<value>` for an extra issuer, so a GitLab login shaped like an Entra object id is
 * never taken for that Entra user.
 */
export function qualifiedUser(record: LogRecord, field: 'user.id' | 'user.name'): unknown {
  const value = record[field]
  const issuer = record['iap.identity.issuer']
  return typeof value === 'string' && typeof issuer === 'string' && issuer !== '' && issuer !== 'entra' ? `${issuer}:${value}` : value
}

export function statsKey(field: string, value: unknown): string {
  const text = String(value)
  if (typeof value !== 'string') return text
  if (field === 'project') return projectForm(text)
  if (field === 'user') return text.normalize('NFC').toLowerCase()
  if (field === 'path') return percentDecode(text, true) ?? text
  return text
}

/** A project path as `projectCandidates` reads it, whole: decoded, case-folded, without empty segments. */
function projectForm(project: string): string {
  let decoded = project
  if (project.includes('%')) {
    try {
      decoded = decodeURIComponent(project)
    } catch {
      // kept as is, as the policy keeps it
    }
  }
  return foldCase(decoded).split('/').filter(Boolean).join('/')
}

export const displayName = (file: string) => (file === '-' ? 'stdin' : basename(file))
