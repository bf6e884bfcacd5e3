/**
 * docs/access-log.md "The chain, byte for byte" is enough to verify a log: an implementation written
 * from it alone (no import of src/logs/chain.ts) accepts what the access log writes and catches edits.
 */
import { createHmac } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { Identity } from '../../../src/auth/identity.ts'
import { createAccessLog } from '../../../src/logs/index.ts'
import type { RequestContext } from '../../../src/server/context.ts'

const KEY = 'chain-recipe-key-ü-0123456789abcdef'
const SUFFIX = /,"iap\.chain\.seq":(\d+),"iap\.chain\.mac":"([0-9a-f]{64})"\}$/

/** The documented recipe, step by step; returns the 1-based number of the first bad line, or 0. */
function verifyAsDocumented(lines: string[]): number {
  let previous: { seq: number; mac: string } | undefined
  for (const [i, line] of lines.entries()) {
    const match = SUFFIX.exec(line)
    if (!match) return i + 1
    const body = Buffer.concat([Buffer.from(line.slice(0, match.index), 'utf8'), Buffer.from('}')])
    const seq = Number(match[1])
    const mac = match[2]!
    if (previous === undefined && seq !== 1) {
      if (!body.includes('"iap.chain.start":"')) return i + 1
      previous = { seq, mac }
      continue
    }
    const previousMac = seq === 1 ? '' : previous!.mac
    if (seq !== 1 && seq !== previous!.seq + 1) return i + 1
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
    // Mid-chain, from where the second process began.
    expect(verifyAsDocumented(lines.slice(5))).toBe(0)
    expect(verifyAsDocumented(lines.slice(6))).toBe(1)
    const changed = [...lines]
    changed[3] = changed[3]!.replace('"http.response.status_code":200', '"http.response.status_code":201')
    expect(verifyAsDocumented(changed)).toBe(4)
    const unmarked = [...lines]
    unmarked[5] = unmarked[5]!.replace('"iap.chain.start":"process"', '"iap.chain.start":"file"')
    expect(verifyAsDocumented(unmarked)).toBe(6)
  })
})
