/**
 * `gitlab-iap logs verify` on what real inputs hold besides sealed records: empty files (a new or
 * just-rotated log) and the proxy's own messages, which `kubectl logs` merges with the access log.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterAll, describe, expect, it } from 'vitest'
import { main } from '../../../src/cli/main.ts'
import { createChain } from '../../../src/logs/chain.ts'
import { withCapturedIo } from '../../helpers/cli-io.ts'

const KEY = 'logs-verify-test-key-0123456789abcdef'
const dir = mkdtempSync(join(tmpdir(), 'iap-logs-verify-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const config = join(dir, 'config.json')
writeFileSync(config, JSON.stringify({ accessLog: { output: 'stdout', integrity: { key: KEY } } }))
const verify = (...files: string[]) => withCapturedIo((io) => main(['logs', 'verify', ...files, '--config', config], io))

const write = (name: string, lines: string[]) => {
  const file = join(dir, name)
  writeFileSync(file, lines.map((l) => l + '\n').join(''))
  return file
}

/** `n` sealed records, as a process writes them from its start. */
function sealed(n: number): string[] {
  const chain = createChain(KEY)
  return Array.from({ length: n }, (_, i) =>
    chain.seal(JSON.stringify({
      '@timestamp': '2026-11-28T10:00:00.000Z', 'http.request.id': `r${i + 1}`, 'url.path': '/x', 'iap.instance.id': 'instance-1',
      ...(i === 0 && { 'iap.chain.start': 'process', 'iap.chain.prev': '' }),
    })),
  )
}

const LISTENING = '{"level":30,"time":"2026-11-28T09:59:59.000Z","service":"gitlab-iap","instanceId":"instance-1","msg":"gitlab-iap listening"}'
const FAILED = '{"level":40,"time":"2026-11-28T10:00:01.000Z","service":"gitlab-iap","requestId":"r2","code":"IAP_ERR_UPSTREAM_TIMEOUT","msg":"forwarding failed"}'

describe('logs verify and empty inputs', () => {
  it('an empty file beside records is named in a warning; the chain is still intact', async () => {
    const res = await verify(write('a.log', sealed(3)), write('empty.log', []))
    expect(res.code).toBe(0)
    expect(res.stdout).toBe('ok: 3 lines in 2 files, chain intact\n')
    expect(res.stderr).toBe('warning: empty.log has no records\n')
  })

  it('nothing at all to verify is said plainly and is no success: no intact chain was seen', async () => {
    const one = await verify(write('only-empty.log', []))
    expect(one.code).toBe(1)
    expect(one.stdout).toBe('')
    expect(one.stderr).toBe('warning: only-empty.log has no records\ngitlab-iap: nothing to verify: only-empty.log has no records\n')
    const two = await verify(write('e1.log', []), write('e2.log', ['']))
    expect(two.code).toBe(1)
    expect(two.stderr).toContain('gitlab-iap: nothing to verify: none of the 2 inputs has a record\n')
    const stdin = await withCapturedIo((io) => main(['logs', 'verify', '-', '--config', config], { ...io, stdin: new PassThrough().end() }))
    expect(stdin.code).toBe(1)
    expect(stdin.stderr).toContain('nothing to verify: stdin has no records')
  })
})

describe('logs verify and the proxy\'s own messages (kubectl logs merges stderr in)', () => {
  it('passes them over and counts them', async () => {
    const records = sealed(3)
    const res = await verify(write('merged.log', [LISTENING, records[0]!, FAILED, records[1]!, records[2]!]))
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    expect(res.stdout).toBe("ok: 3 lines in 1 file, chain intact\n  2 lines were not an access-log record (JSON without http.request.id or url.path, such as the proxy's own messages from stderr) and were passed over\n")
  })

  it('still catches a record inserted, a record removed or rewritten into such a line, and a sealed line of that shape', async () => {
    const records = sealed(3)
    const expectBroken = async (lines: string[], message: RegExp) => {
      const res = await verify(write('tampered.log', lines))
      expect(res.code).toBe(1)
      expect(res.stderr).toMatch(message)
    }
    // An unsealed record: it has a request id or a path, so it is no foreign line.
    await expectBroken([records[0]!, JSON.stringify({ 'http.request.id': 'forged', 'url.path': '/admin' }), records[1]!], /tampered\.log:2: line unsealed/)
    await expectBroken([records[0]!, JSON.stringify({ url: { path: '/admin' } }), records[1]!], /tampered\.log:2: line unsealed/)
    // A record stripped down to a foreign line is passed over, and its absence breaks the chain.
    const stripped = JSON.stringify({ level: 30, msg: 'nothing here' })
    await expectBroken([records[0]!, stripped, records[2]!], /tampered\.log:3: line removed/)
    // A sealed line is always checked, whatever it holds.
    await expectBroken([records[0]!, `${FAILED.slice(0, -1)},"iap.chain.seq":2,"iap.chain.mac":"${'0'.repeat(64)}"}`, records[2]!], /tampered\.log:2: line changed/)
  })
})
