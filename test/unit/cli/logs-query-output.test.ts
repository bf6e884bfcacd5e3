/**
 * `gitlab-iap logs` end to end in-process: the table's times are UTC and say so, `--since` reads a
 * zone-less time as UTC in any local zone, `--stats` groups spellings of one project, path or user,
 * every skipped line is counted on stderr, and an input that fails part-way still shows what it held.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { main } from '../../../src/cli/main.ts'
import { withCapturedIo } from '../../helpers/cli-io.ts'
import { runLogsCommand } from '../../helpers/records.ts'

const dir = mkdtempSync(join(tmpdir(), 'iap-logs-output-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const logs = runLogsCommand

const record = (fields: Record<string, unknown>) =>
  JSON.stringify({
    '@timestamp': '2026-11-28T10:00:00.000Z', 'http.request.method': 'GET', 'url.path': '/x', 'http.response.status_code': 200, 'user.id': null,
    'user.name': null, 'iap.decision.result': 'allow', 'iap.auth.method': 'session', ...fields,
  })

const write = (name: string, lines: string[]) => {
  const file = join(dir, name)
  writeFileSync(file, lines.join('\n') + '\n')
  return file
}

describe('times', () => {
  const saved = process.env.TZ
  afterEach(() => {
    if (saved === undefined) delete process.env.TZ
    else process.env.TZ = saved
  })
  const file = write('times.log', [
    record({ 'http.request.id': 'r1', '@timestamp': '2026-11-29T19:37:45.900Z' }),
    record({ 'http.request.id': 'r2', '@timestamp': '2026-11-29T19:37:46.250Z' }),
    record({ 'http.request.id': 'r3', '@timestamp': '2026-11-29T21:37:47+02:00' }),
  ])
  const ids = (out: string) => out.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as Record<string, unknown>)['http.request.id'])

  it('the table shows UTC and marks it; a time in another zone is shown converted', async () => {
    const table = await logs([file])
    expect(table.stdout.split('\n')[0]).toMatch(/^time {18}status/)
    expect(table.stdout.split('\n').slice(1, 4).map((row) => row.slice(0, 20))).toEqual(['2026-11-29 19:37:45Z', '2026-11-29 19:37:46Z', '2026-11-29 19:37:47Z'])
  })

  it('--since and --until read a time without a zone as UTC in any local zone; a time copied from the table keeps its row', async () => {
    for (const tz of ['UTC', 'America/New_York', 'Asia/Tokyo']) {
      process.env.TZ = tz
      expect(ids((await logs([file, '--since', '2026-11-29 19:37:46', '--output', 'json'])).stdout), tz).toEqual(['r2', 'r3'])
      expect(ids((await logs([file, '--until', '2026-11-29 19:37:46', '--output', 'json'])).stdout), tz).toEqual(['r1', 'r2'])
      expect(ids((await logs([file, '--since', '2026-11-29 19:37:46Z', '--until', '2026-11-29 19:37:46Z', '--output', 'json'])).stdout), tz).toEqual(['r2'])
      expect(ids((await logs([file, '--until', '2026-11-29', '--output', 'json'])).stdout), tz).toEqual(['r1', 'r2', 'r3'])
      expect(ids((await logs([file, '--until', '2026-11-28', '--output', 'json'])).stdout), tz).toEqual([])
    }
  })
})

describe('--stats groups spellings of one resource', () => {
  const file = write('spellings.log', [
    record({ 'iap.gitlab.project': '%C4%B0nternal/vault', 'url.path': '/%C4%B0nternal/vault/-/raw/main/secr%65t.txt', 'user.name': 'A\u030alice@contoso.com' }),
    record({ 'iap.gitlab.project': 'Internal/Vault', 'url.path': '/%C4%B0nternal/vault/-/raw/main/secret.txt', 'user.name': 'Ålice@contoso.com' }),
    record({ 'iap.gitlab.project': 'internal/vault', 'url.path': '/%C4%B0nternal/vault/-/raw/main/Secret.txt', 'user.name': 'ÅLICE@contoso.com' }),
  ])
  const rows = async (field: string) => (await logs([file, '--stats', field, '--output', 'json'])).stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)

  it('project: decoded and case-folded as --project compares it', async () => {
    expect(await rows('project')).toEqual([{ project: '%C4%B0nternal/vault', count: 3 }])
    expect((await logs([file, '--project', 'internal/vault', '--output', 'json'])).stdout.trim().split('\n')).toHaveLength(3)
  })
  it('path: percent-encoding decoded, case kept', async () => {
    expect(await rows('path')).toEqual([
      { path: '/%C4%B0nternal/vault/-/raw/main/secr%65t.txt', count: 2 },
      { path: '/%C4%B0nternal/vault/-/raw/main/Secret.txt', count: 1 },
    ])
  })
  it('user: NFC and case-insensitive, as --user matches', async () => {
    expect(await rows('user')).toEqual([{ user: 'A\u030alice@contoso.com', count: 3 }])
    expect((await logs([file, '--user', 'ålice@contoso.com', '--output', 'json'])).stdout.trim().split('\n')).toHaveLength(3)
  })
})

describe('skipped lines are counted on stderr', () => {
  it('records that are no access record (event.kind state), not JSON, or longer than 4 MiB', async () => {
    const file = write('mixed.log', [
      'not json',
      record({ 'event.kind': 'state', 'url.path': '/hidden' }),
      'x'.repeat(4 * 1024 * 1024 + 1),
      record({ 'http.request.id': 'shown', 'url.path': '/shown' }),
    ])
    const res = await logs([file, '--output', 'json'])
    expect(res.code).toBe(0)
    expect(res.stdout.trim().split('\n')).toEqual([record({ 'http.request.id': 'shown', 'url.path': '/shown' })])
    expect(res.stderr.trim().split('\n')).toEqual([
      'gitlab-iap: 1 line was not an access-log record (not JSON, or cut short) and was skipped',
      'gitlab-iap: 1 line was longer than 4 MiB (longer than any access-log record) and was skipped',
      'gitlab-iap: 1 matching record was not an access record (event.kind "state") and was skipped',
    ])
    // A state record the filters do not select is not counted: it would not have been shown anyway.
    const filtered = await logs([file, '--path', '/shown', '--output', 'json'])
    expect(filtered.stderr).not.toContain('event.kind')
  })

  it('a line just under 4 MiB is still read', async () => {
    const long = record({ 'http.request.id': 'long', 'user_agent.original': 'a'.repeat(4 * 1024 * 1024 - 400) })
    expect(long.length).toBeLessThan(4 * 1024 * 1024)
    const res = await logs([write('long.log', [long]), '--output', 'json'])
    expect(res.stdout).toBe(long + '\n')
    expect(res.stderr).toBe('')
  })
})

describe('--output csv against formula injection', () => {
  it('defuses a formula after a ; or tab inside a value (a ;-separated spreadsheet splits there) and quotes the cell', async () => {
    const file = write('csv-injection.log', [
      record({ 'http.request.id': 'r1', 'url.path': '/a;=1+1', 'user_agent.original': "git/2.40 ;=cmd|' /C calc'!A0" }),
      record({ 'http.request.id': 'r2', 'url.path': '/b', 'user_agent.original': 'curl\t@SUM(1)' }),
      record({ 'http.request.id': 'r3', 'url.path': '/c', 'user_agent.original': '=2+3' }),
    ])
    const out = (await logs([file, '--output', 'csv'])).stdout
    expect(out).toContain(`"/a;'=1+1"`)
    expect(out).toContain(`"git/2.40 ;'=cmd|' /C calc'!A0"`)
    expect(out).toContain(`"curl\t'@SUM(1)"`)
    expect(out).toContain(`'=2+3`)
    // Split at every ; and tab, as such a spreadsheet would: no piece of a record begins a formula.
    const records = out.split('\n').slice(1).join('\n')
    for (const piece of records.split(/[,;\t\n]/)) expect(piece.replace(/^"/, ''), piece).not.toMatch(/^[=+@]/)
  })
})

describe('--user and extra issuers', () => {
  const ADA = '7a1d0c55-0000-4000-8000-000000000001'
  const file = () =>
    write('issuers.log', [
      record({ 'http.request.id': 'r1', 'user.id': ADA, 'user.name': 'ada@contoso.com', 'iap.identity.issuer': 'entra', 'url.path': '/ada' }),
      // A GitLab user whose login is Ada's object id, through the CI issuer.
      record({ 'http.request.id': 'r2', 'user.id': ADA, 'user.name': ADA, 'iap.identity.issuer': 'gitlab-ci', 'iap.auth.method': 'bearer', 'url.path': '/ci/dump' }),
      record({ 'http.request.id': 'r3', 'user.id': 'jdoe', 'user.name': 'jdoe', 'iap.identity.issuer': 'gitlab-ci', 'iap.auth.method': 'bearer', 'url.path': '/ci/jdoe' }),
      // An app-only token: the service principal's object id, and the client id apps rules name.
      record({ 'http.request.id': 'r4', 'user.id': 'sp-oid-1', 'iap.identity.kind': 'app', 'iap.identity.app_id': '22222222-2222-4222-8222-222222222222', 'iap.identity.issuer': 'entra', 'url.path': '/api/v4/deploy' }),
    ])

  it('a qualified name (as in rules, headers and /admin/revoke) finds that issuer\'s user only', async () => {
    const f = file()
    const ids = async (user: string) => (await logs([f, '--user', user, '--output', 'json'])).stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)['http.request.id'])
    expect(await ids('gitlab-ci:jdoe')).toEqual(['r3'])
    expect(await ids(`gitlab-ci:${ADA}`)).toEqual(['r2'])
    // A bare value finds it under any issuer: nothing is hidden, and the table says whose each record is.
    expect(await ids(ADA)).toEqual(['r1', 'r2'])
    // An app by its client id, as rules and the app registration name it.
    expect(await ids('22222222-2222-4222-8222-222222222222')).toEqual(['r4'])
  })

  it('the table and --stats user show qualified names, so an extra issuer\'s user never reads as the Entra user', async () => {
    const f = file()
    const table = (await logs([f, '--user', ADA])).stdout
    expect(table).toContain(`gitlab-ci:${ADA}`)
    expect(table).toContain('ada@contoso.com')
    const stats = (await logs([f, '--stats', 'user', '--output', 'json'])).stdout
    expect(stats).toContain(`gitlab-ci:${ADA}`)
    expect(stats).toContain('gitlab-ci:jdoe')
  })
})

describe('another writer\'s @timestamp', () => {
  const saved = process.env.TZ
  afterEach(() => {
    process.env.TZ = saved
  })

  it.each(['UTC', 'Asia/Tokyo', 'America/New_York'])('without a zone it is UTC in any local zone (%s); with one it keeps it', async (tz) => {
    process.env.TZ = tz
    const file = write(`other-writer-${tz.replace('/', '-')}.log`, [
      record({ 'http.request.id': 'plain', '@timestamp': '2026/11/29 10:00:00' }),
      record({ 'http.request.id': 'offset', '@timestamp': '2026/11/29 10:00:00 +0100' }),
    ])
    const ids = async (...args: string[]) => (await logs([file, ...args, '--output', 'json'])).stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)['http.request.id'])
    expect(await ids('--since', '2026-11-29T10:00:00Z', '--until', '2026-11-29T10:00:00Z')).toEqual(['plain'])
    expect(await ids('--since', '2026-11-29T09:00:00Z', '--until', '2026-11-29T09:00:00Z')).toEqual(['offset'])
  })
})

describe('records --since cannot place', () => {
  it('are left out and counted on stderr, so a total is never short without a word', async () => {
    const file = write('untimed.log', [
      record({ 'http.request.id': 'ok', '@timestamp': '2026-11-28T10:00:00.000Z' }),
      record({ 'http.request.id': 'epoch', '@timestamp': 1764410400000 }),
      record({ 'http.request.id': 'junk', '@timestamp': 'yesterday-ish' }),
    ])
    const res = await logs([file, '--since', '2026-11-01', '--output', 'json'])
    expect(res.stdout.trim().split('\n').map((l) => JSON.parse(l)['http.request.id'])).toEqual(['ok'])
    expect(res.stderr).toContain('2 records have no readable @timestamp, so --since/--until cannot place them: left out')
    // Without a time filter nothing is left out, and nothing is said.
    const all = await logs([file, '--output', 'json'])
    expect(all.stdout.trim().split('\n')).toHaveLength(3)
    expect(all.stderr).toBe('')
  })
})

describe('an input that fails part-way (a cut .gz)', () => {
  const cli = (args: string[]) => withCapturedIo((io) => main(['logs', ...args], io))
  const good = write('good.ndjson', [record({ 'http.request.id': 'g1', 'user.name': 'good@contoso.com' })])
  const whole = gzipSync(Array.from({ length: 20 }, (_, i) => record({ 'http.request.id': `c${i}`, 'user.name': 'cut@contoso.com' })).join('\n') + '\n')
  const cut = join(dir, 'cut.gz')
  writeFileSync(cut, whole.subarray(0, whole.length - 20))
  const error = `gitlab-iap: cannot read ${cut}: corrupt gzip data (unexpected end of file)`

  it('shows what every input held, as zcat does, then says the error and exits non-zero', async () => {
    for (const files of [[good, cut], [cut, good]]) {
      const table = await cli(files)
      expect(table.code).toBe(2)
      expect(table.stdout).toContain('good@contoso.com')
      expect(table.stdout).toContain('cut@contoso.com')
      expect(table.stderr.trim().split('\n')).toEqual([error])
      const stats = await cli([...files, '--stats', 'user', '--output', 'json'])
      expect(stats.code).toBe(2)
      const rows = stats.stdout.trim().split('\n').map((l) => JSON.parse(l) as { user: string; count: number })
      expect(rows.find((r) => r.user === 'good@contoso.com')?.count).toBe(1)
      expect(rows.find((r) => r.user === 'cut@contoso.com')?.count).toBeGreaterThan(0)
      expect(stats.stderr.trim().split('\n')).toEqual([error])
    }
  })
})

describe('JSON lines that are no access record (the proxy\'s own messages, merged in by kubectl logs)', () => {
  const file = write('merged.log', [
    '{"level":30,"time":"2026-11-28T09:59:59.000Z","service":"gitlab-iap","main":"0.0.0.0:8080","msg":"gitlab-iap listening"}',
    record({ 'http.request.id': 'r1', 'user.name': 'ada@contoso.com', 'iap.decision.result': 'deny' }),
    '{"level":40,"time":"2026-11-28T10:00:01.000Z","service":"gitlab-iap","requestId":"r2","code":"IAP_ERR_UPSTREAM_TIMEOUT","msg":"forwarding failed"}',
    record({ 'http.request.id': 'r2', 'user.name': 'ada@contoso.com' }),
    // A nested record from another writer is a record.
    JSON.stringify({ '@timestamp': '2026-11-28T10:00:02.000Z', http: { request: { id: 'r3' } }, url: { path: '/n' }, user: { name: 'bob@contoso.com' }, iap: { decision: { result: 'allow' } } }),
  ])
  const skipped = 'gitlab-iap: 2 lines were not an access-log record (JSON without http.request.id or url.path, such as the proxy\'s own messages from stderr) and were skipped'

  it('are neither rows nor anonymous counts, and are counted on stderr', async () => {
    const table = await logs([file])
    expect(table.stdout.trim().split('\n')).toHaveLength(4)
    expect(table.stdout.split('\n').slice(1).every((row) => row === '' || row.startsWith('2026-11-28'))).toBe(true)
    expect(table.stderr.trim().split('\n')).toEqual([skipped])
    const users = await logs([file, '--stats', 'user', '--output', 'json'])
    expect(users.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([{ user: 'ada@contoso.com', count: 2 }, { user: 'bob@contoso.com', count: 1 }])
    const decisions = await logs([file, '--stats', 'decision', '--output', 'json'])
    expect(decisions.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([{ decision: 'allow', count: 2 }, { decision: 'deny', count: 1 }])
    // Not records --since cannot place either: they are no records at all.
    const since = await logs([file, '--since', '2026-11-01', '--output', 'json'])
    expect(since.stdout.trim().split('\n')).toHaveLength(3)
    expect(since.stderr.trim().split('\n')).toEqual([skipped])
  })

  it('a state record of an earlier version is still counted as one', async () => {
    const res = await logs([write('state.log', ['{"@timestamp":"2026-11-28T10:00:00.000Z","event.kind":"state","event.action":"chain-start"}']), '--output', 'json'])
    expect(res.stdout).toBe('')
    expect(res.stderr.trim()).toBe('gitlab-iap: 1 matching record was not an access record (event.kind "state") and was skipped')
  })
})

describe('--user finds the display name (user.full_name)', () => {
  it('exactly, ignoring case', async () => {
    const file = write('full-name.log', [
      record({ 'http.request.id': 'r1', 'user.name': 'carol@contoso.com', 'user.full_name': 'Carol Contractor' }),
      record({ 'http.request.id': 'r2', 'user.name': 'carl@contoso.com', 'user.full_name': 'Carol Contractor-Smith' }),
    ])
    const ids = async (user: string) => (await logs([file, '--user', user, '--output', 'json'])).stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)['http.request.id'])
    expect(await ids('Carol Contractor')).toEqual(['r1'])
    expect(await ids('carol contractor')).toEqual(['r1'])
    expect(await ids('Carol')).toEqual([])
  })
})

describe('--config', () => {
  const cli = (args: string[]) => withCapturedIo((io) => main(['logs', ...args], io))
  it('given and unreadable is a one-line error whatever the other flags', async () => {
    const file = write('config-flag.log', [record({ 'http.request.id': 'r1' })])
    const missing = join(dir, 'no-such-config.yaml')
    for (const args of [[file, '--config', missing], [file, '--config', missing, '--output', 'json'], [file, '--config', missing, '--group', '6c0bd1d2-0000-4000-8000-000000000001'], [file, '--config', dir]]) {
      const res = await cli(args)
      expect(res.code, args.join(' ')).toBe(1)
      expect(res.stdout).toBe('')
      expect(res.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1)
      expect(res.stderr).toMatch(/^gitlab-iap: cannot read config /)
    }
    const empty = await cli([file, '--config', ''])
    expect(empty.code).toBe(2)
    // A readable one without groups is fine.
    const config = join(dir, 'plain-config.yaml')
    writeFileSync(config, 'server: { publicUrl: "https://gitlab.example.com" }\n')
    expect((await cli([file, '--config', config, '--output', 'json'])).code).toBe(0)
  })
})
