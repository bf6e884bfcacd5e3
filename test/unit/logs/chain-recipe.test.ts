/**
 * docs/access-log.md "The chain, byte for byte" is enough to verify a log: an implementation written
 * from it alone (`verifyAsDocumented`, which uses nothing from src/logs/chain.ts) accepts what the
 * access log writes and catches edits; the product's verifier is held to the same answers.
 */
import { spawn } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { Identity } from '../../../src/auth/identity.ts'
import { createChainVerifier } from '../../../src/logs/chain.ts'
import { createAccessLog } from '../../../src/logs/index.ts'
import { rotatedFiles } from '../../../src/logs/writer.ts'
import type { RequestContext } from '../../../src/server/context.ts'
import { runLogsCommand } from '../../helpers/records.ts'

const KEY = 'chain-recipe-key-ü-0123456789abcdef'
const SUFFIX = /,"iap\.chain\.seq":(\d+),"iap\.chain\.mac":"([0-9a-f]{64})"\}$/

/** The documented recipe, step by step; returns the 1-based number of the first bad line, or 0. */
function verifyAsDocumented(lines: string[]): number {
  let previous: { seq: number; mac: string } | undefined
  const processes = new Set<string>()
  for (const [i, line] of lines.entries()) {
    const match = SUFFIX.exec(line)
    if (!match) return i + 1
    const body = Buffer.concat([Buffer.from(line.slice(0, match.index), 'utf8'), Buffer.from('}')])
    const members = JSON.parse(body.toString('utf8')) as Record<string, unknown>
    const seq = Number(match[1])
    const mac = match[2]!
    const start = members['iap.chain.start']
    let previousMac: string
    if (seq === 1) {
      // Step 5: only a process's first record begins a chain, each process once.
      if (start !== 'process' && start !== 'file') return i + 1
      const instance = String(members['iap.instance.id'])
      if (processes.has(instance)) return i + 1
      processes.add(instance)
      previousMac = ''
    } else if (previous === undefined) {
      // Step 7: mid-chain only at a file's first record, checked through its own iap.chain.prev.
      if (start !== 'file' || typeof members['iap.chain.prev'] !== 'string') return i + 1
      previousMac = members['iap.chain.prev']
    } else {
      if (seq !== previous.seq + 1) return i + 1
      previousMac = previous.mac
    }
    const expected = createHmac('sha256', Buffer.from(KEY, 'utf8')).update(Buffer.from(previousMac, 'ascii')).update(body).digest('hex')
    if (expected !== mac) return i + 1
    previous = { seq, mac }
  }
  return 0
}

const user: Identity = { kind: 'user', id: 'oid-zoë', name: 'zoë@example.com', email: 'zoë@example.com', groups: ['g'], roles: [], issuer: 'entra' }
const ctx = (n: number): RequestContext => ({
  id: `req-${n}`, startNs: 1_000n, startMs: Date.parse('2026-11-28T10:00:00Z') + n, clientIp: '10.1.2.3', method: 'GET',
  target: `/g/p/-/issues/${n}`, path: `/g/p/-/issues/${n}`, query: '', userAgent: 'Mozilla/5.0 (日本語)', websocket: false, route: 'web', project: 'g/p',
  authMethod: 'session', identity: user, decision: { result: 'allow', rule: 'r', reason: 'group-match' }, status: 200, bytesIn: 0, bytesOut: 10,
})

const dir = mkdtempSync(join(tmpdir(), 'iap-chain-recipe-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('the documented chain recipe', () => {
  it('verifies what the access log writes, across a restart on the same file, and catches a changed line', async () => {
    const output = join(dir, 'access.log')
    const config = { output, rotate: { size: 1e12, keep: 1, compress: false }, integrity: { key: KEY }, onError: 'serve' as const }
    for (const instance of ['first', 'second']) {
      const log = createAccessLog(config, { instanceId: instance })
      for (let n = 0; n < 5; n++) log.write(ctx(n), 2_000_000n)
      await log.close()
    }
    const lines = readFileSync(output, 'utf8').split('\n').filter(Boolean)
    expect(lines).toHaveLength(10)
    // The restarted process continues the chain, and says where it began (covered by the mac).
    expect(JSON.parse(lines[5]!)).toMatchObject({ 'iap.chain.seq': 6, 'iap.chain.start': 'process' })
    expect(verifyAsDocumented(lines)).toBe(0)
    // Not mid-chain from where the second process began: lines before it were cut.
    expect(verifyAsDocumented(lines.slice(5))).toBe(1)
    expect(verifyAsDocumented(lines.slice(6))).toBe(1)
    // The same log twice: the first process begins again.
    expect(verifyAsDocumented([...lines, ...lines])).toBe(11)
    const changed = [...lines]
    changed[3] = changed[3]!.replace('"http.response.status_code":200', '"http.response.status_code":201')
    expect(verifyAsDocumented(changed)).toBe(4)
    const unmarked = [...lines]
    unmarked[5] = unmarked[5]!.replace('"iap.chain.start":"process"', '"iap.chain.start":"file"')
    expect(verifyAsDocumented(unmarked)).toBe(6)
  })

  it('a process killed mid-write: the next one starts a line of its own and continues the chain from the last whole line', async () => {
    const output = join(dir, 'killed.log')
    const config = { output, rotate: { size: 1e12, keep: 1, compress: false }, integrity: { key: KEY }, onError: 'serve' as const }
    const first = createAccessLog(config, { instanceId: 'killed' })
    for (let n = 0; n < 3; n++) first.write(ctx(n), 2_000_000n)
    await first.close()
    // What a SIGKILL during a batch write leaves: the start of a record, no newline.
    appendFileSync(output, '{"@timestamp":"2026-11-28T10:00:00.003Z","ecs.version":"8.11.0","event.kind":"ev')
    const second = createAccessLog(config, { instanceId: 'restarted' })
    for (let n = 3; n < 6; n++) second.write(ctx(n), 2_000_000n)
    await second.close()
    const lines = readFileSync(output, 'utf8').split('\n').filter(Boolean)
    expect(lines).toHaveLength(7)
    // Not glued to the cut line: the restarted process's first record is whole, and continues from seq 3.
    expect(JSON.parse(lines[4]!)).toMatchObject({ 'http.request.id': 'req-3', 'iap.chain.seq': 4, 'iap.chain.start': 'process', 'iap.instance.id': 'restarted' })
    const verifier = createChainVerifier(KEY)
    lines.forEach((line, n) => verifier.push(line, 'killed.log', n + 1))
    expect(verifier.verdict()).toMatchObject({ ok: true, lines: 7, cut: [{ source: 'killed.log', line: 4 }] })
  })

  it('records dropped while the destination cannot take them are not sealed: the chain stays whole and the next record counts them', async () => {
    const parent = join(dir, 'not-yet-a-directory')
    writeFileSync(parent, 'a file where the log directory should be')
    const output = join(parent, 'access.log')
    const errors: string[] = []
    const log = createAccessLog({ output, rotate: { size: 1e12, keep: 1, compress: false }, integrity: { key: KEY }, onError: 'serve' }, { instanceId: 'dropping', onWriteError: (err) => errors.push(String((err as { code?: string }).code)) })
    // The destination cannot be opened: these are dropped, and said so.
    await new Promise((resolve) => setTimeout(resolve, 50))
    for (let n = 0; n < 3; n++) log.write(ctx(n), 2_000_000n)
    expect(errors).toContain('IAP_LOG_DROPPED')
    // The directory appears; the writer reopens on its own (it tries again every second): write until a record lands.
    rmSync(parent)
    mkdirSync(parent)
    let n = 3
    const landed = () => existsSync(output) && readFileSync(output, 'utf8').length > 0
    await expect.poll(() => (log.write(ctx(n++), 2_000_000n), landed()), { timeout: 15_000, interval: 200 }).toBe(true)
    for (let more = 0; more < 3; more++) log.write(ctx(n++), 2_000_000n)
    await log.close()
    const lines = readFileSync(output, 'utf8').split('\n').filter(Boolean)
    expect(lines.length).toBeGreaterThanOrEqual(1)
    const first = JSON.parse(lines[0]!) as Record<string, unknown>
    expect(first['iap.records.dropped']).toBeGreaterThanOrEqual(3)
    expect(first).toMatchObject({ 'iap.chain.seq': 1, 'iap.chain.start': 'process' })
    expect(verifyAsDocumented(lines)).toBe(0)
  })

  it('a rotated log may be checked from any file\'s first line, through its iap.chain.prev; a forged start is caught', async () => {
    const output = join(dir, 'rotating.log')
    const log = createAccessLog({ output, rotate: { size: 2048, keep: 50, compress: false }, integrity: { key: KEY }, onError: 'serve' }, { instanceId: 'rotating' })
    for (let n = 0; n < 40; n++) {
      log.write(ctx(n), 2_000_000n)
      // Rotation waits for the destination: give it a turn now and then.
      if (n % 5 === 4) await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await log.close()
    const files = [...rotatedFiles(output), output].map((file) => readFileSync(file, 'utf8').split('\n').filter(Boolean))
    expect(files.length).toBeGreaterThan(2)
    expect(verifyAsDocumented(files.flat())).toBe(0)
    for (const [i, lines] of files.entries()) {
      if (i === 0 || lines.length === 0) continue
      expect(JSON.parse(lines[0]!)).toMatchObject({ 'iap.chain.start': 'file', 'iap.chain.prev': expect.stringMatching(/^[0-9a-f]{64}$/) })
      expect(verifyAsDocumented(files.slice(i).flat())).toBe(0)
      // The product's verifier agrees.
      const verifier = createChainVerifier(KEY)
      files.slice(i).flat().forEach((line, n) => verifier.push(line, 'log', n + 1))
      expect(verifier.verdict()).toMatchObject({ ok: true, starts: [{ line: 1 }] })
      // Cut the file's first line and mark the next one as a start: its mac no longer matches.
      const forged = files.slice(i).flat().slice(1)
      forged[0] = forged[0]!.replace('{"@timestamp"', `{"iap.chain.start":"file","iap.chain.prev":"${JSON.parse(lines[0]!)['iap.chain.mac']}","@timestamp"`)
      expect(verifyAsDocumented(forged)).toBe(1)
    }
  })
})

describe('a rotation that does not happen', () => {
  const FILE_START = '"iap.chain.start":"file"'
  const linesOf = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean)
  /** Until every record written so far is on disk: a rotation decided meanwhile has had its rename (or its failure). */
  const settled = (output: string, records: number) => expect.poll(() => [...rotatedFiles(output), output].flatMap(linesOf).length, { timeout: 10_000, interval: 10 }).toBe(records)

  /** `gitlab-iap logs verify FILE... --config …`, in-process: undefined when the chain is intact, else why not. */
  async function logsVerify(files: string[]): Promise<string | undefined> {
    const config = join(dir, 'verify-config.json')
    writeFileSync(config, JSON.stringify({ accessLog: { output: files.at(-1), integrity: { key: KEY } } }))
    try {
      const { code, stderr } = await runLogsCommand(['verify', ...files, '--config', config])
      return code === 0 ? undefined : `exit ${code}: ${stderr}`
    } catch (err) {
      return (err as Error).message
    }
  }

  /** The product's verifier over lines, stopping at the first bad one as `logs verify` does. */
  function verifies(lines: string[]): boolean {
    const verifier = createChainVerifier(KEY)
    lines.every((line, n) => verifier.push(line, 'log', n + 1))
    return verifier.verdict().ok
  }

  /**
   * A log (its files, oldest first) verifies as a whole; a file start is only ever a file's first line;
   * and no file with its head cut, at whatever line, passes for a file whose predecessors were rotated away.
   */
  async function expectSoundLog(files: string[]): Promise<void> {
    const contents = files.map(linesOf)
    expect(await logsVerify(files)).toBeUndefined()
    expect(verifyAsDocumented(contents.flat())).toBe(0)
    for (const [i, lines] of contents.entries()) {
      const misplaced = lines.flatMap((line, n) => (n > 0 && line.includes(FILE_START) ? [`${files[i]}:${n + 1}`] : []))
      expect.soft(misplaced).toEqual([])
      const rest = contents.slice(i + 1).flat()
      // A file whose older neighbours were rotated away verifies from its first line, not from any later one.
      if (i > 0 && lines.length > 0) expect(verifies([...lines, ...rest]), `${files[i]} from its first line`).toBe(true)
      for (let cut = 1; cut < lines.length; cut++) {
        expect.soft(verifies([...lines.slice(cut), ...rest]), `${files[i]} cut before line ${cut + 1}`).toBe(false)
        expect.soft(verifyAsDocumented([...lines.slice(cut), ...rest]), `${files[i]} cut before line ${cut + 1}`).toBe(1)
      }
    }
  }

  it('a rename that fails leaves the lines in the file, sealed as its own: no head of it can be cut unseen', async () => {
    const parent = mkdtempSync(join(dir, 'unrenamed-'))
    // The file system takes this name, but not with a rotation's suffix (`.<timestamp>-001`) added:
    // every rename fails (ENAMETOOLONG), whoever runs the test.
    const output = join(parent, 'a'.repeat(240))
    const errors: string[] = []
    const log = createAccessLog({ output, rotate: { size: 2048, keep: 50, compress: false }, integrity: { key: KEY }, onError: 'serve' }, { instanceId: 'unrenamed', onWriteError: (err) => errors.push(String((err as { code?: string }).code)) })
    for (let n = 0; n < 40; n++) {
      log.write(ctx(n), 2_000_000n)
      if (n % 5 === 4) await settled(output, n + 1)
    }
    await log.close()
    expect(errors.filter((code) => code === 'ENAMETOOLONG').length).toBeGreaterThan(1)
    expect(rotatedFiles(output)).toEqual([])
    const lines = linesOf(output)
    expect(lines.map((line) => JSON.parse(line)['http.request.id'])).toEqual(Array.from({ length: 40 }, (_, n) => `req-${n}`))
    expect(JSON.parse(lines[0]!)).toMatchObject({ 'iap.chain.seq': 1, 'iap.chain.start': 'process' })
    await expectSoundLog([output])
  })

  it('a rotation still waiting for its rename when the log closes leaves its lines in the file it began in', async () => {
    const output = join(dir, 'closing.log')
    const log = createAccessLog({ output, rotate: { size: 2048, keep: 50, compress: false }, integrity: { key: KEY }, onError: 'serve' }, { instanceId: 'closing' })
    let n = 0
    for (; n < 20; n++) {
      log.write(ctx(n), 2_000_000n)
      if (n % 5 === 4) await settled(output, n + 1)
    }
    // Written in one go across the size, then closed: the rename never gets the turn it waits for.
    for (; n < 30; n++) log.write(ctx(n), 2_000_000n)
    await log.close()
    const files = [...rotatedFiles(output), output]
    expect(files.length).toBeGreaterThan(2)
    // The live file grew past the size: a rotation was decided there and given up.
    expect(statSync(output).size).toBeGreaterThan(2048)
    expect(files.flatMap(linesOf).map((line) => JSON.parse(line)['http.request.id'])).toEqual(Array.from({ length: 30 }, (_, i) => `req-${i}`))
    await expectSoundLog(files)
  })

  it('a rotation given up because too much waited for its rename leaves those lines in the file it began in', { timeout: 60_000 }, async () => {
    const output = join(dir, 'holding.log')
    const log = createAccessLog({ output, rotate: { size: 64 * 1024, keep: 50, compress: false }, integrity: { key: KEY }, onError: 'serve' }, { instanceId: 'holding' })
    // About 9 MiB in one go: the old file's lines are not on disk before more than the 8 MiB held back for a rename arrive.
    const long = (n: number): RequestContext => ({ ...ctx(n), path: `/g/p/-/blob/main/${'x/'.repeat(15_000)}${n}` })
    for (let n = 0; n < 300; n++) log.write(long(n), 2_000_000n)
    await settled(output, 300)
    log.write(ctx(300), 2_000_000n)
    await log.close()
    const files = [...rotatedFiles(output), output]
    const all = files.flatMap(linesOf)
    expect(all.map((line) => JSON.parse(line)['http.request.id'])).toEqual(Array.from({ length: 301 }, (_, i) => `req-${i}`))
    // The first file holds far more than its size: its rotation was given up, and the next one was done.
    expect(files).toHaveLength(2)
    expect(statSync(files[0]!).size).toBeGreaterThan(8 * 1024 * 1024)
    await expectSoundLog(files)
  })

  it('a rotation still waiting for its rename when the process exits leaves its lines in the file it began in', async () => {
    const output = join(dir, 'exiting.log')
    const script = [
      `import { statSync } from 'node:fs'`,
      `import { createAccessLog } from ${JSON.stringify(join(import.meta.dirname, '../../../src/logs/index.ts'))}`,
      `const ctx = ${ctx.toString()}`,
      `const user = ${JSON.stringify(user)}`,
      `const log = createAccessLog({ output: ${JSON.stringify(output)}, rotate: { size: 2048, keep: 50, compress: false }, integrity: { key: ${JSON.stringify(KEY)} }, onError: 'serve' }, { instanceId: 'exiting' })`,
      // The file is open before the records come, as in a running proxy.
      `await new Promise((r) => setTimeout(r, 200))`,
      `for (let n = 0; n < 12; n++) log.write(ctx(n), 2000000n)`,
      // The lines before the rotation reach the file; the rename would come on the event loop's next turn, which never comes.
      `const deadline = Date.now() + 5000`,
      `while (statSync(${JSON.stringify(output)}).size < 2048 && Date.now() < deadline);`,
      `process.exit(0)`,
    ].join('\n')
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (d) => (stderr += d))
    expect(await new Promise((resolve) => child.once('exit', resolve))).toBe(0)
    expect(stderr).toBe('')
    expect(rotatedFiles(output)).toEqual([])
    expect(linesOf(output).map((line) => JSON.parse(line)['http.request.id'])).toEqual(Array.from({ length: 12 }, (_, n) => `req-${n}`))
    await expectSoundLog([output])
  })
})
