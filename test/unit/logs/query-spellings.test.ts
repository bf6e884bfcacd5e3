/**
 * `gitlab-iap logs` filters find a record under every spelling of what it names: paths and projects
 * as the policy reads them (percent-encoding, case, `İ`), user names in any Unicode normalization
 * form; times without a zone are UTC whatever the analyst's zone; and an enormous line is skipped
 * without being held.
 */
import { Readable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'
import {
  compileQuery, createLineSplitter, OVERLONG_LINE, parseRecord, parseTimeBound, readLogLines, statsKey, type QueryFilters,
} from '../../../src/logs/query.ts'

const line = (fields: Record<string, unknown>) => JSON.stringify({ '@timestamp': '2026-11-28T10:00:00.000Z', 'http.request.method': 'GET', ...fields })

/** Whether the query, text test and exact test together, selects the line. */
const selects = (filters: QueryFilters, text: string) => {
  const q = compileQuery(filters)
  return q.maybe(text) && q.matches(parseRecord(text)!)
}

describe('--path and --project compare as the policy reads requests', () => {
  const plain = line({ 'url.path': '/grp/proj/-/raw/main/secret.txt' })
  const encoded = line({ 'url.path': '/grp/proj/-/raw/main/secr%65t.txt' })
  const cafe = line({ 'url.path': '/grp/proj/-/raw/main/caf%C3%A9.txt' })
  const dotted = line({ 'url.path': '/%C4%B0nternal/vault/-/raw/main/secret.txt', 'iap.gitlab.project': '%C4%B0nternal/vault' })
  const upper = line({ 'url.path': '/Internal/Vault/-/raw/main/secret.txt', 'iap.gitlab.project': 'Internal/Vault' })

  it('a path is found under any percent-encoding of it, on either side', () => {
    for (const pattern of ['/grp/proj/-/raw/main/secret.txt', '/grp/proj/-/raw/main/secr%65t.txt', '/grp/proj/-/raw/main/SECRET.txt', '/grp/**/secret.txt']) {
      expect(selects({ path: pattern }, plain), `${pattern} on plain`).toBe(true)
      expect(selects({ path: pattern }, encoded), `${pattern} on encoded`).toBe(true)
    }
    for (const pattern of ['/grp/proj/-/raw/main/café.txt', '/grp/proj/-/raw/main/caf%C3%A9.txt', '/grp/proj/-/raw/main/caf%c3%a9.txt', '/grp/proj/-/raw/main/CAFÉ.txt']) {
      expect(selects({ path: pattern }, cafe), pattern).toBe(true)
    }
    expect(selects({ path: '/grp/proj/-/raw/main/other.txt' }, encoded)).toBe(false)
    expect(selects({ path: '/grp/proj/-/raw/main/cafe.txt' }, cafe)).toBe(false)
  })

  it('İ (U+0130) is i, as GitLab and the policy read it, in --path and --project', () => {
    for (const filters of [{ project: 'internal/vault' }, { project: 'internal/**' }, { project: 'internal' }, { project: 'INTERNAL/Vault' }, { path: '/internal/vault/**' }]) {
      expect(selects(filters, dotted), JSON.stringify(filters)).toBe(true)
      expect(selects(filters, upper), JSON.stringify(filters)).toBe(true)
    }
    expect(selects({ project: 'internal/other' }, dotted)).toBe(false)
    expect(selects({ project: 'intern' }, dotted)).toBe(false)
  })

  it('a project logged percent-encoded is found by its name, and the other way round', () => {
    const text = line({ 'iap.gitlab.project': 'grp/caf%C3%A9' })
    expect(selects({ project: 'grp/café' }, text)).toBe(true)
    expect(selects({ project: 'grp/caf%C3%A9' }, line({ 'iap.gitlab.project': 'grp/café' }))).toBe(true)
  })

  it('a bad percent-encoding in a pattern is an error naming the flag', () => {
    expect(() => compileQuery({ path: '/caf%C3' })).toThrow(/^--path: bad percent-encoding/)
    expect(() => compileQuery({ project: 'g/%zz' })).toThrow(/^--project: bad percent-encoding/)
  })

  it('--stats groups project and path spellings of one resource together', () => {
    expect(statsKey('project', '%C4%B0nternal/vault')).toBe(statsKey('project', 'Internal/Vault'))
    expect(statsKey('project', 'grp/caf%C3%A9')).toBe(statsKey('project', 'GRP/Café'))
    expect(statsKey('path', '/grp/proj/-/raw/main/secr%65t.txt')).toBe(statsKey('path', '/grp/proj/-/raw/main/secret.txt'))
    expect(statsKey('path', '/grp/proj/-/raw/main/caf%c3%a9.txt')).toBe(statsKey('path', '/grp/proj/-/raw/main/café.txt'))
    // Paths keep case (a file in a repository) and an encoded slash (GitLab routes it as part of a name).
    expect(statsKey('path', '/g/p/-/raw/main/A.txt')).not.toBe(statsKey('path', '/g/p/-/raw/main/a.txt'))
    expect(statsKey('path', '/api/v4/projects/g%2Fp')).toBe(statsKey('path', '/api/v4/projects/g%2fp'))
    expect(statsKey('path', '/api/v4/projects/g%2Fp')).not.toBe(statsKey('path', '/api/v4/projects/g/p'))
  })
})

describe('--user in any Unicode normalization form', () => {
  const nfc = 'Ålice@contoso.com'
  const nfd = 'A\u030alice@contoso.com'
  it('a precomposed name finds a decomposed one written raw, and the other way round', () => {
    expect(nfc).not.toBe(nfd)
    for (const [wanted, logged] of [[nfc, nfd], [nfd, nfc], [nfc.toLowerCase(), nfd], ['\u212blice@contoso.com', nfc]] as const) {
      const text = line({ 'user.name': logged })
      expect(text).not.toContain('\\u')
      expect(selects({ user: wanted }, text), `${JSON.stringify(wanted)} on ${JSON.stringify(logged)}`).toBe(true)
    }
    expect(selects({ user: 'alice@contoso.com' }, line({ 'user.name': nfd }))).toBe(false)
    // The only characters that normalize to ASCII: U+212A (Kelvin sign), U+037E (Greek question mark), U+1FEF.
    expect(selects({ user: 'kim@contoso.com' }, line({ 'user.name': '\u212aim@contoso.com' }))).toBe(true)
    expect(selects({ user: 'a;b`c' }, line({ 'user.name': 'a\u037eb\u1fefc' }))).toBe(true)
    // The text test still rejects other lines, ASCII or not.
    expect(compileQuery({ user: nfc }).maybe(line({ 'user.name': 'bob@contoso.com', 'user_agent.original': 'Ünïcode' }))).toBe(false)
  })
  it('--stats user counts both forms as one user', () => {
    expect(statsKey('user', nfd)).toBe(statsKey('user', nfc.toUpperCase()))
  })
})

describe('--since and --until', () => {
  const saved = process.env.TZ
  afterEach(() => {
    if (saved === undefined) delete process.env.TZ
    else process.env.TZ = saved
  })

  it('read a time without a zone as UTC, whatever the local zone', () => {
    for (const tz of ['America/New_York', 'Asia/Kolkata', 'UTC']) {
      process.env.TZ = tz
      expect(parseTimeBound('since', '2026-11-29 19:37:46'), tz).toBe(Date.UTC(2026, 10, 29, 19, 37, 46))
      expect(parseTimeBound('since', '2026-11-29T19:37'), tz).toBe(Date.UTC(2026, 10, 29, 19, 37))
      expect(parseTimeBound('since', '2026-11-28'), tz).toBe(Date.UTC(2026, 10, 28))
      // A record's time without a zone is UTC too.
      expect(selects({ since: '2026-11-28T10:00:00Z', until: '2026-11-28T10:00:00Z' }, line({ '@timestamp': '2026-11-28 10:00:00' })), tz).toBe(true)
    }
  })

  it('refuse a bare number that reads as a year or a date (2025, 20261125), naming both readings; other bare numbers are seconds', () => {
    expect(() => parseTimeBound('since', '2025')).toThrow('--since: "2025" could be seconds or a date: write 2025s for seconds, or the date as 2025-01-01')
    expect(() => parseTimeBound('until', '20261125')).toThrow('write 20261125s for seconds, or the date as 2026-11-25')
    const now = Date.UTC(2026, 10, 29, 12)
    expect(parseTimeBound('since', '3600', now)).toBe(now - 3_600_000)
    expect(parseTimeBound('since', '2025s', now)).toBe(now - 2_025_000)
  })

  it('take a zone when one is given; the table\'s own spelling (…Z) reads back', () => {
    expect(parseTimeBound('since', '2026-11-29 19:37:46Z')).toBe(Date.UTC(2026, 10, 29, 19, 37, 46))
    expect(parseTimeBound('since', '2026-11-29T21:37:46+02:00')).toBe(Date.UTC(2026, 10, 29, 19, 37, 46))
    expect(parseTimeBound('since', '2026-11-29T14:37:46-0500')).toBe(Date.UTC(2026, 10, 29, 19, 37, 46))
    expect(parseTimeBound('since', '2026-11-29T19:37:46.123456789Z')).toBe(Date.UTC(2026, 10, 29, 19, 37, 46, 123))
  })

  it('--until covers all of what it names: a date is through the end of that UTC day, a second through its end', () => {
    expect(parseTimeBound('until', '2026-11-28')).toBe(Date.UTC(2026, 10, 29) - 1)
    expect(parseTimeBound('until', '2026-11-28T10:00')).toBe(Date.UTC(2026, 10, 28, 10, 1) - 1)
    expect(parseTimeBound('until', '2026-11-28 10:00:00Z')).toBe(Date.UTC(2026, 10, 28, 10, 0, 1) - 1)
    expect(parseTimeBound('until', '2026-11-28T10:00:00.5Z')).toBe(Date.UTC(2026, 10, 28, 10, 0, 0, 599))
    const late = line({ '@timestamp': '2026-11-28T23:59:59.999999999Z' })
    expect(selects({ until: '2026-11-28' }, late)).toBe(true)
    expect(selects({ since: '2026-11-29' }, late)).toBe(false)
    expect(selects({ until: '2026-11-27' }, late)).toBe(false)
    expect(selects({ until: '2026-11-28 10:00:00' }, line({ '@timestamp': '2026-11-28T10:00:00.700Z' }))).toBe(true)
  })

  it('refuse what is not ISO 8601 (no reading in a local zone), and impossible dates', () => {
    for (const text of ['Nov 29 2026', '11/29/2026', '2026-02-30', '2026-11-28T24:00', '2026-11-28T10:00+25:00', 'yesterday']) {
      expect(() => parseTimeBound('since', text), text).toThrow(/^--since: .* nor an ISO 8601 time/)
    }
  })
})

describe('long lines', () => {
  it('a line longer than the limit stands as OVERLONG_LINE, in its place, across any chunking', () => {
    const input = 'a\n' + 'x'.repeat(25) + '\nb\n' + 'y'.repeat(11) + '\n' + 'z'.repeat(10) + '\n' + 'w'.repeat(30)
    const want = ['a', OVERLONG_LINE, 'b', OVERLONG_LINE, 'z'.repeat(10), OVERLONG_LINE]
    for (const size of [1, 2, 3, 7, 11, 64]) {
      const splitter = createLineSplitter(10)
      const got: string[] = []
      for (let i = 0; i < input.length; i += size) got.push(...splitter.lines(input.slice(i, i + size)))
      const last = splitter.end()
      if (last !== undefined) got.push(last)
      expect(got, `chunks of ${size}`).toEqual(want)
    }
  })

  it('readLogLines skips a long line while reading it, and reads on', async () => {
    async function* chunks() {
      yield Buffer.from('{"a":1}\n')
      // 64 MiB without a newline, a chunk at a time.
      const mib = Buffer.alloc(1 << 20, 0x61)
      for (let i = 0; i < 64; i++) yield mib
      yield Buffer.from('\n{"b":2}\n')
    }
    const lines: string[] = []
    for await (const l of readLogLines(Readable.from(chunks()), 'test')) lines.push(l.length > 100 ? `long:${l.length}` : l)
    expect(lines).toEqual(['{"a":1}', OVERLONG_LINE, '{"b":2}'])
  })
})
