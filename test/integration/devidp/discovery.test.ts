// Discovery and keys documents in the v1 and v2 shapes of Entra, the tenant in the path, start-up time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_TENANT_ID, startDevIdp, type DevIdp } from '../../../src/devidp/index.ts'

let idp: DevIdp
let startMs: number

async function json(url: string): Promise<Record<string, unknown>> {
  const res = await fetch(url)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^application\/json/)
  return (await res.json()) as Record<string, unknown>
}

beforeAll(async () => {
  const started = performance.now()
  idp = await startDevIdp()
  startMs = performance.now() - started
})

afterAll(async () => {
  await idp?.close()
})

describe('dev IdP endpoints', () => {
  it('starts on loopback, on a free port, in well under a second', () => {
    expect(idp.authority).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(idp.graphUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(idp.graphUrl).not.toBe(idp.authority)
    expect(startMs).toBeLessThan(1000)
  })

  it('names issuers like Entra: v2 with /v2.0, v1 with a trailing slash, tenant in the path', () => {
    expect(idp.tenantId).toBe(DEMO_TENANT_ID)
    expect(idp.issuer).toBe(`${idp.authority}/${DEMO_TENANT_ID}/v2.0`)
    expect(idp.v1Issuer).toBe(`${idp.authority}/${DEMO_TENANT_ID}/`)
    expect(idp.discoveryUrl).toBe(`${idp.issuer}/.well-known/openid-configuration`)
    expect(idp.v1DiscoveryUrl).toBe(`${idp.authority}/${DEMO_TENANT_ID}/.well-known/openid-configuration`)
  })

  it('serves the v2 discovery document with Entra endpoint names', async () => {
    const doc = await json(idp.discoveryUrl)
    const base = `${idp.authority}/${DEMO_TENANT_ID}`
    expect(doc).toMatchObject({
      issuer: idp.issuer,
      jwks_uri: `${base}/discovery/v2.0/keys`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      token_endpoint: `${base}/oauth2/v2.0/token`,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      id_token_signing_alg_values_supported: ['RS256'],
      subject_types_supported: ['pairwise'],
      code_challenge_methods_supported: ['S256'],
      http_logout_supported: true,
      frontchannel_logout_supported: true,
    })
    expect(doc.response_modes_supported).toEqual(expect.arrayContaining(['query', 'fragment', 'form_post']))
    expect(doc.grant_types_supported).toEqual(expect.arrayContaining(['authorization_code', 'refresh_token', 'client_credentials']))
    expect(doc.scopes_supported).toEqual(expect.arrayContaining(['openid', 'profile', 'email', 'offline_access']))
    expect(doc).not.toHaveProperty('backchannel_logout_supported')
    expect(doc).not.toHaveProperty('pushed_authorization_request_endpoint')
  })

  it('serves the v1 discovery document: v1 issuer and keys, v1 endpoint spellings', async () => {
    const doc = await json(idp.v1DiscoveryUrl)
    const base = `${idp.authority}/${DEMO_TENANT_ID}`
    expect(doc).toMatchObject({
      issuer: `${base}/`,
      jwks_uri: `${base}/discovery/keys`,
      authorization_endpoint: `${base}/oauth2/authorize`,
      token_endpoint: `${base}/oauth2/token`,
      end_session_endpoint: `${base}/oauth2/logout`,
    })
  })

  it('serves the same RS256 keys on both JWKS URLs; v2 keys carry the issuer', async () => {
    const v2 = (await json(idp.jwksUri)) as { keys: Record<string, string>[] }
    const v1 = (await json(idp.v1JwksUri)) as { keys: Record<string, string>[] }
    expect(v2.keys).toHaveLength(1)
    const [key] = v2.keys
    expect(key).toMatchObject({ kty: 'RSA', use: 'sig', kid: idp.currentKid(), x5t: idp.currentKid(), e: 'AQAB', issuer: idp.issuer })
    expect(key?.kid).toMatch(/^[A-Za-z0-9_-]{27}$/)
    expect(key).not.toHaveProperty('d')
    expect(v1.keys).toEqual(v2.keys.map(({ issuer: _issuer, ...rest }) => rest))
  })

  it('answers an unknown tenant like Entra (invalid_tenant), and an unknown route with 404', async () => {
    const other = await fetch(`${idp.authority}/11111111-1111-4111-8111-111111111111/v2.0/.well-known/openid-configuration`)
    expect(other.status).toBe(400)
    expect(((await other.json()) as { error: string }).error).toBe('invalid_tenant')
    expect((await fetch(`${idp.authority}/${DEMO_TENANT_ID}/nothing-here`)).status).toBe(404)
  })

  it('shows a login form a browser can drive, and nothing from outside loopback', async () => {
    const url = new URL(idp.authorizationEndpoint)
    idp.registerClient({ clientId: 'page-check', clientSecret: 'x'.repeat(32), redirectUris: ['http://127.0.0.1:9/cb'] })
    url.search = new URLSearchParams({ client_id: 'page-check', response_type: 'code', redirect_uri: 'http://127.0.0.1:9/cb', scope: 'openid', login_hint: 'bob@contoso.test' }).toString()
    const first = await fetch(url, { redirect: 'manual' })
    const loginUrl = new URL(first.headers.get('location') as string, url)
    expect(loginUrl.pathname).toMatch(new RegExp(`^/${DEMO_TENANT_ID}/login/`))
    const cookie = first.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ')
    const page = await (await fetch(loginUrl, { headers: { cookie } })).text()
    expect(page).toMatch(/<input id="login" name="login" type="text"[^>]*value="bob@contoso.test">/)
    expect(page).toMatch(/<button type="submit"/)
    expect(page).not.toMatch(/https?:\/\/(?!127\.0\.0\.1)/)
  })
})
