import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ANONYMOUS, type Identity } from '../../../src/auth/identity.ts'
import { isoTimestamp, MAX_QUERY_LENGTH, MAX_USER_AGENT_LENGTH, toAccessRecord, TRUNCATED, truncate } from '../../../src/logs/access-record.ts'
import { createChain, createChainVerifier, cutDigest, unseal } from '../../../src/logs/chain.ts'
import { compileQuery, orderLogFiles, parseRecord, type QueryFilters } from '../../../src/logs/query.ts'
import { REDACTED, redactPath, redactProject, redactQuery } from '../../../src/logs/redact.ts'
import { alice, requestContext } from '../../helpers/records.ts'


const ctx = requestContext

describe('access record', () => {
  it('formats @timestamp exactly as Date#toISOString, across second boundaries and in any order', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: Date.parse('9999-12-31T23:59:59.999Z') }), { minLength: 1, maxLength: 20 }), (stamps) => {
        for (const ms of stamps) {
          expect(isoTimestamp(ms)).toBe(new Date(ms).toISOString())
          expect(isoTimestamp(ms + 1)).toBe(new Date(ms + 1).toISOString())
        }
      }),
      { numRuns: 500 },
    )
    expect(isoTimestamp(Date.parse('2026-11-28T10:00:00.999Z') + 1)).toBe('2026-11-28T10:00:01.000Z')
  })

  it('writes only fields the published JSON Schema names (docs/access-log.schema.json), and its required ones', () => {
    const schema = JSON.parse(readFileSync(join(import.meta.dirname, '../../../docs/access-log.schema.json'), 'utf8')) as { properties: Record<string, unknown>; required: string[] }
    const full = toAccessRecord(
      ctx({
        upstreamNs: 700n, websocket: true, aborted: true, error: 'upstream-reset',
        identity: { ...alice, kind: 'ci', displayName: 'Alice', appId: 'app-1', roles: ['r'], groupsSource: 'graph', issuer: 'gitlab-ci', ci: { projectPath: 'g/p', ref: 'main', refProtected: true, pipelineId: '1', jobId: '2' } },
      }),
      2_001_000n,
    )
    // What the access log adds to each record: the process, and with a key the chain fields.
    const keys = [...Object.keys(full), 'iap.instance.id', 'iap.chain.start', 'iap.chain.seq', 'iap.chain.mac']
    expect(keys.filter((key) => !(key in schema.properties))).toEqual([])
    for (const key of schema.required) expect(full).toHaveProperty([key])
  })

  it('has every required field with ECS names', () => {
    const r = toAccessRecord(ctx({ upstreamNs: 700n }), 2_001_000n)
    expect(r).toMatchObject({
      '@timestamp': '2026-11-28T10:00:00.000Z', 'http.request.id': 'req-1', 'http.request.method': 'GET', 'url.path': '/group/project/-/issues',
      'http.response.status_code': 200, 'http.response.bytes': 512, 'event.duration': 2_000_000, 'event.outcome': 'success',
      'client.ip': '10.1.2.3', 'user_agent.original': 'curl/8', 'user.id': 'oid-alice', 'user.name': 'alice@example.com',
      'user.email': 'alice@example.com', 'iap.identity.kind': 'user', 'iap.identity.groups': ['g-eng'], 'iap.auth.method': 'session',
      'iap.decision.result': 'allow', 'iap.decision.rule': 'read-everything', 'iap.decision.reason': 'group-match',
      'iap.gitlab.route': 'web', 'iap.gitlab.project': 'group/project', 'iap.upstream.duration': 700, 'url.query': 'state=opened',
    })
  })

  it('keeps required fields for anonymous requests (null, not missing)', () => {
    const r = toAccessRecord(ctx({ identity: ANONYMOUS, authMethod: 'none', decision: { result: 'deny', rule: null, reason: 'no-rule-matched' }, status: 403 }), 2_000n)
    expect(r['user.id']).toBeNull()
    expect(r['user.name']).toBeNull()
    expect(r['iap.decision.rule']).toBeNull()
    expect(r['event.outcome']).toBe('failure')
    expect(r['iap.identity.kind']).toBe('anonymous')
  })

  it('a challenge is a failure even as a 302 to sign-in; an allowed redirect is a success', () => {
    expect(toAccessRecord(ctx({ identity: ANONYMOUS, authMethod: 'none', decision: { result: 'challenge', rule: null, reason: 'credentials-missing' }, status: 302 }), 2_000n)['event.outcome']).toBe('failure')
    expect(toAccessRecord(ctx({ status: 302 }), 2_000n)['event.outcome']).toBe('success')
  })

  it('any record with an error code is a failure, even after a 200 was sent (GitLab cut the body)', () => {
    expect(toAccessRecord(ctx({ status: 200, error: 'upstream-reset' }), 2_000n)['event.outcome']).toBe('failure')
    expect(toAccessRecord(ctx({ status: 101, websocket: true, error: 'upstream-reset' }), 2_000n)['event.outcome']).toBe('failure')
    expect(toAccessRecord(ctx({ status: 200 }), 2_000n)['event.outcome']).toBe('success')
  })

  it('cuts an oversized user agent and query with a marker, after redaction; ordinary ones stay as they are', () => {
    const r = toAccessRecord(ctx({ userAgent: 'x'.repeat(30_000), query: `private_token=glpat-123&q=${'y'.repeat(30_000)}` }), 2_000n)
    expect(r['user_agent.original']).toBe(`${'x'.repeat(MAX_USER_AGENT_LENGTH)}${TRUNCATED}`)
    expect(r['url.query']).toBe(`${`private_token=${REDACTED}&q=${'y'.repeat(30_000)}`.slice(0, MAX_QUERY_LENGTH)}${TRUNCATED}`)
    const exact = toAccessRecord(ctx({ userAgent: 'u'.repeat(MAX_USER_AGENT_LENGTH), query: 'q'.repeat(MAX_QUERY_LENGTH) }), 2_000n)
    expect(exact['user_agent.original']).toBe('u'.repeat(MAX_USER_AGENT_LENGTH))
    expect(exact['url.query']).toBe('q'.repeat(MAX_QUERY_LENGTH))
    // Never half a surrogate pair.
    expect(truncate(`${'a'.repeat(9)}😀😀`, 10)).toBe(`${'a'.repeat(9)}${TRUNCATED}`)
  })

  it('records CI job facts for GitLab CI identities', () => {
    const ci: Identity = { kind: 'ci', id: 'ada', name: 'ada', groups: ['gitlab-ci:platform'], roles: [], issuer: 'gitlab-ci', ci: { projectPath: 'platform/infra', ref: 'main', refProtected: true, pipelineId: '574', jobId: '302' } }
    expect(toAccessRecord(ctx({ identity: ci, authMethod: 'bearer' }), 2_000n)).toMatchObject({ 'iap.ci.project_path': 'platform/infra', 'iap.ci.ref': 'main', 'iap.ci.ref_protected': true, 'iap.ci.job_id': '302', 'iap.identity.issuer': 'gitlab-ci' })
  })
})

describe('query redaction', () => {
  it.each([
    ['private_token=glpat-123&page=2', `private_token=${REDACTED}&page=2`],
    ['state=opened&scope=all', 'state=opened&scope=all'],
    ['access_token=a&job_token=b&id_token=c&refresh_token=d', `access_token=${REDACTED}&job_token=${REDACTED}&id_token=${REDACTED}&refresh_token=${REDACTED}`],
    ['X-Amz-Signature=s&X-Amz-Credential=c&file=a', `X-Amz-Signature=${REDACTED}&X-Amz-Credential=${REDACTED}&file=a`],
    ['feed_token=f&my_api_key=k&search=token', `feed_token=${REDACTED}&my_api_key=${REDACTED}&search=token`],
    ['private%5Ftoken=x', `private%5Ftoken=${REDACTED}`],
    ['ref=main&path=a%2Fb', 'ref=main&path=a%2Fb'],
    ['a=1;private_token=x;b=2', `a=1;private_token=${REDACTED};b=2`],
    ['jwt=x&id_token_hint=y&ticket=z', `jwt=${REDACTED}&id_token_hint=${REDACTED}&ticket=${REDACTED}`],
    ['q=a;b&c', 'q=a;b&c'],
    // Token-shaped values, whatever the parameter is called.
    ['glpat=glpat-SECRETPAT0123456789&x=1', `glpat=${REDACTED}&x=1`],
    ['t=glrt-abcdefgh_12345&u=gldt-ZZZZZZZZZZZZ&v=glcbt-64_abcdefghij', `t=${REDACTED}&u=${REDACTED}&v=${REDACTED}`],
    ['reg=GR1348941abcdefghij', `reg=${REDACTED}`],
    ['auth=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln&page=2', `auth=${REDACTED}&page=2`],
    ['auth=eyJhbGciOiJSUzI1NiJ9%2EeyJzdWIiOiJ4In0%2Ec2ln', `auth=${REDACTED}`],
    ['glpat-SECRETPAT0123456789&page=2', `${REDACTED}&page=2`],
    // Look-alikes stay: GitLab's own values are not tokens.
    ['search=glpat&scope=glob-patterns-here&label=eyJ', 'search=glpat&scope=glob-patterns-here&label=eyJ'],
    // A value that is a URL or a query of its own: its query is redacted, the value logged encoded.
    ['rd=%2Fdashboard%2Fprojects.atom%3Ffeed_token%3Dglft-AUDIT1234567890', `rd=${encodeURIComponent(`/dashboard/projects.atom?feed_token=${REDACTED}`)}`],
    ['rd=/group/project?private_token=anything&x=1', `rd=${encodeURIComponent(`/group/project?private_token=${REDACTED}`)}&x=1`],
    ['rd=%2Fa%3Fpage%3D2%26token%3Dabc%23top&y=2', `rd=${encodeURIComponent(`/a?page=2&token=${REDACTED}`)}&y=2`],
    ['next=a%3D1%26job_token%3Dxyz', `next=${encodeURIComponent(`a=1&job_token=${REDACTED}`)}`],
    // Nested twice (a return target inside a return target), and a nested sign-in callback's code.
    ['rd=%2Fx%3Frd%3D%252Fy%253Ftoken%253Dabc', `rd=${encodeURIComponent(`/x?rd=${encodeURIComponent(`/y?token=${REDACTED}`)}`)}`],
    ['rd=%2F-%2Fiap%2Fcallback%3Fcode%3Dc0de%26state%3Ds', `rd=${encodeURIComponent(`/-/iap/callback?code=${REDACTED}&state=${REDACTED}`)}`],
    // Nested values without secrets stay byte-for-byte.
    ['rd=%2Fgroup%2Fproject%2F-%2Fissues%3Flabel_name%5B%5D%3Dbug', 'rd=%2Fgroup%2Fproject%2F-%2Fissues%3Flabel_name%5B%5D%3Dbug'],
    ['rd=%E0%A4%A&x=1', 'rd=%E0%A4%A&x=1'],
  ])('%s', (query, expected) => expect(redactQuery(query)).toBe(expected))
  it.each(['/-/iap/callback', '/oauth/authorize', '/users/auth/openid_connect/callback', '/-/jira_connect/oauth_callbacks'])('redacts code and state on %s', (path) => {
    expect(redactQuery('code=abc&state=xyz&x=1', path)).toBe(`code=${REDACTED}&state=${REDACTED}&x=1`)
  })
})

describe('query redaction: credentials inside values (audit)', () => {
  const PAT = 'glpat-SECRETPAT0123456789'
  const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'
  it.each([
    // A token's shape anywhere in the value, after a character no token holds, plain or encoded.
    [`q=token%20${PAT}`, `q=${REDACTED}`],
    [`q=token+${PAT}&page=2`, `q=${REDACTED}&page=2`],
    [`q=token%2520${PAT}`, `q=${REDACTED}`],
    [`note=see:${PAT}`, `note=${REDACTED}`],
    [`q=a%20b%20${PAT.replace('-', '%2D')}`, `q=${REDACTED}`],
    [`h=Bearer%20${JWT}`, `h=${REDACTED}`],
    [`authorization=Bearer%20${JWT}`, `authorization=${REDACTED}`],
    [`search=x%3B${JWT.replaceAll('.', '%2E')}`, `search=${REDACTED}`],
    // A bare value too.
    [`token%20${PAT}&page=2`, `${REDACTED}&page=2`],
    // A credential sent as a parameter's name goes whole, name and value.
    [`page=2&${PAT}=1`, `page=2&${REDACTED}`],
    [`q=%20${PAT}%3D;%20${PAT}=`, `q=${REDACTED};${REDACTED}`],
    // A URL with a user (and password) in it, anywhere in the value, plain or encoded.
    [`import_url=https%3A%2F%2Foauth2%3A${PAT}%40github.com%2Fa%2Fb.git`, `import_url=${REDACTED}`],
    ['import_url=https://user:PLAINPASS@github.com/a/b.git', `import_url=${REDACTED}`],
    ['import_url=https%3A%2F%2Fuser%3APLAINPASS%40github.com%2Fa%2Fb.git&name=b', `import_url=${REDACTED}&name=b`],
    ['u=https://gitlab-ci-token:glcbt-64_XXXXXXXXXX@host/x.git', `u=${REDACTED}`],
    ['u=https://gitlab-ci-token:plainjobtoken@host/x.git', `u=${REDACTED}`],
    ['mirror=https://s3cr3tusertoken@host/x.git', `mirror=${REDACTED}`],
    ['u=https://user:p@ss@host/x', `u=${REDACTED}`],
    ['u=https://user:pa%2Fss@host/x', `u=${REDACTED}`],
    ['u=https%253A%252F%252Fuser%253APLAINPASS%2540host', `u=${REDACTED}`],
    ['q=git+clone+https%3A%2F%2Fuser%3APLAINPASS%40host%2Fx.git', `q=${REDACTED}`],
    ['u=https://user:PLAINPASS@host/%E0%A4%A', `u=${REDACTED}`],
    ['u=https://user:PLAINPASS@host/x?private_token=abc', `u=${REDACTED}`],
    // Nested: the return target keeps its path, the URL-valued parameter inside it loses its value.
    ['rd=/x?mirror=https%3A%2F%2Fuser%3APLAINPASS%40host', `rd=${encodeURIComponent(`/x?mirror=${REDACTED}`)}`],
    // Nested values are checked once more as logged: a token in the nested path goes with the whole value.
    [`rd=%2Fx%2F${PAT}%3Fa%3D1`, `rd=${REDACTED}`],
    // Authorization-header credentials.
    ['h=Basic%20dXNlcjpwYXNz', `h=${REDACTED}`],
    ['h=Basic+dXNlcjpwYXNzd29yZA%3D%3D&x=1', `h=${REDACTED}&x=1`],
    ['h=Bearer%20opaque_0123456789', `h=${REDACTED}`],
    ['h=bearer%20AbCdEfGhIjKl', `h=${REDACTED}`],
    ['h=token%20ghp_abcdef0123456789', `h=${REDACTED}`],
    ['authorization=Bearer%20x', `authorization=${REDACTED}`],
    // Secret-bearing parameters on any route.
    ['user_code=ABCD-EFGH', `user_code=${REDACTED}`],
    ['device_code=abc&x=1', `device_code=${REDACTED}&x=1`],
    ['oauth_verifier=v&oauth_token=t', `oauth_verifier=${REDACTED}&oauth_token=${REDACTED}`],
    // `code` beside a `state` is an OAuth reply, whatever the route; `state` alone is GitLab's filter.
    ['code=c0de&state=xyz', `code=${REDACTED}&state=xyz`],
    ['state=xyz&x=1&code=c0de', `state=xyz&x=1&code=${REDACTED}`],
    ['st%61te=xyz;Code=c0de', `st%61te=xyz;Code=${REDACTED}`],
  ])('%s', (query, expected) => expect(redactQuery(query, '/group/project/-/somewhere')).toBe(expected))

  it.each([
    'search=token', 'scope=projects&search=glpat', 'search=glpat-', 'redirect_to=/group/project', 'redirect_to=%2Fgroup%2Fproject',
    'ref=main', 'page=2&per_page=20', 'author_username=ada', 'state=opened&scope=all', 'code=ruby', 'search=token+rotation',
    'search=basic%20authentication', 'search=Basic+Auth', 'search=Bearer+Token', 'search=token%20Rotation',
    'redirect_to=https%3A%2F%2Fgitlab.example.com%2Fgroup%2Fproject', 'url=https://example.com/?email=ada@example.com',
    'q=mailto:ada@example.com', 'q=eyJ.eyJ', 'branch=release-glrt-rotation',
  ])('keeps %s', (query) => expect(redactQuery(query, '/group/project/-/issues')).toBe(query))

  it('redacts code and state on the Web IDE OAuth redirect, and user_code on the device page', () => {
    expect(redactQuery('code=abc&x=1', '/-/ide/oauth_redirect')).toBe(`code=${REDACTED}&x=1`)
    expect(redactQuery('code=abc&state=xyz', '/-/ide/oauth_redirect')).toBe(`code=${REDACTED}&state=${REDACTED}`)
    expect(redactQuery('user_code=ABCD-EFGH', '/oauth/device')).toBe(`user_code=${REDACTED}`)
  })

  it('an injected token never survives, wherever it sits in a value', () => {
    const body = fc.stringMatching(/^[A-Za-z0-9_-]{20,40}$/)
    const prefix = fc.constantFrom('glpat-', 'gldt-', 'glrt-', 'glcbt-', 'glft-', 'GR1348941')
    const text = fc.stringMatching(/^[A-Za-z0-9 .:/@=&;?%+-]{0,30}$/)
    const before = fc.constantFrom(' ', '%20', '+', ':', '/', '%3A', '%2F', '=', '%3D', '@', '%40', ',', '(')
    fc.assert(
      fc.property(text, before, prefix, body, text, (head, sep, pre, tail, rest) => {
        const token = `${pre}${tail}`
        const out = redactQuery(`page=2&q=${head}${sep}${token}${rest}`)
        expect(out).not.toContain(tail)
        expect(out.startsWith('page=2&')).toBe(true)
      }),
      { numRuns: 500 },
    )
  })

  it('handles a 64 KiB adversarial value in well under 50 ms', () => {
    const n = 64 * 1024
    const shapes = [
      'eyJ-'.repeat(n / 4), 'eyJa.'.repeat(n / 5).replaceAll('.', '-'), `eyJ${'a'.repeat(n)}.${'b'.repeat(n)}`,
      'glpat-'.repeat(n / 6), 'glpat-a'.repeat(n / 7), 'token+'.repeat(n / 6), 'Bearer%20'.repeat(n / 9), 'bearer+token+'.repeat(n / 13),
      'https://'.repeat(n / 8), `https://${'a'.repeat(n)}`, `https://${':'.repeat(n)}`, '://:'.repeat(n / 4), 'a://a'.repeat(n / 5),
      '%25'.repeat(n / 3), '%2'.repeat(n / 2), 'a='.repeat(n / 2), '%3F%3D'.repeat(n / 6), '?='.repeat(n / 2), 'a@'.repeat(n / 2),
      `${'a'.repeat(n)}@`, 'x'.repeat(n),
    ]
    for (const shape of shapes) {
      for (const query of [`q=${shape}`, shape, `state=1&${shape.replaceAll('=', '&')}`]) {
        // The best of three: a GC pause or a busy machine is not backtracking, which would take seconds each time.
        let ms = Infinity
        for (let run = 0; run < 3; run++) {
          const start = performance.now()
          redactQuery(query, '/-/iap/callback')
          ms = Math.min(ms, performance.now() - start)
        }
        expect(ms, `${query.slice(0, 24)}… took ${ms.toFixed(1)} ms`).toBeLessThan(50)
      }
    }
  })
})

describe('path redaction', () => {
  it.each([
    ['/-/invites/abc123', `/-/invites/${REDACTED}`],
    ['/-/invites/abc123/decline', `/-/invites/${REDACTED}/decline`],
    ['/sent_notifications/0123abcd/unsubscribe', `/sent_notifications/${REDACTED}/unsubscribe`],
    ['/group/project/-/invites/x', '/group/project/-/invites/x'],
    ['/-/invitesx/abc', '/-/invitesx/abc'],
    ['/api/v4/projects', '/api/v4/projects'],
    ['/-/sent_notifications/0123abcd/unsubscribe', `/-/sent_notifications/${REDACTED}/unsubscribe`],
    // Token-shaped segments, wherever they are.
    ['/api/v4/user/glpat-SECRETPAT0123456789', `/api/v4/user/${REDACTED}`],
    ['/x/eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln/y', `/x/${REDACTED}/y`],
    ['/group/glft-abcdefghij.atom', `/group/${REDACTED}`],
    // Look-alikes stay.
    ['/group/glpat-short/-/tree/eyJ', '/group/glpat-short/-/tree/eyJ'],
    ['/glossary/gl-docs', '/glossary/gl-docs'],
  ])('%s', (path, expected) => expect(redactPath(path)).toBe(expected))
  it('token-shaped segments of an attributed project', () => {
    expect(redactProject('glpat-SECRETPAT0123456789/x')).toBe(`${REDACTED}/x`)
    expect(redactProject('group/glpat-SECRETPAT0123456789')).toBe(`group/${REDACTED}`)
    expect(redactProject('group/project')).toBe('group/project')
  })
})

describe('integrity chain', () => {
  const key = 'k'.repeat(32)
  const lines = () => {
    const chain = createChain(key)
    return [chain.seal('{"n":0,"iap.chain.start":"process"}'), ...Array.from({ length: 5 }, (_, i) => chain.seal(`{"n":${i + 1}}`))]
  }
  const verify = (ls: string[]) => {
    const v = createChainVerifier(key)
    ls.forEach((l, i) => v.push(l, 'access.log', i + 1))
    return v.verdict()
  }
  it('seals and verifies; unseal restores the original line', () => {
    const ls = lines()
    expect(verify(ls)).toEqual({ ok: true, lines: 6, starts: [{ source: 'access.log', line: 1, seq: 1 }], cut: [] })
    expect(unseal(ls[3]!)!.body).toBe('{"n":3}')
  })
  it.each([
    ['changed', (ls: string[]) => ls.map((l, i) => (i === 3 ? l.replace('"n":3', '"n":4') : l)), 4],
    ['removed', (ls: string[]) => ls.filter((_, i) => i !== 2), 3],
    ['reordered', (ls: string[]) => [ls[0]!, ls[1]!, ls[3]!, ls[2]!, ls[4]!, ls[5]!], 3],
    ['inserted', (ls: string[]) => [...ls.slice(0, 2), '{"n":99}', ...ls.slice(2)], 3],
    ['inserted', (ls: string[]) => [...ls.slice(0, 3), ls[2]!, ...ls.slice(3)], 4],
  ] as const)('detects a %s line and names it', (kind, tamper, line) => {
    const verdict = verify(tamper(lines()))
    expect(verdict.ok).toBe(false)
    expect(verdict.problem!.line).toBe(line)
    // A line moved forward first shows up as a gap: "removed" and "reordered" both name that line.
    if (kind === 'reordered') expect(['removed', 'reordered']).toContain(verdict.problem!.kind)
    else if (kind !== 'inserted' || line === 4) expect(verdict.problem!.kind).toBe(kind)
  })
  it('says what most likely happened when not even the first line checks out (an unsealed log, another key)', () => {
    const plain = verify(['{"n":1}', '{"n":2}'])
    expect(plain.problem).toMatchObject({ line: 1, kind: 'unsealed' })
    expect(plain.problem!.detail).toContain('was accessLog.integrity.key set when this log was written?')
    const other = createChainVerifier('another-key-0123456789abcdef0123456789')
    lines().forEach((l, i) => other.push(l, 'access.log', i + 1))
    expect(other.verdict().problem).toMatchObject({ line: 1, kind: 'changed' })
    expect(other.verdict().problem!.detail).toContain('not the key the log was written with')
    // Past the first verified line, a problem is just that: no guess about keys.
    const later = verify(lines().map((l, i) => (i === 3 ? l.replace('"n":3', '"n":4') : l)))
    expect(later.problem!.detail).toBe('mac does not match the line and its predecessor')
  })

  it('detects lines cut from the beginning; a log may begin mid-chain only at a file\'s first line, which is checked too', () => {
    for (const cut of [1, 2, 4]) {
      const verdict = verify(lines().slice(cut))
      expect(verdict.ok).toBe(false)
      expect(verdict.problem).toMatchObject({ line: 1, kind: 'removed' })
    }
    // As the access log writes them: a start names the mac before it (covered by its own mac).
    const chain = createChain(key)
    const sealNext = (body: Record<string, unknown>, start?: 'process' | 'file') =>
      chain.seal(JSON.stringify(start ? { ...body, 'iap.chain.start': start, 'iap.chain.prev': chain.state().mac } : body))
    const rotated = [sealNext({ n: 0, 'iap.instance.id': 'p1' }, 'process'), sealNext({ n: 1 }), sealNext({ n: 2, 'iap.instance.id': 'p1' }, 'file'), sealNext({ n: 3 }), sealNext({ n: 4, 'iap.instance.id': 'p2' }, 'process'), sealNext({ n: 5 })]
    expect(verify(rotated.slice(2))).toMatchObject({ ok: true, lines: 4, starts: [{ line: 1, seq: 3 }] })
    expect(verify(rotated.slice(3)).ok).toBe(false)
    // A process that restarted on the same file is not where a log may begin: the lines before it were cut.
    expect(verify(rotated.slice(4)).problem).toMatchObject({ line: 1, kind: 'removed' })
    // The audit's forgery: cut the head, then mark the new first line as a file start. Its mac no longer matches.
    const forged = rotated.slice(3)
    forged[0] = forged[0]!.replace('{"n":3', `{"n":3,"iap.chain.start":"file","iap.chain.prev":"${'0'.repeat(64)}"`)
    expect(verify(forged).problem).toMatchObject({ line: 1, kind: 'changed' })
    const unnamed = rotated.slice(3)
    unnamed[0] = unnamed[0]!.replace('{"n":3', '{"n":3,"iap.chain.start":"file"')
    expect(verify(unnamed).problem).toMatchObject({ line: 1, kind: 'removed' })
    // Logs from before the marks were fields: a separate start record still begins a chain (sequence 1),
    // but one cannot be checked mid-chain.
    const legacy = createChain(key)
    const old = [legacy.seal('{"event.action":"chain-start"}'), legacy.seal('{"n":1}'), legacy.seal('{"event.action":"chain-file-start"}'), legacy.seal('{"n":2}')]
    expect(verify(old).ok).toBe(true)
    expect(verify(old.slice(2)).ok).toBe(false)
  })

  it('a chain starts again only on a process\'s first record, and each process only once: replayed or duplicated logs are caught', () => {
    const process = (instance: string) => {
      const chain = createChain(key)
      return [chain.seal(JSON.stringify({ n: 0, 'iap.instance.id': instance, 'iap.chain.start': 'process', 'iap.chain.prev': '' })), chain.seal('{"n":1}'), chain.seal('{"n":2}')]
    }
    const a = process('a')
    const b = process('b')
    // Two processes' logs one after the other (a restart on stdout): both chains are reported.
    expect(verify([...a, ...b])).toMatchObject({ ok: true, lines: 6, starts: [{ line: 1, seq: 1, instance: 'a' }, { line: 4, seq: 1, instance: 'b' }] })
    expect(verify([...a, ...a]).problem).toMatchObject({ line: 4, kind: 'duplicated' })
    expect(verify([...a, ...b, ...a]).problem).toMatchObject({ line: 7, kind: 'duplicated' })
    // Sequence 1 on a line that is no process's first record does not begin a chain.
    const chain = createChain(key)
    expect(verify([...a, chain.seal('{"n":9}')]).problem).toMatchObject({ line: 4, kind: 'inserted' })
  })

  it('a line a dying process left half-written is passed over only when the next process continues the chain from the line before it', () => {
    const chain = createChain(key)
    const first = [chain.seal(JSON.stringify({ n: 0, 'iap.instance.id': 'a', 'iap.chain.start': 'process', 'iap.chain.prev': '' })), chain.seal('{"n":1}')]
    const half = chain.seal('{"n":2}').slice(0, 9)
    // The next process continues from the last whole line (as chainTail does), not from the cut one.
    const resumed = createChain(key, { seq: 2, mac: JSON.parse(first[1]!)['iap.chain.mac'] })
    const next = [resumed.seal(JSON.stringify({ n: 3, 'iap.instance.id': 'b', 'iap.chain.start': 'process', 'iap.chain.prev': resumed.state().mac, 'iap.chain.cut': cutDigest(half) })), resumed.seal('{"n":4}')]
    expect(verify([...first, half, ...next])).toMatchObject({ ok: true, cut: [{ line: 3 }] })
    // The start names that fragment only: another cut line put in its place, or one before a restart that names none, is caught.
    expect(verify([...first, '{"n":2,"user.name":"mall', ...next]).problem).toMatchObject({ line: 3, kind: 'unsealed' })
    const plain = createChain(key, { seq: 2, mac: JSON.parse(first[1]!)['iap.chain.mac'] })
    const restart = [plain.seal(JSON.stringify({ n: 3, 'iap.instance.id': 'c', 'iap.chain.start': 'process', 'iap.chain.prev': plain.state().mac }))]
    expect(verify([...first, half, ...restart]).problem).toMatchObject({ line: 3, kind: 'unsealed' })
    // A whole record without chain fields is never excused, nor is a cut line before anything but a process start.
    expect(verify([...first, '{"n":2,"user.name":"someone else"}', ...next]).problem).toMatchObject({ line: 3, kind: 'unsealed' })
    expect(verify([...first, half, next[1]!]).problem).toMatchObject({ line: 3, kind: 'unsealed' })
    expect(verify([...first, half]).problem).toMatchObject({ line: 3, kind: 'unsealed' })
  })
  it('cannot be re-sealed without the key', () => {
    const forged = createChain('x'.repeat(32))
    const ls = lines()
    ls[3] = forged.seal('{"n":3}')
    expect(verify(ls).ok).toBe(false)
  })
})

describe('query filters', () => {
  const line = JSON.stringify(toAccessRecord(ctx({ status: 403, decision: { result: 'deny', rule: 'admin-area', reason: 'no-group-match' } }), 2_000n))
  const record = JSON.parse(line) as Record<string, unknown>
  it.each([
    [{ user: 'ALICE@example.com' }, true], [{ user: 'bob' }, false], [{ user: 'oid-alice' }, true],
    [{ group: 'g-eng' }, true], [{ path: '/group/**' }, true], [{ path: '/other/**' }, false],
    [{ project: 'group' }, true], [{ project: 'group/project' }, true], [{ project: 'grou' }, false],
    [{ status: '403' }, true], [{ status: '4xx' }, true], [{ status: '5xx' }, false], [{ decision: 'deny' }, true],
    [{ rule: 'admin-area' }, true], [{ auth: 'session' }, true], [{ auth: 'bearer' }, false], [{ ip: '10.0.0.0/8' }, true],
    [{ ip: '192.168.0.0/16' }, false], [{ method: 'get' }, true], [{ requestId: 'req-1' }, true],
    [{ since: '2026-11-28T09:00:00Z', until: '2026-11-28T11:00:00Z' }, true], [{ since: '2026-11-28T10:30:00Z' }, false],
  ])('%j → %s', (filters, expected) => {
    const q = compileQuery(filters)
    expect(q.maybe(line) && q.matches(record)).toBe(expected)
  })
  it('rejects bad filter values with the flag name', () => {
    expect(() => compileQuery({ status: 'teapot' })).toThrow('--status')
    expect(() => compileQuery({ since: 'yesterday' })).toThrow('--since')
    expect(() => compileQuery({ ip: '10.0.0.0/99' })).toThrow('--ip')
  })
  it('orders rotated files before the live file, oldest first', () => {
    expect(orderLogFiles(['a.log', 'a.log.20261128T100000000Z-002.gz', 'a.log.20261128T090000000Z-001.gz'])).toEqual(['a.log.20261128T090000000Z-001.gz', 'a.log.20261128T100000000Z-002.gz', 'a.log'])
  })

  it('keeps a process\'s 1,000th rotation and later ones in time order, before the live file', () => {
    const stamp = '20261128T100000000Z'
    expect(orderLogFiles(['a.log', `a.log.${stamp}-1000`, `a.log.${stamp}-999`, 'a.log.20261128T090000000Z-1001.gz'])).toEqual([
      'a.log.20261128T090000000Z-1001.gz', `a.log.${stamp}-999`, `a.log.${stamp}-1000`, 'a.log',
    ])
  })
})

describe('query pre-test: a necessary condition for every JSON spelling', () => {
  const base: Record<string, unknown> = {
    '@timestamp': '2026-11-28T10:00:00.000Z', 'http.request.id': 'req-1', 'http.request.method': 'GET', 'url.path': '/group/project/-/issues',
    'http.response.status_code': 403, 'http.response.bytes': 512, 'event.duration': 2000, 'client.ip': '10.1.2.3', 'user.id': 'oid-josé',
    'user.name': 'josé@example.com', 'user.email': 'jose/x@example.com', 'iap.identity.kind': 'user', 'iap.identity.groups': ['g-eng', 'g-ops'],
    'iap.auth.method': 'session', 'iap.decision.result': 'deny', 'iap.decision.rule': 'admin-area', 'iap.decision.reason': 'no-group-match',
    'iap.gitlab.route': 'web', 'iap.gitlab.project': 'group/project',
  }
  // Filters the record matches; each spelling of it must pass both the text test and the exact test.
  const matching: QueryFilters[] = [
    { user: 'josé@example.com' }, { user: 'JOSÉ@EXAMPLE.COM' }, { user: 'OID-JOSÉ' }, { user: 'jose/x@example.com' }, { group: 'G-OPS' },
    { method: 'get' }, { status: '403' }, { status: '4xx' }, { status: ['500', '403'] }, { decision: 'DENY' }, { auth: 'Session' },
    { rule: 'admin-area' }, { requestId: 'req-1' }, { path: '/group/**' }, { project: 'group' }, { ip: '10.0.0.0/8' },
    { user: ['nobody', 'josé@example.com'], decision: ['allow', 'deny'], method: ['POST', 'GET'], status: ['2xx', '4xx'] },
  ]
  const notMatching: QueryFilters[] = [{ user: 'jos' }, { status: '404' }, { decision: 'allow' }, { rule: 'Admin-Area' }, { method: 'POST' }, { group: 'g-en' }]

  /** A valid JSON text of `record`, spelled by `rand`: whitespace, \u and \/ escapes, numbers as 403.0 or 4.03e2, nesting. */
  function spell(record: Record<string, unknown>, rand: () => number): string {
    const ws = () => [' ', '', '\t', '  ', '\n'][Math.floor(rand() * 5)]!
    const str = (s: string) =>
      '"' + [...s].map((c) => {
        if (c === '"' || c === '\\') return '\\' + c
        if (c === '/' && rand() < 0.3) return '\\/'
        if (rand() < 0.1) {
          const hex = Array.from({ length: c.length }, (_, i) => '\\u' + c.charCodeAt(i).toString(16).padStart(4, '0')).join('')
          return rand() < 0.5 ? hex : hex.toUpperCase().replaceAll('\\U', '\\u')
        }
        return c
      }).join('') + '"'
    const num = (n: number) => [String(n), `${n}.0`, `${n / 100}e2`, `${n}E0`][Math.floor(rand() * 4)]!
    const value = (v: unknown): string =>
      typeof v === 'string' ? str(v) : typeof v === 'number' ? num(v) : Array.isArray(v) ? `[${ws()}${v.map(value).join(`${ws()},${ws()}`)}${ws()}]`
        : v !== null && typeof v === 'object' ? object(v as Record<string, unknown>) : JSON.stringify(v)
    const object = (o: Record<string, unknown>) => `{${ws()}${Object.entries(o).map(([k, v]) => `${str(k)}${ws()}:${ws()}${value(v)}`).join(`${ws()},${ws()}`)}${ws()}}`
    if (rand() < 0.5) return object(record)
    // Nested ECS: some dotted names written as objects.
    const nested: Record<string, unknown> = {}
    for (const [key, v] of Object.entries(record)) {
      const parts = key.split('.')
      const depth = key === '@timestamp' ? 0 : Math.floor(rand() * parts.length)
      let at = nested
      for (let i = 0; i < depth; i++) at = (at[parts[i]!] ??= {}) as Record<string, unknown>
      at[parts.slice(depth).join('.')] = v
    }
    return object(nested)
  }

  it('never rejects a line the exact test accepts, and reads every spelling as the same record', () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        let s = seed >>> 0
        const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32)
        const line = spell(base, rand)
        const record = parseRecord(line)
        expect(record).toEqual(base)
        for (const filters of matching) {
          const q = compileQuery(filters)
          expect(q.matches(record!), `${JSON.stringify(filters)} on ${line}`).toBe(true)
          expect(q.maybe(line), `${JSON.stringify(filters)} on ${line}`).toBe(true)
        }
        for (const filters of notMatching) expect(compileQuery(filters).matches(record!)).toBe(false)
      }),
      { numRuns: 300 },
    )
  })

  it('still rejects, as text, compact lines that cannot match', () => {
    const line = JSON.stringify(base)
    for (const filters of notMatching) expect(compileQuery(filters).maybe(line), JSON.stringify(filters)).toBe(false)
  })

  it('reads nested objects under their dotted names; a flat record is returned as parsed', () => {
    expect(parseRecord('{"http":{"request":{"method":"GET"}},"iap":{"identity":{"groups":["g"]}}}')).toEqual({ 'http.request.method': 'GET', 'iap.identity.groups': ['g'] })
    expect(parseRecord('{"a.b":1}')).toEqual({ 'a.b': 1 })
    expect(parseRecord('[1]')).toBeUndefined()
    expect(parseRecord('{"a":')).toBeUndefined()
  })
})

describe('log file order', () => {
  it('keeps the order given, grouping each log with its rotated files, oldest first', () => {
    expect(orderLogFiles(['b.log', 'a.log'])).toEqual(['b.log', 'a.log'])
    expect(orderLogFiles(['z.log', 'a.log', 'a.log.20261128T100000000Z-002.gz', 'z.log.20261128T090000000Z-001.gz', 'a.log.20261128T090000000Z-001'])).toEqual([
      'z.log.20261128T090000000Z-001.gz', 'z.log', 'a.log.20261128T090000000Z-001', 'a.log.20261128T100000000Z-002.gz', 'a.log',
    ])
  })
})
