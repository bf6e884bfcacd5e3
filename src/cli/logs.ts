/**
 * `gitlab-iap logs`: query access logs (files, `.gz`, stdin), aggregate with --stats, follow a live
 * file across rotation; `gitlab-iap logs verify`: check the integrity chain.
 */
import { createReadStream, statSync, watch } from 'node:fs'
import { dirname } from 'node:path'
import type { Readable } from 'node:stream'
import { loadAccessLogConfig, resolveConfigPath } from '../config/load.ts'
import { IapError } from '../errors.ts'
import { createChainVerifier } from '../logs/chain.ts'
import { compileQuery, displayName, openLog, orderLogFiles, readLines, STATS_FIELDS, type CompiledQuery, type LogRecord, type QueryFilters } from '../logs/query.ts'
import { rotatedFiles } from '../logs/writer.ts'
import { parseCommandArgs } from './args.ts'
import type { CliIo } from './io.ts'

export const LOGS_HELP = `Usage: gitlab-iap logs [FILE...] [filters] [--output table|json|csv] [--stats FIELD] [--follow]
       gitlab-iap logs verify [FILE...] [--config FILE]

Query access logs: NDJSON files, .gz files, or stdin (- or no FILE). Rotated files are read oldest first.

Filters (all must match):
  --user U            user id, name (UPN) or email
  --group G           group id in iap.identity.groups
  --path GLOB         url.path (* one segment, ** any)
  --project PATH      iap.gitlab.project, or a namespace above it (globs allowed)
  --method M          --status CODE|4xx|5xx      --decision allow|deny|challenge
  --auth session|bearer|basic|none               --rule NAME
  --ip CIDR           --request-id ID
  --since DURATION|ISO8601   --until DURATION|ISO8601   (e.g. --since 24h)
  --limit N           stop after N matching records

Output:
  --output table|json|csv   (default: table; json prints the matching lines as they are)
  --stats FIELD             counts grouped by user, path, status, decision, rule, project or ip
  --follow                  keep reading a live file, across rotation

Examples:
  gitlab-iap logs access.log* --user alice@example.com --since 24h
  gitlab-iap logs access.log --decision deny --stats rule
  gitlab-iap logs access.log* --project platform/infra --path '/**/git-receive-pack' --output csv
  gitlab-iap logs access.log --auth bearer --stats user
`

const VERIFY_HELP = `Usage: gitlab-iap logs verify [FILE...] [--config FILE]

Verify the tamper-evidence chain (iap.chain.seq / iap.chain.mac) of access logs with
accessLog.integrity.key from the config (--config, else $GITLAB_IAP_CONFIG, else ./config.yaml).
Only the accessLog section is read: the variables the rest of the config names need not be set.
Without FILE, verifies accessLog.output and its rotated files (stdin when the output is stdout;
\`-\` reads stdin too). Files are checked in rotation order.
Exit 0 when intact; 1 and the first bad line otherwise.
`

const COLUMNS = [
  { title: 'time', get: (r: LogRecord) => String(r['@timestamp'] ?? '').replace('T', ' ').slice(0, 19), min: 19 },
  { title: 'status', get: (r: LogRecord) => String(r['http.response.status_code'] ?? ''), min: 6 },
  { title: 'method', get: (r: LogRecord) => String(r['http.request.method'] ?? ''), min: 6 },
  { title: 'user', get: (r: LogRecord) => String(r['user.name'] ?? r['user.id'] ?? '-'), min: 8 },
  { title: 'auth', get: (r: LogRecord) => String(r['iap.auth.method'] ?? ''), min: 7 },
  { title: 'decision', get: (r: LogRecord) => String(r['iap.decision.result'] ?? ''), min: 9 },
  { title: 'rule', get: (r: LogRecord) => String(r['iap.decision.rule'] ?? '-'), min: 6 },
  { title: 'route', get: (r: LogRecord) => String(r['iap.gitlab.route'] ?? ''), min: 5 },
  { title: 'ip', get: (r: LogRecord) => String(r['client.ip'] ?? ''), min: 9 },
  { title: 'path', get: (r: LogRecord) => String(r['url.path'] ?? ''), min: 12 },
] as const

const csvCell = (value: string) => (/[",\n\r]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value)

function usage(message: string): never {
  throw new IapError('IAP_ERR_CLI_USAGE', message)
}

export async function runLogs(argv: string[], io: CliIo): Promise<number> {
  if (argv[0] === 'verify') return runVerify(argv.slice(1), io)
  const { values, positionals } = parseCommandArgs(
    argv,
    {
      user: { type: 'string' }, group: { type: 'string' }, path: { type: 'string' }, project: { type: 'string' },
      method: { type: 'string' }, status: { type: 'string' }, decision: { type: 'string' }, auth: { type: 'string' },
      rule: { type: 'string' }, ip: { type: 'string' }, 'request-id': { type: 'string' }, since: { type: 'string' },
      until: { type: 'string' }, limit: { type: 'string' }, output: { type: 'string' }, stats: { type: 'string' },
      follow: { type: 'boolean', short: 'f' },
    },
    true,
  )
  if (values.help) {
    io.stdout.write(LOGS_HELP)
    return 0
  }
  const output = values.output ?? 'table'
  if (!['table', 'json', 'csv'].includes(output)) usage(`--output: "${output}" must be table, json or csv`)
  const limit = values.limit === undefined ? Infinity : Number(values.limit)
  if (!Number.isInteger(limit) && limit !== Infinity) usage(`--limit: "${values.limit}" must be a whole number`)
  if (values.stats !== undefined && !(values.stats in STATS_FIELDS)) usage(`--stats: "${values.stats}" must be one of ${Object.keys(STATS_FIELDS).join(', ')}`)
  const filters: QueryFilters = { ...values, requestId: values['request-id'] } as QueryFilters
  let query: CompiledQuery
  try {
    query = compileQuery(filters)
  } catch (err) {
    usage((err as Error).message)
  }
  const files = positionals.length === 0 ? ['-'] : orderLogFiles(positionals)
  if (values.follow && (files.length !== 1 || files[0] === '-')) usage('--follow takes exactly one log file')
  for (const file of files) if (file !== '-') checkReadable(file)

  const stats = values.stats !== undefined ? new Map<string, number>() : undefined
  const statsField = values.stats !== undefined ? STATS_FIELDS[values.stats]! : ''
  const table = output === 'table' && !stats ? createTable(io) : undefined
  if (output === 'csv' && !stats) io.stdout.write(COLUMNS.map((c) => c.title).join(',') + '\n')
  let matched = 0

  const onLine = (line: string): boolean => {
    if (line === '' || !query.maybe(line)) return true
    let record: LogRecord
    try {
      record = JSON.parse(line) as LogRecord
    } catch {
      return true // not a record (a truncated last line, a foreign line): skipped
    }
    if (record['event.kind'] === 'state' || !query.matches(record)) return true
    matched++
    if (stats) {
      const raw = values.stats === 'user' ? (record['user.name'] ?? record['user.id']) : record[statsField]
      const key = raw === null || raw === undefined ? '-' : String(raw)
      stats.set(key, (stats.get(key) ?? 0) + 1)
    } else if (output === 'json') io.stdout.write(line + '\n')
    else if (output === 'csv') io.stdout.write(COLUMNS.map((c) => csvCell(c.get(record))).join(',') + '\n')
    else table!.add(record)
    return matched < limit
  }

  outer: for (const file of files) {
    for await (const line of readLines(file === '-' ? (io.stdin as Readable) : openLog(file))) {
      if (!onLine(line)) break outer
    }
  }
  if (values.follow && matched < limit) {
    table?.flush()
    await follow(files[0]!, onLine, io)
  }
  if (stats) writeStats(stats, output, values.stats!, io)
  else table?.flush()
  return 0
}

function checkReadable(file: string): void {
  try {
    statSync(file)
  } catch (err) {
    usage(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
  }
}

function writeStats(stats: Map<string, number>, output: string, field: string, io: CliIo): void {
  const rows = [...stats].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
  if (output === 'json') {
    for (const [value, count] of rows) io.stdout.write(JSON.stringify({ [field]: value, count }) + '\n')
    return
  }
  if (output === 'csv') {
    io.stdout.write(`${field},count\n`)
    for (const [value, count] of rows) io.stdout.write(`${csvCell(value)},${count}\n`)
    return
  }
  const width = Math.max(field.length, ...rows.map(([v]) => v.length))
  io.stdout.write(`${'count'.padStart(8)}  ${field}\n`)
  for (const [value, count] of rows) io.stdout.write(`${String(count).padStart(8)}  ${value.padEnd(width)}\n`)
}

/** A table that buffers a screenful to size its columns, then streams; never wider than the terminal. */
function createTable(io: CliIo) {
  const terminal = io.stdout.columns && io.stdout.columns > 40 ? io.stdout.columns : undefined
  let widths: number[] | undefined
  const buffered: string[][] = []
  const print = (cells: string[]) => {
    const w = widths!
    const line = cells.map((cell, i) => (i === cells.length - 1 ? cell : (cell.length > w[i]! ? cell.slice(0, w[i]! - 1) + '…' : cell).padEnd(w[i]!))).join('  ')
    io.stdout.write((terminal && line.length > terminal ? line.slice(0, terminal - 1) + '…' : line) + '\n')
  }
  const decideWidths = () => {
    widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...buffered.map((row) => row[i]!.length), 1))
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
      const cells = COLUMNS.map((c) => c.get(record))
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

/** Reads new lines as a live file grows; reopens from the start when it is rotated (replaced or truncated). */
async function follow(file: string, onLine: (line: string) => boolean, io: CliIo): Promise<void> {
  let position = statSync(file).size
  let inode = statSync(file).ino
  let rest = ''
  let reading = false
  let stop: () => void = () => {}
  const done = new Promise<void>((resolve) => (stop = resolve))
  const readMore = async () => {
    if (reading) return
    reading = true
    try {
      let st
      try {
        st = statSync(file)
      } catch {
        return // between rename and reopen: the next event picks the new file up
      }
      if (st.ino !== inode || st.size < position) {
        inode = st.ino
        position = 0
        rest = ''
      }
      if (st.size <= position) return
      const stream = createReadStream(file, { start: position, end: st.size - 1, encoding: 'utf8' })
      for await (const chunk of stream as AsyncIterable<string>) {
        const text = rest + chunk
        const lines = text.split('\n')
        rest = lines.pop() ?? ''
        for (const line of lines) if (!onLine(line)) return stop()
      }
      position = st.size
    } finally {
      reading = false
    }
  }
  const watcher = watch(dirname(file), () => void readMore())
  const timer = setInterval(() => void readMore(), 500)
  const end = () => stop()
  process.once('SIGINT', end)
  process.once('SIGTERM', end)
  io.stdout.on?.('error', end)
  await done
  watcher.close()
  clearInterval(timer)
}

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
  for (const file of files) {
    let n = 0
    for await (const line of readLines(file === '-' ? (io.stdin as Readable) : openLog(file))) {
      n++
      if (!verifier.push(line, displayName(file), n)) break
    }
    if (!verifier.verdict().ok) break
  }
  const verdict = verifier.verdict()
  if (verdict.ok) {
    io.stdout.write(`ok: ${verdict.lines} lines in ${files.length} file${files.length === 1 ? '' : 's'}, chain intact\n`)
    return 0
  }
  const p = verdict.problem!
  throw new IapError('IAP_ERR_LOG_CHAIN_BROKEN', `chain broken at ${p.source}:${p.line}: line ${p.kind} (${p.detail})`)
}
