/**
 * Identity headers and refusals end to end, through a real `gitlab-iap serve` between a loopback token
 * issuer and the GitLab-shaped echo upstream: values outside Latin-1 (sent as UTF-8 bytes, not a 502),
 * control characters (refused as `token-claim-invalid`, logged like any refusal), commas inside a group,
 * extra issuers' identities qualified, 401s that always name their scheme, bodies chosen by Accept
 * weights, websocket refusals with rule and reason, and time claims that are not numbers.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'
import { rawRequest, rawSocket } from '../../helpers/http.ts'
import { startJwksServer, TEST_AUDIENCE, TEST_CLIENT, TEST_TENANT, type JwksServer } from '../../helpers/jwks-server.ts'

const OID = '7a1d0c55-0000-4000-8000-000000000001'
let idp: JwksServer
let upstream: Upstream
let proxy: ServeHandle

beforeAll(async () => {
  idp = await startJwksServer({ graphClientSecret: 'graph-secret' })
  upstream = await startUpstream()
  proxy = await startServe(
    baseConfig(upstream.url, {
      entra: { tenantId: TEST_TENANT, clientId: TEST_CLIENT, clientSecret: 'graph-secret', authority: idp.authority, audiences: [TEST_AUDIENCE] },
      // Browser sign-in on: a navigation without credentials is sent to /-/iap/login.
      session: { secret: 'x'.repeat(48) },
      issuers: [
        { name: 'gitlab-ci', issuer: idp.ciIssuer, audiences: ['https://gitlab.test'], claims: { user: 'user_login', email: 'user_email', groups: ['namespace_path', 'project_path'] } },
      ],
      groups: { engineering: 'g-eng' },
      policy: {
        rules: [
          { name: 'ci', paths: ['/api/v4/ci/**'], groups: ['gitlab-ci:platform'] },
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

const uniquePath = (prefix = '/api/v4/projects') => `${prefix}/${randomUUID()}`

async function get(path: string, headers: Record<string, string>) {
  return rawRequest(proxy.url, 'GET', path, { accept: 'application/json', ...headers })
}

/** The bytes of a header exactly as GitLab received them (Node reads header bytes as latin1). */
function receivedBytes(path: string, name: string): Buffer {
  const hits = upstream.reached(path)
  expect(hits).toHaveLength(1)
  const raw = hits[0]!.rawHeaders
  const index = raw.findIndex((value, i) => i % 2 === 0 && value.toLowerCase() === name)
  expect(index, name).toBeGreaterThanOrEqual(0)
  return Buffer.from(raw[index + 1]!, 'latin1')
}

async function recordOf(requestId: unknown): Promise<Record<string, unknown>> {
  await expect.poll(() => proxy.records().some((r) => r['http.request.id'] === requestId), { timeout: 5000 }).toBe(true)
  return proxy.records().find((r) => r['http.request.id'] === requestId)!
}

const handshake = (path: string, extra = '') =>
  `GET ${path} HTTP/1.1\r\nHost: gitlab.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`

const bodyOf = (answer: string) => JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>

describe('identity values outside ASCII', () => {
  it('reach GitLab as their UTF-8 bytes (not a 502), and the request is logged as usual', async () => {
    const path = uniquePath()
    const token = await idp.mint({ preferred_username: '李雷@example.test', email: 'renée@example.test', groups: ['g-eng', 'équipe'] })
    const res = await get(path, { authorization: `Bearer ${token}` })
    expect(res.status, res.body).toBe(200)
    expect(receivedBytes(path, 'x-forwarded-user')).toEqual(Buffer.from('李雷@example.test', 'utf8'))
    // Latin-1 characters too: never the single byte 0xE9, which is not UTF-8.
    expect(receivedBytes(path, 'x-forwarded-email')).toEqual(Buffer.from('renée@example.test', 'utf8'))
    expect(receivedBytes(path, 'x-forwarded-groups')).toEqual(Buffer.from('g-eng,équipe', 'utf8'))
    const record = await recordOf(res.headers['x-request-id'])
    expect(record).toMatchObject({ 'http.response.status_code': 200, 'user.name': '李雷@example.test', 'user.email': 'renée@example.test', 'iap.decision.result': 'allow' })
  })

  it('the same bytes on a websocket handshake (the http-proxy-3 path)', async () => {
    upstream.clear()
    const token = await idp.mint({ preferred_username: '李雷@example.test' })
    const answer = await rawSocket(proxy.url, handshake('/-/cable', `Authorization: Bearer ${token}\r\n`), 1000)
    expect(answer).toMatch(/^HTTP\/1\.1 101 /)
    expect(receivedBytes('/-/cable', 'x-forwarded-user')).toEqual(Buffer.from('李雷@example.test', 'utf8'))
  })

  it('a CI identity with a non-ASCII login', async () => {
    const path = uniquePath('/api/v4/ci')
    const res = await get(path, { authorization: `Bearer ${await idp.mint({ user_login: 'ü李' }, { issuer: 'ci' })}` })
    expect(res.status, res.body).toBe(200)
    expect(receivedBytes(path, 'x-forwarded-user')).toEqual(Buffer.from('gitlab-ci:ü李', 'utf8'))
  })
})

describe('identity values with control characters, or blanks HTTP would trim', () => {
  it.each([
    ['CR/LF in preferred_username', { preferred_username: 'ada@example.test\r\nX-Evil: 1' }, undefined],
    ['NUL in email', { email: 'ada\u0000@example.test' }, undefined],
    ['LF in a group', { groups: ['g-eng', 'g\nadmins'] }, undefined],
    ['DEL in a CI login', { user_login: 'ada\u007f' }, 'ci'],
    ['ESC in a CI project path (a group)', { project_path: 'platform/\u001binfra' }, 'ci'],
    // HTTP trims these from a header: GitLab would read `ada@example.test`, which the policy never matched.
    ['spaces around preferred_username', { preferred_username: ' ada@example.test ' }, undefined],
    ['a tab before a group', { groups: ['g-eng', '\tadmins'] }, undefined],
  ])('%s: 401 token-claim-invalid with a challenge, nothing forwarded, logged', async (_name, claims, issuer) => {
    const path = uniquePath(issuer ? '/api/v4/ci' : '/api/v4/projects')
    const res = await get(path, { authorization: `Bearer ${await idp.mint(claims, issuer ? { issuer } : {})}` })
    expect(res.status, res.body).toBe(401)
    expect(JSON.parse(res.body)).toMatchObject({ reason: 'token-claim-invalid' })
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="gitlab-iap", error="invalid_token", error_description="[^"]+"$/)
    expect(upstream.reached(path)).toHaveLength(0)
    const record = await recordOf(res.headers['x-request-id'])
    expect(record).toMatchObject({ 'http.response.status_code': 401, 'iap.decision.result': 'challenge', 'iap.decision.reason': 'token-claim-invalid' })
  })
})

describe('X-Forwarded-Groups', () => {
  it('a comma or percent sign inside a group is percent-encoded, so it stays one group', async () => {
    const path = uniquePath()
    const res = await get(path, { authorization: `Bearer ${await idp.mint({ groups: ['g-eng', 'admins,other', '100%'] })}` })
    expect(res.status).toBe(200)
    const header = receivedBytes(path, 'x-forwarded-groups').toString('utf8')
    expect(header).toBe('g-eng,admins%2Cother,100%25')
    expect(header.split(',').map(decodeURIComponent)).toEqual(['g-eng', 'admins,other', '100%'])
  })
})

describe('extra issuer identities never read as Entra users', () => {
  it('a GitLab login shaped like an Entra object id: qualified user id and user, email as is, qualified assertion sub', async () => {
    const entraPath = uniquePath()
    expect((await get(entraPath, { authorization: `Bearer ${await idp.mint()}` })).status).toBe(200)
    const entra = upstream.reached(entraPath)[0]!.headers
    expect(entra['x-forwarded-user-id']).toBe(OID)

    const path = uniquePath('/api/v4/ci')
    const res = await get(path, { authorization: `Bearer ${await idp.mint({ user_login: OID, user_email: 'ada@example.test' }, { issuer: 'ci' })}` })
    expect(res.status, res.body).toBe(200)
    const seen = upstream.reached(path)[0]!.headers
    expect(seen['x-forwarded-user-id']).toBe(`gitlab-ci:${OID}`)
    expect(seen['x-forwarded-user']).toBe(`gitlab-ci:${OID}`)
    expect(seen['x-forwarded-email']).toBe('ada@example.test')
    expect(seen['x-forwarded-groups']).toBe('gitlab-ci:platform,gitlab-ci:platform/infra')
    const { payload } = await jwtVerify(String(seen['x-iap-assertion']), createRemoteJWKSet(new URL(`${proxy.url}/-/iap/jwks.json`)), { algorithms: ['ES256'] })
    expect(payload).toMatchObject({ sub: `gitlab-ci:${OID}`, preferred_username: `gitlab-ci:${OID}`, idp: 'gitlab-ci', kind: 'ci' })
    expect(payload.sub).not.toBe(entra['x-forwarded-user-id'])
  })
})

describe('every 401 names its scheme', () => {
  it('/-/iap/whoami with a failing credential', async () => {
    const expired = await idp.mint({ exp: Math.floor(Date.now() / 1000) - 3600 })
    const res = await get('/-/iap/whoami', { authorization: `Bearer ${expired}` })
    expect(res.status).toBe(401)
    expect(JSON.parse(res.body)).toMatchObject({ reason: 'token-expired' })
    expect(res.headers['www-authenticate']).toBe('Bearer realm="gitlab-iap", error="invalid_token", error_description="The token has expired."')
  })

  it('a malformed X-IAP-Authorization: the description keeps its quotes legible', async () => {
    const res = await get(uniquePath(), { 'x-iap-authorization': 'Basic abc' })
    expect(res.status).toBe(401)
    expect(res.headers['www-authenticate']).toBe(`Bearer realm="gitlab-iap", error="invalid_token", error_description="The X-IAP-Authorization header must be 'Bearer <JWT>'."`)
  })
})

describe('bodies and navigations by Accept weights', () => {
  it('JSON preferred over HTML: a JSON body', async () => {
    const res = await get(uniquePath(), { accept: 'application/json, text/html;q=0.1', authorization: `Bearer ${await idp.mint({ aud: 'api://someone-else' })}` })
    expect(res.status).toBe(401)
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8')
    const denied = await get(uniquePath(), { accept: 'application/json;q=0.9, text/html', authorization: `Bearer ${await idp.mint({ groups: [] })}` })
    expect(denied.status).toBe(403)
    expect(denied.headers['content-type']).toBe('text/html; charset=utf-8')
  })

  it('text/html;q=0 is not a browser navigation: 401, not a sign-in redirect', async () => {
    const refused = await get('/group/project', { accept: 'text/html;q=0, application/json' })
    expect(refused.status).toBe(401)
    expect(refused.headers['content-type']).toBe('application/json; charset=utf-8')
    const browser = await get('/group/project', { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' })
    expect(browser.status).toBe(302)
    expect(browser.headers.location).toBe('/-/iap/login?rd=%2Fgroup%2Fproject')
  })
})

describe('refused websocket handshakes', () => {
  it('401 names the reason and carries WWW-Authenticate', async () => {
    const expired = await idp.mint({ exp: Math.floor(Date.now() / 1000) - 3600 })
    const answer = await rawSocket(proxy.url, handshake('/-/cable', `Authorization: Bearer ${expired}\r\n`))
    expect(answer).toMatch(/^HTTP\/1\.1 401 /)
    expect(answer).toMatch(/\r\nwww-authenticate: Bearer realm="gitlab-iap", error="invalid_token"/)
    expect(bodyOf(answer)).toEqual({ error: 'Unauthorized', requestId: expect.any(String), reason: 'token-expired' })
  })

  it('403 names the deciding rule and the reason, never the policy text', async () => {
    const answer = await rawSocket(proxy.url, handshake('/-/cable', `Authorization: Bearer ${await idp.mint({ groups: ['g-other'] })}\r\n`))
    expect(answer).toMatch(/^HTTP\/1\.1 403 /)
    const body = bodyOf(answer)
    expect(body).toEqual({ error: 'Forbidden', requestId: expect.any(String), rule: 'engineering', reason: 'no-group-match' })
    expect(JSON.stringify(body)).not.toContain('g-eng')
  })
})

describe('time claims that are not numbers', () => {
  it.each([
    ['exp', 'token-exp-invalid'],
    ['nbf', 'token-nbf-invalid'],
    ['iat', 'token-iat-invalid'],
  ])('a string %s: %s', async (claim, reason) => {
    const now = Math.floor(Date.now() / 1000)
    const value = String(claim === 'exp' ? now + 3600 : now - 5)
    const res = await get(uniquePath(), { authorization: `Bearer ${await idp.mint({ [claim]: value })}` })
    expect(res.status).toBe(401)
    expect(JSON.parse(res.body)).toMatchObject({ reason })
  })

  it('a missing exp stays token-exp-missing', async () => {
    const res = await get(uniquePath(), { authorization: `Bearer ${await idp.mint({}, { omit: ['exp'] })}` })
    expect(JSON.parse(res.body)).toMatchObject({ reason: 'token-exp-missing' })
  })
})
