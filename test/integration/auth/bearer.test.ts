/**
 * Bearer JWTs end to end: a real `gitlab-iap serve` between a loopback token issuer (keys made at
 * test time) and the GitLab-shaped echo upstream. Accepted tokens reach GitLab with identity headers
 * and a verifiable X-IAP-Assertion, never with the IAP token; rejected ones get 401 with a
 * `WWW-Authenticate: Bearer error="invalid_token"` and never reach the upstream.
 */
import { createHmac, createPublicKey, KeyObject, sign as rsaSign } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createRemoteJWKSet, exportSPKI, jwtVerify } from 'jose'
import WebSocket from 'ws'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'
import { startJwksServer, OTHER_TENANT, TEST_AUDIENCE, TEST_CLIENT, TEST_TENANT, type JwksServer } from '../../helpers/jwks-server.ts'

let idp: JwksServer
let upstream: Upstream
let proxy: ServeHandle
const presented: string[] = []
let seq = 0

const OID = '7a1d0c55-0000-4000-8000-000000000001'

beforeAll(async () => {
  idp = await startJwksServer()
  upstream = await startUpstream()
  proxy = await startServe(
    baseConfig(upstream.url, {
      entra: { tenantId: TEST_TENANT, clientId: TEST_CLIENT, authority: idp.authority, audiences: [TEST_AUDIENCE] },
      issuers: [
        { name: 'gitlab-ci', issuer: idp.ciIssuer, audiences: ['https://gitlab.test'], claims: { user: 'user_login', email: 'user_email', groups: ['namespace_path', 'project_path'] } },
      ],
      groups: { engineering: 'g-eng' },
      policy: {
        rules: [
          { name: 'public', paths: ['/public/**'], public: true },
          { name: 'ci-only', paths: ['/api/v4/ci/**'], groups: ['gitlab-ci:platform/infra'] },
          { name: 'apps', paths: ['/api/v4/apps/**'], roles: ['GitLab.Api'] },
          { name: 'engineering', paths: ['/**'], groups: ['engineering'] },
        ],
      },
    }),
  )
})

afterAll(async () => {
  await proxy?.stop()
  await upstream?.close()
  await idp?.close()
})

/** A unique path per request, so "never reached the upstream" is exact. */
const uniquePath = (prefix = '/api/v4/projects') => `${prefix}/case-${++seq}`

async function call(path: string, headers: Record<string, string>): Promise<{ status: number; headers: Headers; body: string }> {
  for (const value of Object.values(headers)) presented.push(value)
  const res = await fetch(`${proxy.url}${path}`, { headers: { accept: 'application/json', ...headers } })
  return { status: res.status, headers: res.headers, body: await res.text() }
}

const upstreamHeaders = (path: string) => {
  const hits = upstream.reached(path)
  expect(hits).toHaveLength(1)
  return hits[0]!.headers
}

describe('/-/iap/whoami without browser sign-in configured', () => {
  it('answers for a bearer token, 401 without one, and never reaches GitLab', async () => {
    upstream.clear()
    const token = await idp.mint()
    const res = await call('/-/iap/whoami', { authorization: `Bearer ${token}` })
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toMatchObject({ kind: 'user', id: OID, name: 'ada@example.test', groups: ['g-eng'], authMethod: 'bearer' })
    const anonymous = await call('/-/iap/whoami', {})
    expect(anonymous.status).toBe(401)
    expect(anonymous.headers.get('www-authenticate')).toContain('Bearer')
    expect(upstream.requests).toHaveLength(0)
  })
})

describe('accepted bearer tokens reach GitLab as the identity', () => {
  it('Entra v2 user token in Authorization: identity headers, no token, a verifiable assertion', async () => {
    const token = await idp.mint()
    const path = uniquePath()
    const res = await call(path, { authorization: `Bearer ${token}` })
    expect(res.status).toBe(200)
    const seen = upstreamHeaders(path)
    expect(seen.authorization).toBeUndefined()
    expect(seen['x-forwarded-user']).toBe('ada@example.test')
    expect(seen['x-forwarded-user-id']).toBe(OID)
    expect(seen['x-forwarded-email']).toBe('ada@example.test')
    expect(seen['x-forwarded-groups']).toBe('g-eng')
    const assertion = String(seen['x-iap-assertion'])
    const jwks = createRemoteJWKSet(new URL(`${proxy.url}/-/iap/jwks.json`))
    const { payload } = await jwtVerify(assertion, jwks, { algorithms: ['ES256'], issuer: 'http://127.0.0.1:8080/-/iap', audience: 'http://127.0.0.1:8080', requiredClaims: ['exp'] })
    expect(payload).toMatchObject({ sub: OID, kind: 'user', preferred_username: 'ada@example.test', groups: ['g-eng'], idp: 'entra', tid: TEST_TENANT })
    expect(JSON.stringify(seen)).not.toContain(token)
    // The key set's own record is an allow with its own reason (queries for denials do not list it).
    await expect.poll(() => proxy.records().filter((r) => r['url.path'] === '/-/iap/jwks.json').length).toBeGreaterThan(0)
    expect(proxy.records().find((r) => r['url.path'] === '/-/iap/jwks.json')).toMatchObject({ 'http.response.status_code': 200, 'iap.decision.result': 'allow', 'iap.decision.reason': 'jwks', 'iap.gitlab.route': 'iap' })
  })

  it('Entra v1 token (sts-style issuer {authority}/{tid}/, upn)', async () => {
    const path = uniquePath()
    const res = await call(path, { authorization: `Bearer ${await idp.mint({}, { issuer: 'v1' })}` })
    expect(res.status).toBe(200)
    expect(upstreamHeaders(path)['x-forwarded-user']).toBe('ada@example.test')
  })

  it('X-IAP-Authorization carries the IAP token while Authorization (a PAT) goes to GitLab untouched', async () => {
    const path = uniquePath()
    const res = await call(path, { 'x-iap-authorization': `Bearer ${await idp.mint()}`, authorization: 'Bearer glpat-for-gitlab-0123' })
    expect(res.status).toBe(200)
    const seen = upstreamHeaders(path)
    expect(seen.authorization).toBe('Bearer glpat-for-gitlab-0123')
    expect(seen['x-iap-authorization']).toBeUndefined()
  })

  it('app-only token: kind app, matched by roles, no user headers', async () => {
    const token = await idp.mint({ idtyp: 'app', scp: undefined, roles: ['GitLab.Api'], oid: '5c0f2d7e-0000-4000-8000-00000000000a' }, { omit: ['preferred_username', 'email', 'name', 'groups', 'scp'] })
    const path = uniquePath('/api/v4/apps')
    expect((await call(path, { authorization: `Bearer ${token}` })).status).toBe(200)
    const seen = upstreamHeaders(path)
    expect(seen['x-forwarded-user-id']).toBe('5c0f2d7e-0000-4000-8000-00000000000a')
    expect(seen['x-forwarded-user']).toBeUndefined()
    const { payload } = await jwtVerify(String(seen['x-iap-assertion']), createRemoteJWKSet(new URL(`${proxy.url}/-/iap/jwks.json`)), { algorithms: ['ES256'] })
    expect(payload).toMatchObject({ kind: 'app', roles: ['GitLab.Api'] })
    // The same app token on a rule that only names groups is denied (403), not challenged.
    expect((await call(uniquePath(), { authorization: `Bearer ${token}` })).status).toBe(403)
  })

  it('GitLab-CI-shaped id_token from an extra issuer: kind ci, issuer-qualified groups', async () => {
    const path = uniquePath('/api/v4/ci')
    const res = await call(path, { authorization: `Bearer ${await idp.mint({}, { issuer: 'ci' })}` })
    expect(res.status).toBe(200)
    const seen = upstreamHeaders(path)
    // An extra issuer's user is qualified like its groups (docs/bearer.md "Identities").
    expect(seen['x-forwarded-user']).toBe('gitlab-ci:ada')
    expect(seen['x-forwarded-user-id']).toBe('gitlab-ci:ada')
    expect(seen['x-forwarded-groups']).toBe('gitlab-ci:platform,gitlab-ci:platform/infra')
    // A CI token of another project is a valid identity without the group: 403.
    expect((await call(uniquePath('/api/v4/ci'), { authorization: `Bearer ${await idp.mint({ project_path: 'other/project', namespace_path: 'other' }, { issuer: 'ci' })}` })).status).toBe(403)
  })

  it('a GitLab PAT or foreign JWT in Authorization is left for GitLab', async () => {
    const foreign = await idp.mint({}, { issuer: 'https://elsewhere.example' })
    for (const value of ['Bearer glpat-0123456789abcdef', `Bearer ${foreign}`]) {
      const path = uniquePath('/public')
      expect((await call(path, { authorization: value })).status).toBe(200)
      expect(upstreamHeaders(path).authorization).toBe(value)
    }
  })

  it('the second request with the same token is served from the cache (same identity, no new verification)', async () => {
    const token = await idp.mint()
    const jwksBefore = idp.counts.jwks
    for (let i = 0; i < 5; i++) expect((await call(uniquePath(), { authorization: `Bearer ${token}` })).status).toBe(200)
    expect(idp.counts.jwks).toBe(jwksBefore)
  })
})

describe('rejected tokens never reach GitLab', () => {
  const seg = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')

  async function expectRejected(headers: Record<string, string>, reason: string, path = uniquePath()): Promise<void> {
    const res = await call(path, headers)
    expect(res.status, `${reason}: ${res.body}`).toBe(401)
    const challenge = res.headers.get('www-authenticate') ?? ''
    expect(challenge).toContain('Bearer')
    expect(challenge).toContain('error="invalid_token"')
    expect(challenge).toMatch(/error_description="[^"]+"/)
    expect(JSON.parse(res.body)).toMatchObject({ reason })
    for (const value of Object.values(headers)) {
      const token = value.replace(/^\S+\s+/, '')
      expect(res.body).not.toContain(token)
      expect(challenge).not.toContain(token)
    }
    expect(upstream.reached(path)).toHaveLength(0)
  }

  it.each(['none', 'None', 'NONE', 'nOnE'])('CVE-2022-23540 (alg none, jwt_tool checkAlgNone): alg %s', async (alg) => {
    const claims = JSON.parse(Buffer.from((await idp.mint()).split('.')[1]!, 'base64url').toString())
    await expectRejected({ authorization: `Bearer ${seg({ alg, typ: 'JWT' })}.${seg(claims)}.` }, 'token-alg-not-allowed')
    await expectRejected({ 'x-iap-authorization': `Bearer ${seg({ alg, typ: 'JWT', kid: idp.keys[0]!.kid })}.${seg(claims)}.` }, 'token-alg-not-allowed')
  })

  it('CVE-2022-23541 / CVE-2023-48223 (RS→HS key confusion): HS256 signed with the issuer public key', async () => {
    const claims = JSON.parse(Buffer.from((await idp.mint()).split('.')[1]!, 'base64url').toString())
    const pem = await exportSPKI(createPublicKey({ key: idp.keys[0]!.publicJwk as never, format: 'jwk' }) as never)
    const input = `${seg({ alg: 'HS256', typ: 'JWT', kid: idp.keys[0]!.kid })}.${seg(claims)}`
    await expectRejected({ authorization: `Bearer ${input}.${createHmac('sha256', pem).update(input).digest('base64url')}` }, 'token-alg-not-allowed')
  })

  it('JWKS cache poisoning: unknown kid', async () => {
    const stranger = await idp.newKey('RS256', 'stranger-kid')
    await expectRejected({ authorization: `Bearer ${await idp.mint({}, { key: stranger })}` }, 'token-unknown-key')
  })

  it('CVE-2018-0114 (embedded jwk), jku / x5u: an attacker key is never used or fetched', async () => {
    const attackerJwks = `${idp.authority}/attacker/keys`
    for (const header of [{ jku: attackerJwks }, { x5u: attackerJwks }, { jwk: idp.attackerKey.publicJwk }]) {
      await expectRejected({ authorization: `Bearer ${await idp.mint({}, { key: idp.attackerKey, header })}` }, 'token-unknown-key')
      await expectRejected({ authorization: `Bearer ${await idp.mint({}, { key: idp.attackerKey, header: { ...header, kid: idp.keys[0]!.kid } })}` }, 'token-bad-signature')
    }
    expect(idp.counts.attacker).toBe(0)
  })

  it('issuer and tenant confusion: wrong iss, wrong aud, wrong tid', async () => {
    await expectRejected({ 'x-iap-authorization': `Bearer ${await idp.mint({}, { issuer: 'https://elsewhere.example' })}` }, 'token-issuer-untrusted')
    await expectRejected({ 'x-iap-authorization': `Bearer ${await idp.mint({}, { issuer: `${idp.authority}/${OTHER_TENANT}/v2.0` })}` }, 'token-issuer-untrusted')
    await expectRejected({ authorization: `Bearer ${await idp.mint({ aud: 'https://graph.microsoft.com' })}` }, 'token-audience-invalid')
    await expectRejected({ authorization: `Bearer ${await idp.mint({ tid: OTHER_TENANT })}` }, 'token-tenant-invalid')
    // A wrong-iss token in Authorization is not ours: it goes to GitLab only if the policy allows anonymous access.
    const res = await call(uniquePath(), { authorization: `Bearer ${await idp.mint({}, { issuer: 'https://elsewhere.example' })}` })
    expect(res.status).toBe(401)
  })

  it('jose does not require exp: expired, future nbf, future iat, no exp', async () => {
    const now = Math.floor(Date.now() / 1000)
    await expectRejected({ authorization: `Bearer ${await idp.mint({ exp: now - 300, iat: now - 4000, nbf: now - 4000 })}` }, 'token-expired')
    await expectRejected({ authorization: `Bearer ${await idp.mint({ nbf: now + 600 })}` }, 'token-not-yet-valid')
    await expectRejected({ authorization: `Bearer ${await idp.mint({ iat: now + 600 })}` }, 'token-issued-in-future')
    await expectRejected({ authorization: `Bearer ${await idp.mint({}, { omit: ['exp'] })}` }, 'token-exp-missing')
  })

  it('aud confusion: an ID token used as an access token', async () => {
    await expectRejected({ authorization: `Bearer ${await idp.mint({ nonce: 'abc', aud: TEST_CLIENT }, { omit: ['scp', 'roles'] })}` }, 'token-not-access-token')
  })

  it('RFC 7515 §4.1.11: crit header', async () => {
    const claims = JSON.parse(Buffer.from((await idp.mint()).split('.')[1]!, 'base64url').toString())
    const input = `${seg({ alg: 'RS256', kid: idp.keys[0]!.kid, crit: ['exp'], exp: 1 })}.${seg(claims)}`
    const token = `${input}.${rsaSign('sha256', Buffer.from(input), KeyObject.from(idp.keys[0]!.privateKey)).toString('base64url')}`
    await expectRejected({ authorization: `Bearer ${token}` }, 'token-crit-unsupported')
  })

  it('CVE-2022-36083 class (token DoS): oversized tokens in X-IAP-Authorization and in Authorization', async () => {
    const big = await idp.mint({ pad: 'x'.repeat(17 * 1024) })
    await expectRejected({ 'x-iap-authorization': `Bearer ${big}` }, 'token-too-large')
    await expectRejected({ authorization: `Bearer ${big}` }, 'token-too-large')
  })

  it('malformed: bad base64, bad JSON, 2 or 4 segments, not Bearer', async () => {
    const [h, p, s] = (await idp.mint()).split('.') as [string, string, string]
    const badJson = Buffer.from('{"iss":"x",').toString('base64url')
    for (const token of [`${h}.${p}*.${s}`, `${h}.${badJson}.${s}`, `${h}.${p}`, `${h}.${p}.${s}.${s}`, `${h}.${p}.${s}%`]) {
      await expectRejected({ 'x-iap-authorization': `Bearer ${token}` }, 'token-malformed')
    }
    await expectRejected({ 'x-iap-authorization': `Basic ${Buffer.from('a:b').toString('base64')}` }, 'credential-malformed')
  })

  it('a malformed Authorization carrying an IAP token is refused, even on a public path (GitLab would read it leniently)', async () => {
    const valid = await idp.mint()
    const spaced = Buffer.from(`${valid}:glpat-x`).toString('base64').replace(/(.{20})/, '$1 ')
    for (const authorization of [`Bearer ${valid} x`, `Basic ${spaced}`, `Basic ${Buffer.from(` ${valid}:glpat-x`).toString('base64')}`]) {
      await expectRejected({ authorization }, 'authorization-malformed', uniquePath('/public'))
    }
    // A value GitLab alone reads still passes to it.
    const path = uniquePath('/public')
    expect((await call(path, { authorization: 'Bearer glpat-a b' })).status).toBe(200)
    expect(upstream.reached(path)[0]?.headers.authorization).toBe('Bearer glpat-a b')
  })

  it('Basic with an IAP token as username and as password: refused, the password never reaches GitLab', async () => {
    const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
    const ci = await idp.mint({}, { issuer: 'ci' })
    const entra = await idp.mint()
    await expectRejected({ authorization: basic(ci, entra) }, 'basic-password-iap-token', uniquePath('/api/v4/ci'))
    await expectRejected({ authorization: basic(entra, entra) }, 'basic-password-iap-token')
    // With the IAP credential in X-IAP-Authorization, that Authorization is dropped instead.
    const path = uniquePath()
    expect((await call(path, { 'x-iap-authorization': `Bearer ${entra}`, authorization: basic(ci, entra) })).status).toBe(200)
    const seen = upstreamHeaders(path)
    expect(seen.authorization).toBeUndefined()
    expect(JSON.stringify(seen)).not.toContain(entra)
  })

  it('Envoy CVE-2025-64527 (two tokens): a failed credential is final, no fallback in the same request', async () => {
    const valid = await idp.mint()
    await expectRejected({ 'x-iap-authorization': `Bearer ${valid}x`, authorization: `Bearer ${valid}` }, 'token-bad-signature')
  })

  it('git and LFS routes also offer Basic so the git CLI asks its credential helper', async () => {
    const path = `/group/project.git/info/refs?service=git-upload-pack&case=${++seq}`
    const res = await fetch(`${proxy.url}${path}`)
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toContain('Basic realm="gitlab-iap"')
    expect(res.headers.get('www-authenticate')).toContain('Bearer')
    expect(upstream.reached(path)).toHaveLength(0)
  })
})

describe('revocation and readiness', () => {
  it('/admin/revoke answers an oversized body with 413', async () => {
    const res = await fetch(`${proxy.adminUrl}/admin/revoke`, {
      method: 'POST',
      headers: { authorization: 'Bearer admin-token-for-tests-0123456789', 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'x'.repeat(100_000) }),
    })
    expect(res.status).toBe(413)
    expect(await res.json()).toEqual({ error: 'body over 4096 bytes' })
  })

  it('/admin/revoke rejects a user\'s earlier tokens even from the cache', async () => {
    const token = await idp.mint({ oid: '7a1d0c55-0000-4000-8000-0000000000ee', preferred_username: 'eve@example.test', iat: Math.floor(Date.now() / 1000) - 5 })
    expect((await call(uniquePath(), { authorization: `Bearer ${token}` })).status).toBe(200)
    const revoke = await fetch(`${proxy.adminUrl}/admin/revoke`, {
      method: 'POST',
      headers: { authorization: 'Bearer admin-token-for-tests-0123456789', 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'eve@example.test' }),
    })
    expect(revoke.status).toBe(200)
    const path = uniquePath()
    const res = await call(path, { authorization: `Bearer ${token}` })
    expect(res.status).toBe(401)
    expect(JSON.parse(res.body)).toMatchObject({ reason: 'token-revoked' })
    expect(upstream.reached(path)).toHaveLength(0)
    // Others are unaffected.
    expect((await call(uniquePath(), { authorization: `Bearer ${await idp.mint()}` })).status).toBe(200)
  })

  it('/admin/revoke closes the user\'s open websockets (a web terminal must not outlive it); others stay open', async () => {
    const open = async (token: string) => {
      const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/-/cable`, { headers: { authorization: `Bearer ${token}` } })
      const id = await new Promise<string>((resolve, reject) => {
        ws.once('upgrade', (res) => resolve(String(res.headers['x-request-id'])))
        ws.once('error', reject)
      })
      await new Promise<void>((resolve) => (ws.readyState === WebSocket.OPEN ? resolve() : ws.once('open', () => resolve())))
      return { ws, id, closed: new Promise<void>((resolve) => ws.once('close', () => resolve())) }
    }
    const revokedUser = { oid: '7a1d0c55-0000-4000-8000-0000000000f1', preferred_username: 'trent@example.test', iat: Math.floor(Date.now() / 1000) - 5 }
    const theirs = await open(await idp.mint(revokedUser))
    const other = await open(await idp.mint())
    const revoke = await fetch(`${proxy.adminUrl}/admin/revoke`, {
      method: 'POST',
      headers: { authorization: 'Bearer admin-token-for-tests-0123456789', 'content-type': 'application/json' },
      body: JSON.stringify({ user: revokedUser.oid }),
    })
    expect(revoke.status).toBe(200)
    await theirs.closed
    await expect.poll(() => proxy.records().find((r) => r['http.request.id'] === theirs.id), { timeout: 3000 }).toMatchObject({ 'http.response.status_code': 101, 'error.code': 'identity-revoked', 'event.outcome': 'failure', 'user.id': revokedUser.oid })
    // The other user's websocket still echoes.
    const echoed = new Promise<string>((resolve) => other.ws.on('message', (data) => String(data) === 'still-here' && resolve(String(data))))
    other.ws.send('still-here')
    expect(await echoed).toBe('still-here')
    expect(other.ws.readyState).toBe(WebSocket.OPEN)
    other.ws.close()
    await other.closed
  })

  it('within the revocation\'s own second: a token used before it is refused, a token minted after it works', async () => {
    // Each attempt starts early in a second, so the mint, the first use, the revocation and the fresh
    // mint share it; a machine too slow for that gets another attempt (another user).
    for (let attempt = 1; ; attempt++) {
      const who = { oid: `7a1d0c55-0000-4000-8000-0000000001${attempt}f`, preferred_username: `mallory${attempt}@example.test` }
      await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 20))
      const second = Math.floor(Date.now() / 1000)
      const held = await idp.mint({ ...who, iat: second })
      expect((await call(uniquePath(), { authorization: `Bearer ${held}` })).status).toBe(200)
      const revoke = await fetch(`${proxy.adminUrl}/admin/revoke`, {
        method: 'POST',
        headers: { authorization: 'Bearer admin-token-for-tests-0123456789', 'content-type': 'application/json' },
        body: JSON.stringify({ user: who.oid }),
      })
      expect(revoke.status).toBe(200)
      const fresh = await idp.mint({ ...who, iat: second, jti: 'fresh' })
      const statuses = [(await call(uniquePath(), { authorization: `Bearer ${held}` })).status, (await call(uniquePath(), { authorization: `Bearer ${fresh}` })).status]
      if (Math.floor(Date.now() / 1000) !== second && attempt < 3) continue
      expect(statuses).toEqual([401, 200])
      break
    }
  })

  it('/admin/revoke of an extra issuer\'s identity takes the qualified name it is shown by (gitlab-ci:…)', async () => {
    const revoke = async (user: string) =>
      fetch(`${proxy.adminUrl}/admin/revoke`, {
        method: 'POST',
        headers: { authorization: 'Bearer admin-token-for-tests-0123456789', 'content-type': 'application/json' },
        body: JSON.stringify({ user }),
      })
    const iat = Math.floor(Date.now() / 1000) - 5
    const held = await idp.mint({ user_login: 'revokee', iat }, { issuer: 'ci' })
    const namesake = await idp.mint({ oid: '7a1d0c55-0000-4000-8000-0000000000e1', preferred_username: 'revokee', iat })
    expect((await call(uniquePath('/api/v4/ci'), { authorization: `Bearer ${held}` })).status).toBe(200)
    expect((await call(uniquePath(), { authorization: `Bearer ${namesake}` })).status).toBe(200)
    expect((await revoke('gitlab-ci:revokee')).status).toBe(200)
    const path = uniquePath('/api/v4/ci')
    const res = await call(path, { authorization: `Bearer ${held}` })
    expect(res.status).toBe(401)
    expect(JSON.parse(res.body)).toMatchObject({ reason: 'token-revoked' })
    expect(upstream.reached(path)).toHaveLength(0)
    // Not yet cached, issued before: refused too.
    expect(JSON.parse((await call(uniquePath('/api/v4/ci'), { authorization: `Bearer ${await idp.mint({ user_login: 'revokee', iat }, { issuer: 'ci' })}` })).body)).toMatchObject({ reason: 'token-revoked' })
    // The Entra user of the same bare name is someone else.
    expect((await call(uniquePath(), { authorization: `Bearer ${namesake}` })).status).toBe(200)
    // And the bare name revokes the Entra user, never the CI identity of that name.
    const other = await idp.mint({ user_login: 'revokee2', iat }, { issuer: 'ci' })
    const otherNamesake = await idp.mint({ oid: '7a1d0c55-0000-4000-8000-0000000000e2', preferred_username: 'revokee2', iat })
    expect((await revoke('revokee2')).status).toBe(200)
    expect((await call(uniquePath('/api/v4/ci'), { authorization: `Bearer ${other}` })).status).toBe(200)
    expect(JSON.parse((await call(uniquePath(), { authorization: `Bearer ${otherNamesake}` })).body)).toMatchObject({ reason: 'token-revoked' })
  })

  it('a token used before a revocation is refused after it, even with an iat ahead (IdP clock fast, within the skew)', async () => {
    const now = Math.floor(Date.now() / 1000)
    const oid = '7a1d0c55-0000-4000-8000-0000000000e3'
    const ahead = await idp.mint({ oid, preferred_username: 'fast-clock@example.test', iat: now + 45, nbf: now + 40 })
    expect((await call(uniquePath(), { authorization: `Bearer ${ahead}` })).status).toBe(200)
    const revoke = await fetch(`${proxy.adminUrl}/admin/revoke`, {
      method: 'POST',
      headers: { authorization: 'Bearer admin-token-for-tests-0123456789', 'content-type': 'application/json' },
      body: JSON.stringify({ user: oid }),
    })
    expect(revoke.status).toBe(200)
    const path = uniquePath()
    const res = await call(path, { authorization: `Bearer ${ahead}` })
    expect(res.status).toBe(401)
    expect(JSON.parse(res.body)).toMatchObject({ reason: 'token-revoked' })
    expect(upstream.reached(path)).toHaveLength(0)
  })

  it('/readyz shows each issuer\'s keys', async () => {
    const body = (await (await fetch(`${proxy.adminUrl}/readyz`)).json()) as { checks: { auth: Record<string, { ready: boolean; keys: number }> } }
    expect(body.checks.auth.entra).toMatchObject({ ready: true, keys: 1 })
    expect(body.checks.auth['entra/v1']).toMatchObject({ ready: true })
    expect(body.checks.auth['gitlab-ci']).toMatchObject({ ready: true })
  })

  it('no token, cookie or secret ever appears in the proxy output', async () => {
    await proxy.waitForRecords(1)
    const output = JSON.stringify(proxy.records()) + proxy.stderr()
    expect(presented.length).toBeGreaterThan(20)
    for (const value of presented) {
      const token = value.replace(/^\S+\s+/, '')
      if (token.length > 20) expect(output).not.toContain(token)
    }
  })
})
