import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { z } from 'zod'
import { startJwksServer, TEST_AUDIENCE, TEST_CLIENT, TEST_TENANT, type JwksServer } from '../../helpers/jwks-server.ts'
import { BIN, ROOT, baseConfig, startServe, writeConfig, type ServeHandle } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'

const KEY = 'log-integrity-key-0123456789abcdef'
const GROUP = '6c0bd1d2-0000-4000-8000-000000000002'

let dir: string
let idp: JwksServer
let upstream: Upstream
let proxy: ServeHandle

function config(logFile: string, rotateBytes = 100 * 1024 * 1024): Record<string, unknown> {
  return baseConfig(upstream.url, {
    entra: { tenantId: TEST_TENANT, clientId: TEST_CLIENT, authority: idp.authority, audiences: [TEST_AUDIENCE] },
    groups: { engineering: GROUP },
    policy: {
      rules: [
        { name: 'health', paths: ['/-/health', '/-/test/**', '/-/cable'], public: true },
        { name: 'admin-area', paths: ['/admin/**'], deny: true },
        { name: 'engineering', paths: ['/**'], groups: ['engineering'] },
      ],
    },
    accessLog: { output: logFile, rotate: { size: rotateBytes, keep: 50, compress: true }, integrity: { key: KEY } },
  })
}

const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean)
const records = (file: string) => lines(file).map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r['event.kind'] === 'event')
const byId = (file: string, id: string | null) => records(file).find((r) => r['http.request.id'] === id)

async function cli(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: process.env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
    child.stdin.end(input)
  })
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gitlab-iap-logs-'))
  idp = await startJwksServer()
  upstream = await startUpstream()
  proxy = await startServe(config(join(dir, 'access.log')))
})
afterAll(async () => {
  await proxy?.stop()
  await upstream?.close()
  await idp?.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('one record per request, through a real serve', () => {
  const file = () => join(dir, 'access.log')
  const waitFor = async (id: string | null) => {
    await expect.poll(() => byId(file(), id) !== undefined, { timeout: 5000 }).toBe(true)
    return byId(file(), id)!
  }

  it('an allowed bearer request names the user, rule, route and project; secrets are redacted', async () => {
    const token = await idp.mint({ groups: [GROUP], preferred_username: 'eve@example.com', oid: 'oid-eve', email: 'eve@example.com' })
    const res = await fetch(`${proxy.url}/group/project/-/issues?state=opened&private_token=glpat-secret&access_token=abc`, { headers: { authorization: `Bearer ${token}`, 'user-agent': 'test-agent/1', cookie: 'x=secret-cookie' } })
    expect(res.status).toBe(200)
    const r = await waitFor(res.headers.get('x-request-id'))
    expect(r).toMatchObject({
      'http.request.method': 'GET', 'url.path': '/group/project/-/issues', 'url.query': 'state=opened&private_token=[REDACTED]&access_token=[REDACTED]',
      'http.response.status_code': 200, 'event.outcome': 'success', 'client.ip': '127.0.0.1', 'user_agent.original': 'test-agent/1',
      'user.id': 'oid-eve', 'user.name': 'eve@example.com', 'user.email': 'eve@example.com', 'iap.identity.kind': 'user',
      'iap.identity.groups': [GROUP], 'iap.auth.method': 'bearer', 'iap.decision.result': 'allow', 'iap.decision.rule': 'engineering',
      'iap.decision.reason': 'group-match', 'iap.gitlab.route': 'web', 'iap.gitlab.project': 'group/project',
    })
    expect(r['event.duration']).toBeGreaterThan(0)
    expect(r['http.response.bytes']).toBeGreaterThan(0)
    expect(r['iap.upstream.duration']).toBeGreaterThan(0)
    const raw = readFileSync(file(), 'utf8')
    for (const secret of [token, 'glpat-secret', 'secret-cookie']) expect(raw).not.toContain(secret)
  })

  it('secrets GitLab carries in a query or a path never reach the log', async () => {
    const token = await idp.mint({ groups: [GROUP] })
    const marker = (i: number) => `leak-marker-${i}-x9`
    const targets = [
      `/group/project/-/issues?a=1;private_token=${marker(0)}`,
      `/-/jira_connect/installations?jwt=${marker(1)}`,
      `/-/invites/${marker(2)}`,
      `/-/invites/${marker(3)}/accept`,
      `/sent_notifications/${marker(4)}/unsubscribe`,
      `/-/jira_connect/oauth_callbacks?code=${marker(5)}&state=${marker(6)}`,
      `/users/password/edit?reset_password_token=${marker(7)}`,
      `/api/v4/projects?page=1&PRIVATE-TOKEN=${marker(8)}`,
      // The sign-in's return target carries the query of the page it returns to (a feed link's token).
      `/-/iap/login?rd=${encodeURIComponent(`/dashboard/projects.atom?feed_token=${marker(9)}`)}`,
      `/group/project?redirect_to=${encodeURIComponent(`/x?a=1&private_token=${marker(10)}`)}`,
      `/-/sent_notifications/${marker(11)}/unsubscribe`,
    ]
    const ids: (string | null)[] = []
    for (const target of targets) {
      const res = await fetch(`${proxy.url}${target}`, { headers: { authorization: `Bearer ${token}` } })
      await res.body?.cancel()
      ids.push(res.headers.get('x-request-id'))
    }
    for (const id of ids) await waitFor(id)
    const raw = readFileSync(file(), 'utf8')
    for (let i = 0; i < targets.length + 1; i++) expect(raw).not.toContain(marker(i))
    expect(byId(file(), ids[3]!)).toMatchObject({ 'url.path': '/-/invites/[REDACTED]/accept' })
    expect(byId(file(), ids[0]!)).toMatchObject({ 'url.query': 'a=1;private_token=[REDACTED]' })
  })

  it('a denied request records the deny rule', async () => {
    const token = await idp.mint({ groups: [GROUP] })
    const res = await fetch(`${proxy.url}/admin/users`, { headers: { authorization: `Bearer ${token}` } })
    expect(res.status).toBe(403)
    expect(await waitFor(res.headers.get('x-request-id'))).toMatchObject({ 'iap.decision.result': 'deny', 'iap.decision.rule': 'admin-area', 'iap.decision.reason': 'deny-rule', 'http.response.status_code': 403, 'event.outcome': 'failure' })
  })

  it('an unauthenticated request is a challenge; an invalid token names the reason, never the token', async () => {
    const res = await fetch(`${proxy.url}/api/v4/projects`)
    expect(res.status).toBe(401)
    expect(await waitFor(res.headers.get('x-request-id'))).toMatchObject({ 'iap.decision.result': 'challenge', 'iap.auth.method': 'none', 'iap.identity.kind': 'anonymous', 'user.id': null })
    const expired = await idp.mint({ groups: [GROUP] }, { expiresIn: -3600 })
    const bad = await fetch(`${proxy.url}/api/v4/projects`, { headers: { authorization: `Bearer ${expired}` } })
    expect(bad.status).toBe(401)
    expect(await waitFor(bad.headers.get('x-request-id'))).toMatchObject({ 'iap.decision.result': 'challenge', 'iap.auth.method': 'bearer', 'iap.decision.reason': 'token-expired' })
    expect(readFileSync(file(), 'utf8')).not.toContain(expired)
  })

  it('an upstream error is logged with its status and error code', async () => {
    const res = await fetch(`${proxy.url}/-/test/reset`)
    expect(res.status).toBe(502)
    expect(await waitFor(res.headers.get('x-request-id'))).toMatchObject({ 'http.response.status_code': 502, 'error.code': 'upstream-reset', 'iap.decision.result': 'allow' })
  })

  it('a client that aborts is logged once, as aborted', async () => {
    const before = records(file()).filter((r) => String(r['url.path']).startsWith('/-/test/slow')).length
    const url = new URL(proxy.url)
    const req = request({ host: url.hostname, port: url.port, path: '/-/test/slow?ms=3000', agent: false })
    req.on('error', () => {})
    req.end()
    await expect.poll(() => upstream.reached('/-/test/slow').length, { timeout: 3000 }).toBeGreaterThan(0)
    req.destroy()
    await expect.poll(() => records(file()).filter((r) => String(r['url.path']).startsWith('/-/test/slow')).length, { timeout: 3000 }).toBe(before + 1)
    const r = records(file()).filter((x) => String(x['url.path']).startsWith('/-/test/slow')).at(-1)!
    expect(r['iap.aborted']).toBe(true)
    expect(r['http.response.status_code']).toBe(499)
  })

  it('http.request.body.bytes is the whole body forwarded, small or large, sized or chunked', async () => {
    const token = await idp.mint({ groups: [GROUP] })
    for (const [size, chunked] of [[5000, false], [60_000, false], [3_000_000, false], [200_000, true]] as const) {
      const body = Buffer.alloc(size, 0x61)
      const res = await fetch(`${proxy.url}/api/v4/body-bytes`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        // A stream has no length: fetch sends it chunked.
        body: chunked ? new Blob([body]).stream() : body,
        ...(chunked && { duplex: 'half' }),
      } as RequestInit)
      const echoed = (await res.json()) as { bodyBytes: number }
      expect(echoed.bodyBytes).toBe(size)
      const record = await waitFor(res.headers.get('x-request-id'))
      expect(record['http.request.body.bytes'], `${size}${chunked ? ' chunked' : ''}`).toBe(size)
    }
  })

  it('a websocket connection is logged once, on close, with its duration and bytes', async () => {
    const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/-/cable`)
    await new Promise<void>((resolve, reject) => {
      ws.once('message', () => resolve())
      ws.once('error', reject)
    })
    ws.send('x'.repeat(1000))
    await new Promise((r) => ws.once('message', r))
    await new Promise((r) => setTimeout(r, 200))
    ws.close()
    await expect.poll(() => records(file()).filter((r) => r['iap.websocket'] === true).length, { timeout: 3000 }).toBe(1)
    const r = records(file()).find((x) => x['iap.websocket'] === true)!
    expect(r).toMatchObject({ 'url.path': '/-/cable', 'iap.gitlab.route': 'cable', 'http.response.status_code': 101, 'iap.decision.result': 'allow' })
    expect(r['event.duration']).toBeGreaterThan(200_000_000)
    expect(r['http.response.bytes']).toBeGreaterThan(1000)
    expect(r['http.request.body.bytes']).toBeGreaterThan(1000)
  })

  it('`logs verify` without FILE reads stdin when the log goes to stdout', async () => {
    const cfg = join(dir, 'stdout-config.json')
    writeFileSync(cfg, JSON.stringify({ ...config('stdout'), accessLog: { output: 'stdout', integrity: { key: KEY } } }))
    const ok = await cli(['logs', 'verify', '--config', cfg], readFileSync(file(), 'utf8'))
    expect(ok.stdout).toMatch(/^ok: \d+ lines/)
    expect(ok.code).toBe(0)
    const ls = lines(file())
    ls.splice(3, 1)
    const bad = await cli(['logs', 'verify', '--config', cfg], ls.join('\n') + '\n')
    expect(bad.code).toBe(1)
    // The same log twice (a replay): the process's chain cannot begin a second time.
    const twice = await cli(['logs', 'verify', '--config', cfg], readFileSync(file(), 'utf8').repeat(2))
    expect(twice.code).toBe(1)
    expect(twice.stderr).toMatch(/line duplicated \(process [0-9a-f-]+ begins a second time/)
  })

  it('`logs verify` needs only the accessLog section: the rest of serve\'s environment may be absent', async () => {
    const cfg = join(dir, 'verify-only-config.json')
    const full = config(file()) as { entra: Record<string, unknown> }
    writeFileSync(cfg, JSON.stringify({ ...full, entra: { ...full.entra, clientSecret: '${IAP_TEST_NEVER_SET}' }, admin: { token: '${IAP_TEST_NEVER_SET_EITHER}' } }))
    const ok = await cli(['logs', 'verify', '--config', cfg])
    expect(ok.stderr).toBe('')
    expect(ok.code).toBe(0)
    const check = await cli(['check', '--config', cfg])
    expect(check.stderr).toContain('IAP_TEST_NEVER_SET')
  })

  it('the chain verifies, and `logs verify` names a tampered line', async () => {
    const ok = await cli(['logs', 'verify', file(), '--config', proxy.configPath])
    expect(ok.stdout).toMatch(/^ok: \d+ lines/)
    expect(ok.code).toBe(0)
    // One line per request, sealed from 1: the first request a process logs also marks where its chain starts.
    expect(JSON.parse(lines(file())[0]!)).toMatchObject({ 'event.kind': 'event', 'iap.chain.seq': 1, 'iap.chain.start': 'process' })
    expect(records(file())).toHaveLength(lines(file()).length)
    const tampered = join(dir, 'tampered.log')
    const ls = lines(file())
    ls[2] = ls[2]!.replace('"http.response.status_code":', '"http.response.status_code":1')
    writeFileSync(tampered, ls.join('\n') + '\n')
    const bad = await cli(['logs', 'verify', tampered, '--config', proxy.configPath])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('tampered.log:3: line changed')
  })

  it('every record written, a request the parser refused included, validates against docs/access-log.schema.json', async () => {
    // Two Content-Lengths: Node's parser refuses it before the pipeline sees it.
    const url = new URL(proxy.url)
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname, () => socket.end('GET /refused HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'))
      let text = ''
      socket.setEncoding('latin1').on('data', (d: string) => (text += d)).on('end', () => resolve(text)).on('error', reject)
    })
    expect(answer).toMatch(/^HTTP\/1\.1 400 /)
    await expect.poll(() => records(file()).some((r) => r['iap.decision.reason'] === 'malformed-request'), { timeout: 5000 }).toBe(true)
    const schema = JSON.parse(readFileSync(join(ROOT, 'docs/access-log.schema.json'), 'utf8')) as Parameters<typeof z.fromJSONSchema>[0]
    const validate = z.fromJSONSchema(schema)
    const all = records(file())
    expect(all.length).toBeGreaterThan(10)
    for (const record of all) {
      const result = validate.safeParse(record)
      expect(result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`), JSON.stringify(record)).toEqual([])
    }
  })
})

describe('batched writes', () => {
  // A running process (its log file open) that writes lines and then ends abruptly, through the real writer.
  async function writeThenEnd(file: string, ending: string): Promise<number | null> {
    const script = [
      `import { createLogWriter } from ${JSON.stringify(join(ROOT, 'src/logs/writer.ts'))}`,
      `const w = createLogWriter({ output: ${JSON.stringify(file)}, rotate: { size: 1e9, keep: 1, compress: false } })`,
      `await new Promise((r) => setTimeout(r, 200))`,
      `for (let i = 0; i < 3; i++) w.write(JSON.stringify({ n: i }))`,
      ending,
    ].join('\n')
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' })
    return new Promise((resolve) => child.once('exit', (code) => resolve(code)))
  }

  it('a record reaches the file within the batch interval, without waiting for more', async () => {
    const file = join(dir, 'batch-latency.log')
    const script = [
      `import { createLogWriter } from ${JSON.stringify(join(ROOT, 'src/logs/writer.ts'))}`,
      `const w = createLogWriter({ output: ${JSON.stringify(file)}, rotate: { size: 1e9, keep: 1, compress: false } })`,
      `w.write('{"n":1}')`,
      `setTimeout(() => {}, 5000)`,
    ].join('\n')
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' })
    try {
      const started = Date.now()
      let content = ''
      while (Date.now() - started < 3000 && content === '') {
        await new Promise((r) => setTimeout(r, 20))
        try {
          content = readFileSync(file, 'utf8')
        } catch {
          // not created yet
        }
      }
      expect(content).toBe('{"n":1}\n')
    } finally {
      child.kill()
    }
  })

  it('what is batched is written when the process exits, even through an uncaught error', async () => {
    for (const [name, ending, code] of [
      ['exit', 'process.exit(0)', 0],
      ['throw', 'setImmediate(() => { throw new Error("boom") })', 1],
    ] as const) {
      const file = join(dir, `batch-${name}.log`)
      expect(await writeThenEnd(file, ending)).toBe(code)
      expect(lines(file), name).toEqual(['{"n":0}', '{"n":1}', '{"n":2}'])
    }
  })

  it('multi-byte and oversized lines arrive whole, in order, and rotation counts their bytes', async () => {
    const { createLogWriter, rotatedFiles } = await import('../../../src/logs/writer.ts')
    const file = join(dir, 'batch-utf8.log')
    const written = [
      'ü'.repeat(30_000), // 60,000 bytes: most of a batch in one line
      '😀'.repeat(100_000), // 400,000 bytes: larger than the batch buffer
      ...Array.from({ length: 2000 }, (_, i) => JSON.stringify({ n: i, who: 'Zoë Ångström', note: '日本語' })),
      'plain',
    ]
    const writer = createLogWriter({ output: file, rotate: { size: 1e9, keep: 1, compress: false } })
    for (const line of written) writer.write(line)
    const expectedBytes = written.reduce((sum, line) => sum + Buffer.byteLength(line) + 1, 0)
    expect(writer.size).toBe(expectedBytes)
    await writer.close()
    expect(readFileSync(file, 'utf8')).toBe(written.join('\n') + '\n')

    // Rotation at a byte size: multi-byte lines count as bytes, not characters.
    const rotating = join(dir, 'batch-utf8-rotate.log')
    const line = 'é'.repeat(999) // 1,998 bytes + newline
    const w = createLogWriter({ output: rotating, rotate: { size: 20_000, keep: 10, compress: false } })
    for (let i = 0; i < 25; i++) {
      w.write(line)
      // Each rotation renames once the old file's lines are written: let it before the next line.
      await new Promise((r) => setTimeout(r, 5))
    }
    await w.close()
    const rotated = rotatedFiles(rotating)
    expect(rotated).toHaveLength(2)
    // A file rotates once it reaches 20,000 bytes: after 11 lines of 1,999 bytes (10 make 19,990).
    for (const f of rotated) expect(readFileSync(f, 'utf8')).toBe(`${line}\n`.repeat(11))
    expect(readFileSync(rotating, 'utf8')).toBe(`${line}\n`.repeat(3))
  })
})

describe('rotation under concurrent load', () => {
  it('loses and duplicates nothing, and the rotated chain verifies', { timeout: 60_000 }, async () => {
    const rdir = mkdtempSync(join(tmpdir(), 'gitlab-iap-rotate-'))
    const logFile = join(rdir, 'access.log')
    const p = await startServe(config(logFile, 64 * 1024))
    try {
      const total = 1500
      const ids = new Set<string>()
      let next = 0
      const worker = async () => {
        while (next < total) {
          next++
          const res = await fetch(`${p.url}/-/test/download?bytes=10`)
          await res.arrayBuffer()
          ids.add(res.headers.get('x-request-id')!)
        }
      }
      await Promise.all(Array.from({ length: 20 }, worker))
      expect(ids.size).toBe(total)
      await p.stop()
      const files = readdirSync(rdir).filter((f) => f.startsWith('access.log')).sort()
      expect(files.length).toBeGreaterThan(5)
      const linesOf = (f: string) => (f.endsWith('.gz') ? gunzipSync(readFileSync(join(rdir, f))).toString() : readFileSync(join(rdir, f), 'utf8')).split('\n').filter(Boolean)
      const recordsOf = (f: string) => linesOf(f).map((l) => JSON.parse(l) as Record<string, unknown>)
      const all = files.flatMap(recordsOf)
      const logged = all.filter((r) => r['event.kind'] === 'event').map((r) => r['http.request.id'] as string)
      expect(logged.length).toBe(total)
      expect(new Set(logged).size).toBe(total)
      for (const id of ids) expect(logged).toContain(id)
      const cfg = writeConfig({ ...config(logFile), accessLog: { output: logFile, integrity: { key: KEY } } })
      const verified = await cli(['logs', 'verify', ...files.map((f) => join(rdir, f)).reverse(), '--config', cfg.path])
      // A file just rotated to may be empty yet: named in a warning, and nothing else is said.
      const empty = files.filter((f) => linesOf(f).length === 0).map((f) => `warning: ${f} has no records`)
      expect(verified.stderr.split('\n').filter(Boolean).sort()).toEqual(empty.sort())
      expect(verified.code).toBe(0)
      // Every line is a request; the first names the process start, the first of every later file the
      // file start. A later file alone verifies (its older neighbours may have been rotated away), but
      // not once its first lines are cut.
      expect(all.every((r) => r['event.kind'] === 'event')).toBe(true)
      const nonEmpty = files.map(recordsOf).filter((records) => records.length > 0)
      const marks = nonEmpty.map((records) => records[0]!['iap.chain.start'])
      expect(marks.filter((m) => m === 'process')).toHaveLength(1)
      expect(marks.filter((m) => m === 'file')).toHaveLength(nonEmpty.length - 1)
      expect(all.filter((r) => r['iap.chain.start'] !== undefined)).toHaveLength(nonEmpty.length)
      const later = files.filter((f) => f !== 'access.log').at(-1)!
      expect(linesOf(later).length).toBeGreaterThan(10)
      const alone = join(rdir, 'alone.log')
      writeFileSync(alone, linesOf(later).join('\n') + '\n')
      const aloneVerified = await cli(['logs', 'verify', alone, '--config', cfg.path])
      expect(aloneVerified.stdout).toMatch(/^ok: \d+ lines/)
      expect(aloneVerified.code).toBe(0)
      const cutFile = join(rdir, 'cut.log')
      writeFileSync(cutFile, linesOf(later).slice(2).join('\n') + '\n')
      const cut = await cli(['logs', 'verify', cutFile, '--config', cfg.path])
      cfg.cleanup()
      expect(cut.code).toBe(1)
      expect(cut.stderr).toContain('cut.log:1:')
    } finally {
      await p.stop()
      rmSync(rdir, { recursive: true, force: true })
    }
  })
})

describe('gitlab-iap logs', () => {
  let fixture: string
  beforeAll(() => {
    fixture = join(dir, 'fixture.log')
    const base = Date.parse('2026-11-28T10:00:00Z')
    const rows = Array.from({ length: 300 }, (_, i) =>
      JSON.stringify({
        '@timestamp': new Date(base + i * 60_000).toISOString(), 'http.request.id': `id-${i}`, 'http.request.method': i % 3 === 0 ? 'POST' : 'GET',
        'url.path': i % 3 === 0 ? '/platform/infra.git/git-receive-pack' : `/platform/infra/-/issues/${i}`, 'http.response.status_code': i % 10 === 0 ? 403 : 200,
        'client.ip': i % 2 ? '10.0.0.5' : '192.168.1.9', 'user.id': `oid-${i % 4}`, 'user.name': ['alice@x.com', 'bob@x.com', 'ci-bot', null][i % 4],
        'iap.identity.kind': i % 4 === 3 ? 'app' : 'user', 'iap.identity.groups': i % 2 ? ['g1'] : ['g2'], 'iap.auth.method': i % 4 === 3 ? 'bearer' : 'session',
        'iap.decision.result': i % 10 === 0 ? 'deny' : 'allow', 'iap.decision.rule': i % 10 === 0 ? 'secret-projects' : 'read-everything',
        'iap.gitlab.route': i % 3 === 0 ? 'git' : 'web', 'iap.gitlab.project': 'platform/infra',
      }),
    )
    writeFileSync(fixture, rows.join('\n') + '\n')
  })

  it('a reader that stops early (| head) ends the command quietly, without a stack trace', async () => {
    const big = join(dir, 'big.log')
    writeFileSync(big, readFileSync(fixture, 'utf8').repeat(200))
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'logs', big, '--output', 'csv'], { cwd: ROOT, env: process.env })
      let stderr = ''
      child.stderr.on('data', (d) => (stderr += d))
      child.stdout.once('data', () => child.stdout.destroy())
      child.on('close', (code) => resolve({ code, stderr }))
    })
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
  })

  it('filters (json output) and agrees with a direct count', async () => {
    const res = await cli(['logs', fixture, '--user', 'alice@x.com', '--decision', 'allow', '--output', 'json'])
    expect(res.code).toBe(0)
    const got = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(got.length).toBe(Array.from({ length: 300 }, (_, i) => i).filter((i) => i % 4 === 0 && i % 10 !== 0).length)
    expect(got.every((r) => r['user.name'] === 'alice@x.com' && r['iap.decision.result'] === 'allow')).toBe(true)
  })

  it('answers "who pushed to the project" in one command', async () => {
    const res = await cli(['logs', fixture, '--project', 'platform/infra', '--path', '/**/git-receive-pack', '--stats', 'user'])
    expect(res.code).toBe(0)
    expect(res.stdout).toMatch(/^\s+count\s+user/)
    expect(res.stdout).toMatch(/25\s+alice@x\.com/)
  })

  it('--stats rule over denied requests, csv output', async () => {
    const res = await cli(['logs', fixture, '--decision', 'deny', '--stats', 'rule', '--output', 'csv'])
    expect(res.stdout).toBe('rule,count\nsecret-projects,30\n')
  })

  it('reads .gz input and stdin, and honours --since/--until/--limit/--status/--ip', async () => {
    const gz = join(dir, 'fixture.log.gz')
    const { gzipSync } = await import('node:zlib')
    writeFileSync(gz, gzipSync(readFileSync(fixture)))
    const a = await cli(['logs', gz, '--status', '4xx', '--ip', '10.0.0.0/8', '--output', 'json'])
    const b = await cli(['logs', '-', '--status', '403', '--ip', '10.0.0.0/8', '--output', 'json'], readFileSync(fixture, 'utf8'))
    expect(a.stdout).toBe(b.stdout)
    // 403 every 10th request, from 10.0.0.5 on odd ones: none in this fixture, so both outputs are empty.
    expect(a.stdout).toBe('')
    const c = await cli(['logs', gz, '--status', '4xx', '--ip', '192.168.0.0/16', '--output', 'json'])
    expect(c.stdout.trim().split('\n')).toHaveLength(30)
    const window = await cli(['logs', fixture, '--since', '2026-11-28T10:10:00Z', '--until', '2026-11-28T10:19:00Z', '--output', 'json'])
    expect(window.stdout.trim().split('\n')).toHaveLength(10)
    const limited = await cli(['logs', fixture, '--limit', '7', '--output', 'json'])
    expect(limited.stdout.trim().split('\n')).toHaveLength(7)
  })

  it('prints a table that fits the terminal', async () => {
    const res = await cli(['logs', fixture, '--limit', '5'])
    const out = res.stdout.trim().split('\n')
    expect(out[0]).toMatch(/^time\s+status\s+method\s+user/)
    expect(out).toHaveLength(6)
  })

  it('a crafted record can neither forge rows nor send terminal escapes through the table or --stats', async () => {
    const crafted = join(dir, 'crafted.log')
    const path = '/x\n2026-11-28 10:00:00  200  GET  admin@x.com\u001b[2J\u001b]0;owned\u0007'
    writeFileSync(crafted, JSON.stringify({ '@timestamp': '2026-11-28T10:00:00Z', 'url.path': path, 'user.name': 'eve\u001b[31m', 'http.response.status_code': 200 }) + '\n')
    for (const args of [[], ['--stats', 'path'], ['--stats', 'user']]) {
      const res = await cli(['logs', crafted, ...args])
      expect(res.stdout, args.join(' ')).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/)
      expect(res.stdout.trim().split('\n'), args.join(' ')).toHaveLength(2)
    }
    expect((await cli(['logs', crafted])).stdout).toContain('\\x1b[2J')
  })

  it('rejects bad flags in one line', async () => {
    const res = await cli(['logs', fixture, '--status', 'teapot'])
    expect(res.code).toBe(2)
    expect(res.stderr.trim()).toBe('gitlab-iap: --status: "teapot" must be a code (403) or a class (4xx)')
    expect((await cli(['logs', join(dir, 'missing.log')])).stderr).toContain('no such file')
    // A path glob without its leading / would match nothing, silently.
    expect((await cli(['logs', fixture, '--path', 'admin'])).stderr.trim()).toBe('gitlab-iap: --path: "admin" must start with / (a glob over url.path, e.g. /admin/**)')
    // `--config "$CFG"` with CFG unset must not read another file.
    expect((await cli(['logs', 'verify', '--config', ''])).stderr.trim()).toBe('gitlab-iap: --config: the path is empty')
  })

  it('--follow prints new records as they are written, across rotation', { timeout: 20_000 }, async () => {
    const live = join(dir, 'live.log')
    writeFileSync(live, '')
    const child = spawn(process.execPath, [BIN, 'logs', live, '--follow', '--output', 'json'], { cwd: ROOT })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    await new Promise((r) => setTimeout(r, 800))
    const row = (n: number) => JSON.stringify({ '@timestamp': new Date().toISOString(), 'http.request.id': `live-${n}`, 'url.path': '/x' }) + '\n'
    writeFileSync(live, row(1), { flag: 'a' })
    await expect.poll(() => out.includes('live-1'), { timeout: 5000 }).toBe(true)
    const { renameSync } = await import('node:fs')
    renameSync(live, `${live}.20261128T100000000Z-001`)
    writeFileSync(live, row(2))
    await expect.poll(() => out.includes('live-2'), { timeout: 5000 }).toBe(true)
    child.kill('SIGTERM')
  })

  it('--follow loses nothing: lines written just before a rotation, a line half-written when it starts', { timeout: 30_000 }, async () => {
    const { renameSync, appendFileSync } = await import('node:fs')
    const live = join(dir, 'live-tight.log')
    const row = (n: number) => JSON.stringify({ '@timestamp': '2026-11-28T10:00:00.000Z', 'http.request.id': `tight-${n}`, 'url.path': '/x' }) + '\n'
    // Started while the last line is still being written.
    writeFileSync(live, row(0) + row(1).slice(0, 30))
    const child = spawn(process.execPath, [BIN, 'logs', live, '--follow', '--output', 'json'], { cwd: ROOT })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    try {
      await expect.poll(() => out.includes('tight-0'), { timeout: 5000 }).toBe(true)
      appendFileSync(live, row(1).slice(30))
      // Each time: lines appended and the file renamed at once, before the follower could read them
      // from the path; then a new file. (Like tail -F, it follows the newest file: a file rotated away
      // before it was ever opened is not read; the proxy rotates at `accessLog.rotate.size`.)
      let n = 2
      const lines = () => out.split('\n').filter(Boolean).length
      for (let r = 0; r < 20; r++) {
        appendFileSync(live, row(n++) + row(n++))
        renameSync(live, `${live}.${String(r).padStart(3, '0')}`)
        writeFileSync(live, row(n++))
        await expect.poll(lines, { timeout: 5000 }).toBe(n)
      }
      const total = n
      const ids = out.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as Record<string, string>)['http.request.id'])
      expect(ids).toEqual(Array.from({ length: total }, (_, i) => `tight-${i}`))
      expect(err).toBe('')
      expect(child.exitCode).toBeNull()
    } finally {
      child.kill('SIGTERM')
    }
  })

  it('--follow reads stdin as it arrives (kubectl logs -f | gitlab-iap logs --follow); unreadable lines are counted', { timeout: 20_000 }, async () => {
    const child = spawn(process.execPath, [BIN, 'logs', '--follow'], { cwd: ROOT })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    const row = (n: number) => JSON.stringify({ '@timestamp': '2026-11-28T10:00:00.000Z', 'http.request.id': `pipe-${n}`, 'url.path': `/pipe-${n}`, 'http.response.status_code': 200 }) + '\n'
    child.stdin.write(row(1))
    // The row is shown while the pipe is still open.
    await expect.poll(() => out.includes('/pipe-1'), { timeout: 5000 }).toBe(true)
    child.stdin.end('not json\n{"cut":\n' + row(2))
    const code = await new Promise((resolve) => child.once('close', resolve))
    expect(code).toBe(0)
    expect(out).toContain('/pipe-2')
    expect(err.trim()).toBe('gitlab-iap: 2 lines were not an access-log record (not JSON, or cut short) and were skipped')
  })
})

describe('/metrics', () => {
  it('shows the documented counters moving after traffic', async () => {
    const scrape = async () => (await fetch(`${proxy.adminUrl}/metrics`)).text()
    const before = await scrape()
    const token = await idp.mint({ groups: [GROUP] })
    for (let i = 0; i < 3; i++) await (await fetch(`${proxy.url}/api/v4/metrics-test`, { headers: { authorization: `Bearer ${token}` } })).text()
    await (await fetch(`${proxy.url}/api/v4/metrics-test`, { headers: { authorization: 'Bearer not.a.jwt' } })).text()
    const after = await scrape()
    const value = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}"]/g, (c) => `\\${c}`)} (\\d+)`, 'm').exec(text)?.[1] ?? 0)
    const series = 'gitlab_iap_requests_total{decision="allow",auth_method="bearer",route="api"}'
    expect(value(after, series) - value(before, series)).toBe(3)
    expect(after).toMatch(/^gitlab_iap_request_duration_seconds_bucket\{/m)
    expect(after).toMatch(/^gitlab_iap_upstream_duration_seconds_count\{route="api"\} \d+/m)
    expect(after).toMatch(/^gitlab_iap_token_cache_total\{result="hit"\} \d+/m)
    expect(after).toMatch(/^gitlab_iap_jwks_fetch_total\{issuer="entra",result="success"\} \d+/m)
    expect(after).toMatch(/^gitlab_iap_auth_failures_total\{reason="[a-z-]+"\} \d+/m)
    expect(after).toMatch(/^process_cpu_seconds_total /m)
    expect(after).not.toContain('eve@example.com')
    // A credential rejected at the proxy's own whoami counts too.
    const malformed = 'gitlab_iap_auth_failures_total{reason="credential-malformed"}'
    for (let i = 0; i < 2; i++) expect((await fetch(`${proxy.url}/-/iap/whoami`, { headers: { 'x-iap-authorization': 'Basic eDp5' } })).status).toBe(401)
    expect(value(await scrape(), malformed) - value(after, malformed)).toBe(2)
  })
})

