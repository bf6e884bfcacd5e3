/**
 * `gitlab-iap logs`: query access logs (files, `.gz`, stdin), aggregate with --stats, follow a live
 * file across rotation; `gitlab-iap logs verify`: check the integrity chain.
 */
import { closeSync, existsSync, fstatSync, openSync, readSync, statSync, watch } from 'node:fs'
import { dirname } from 'node:path'
import type { Readable } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'
import { loadAccessLogConfig, loadGroupAliases, resolveConfigPath } from '../config/load.ts'
import { IapError } from '../errors.ts'
import { createChainVerifier } from '../logs/chain.ts'
import {
  compileQuery, createLineSplitter, displayName, isForeignRecord, openLog, orderLogFiles, OVERLONG_LINE, parseRecord, qualifiedUser, readLogLines, recordTime, STATS_FIELDS, statsKey,
  type CompiledQuery, type LogRecord, type QueryFilters,
} from '../logs/query.ts'
import { rotatedFiles } from '../logs/writer.ts'
import { parseCommandArgs } from './args.ts'
import { fail, type CliIo } from './io.ts'

export const LOGS_HELP = `Usage: gitlab-iap logs [FILE...] [filters] [--output table|json|csv] [--stats FIELD] [--follow]
       gitlab-iap logs verify [FILE...] [--config FILE]

Query access logs: NDJSON files, gzip files, or stdin (- or no FILE); gzip data is recognised by its
content, on stdin too. Records may be flat ("user.name") or nested ({"user":{"name":...}}) ECS.
Files are read in the order given, except that a log's rotated files (NAME.<timestamp>-<n>[.gz])
are read oldest first and before NAME, so access.log* reads in time order.

Filters (a record must match every filter given; a filter given more than once matches any of
its values: --user a --user b is a or b):
  --user U            user id, name (UPN), display name, email or app client id (case-insensitive,
                      any Unicode form; an extra issuer's user as gitlab-ci:jdoe finds that issuer's only)
  --group G           group id in iap.identity.groups, or a group alias from the config
                      (--config FILE, else $GITLAB_IAP_CONFIG, else ./config.yaml if present)
  --path GLOB         url.path (* one segment, ** any), compared as the policy reads paths:
                      percent-encoding decoded, case ignored, a format suffix (.json) dropped
  --project PATH      iap.gitlab.project, or a namespace above it (globs allowed; decoded,
                      case ignored, as the policy reads projects)
  --method M          (any case)     --status CODE|4xx|5xx
  --decision allow|deny|challenge    --auth session|bearer|basic|none     (any case)
  --rule NAME         --ip CIDR      --request-id ID
  --since DURATION|ISO8601   --until DURATION|ISO8601   (e.g. --since 24h; once each)
                      a time without a zone is UTC, as the table shows it; --until covers
                      all of what it names (--until 2026-11-28: through that UTC day's end)
  --limit N           stop after N matching records (0 or more)

Output:
  --output table|json|csv   table (default) for people, times in UTC (Z); json prints the
                            matching lines as they are; csv has a header row and full fields: @timestamp (ISO 8601),
                            request id, client ip, user id/name/email, identity kind, auth,
                            method, path, query, status, decision, rule, reason, route, project,
                            duration (ns), bytes, outcome, user agent, groups, error code. Cells
                            starting with = + - @ are prefixed with ' (spreadsheet formulas).
  --stats FIELD             counts grouped by user, path, status, decision, rule, project or ip
                            (user and project ignore case, path and project percent-encoding;
                            a group shows the first spelling seen)
  --follow                  keep reading a live file, across rotation, or stdin as it
                            arrives (kubectl logs -f ... | gitlab-iap logs --follow);
                            table columns widen as needed, no cell is cut

Examples:
  gitlab-iap logs access.log* --user alice@example.com --since 24h
  gitlab-iap logs access.log --decision deny --stats rule
  gitlab-iap logs access.log* --project platform/infra --path '/**/git-receive-pack' --output csv
  gitlab-iap logs access.log --auth bearer --stats user
  gitlab-iap logs access.log --group engineering --group admins --config config.yaml
`

const VERIFY_HELP = `Usage: gitlab-iap logs verify [FILE...] [--config FILE]

Verify the tamper-evidence chain (iap.chain.seq / iap.chain.mac) of access logs with
accessLog.integrity.key from the config (--config, else $GITLAB_IAP_CONFIG, else ./config.yaml).
Only the accessLog section is read: the variables the rest of the config names need not be set.
Without FILE, verifies accessLog.output and its rotated files (stdin when the output is stdout;
\`-\` reads stdin too). Files are checked in rotation order.
A log may begin mid-chain only at a rotated file's first record (older files deleted); a chain may
begin again only at a process's first record, once per process. When there are several chains
(one per process), each is listed; a line a killed process left half-written is reported.
JSON lines that are no access record (the proxy's own messages, which kubectl logs merges in) are
passed over and counted. A file without records is named in a warning.
Exit 0 when intact; 1 and the first bad line otherwise, or when no input holds a record at all.
`

/** Table columns; `follow` is the width a column starts at when following (no rows to size it by yet). */
const COLUMNS = [
  { title: 'time', get: (r: LogRecord) => tableTime(r['@timestamp']), min: 20, follow: 20 },
  { title: 'status', get: (r: LogRecord) => String(r['http.response.status_code'] ?? ''), min: 6, follow: 6 },
  { title: 'method', get: (r: LogRecord) => String(r['http.request.method'] ?? ''), min: 6, follow: 7 },
  { title: 'user', get: (r: LogRecord) => String(qualifiedUser(r, 'user.name') ?? qualifiedUser(r, 'user.id') ?? '-'), min: 8, follow: 24 },
  { title: 'auth', get: (r: LogRecord) => String(r['iap.auth.method'] ?? ''), min: 7, follow: 7 },
  { title: 'decision', get: (r: LogRecord) => String(r['iap.decision.result'] ?? ''), min: 9, follow: 9 },
  { title: 'rule', get: (r: LogRecord) => String(r['iap.decision.rule'] ?? '-'), min: 6, follow: 16 },
  { title: 'route', get: (r: LogRecord) => String(r['iap.gitlab.route'] ?? ''), min: 5, follow: 7 },
  { title: 'ip', get: (r: LogRecord) => String(r['client.ip'] ?? ''), min: 9, follow: 15 },
  { title: 'path', get: (r: LogRecord) => String(r['url.path'] ?? ''), min: 12, follow: 0 },
] as const

/**
 * `2026-11-28 10:00:00Z`: the time in UTC, to the second, marked as UTC (what `--since` and `--until`
 * read back); a record's time in another zone is shown converted. An unreadable time is shown as written.
 */
function tableTime(value: unknown): string {
  const t = recordTime(value)
  if (Number.isNaN(t)) return String(value ?? '').replace('T', ' ').slice(0, 19)
  return new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z')
}

/** CSV is for machines: full values under their ECS names, what a security review needs first. */
const CSV_FIELDS = [
  '@timestamp', 'http.request.id', 'client.ip', 'user.id', 'user.name', 'user.email', 'iap.identity.kind', 'iap.auth.method',
  'http.request.method', 'url.path', 'url.query', 'http.response.status_code', 'iap.decision.result', 'iap.decision.rule',
  'iap.decision.reason', 'iap.gitlab.route', 'iap.gitlab.project', 'event.duration', 'http.response.bytes', 'event.outcome',
  'user_agent.original', 'iap.identity.groups', 'error.code',
] as const

/**
 * One CSV cell. Strings come from clients (paths, user agents): one starting with = + - @ (or a tab
 * or CR) would run as a formula in a spreadsheet, so it gets a leading ' (OWASP "CSV injection"). So
 * does such a start after a `;` or tab inside the value, and the cell is then quoted: a spreadsheet whose
 * list separator is `;` (German, French, Dutch locales) or a tab-separated import would split it there.
 */
function csvCell(value: unknown): string {
  if (value === null || value === undefined) return ''
  if (Array.isArray(value)) return csvCell(value.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(' '))
  if (typeof value === 'object') return csvCell(JSON.stringify(value))
  const text = typeof value === 'string' ? value.replace(/(^|[;\t])(?=[=+\-@\t\r])/g, "$1'") : String(value)
  return /[",;\t\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text
}

/** Options that take a value; the filters among them may be repeated. */
const FILTER_OPTIONS = ['user', 'group', 'path', 'project', 'method', 'status', 'decision', 'auth', 'rule', 'ip', 'request-id'] as const
const SINGLE_OPTIONS = ['since', 'until', 'limit', 'output', 'stats', 'config'] as const

/** An entity id as it appears in iap.identity.groups: an Entra object id, or an issuer-qualified value. */
const GROUP_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$|^[a-z0-9][a-z0-9-]*:./i

function usage(message: string): never {
  throw new IapError('IAP_ERR_CLI_USAGE', message)
}

/**
 * `--limit -1` would be read as the flag `-1` (node's "argument is ambiguous"): a value that looks
 * like a negative number is joined to its option, so the option's own check names the problem.
 */
function joinNegativeValues(argv: string[], valued: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') return [...out, ...argv.slice(i)]
    const next = argv[i + 1]
    if (next !== undefined && /^-\d/.test(next) && arg.startsWith('--') && valued.includes(arg.slice(2))) {
      out.push(`${arg}=${next}`)
      i++
    } else out.push(arg)
  }
  return out
}

export async function runLogs(argv: string[], io: CliIo): Promise<number> {
  if (argv[0] === 'verify') return runVerify(argv.slice(1), io)
  const { values, positionals } = parseCommandArgs(
    joinNegativeValues(argv, [...FILTER_OPTIONS, ...SINGLE_OPTIONS]),
    {
      ...Object.fromEntries(FILTER_OPTIONS.map((name) => [name, { type: 'string', multiple: true }] as const)),
      ...Object.fromEntries(SINGLE_OPTIONS.map((name) => [name, { type: 'string', multiple: true }] as const)),
      follow: { type: 'boolean', short: 'f' },
    } as Record<(typeof FILTER_OPTIONS)[number] | (typeof SINGLE_OPTIONS)[number], { type: 'string'; multiple: true }> & { follow: { type: 'boolean'; short: 'f' } },
    true,
  )
  if (values.help) {
    io.stdout.write(LOGS_HELP)
    return 0
  }
  const single = (name: (typeof SINGLE_OPTIONS)[number]): string | undefined => {
    const given = values[name]
    if (given && given.length > 1) usage(`--${name} may be given only once`)
    return given?.[0]
  }
  const output = single('output') ?? 'table'
  if (!['table', 'json', 'csv'].includes(output)) usage(`--output: "${output}" must be table, json or csv`)
  const limitText = single('limit')
  if (limitText !== undefined && !/^\d+$/.test(limitText)) usage(`--limit: "${limitText}" must be a non-negative integer`)
  const limit = limitText === undefined ? Infinity : Number(limitText)
  const statsName = single('stats')
  if (statsName !== undefined && !(statsName in STATS_FIELDS)) usage(`--stats: "${statsName}" must be one of ${Object.keys(STATS_FIELDS).join(', ')}`)
  const configFlag = single('config')
  // A config named on the command line is read even when no --group needs it: a typo must not pass unnoticed.
  const aliases = configFlag !== undefined ? loadGroupAliases(resolveConfigPath(configFlag, io.env), io.env) : undefined
  const groups = values.group && resolveGroups(values.group, configFlag, aliases, io)
  const filters: QueryFilters = {
    user: values.user, group: groups, path: values.path, project: values.project, method: values.method, status: values.status,
    decision: values.decision, auth: values.auth, rule: values.rule, ip: values.ip, requestId: values['request-id'], since: single('since'), until: single('until'),
  }
  let query: CompiledQuery
  try {
    query = compileQuery(filters)
  } catch (err) {
    usage((err as Error).message)
  }
  const files = positionals.length === 0 ? ['-'] : orderLogFiles(positionals)
  if (values.follow && files.length !== 1) usage('--follow takes one log file (or stdin)')
  for (const file of files) if (file !== '-') checkReadable(file)
  // A live file is followed from its first byte on (stdin simply keeps arriving); compressed files are not live.
  const followFile = values.follow && files[0] !== '-' ? files[0]! : undefined
  if (followFile?.endsWith('.gz')) usage('--follow reads a live, uncompressed log file')

  const stats = statsName !== undefined ? new Map<string, { value: unknown; count: number }>() : undefined
  const statsField = statsName !== undefined ? STATS_FIELDS[statsName]! : ''
  const table = output === 'table' && !stats ? createTable(io, values.follow === true) : undefined
  if (output === 'csv' && !stats) io.stdout.write(CSV_FIELDS.join(',') + '\n')
  let matched = 0
  // Lines skipped, counted and said, so a total is never short without a word: lines that passed the text
  // prefilter but are no record (not JSON, cut short), lines too long to be one (never held), and
  // records matching the filters that are no access record (`event.kind: state`, chain starts of old logs).
  let unreadable = 0
  // JSON lines that are no access record: the proxy's own messages, merged in by `kubectl logs`.
  let foreign = 0
  let overlong = 0
  let notAccess = 0
  // Records --since/--until cannot place (no readable @timestamp): left out, and said.
  let untimed = 0

  const onLine = (line: string): boolean => {
    if (line === OVERLONG_LINE) {
      overlong++
      return true
    }
    if (line === '' || !query.maybe(line)) return true
    const record = parseRecord(line)
    if (!record) {
      unreadable++
      return true
    }
    if (isForeignRecord(record)) {
      foreign++
      return true
    }
    if (!query.matches(record)) {
      if (query.untimed(record)) untimed++
      return true
    }
    if (record['event.kind'] === 'state') {
      notAccess++
      return true
    }
    if (matched >= limit) return false
    matched++
    if (stats) {
      const raw = statsName === 'user' ? (qualifiedUser(record, 'user.name') ?? qualifiedUser(record, 'user.id')) : record[statsField]
      const value = raw === undefined ? null : raw
      const key = value === null ? '-' : statsKey(statsName!, value)
      const entry = stats.get(key)
      if (entry) entry.count++
      else stats.set(key, { value, count: 1 })
    } else if (output === 'json') io.stdout.write(line + '\n')
    else if (output === 'csv') io.stdout.write(CSV_FIELDS.map((f) => csvCell(record[f])).join(',') + '\n')
    else table!.add(record)
    return matched < limit
  }

  // Inputs that failed part-way (a corrupt or cut .gz): as zcat does, what they and the other inputs
  // held is shown first, and the errors are said at the end with a non-zero exit.
  const failures: string[] = []
  if (followFile !== undefined) await follow(followFile, onLine, () => table?.flush(), io)
  else {
    outer: for (const file of files) {
      if (matched >= limit) break
      const input = file === '-' ? (io.stdin as Readable) : openLog(file)
      try {
        for await (const line of readLogLines(input, file === '-' ? 'stdin' : file)) {
          if (!onLine(line)) break outer
        }
      } catch (err) {
        if (!(err instanceof IapError) || err.code !== 'IAP_ERR_CLI_USAGE') throw err
        failures.push(err.message)
      }
    }
  }
  if (stats) writeStats(stats, output, statsName!, io)
  else table?.flush()
  const was = (n: number) => (n === 1 ? 'was' : 'were')
  if (unreadable > 0) io.stderr.write(`gitlab-iap: ${unreadable} line${unreadable === 1 ? ' was' : 's were'} not an access-log record (not JSON, or cut short) and ${was(unreadable)} skipped\n`)
  if (foreign > 0) io.stderr.write(`gitlab-iap: ${foreignLines(foreign)} and ${was(foreign)} skipped\n`)
  if (overlong > 0) io.stderr.write(`gitlab-iap: ${overlong} line${overlong === 1 ? ' was' : 's were'} longer than 4 MiB (longer than any access-log record) and ${was(overlong)} skipped\n`)
  if (untimed > 0) io.stderr.write(`gitlab-iap: ${untimed} record${untimed === 1 ? ' has' : 's have'} no readable @timestamp, so --since/--until cannot place ${untimed === 1 ? 'it' : 'them'}: left out\n`)
  if (notAccess > 0) io.stderr.write(`gitlab-iap: ${notAccess} matching record${notAccess === 1 ? ' was' : 's were'} not an access record (event.kind "state") and ${was(notAccess)} skipped\n`)
  for (const message of failures) fail(io, message)
  return failures.length > 0 ? 2 : 0
}

/** What `logs` and `logs verify` say of the JSON lines they pass over. */
const foreignLines = (n: number) =>
  `${n} line${n === 1 ? ' was' : 's were'} not an access-log record (JSON without http.request.id or url.path, such as the proxy's own messages from stderr)`

/**
 * `--group` values as ids: aliases resolved from the config given (`given`, already read), or found
 * where `serve` looks (a config found, not named, is optional: never an error when absent or unreadable).
 * A value that is neither an id nor a known alias is kept as is, with a hint on stderr.
 */
function resolveGroups(groups: readonly string[], configFlag: string | undefined, given: Record<string, string> | undefined, io: CliIo): string[] {
  if (groups.every((g) => GROUP_ID.test(g))) return [...groups]
  const path = configFlag ?? resolveConfigPath(undefined, io.env)
  let aliases = given
  if (configFlag === undefined && existsSync(path)) {
    try {
      aliases = loadGroupAliases(path, io.env)
    } catch {
      // optional: see above
    }
  }
  return groups.map((group) => {
    if (GROUP_ID.test(group)) return group
    const id = aliases?.[group] ?? Object.entries(aliases ?? {}).find(([alias]) => alias.toLowerCase() === group.toLowerCase())?.[1]
    if (id !== undefined) return id
    const where = aliases ? `not an alias in ${path}` : 'aliases are resolved only with a config (--config FILE)'
    io.stderr.write(`gitlab-iap: hint: --group "${group}" is not a group id (a GUID, or issuer:group) and ${where}; records hold group ids\n`)
    return group
  })
}

function checkReadable(file: string): void {
  let isDirectory: boolean
  try {
    isDirectory = statSync(file).isDirectory()
  } catch (err) {
    usage(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
  }
  if (isDirectory) usage(`cannot read ${file}: is a directory`)
}

const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/
const CONTROLS = new RegExp(CONTROL.source, 'g')

/**
 * Text for a terminal: control characters (escape sequences, newlines) from a record become `\xNN`,
 * so a crafted or foreign log can neither forge table rows nor drive the terminal.
 */
function printable(text: string): string {
  return CONTROL.test(text) ? text.replace(CONTROLS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`) : text
}

/** Counts, most first; in JSON each value keeps its type (a status is a number; a missing value is null). A caseless group shows its first spelling. */
function writeStats(stats: Map<string, { value: unknown; count: number }>, output: string, field: string, io: CliIo): void {
  const rows = [...stats].sort((a, b) => b[1].count - a[1].count || (a[0] < b[0] ? -1 : 1))
  if (output === 'json') {
    for (const [, { value, count }] of rows) io.stdout.write(JSON.stringify({ [field]: value, count }) + '\n')
    return
  }
  if (output === 'csv') {
    io.stdout.write(`${field},count\n`)
    for (const [key, { value, count }] of rows) io.stdout.write(`${value === null ? '' : csvCell(typeof value === 'string' ? value : key)},${count}\n`)
    return
  }
  // The value as first seen (a caseless group's key is folded to lower case).
  const shown = rows.map(([key, { value, count }]) => [printable(typeof value === 'string' ? value : key), count] as const)
  const width = Math.max(field.length, ...shown.map(([key]) => key.length))
  io.stdout.write(`${'count'.padStart(8)}  ${field}\n`)
  for (const [key, count] of shown) io.stdout.write(`${String(count).padStart(8)}  ${key.padEnd(width)}\n`)
}

/**
 * A table that buffers a screenful to size its columns, then streams; never wider than the terminal.
 * When following, rows arrive one by one over hours: columns start at readable widths and widen
 * for a longer value instead of cutting it, and a row is never cut to the terminal.
 */
function createTable(io: CliIo, following: boolean) {
  const terminal = !following && io.stdout.columns && io.stdout.columns > 40 ? io.stdout.columns : undefined
  let widths: number[] | undefined
  const buffered: string[][] = []
  const print = (cells: string[]) => {
    const w = widths!
    if (following) cells.forEach((cell, i) => (w[i] = Math.max(w[i]!, cell.length)))
    const line = cells.map((cell, i) => (i === cells.length - 1 ? cell : (cell.length > w[i]! ? cell.slice(0, w[i]! - 1) + '…' : cell).padEnd(w[i]!))).join('  ')
    io.stdout.write((terminal && line.length > terminal ? line.slice(0, terminal - 1) + '…' : line) + '\n')
  }
  const decideWidths = () => {
    widths = COLUMNS.map((c, i) => Math.max(c.title.length, following ? c.follow : 1, ...buffered.map((row) => row[i]!.length)))
    if (terminal) {
      // Shrink the widest flexible columns (user, rule, path) until the row fits.
      const total = () => widths!.reduce((a, b) => a + b, 0) + 2 * (widths!.length - 1)
      for (const i of [9, 3, 6, 8]) {
        while (total() > terminal && widths[i]! > COLUMNS[i]!.min) widths[i]!--
      }
    }
    print(COLUMNS.map((c) => c.title))
    for (const row of buffered) print(row)
    buffered.length = 0
  }
  return {
    add(record: LogRecord) {
      const cells = COLUMNS.map((c) => printable(c.get(record)))
      // Following starts at readable widths at once: a live pipe may not bring 200 rows for a long while.
      if (!widths && following) decideWidths()
      if (widths) print(cells)
      else {
        buffered.push(cells)
        if (buffered.length >= 200) decideWidths()
      }
    },
    flush() {
      if (!widths) decideWidths()
    },
  }
}

/**
 * `tail -F`: reads a live file from its first byte, then what is appended. Across a rotation (the
 * file renamed and a new one created at the path) the old file is read to its end through the
 * descriptor already open, then the new one from its start; a file truncated in place is read again
 * from its start. A line is handed on only once its newline has arrived.
 */
async function follow(file: string, onLine: (line: string) => boolean, caughtUp: () => void, io: CliIo): Promise<void> {
  let fd = openSync(file, 'r')
  let inode = fstatSync(fd).ino
  let position = 0
  let splitter = createLineSplitter()
  let decoder = new StringDecoder('utf8')
  const buffer = Buffer.allocUnsafe(64 * 1024)
  let stop: () => void = () => {}
  const done = new Promise<void>((resolve) => (stop = resolve))
  let stopped = false
  const finish = () => {
    stopped = true
    stop()
  }
  /** Reads the open file to its end; false once the consumer wants no more lines. */
  const drain = (): boolean => {
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, position)
      if (n === 0) return true
      position += n
      // A line is handed on once its newline has arrived; one longer than any record is never held.
      for (const line of splitter.lines(decoder.write(buffer.subarray(0, n)))) if (!onLine(line)) return false
    }
  }
  let failed = false
  const poll = (): void => {
    if (stopped) return
    try {
      if (!drain()) return finish()
      if (fstatSync(fd).size < position) {
        // Truncated in place (copytruncate): what is there now is new.
        position = 0
        splitter = createLineSplitter()
        decoder = new StringDecoder('utf8')
        if (!drain()) return finish()
      }
      let current
      try {
        current = statSync(file)
      } catch {
        return // renamed, the new file not created yet: the next poll finds it
      }
      if (current.ino === inode) return
      // Rotated: whatever reached the old file before the rename, then the new file from its start.
      if (!drain()) return finish()
      const next = openSync(file, 'r')
      closeSync(fd)
      fd = next
      inode = fstatSync(fd).ino
      position = 0
      splitter = createLineSplitter()
      decoder = new StringDecoder('utf8')
      if (!drain()) return finish()
      failed = false
    } catch (err) {
      // A read that fails (the file replaced mid-way, a permission change) is retried on the next poll, said once.
      if (!failed) io.stderr.write(`gitlab-iap: following ${file}: ${(err as Error).message}; retrying\n`)
      failed = true
    }
  }
  poll()
  caughtUp()
  if (!stopped) {
    const watcher = watch(dirname(file), () => poll())
    const timer = setInterval(poll, 500)
    const end = () => finish()
    process.once('SIGINT', end)
    process.once('SIGTERM', end)
    io.stdout.on?.('error', end)
    await done
    watcher.close()
    clearInterval(timer)
    process.off('SIGINT', end)
    process.off('SIGTERM', end)
  }
  closeSync(fd)
}

/** Ends as a sealed line does (`"iap.chain.mac":"<64 hex>"}`): such a line always goes to the verifier. */
const isSealedShape = (line: string) => line.startsWith('"iap.chain.mac":"', line.length - 83)

async function runVerify(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' } }, true)
  if (values.help) {
    io.stdout.write(VERIFY_HELP)
    return 0
  }
  const accessLog = loadAccessLogConfig(resolveConfigPath(values.config, io.env), io.env)
  const key = accessLog.integrity?.key
  if (!key) usage('accessLog.integrity.key is not set in the config: there is no chain to verify')
  let files = positionals
  if (files.length === 0) {
    // No FILE: the configured log file and its rotations, or stdin when the log goes to stdout.
    files = accessLog.output === 'stdout' ? ['-'] : [...rotatedFiles(accessLog.output), accessLog.output]
  }
  files = orderLogFiles(files)
  for (const file of files) if (file !== '-') checkReadable(file)
  const verifier = createChainVerifier(key)
  let foreign = 0
  let empty = 0
  for (const file of files) {
    let n = 0
    let records = 0
    for await (const line of readLogLines(file === '-' ? (io.stdin as Readable) : openLog(file), file === '-' ? 'stdin' : file)) {
      n++
      if (line === '') continue
      // Only an unsealed line may be passed over, and only one that no query reads as a record: removing or
      // rewriting a sealed record that way still leaves a gap in the chain.
      if (!isSealedShape(line)) {
        const record = parseRecord(line)
        if (record && isForeignRecord(record)) {
          foreign++
          continue
        }
      }
      records++
      if (!verifier.push(line, displayName(file), n)) break
    }
    if (!verifier.verdict().ok) break
    if (records === 0) {
      empty++
      io.stderr.write(`warning: ${displayName(file)} has no records\n`)
    }
  }
  const verdict = verifier.verdict()
  // Nothing verified is no evidence: a log emptied, or the wrong file or stream given, must not read as intact.
  if (verdict.ok && empty === files.length) {
    return fail(io, `nothing to verify: ${files.length === 1 ? `${displayName(files[0]!)} has no records` : `none of the ${files.length} inputs has a record`}`, 1)
  }
  if (verdict.ok) {
    io.stdout.write(`ok: ${verdict.lines} lines in ${files.length} file${files.length === 1 ? '' : 's'}, chain intact\n`)
    if (foreign > 0) io.stdout.write(`  ${foreignLines(foreign)} and ${foreign === 1 ? 'was' : 'were'} passed over\n`)
    // Several chains (one per process on stdout, or a restart on a fresh file): say where each begins.
    if (verdict.starts.length > 1) {
      for (const start of verdict.starts) io.stdout.write(`  chain from ${start.source}:${start.line} (sequence ${start.seq}${start.instance ? `, process ${printable(start.instance)}` : ''})\n`)
    }
    for (const cut of verdict.cut) io.stdout.write(`  ${cut.source}:${cut.line}: half-written by a process that died there; the next one continued the chain\n`)
    return 0
  }
  const p = verdict.problem!
  throw new IapError('IAP_ERR_LOG_CHAIN_BROKEN', `chain broken at ${p.source}:${p.line}: line ${p.kind} (${p.detail})`)
}
