// App-only tokens from the real token endpoint, minted tokens verified with jose against the served JWKS, key rotation.
import { generateKeyPairSync } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose'
import { createDemoClientSecret, DEMO_CLIENT_ID, DEMO_GROUPS, DEMO_USERS, startDevIdp, type DevIdp } from '../../../src/devidp/index.ts'

const ROBOT_ID = '7a0b0700-0000-4000-8000-0000000a0b07'
const robotSecret = createDemoClientSecret()
let idp: DevIdp

async function fetchJwks(url: string): Promise<JSONWebKeySet> {
  return (await (await fetch(url)).json()) as JSONWebKeySet
}

beforeAll(async () => {
  idp = await startDevIdp({
    clients: [{ clientId: ROBOT_ID, clientSecret: robotSecret, appRoles: ['GitLab.Api.ReadWrite'] }],
  })
})

afterAll(async () => {
  await idp?.close()
})

describe('client credentials (app-only tokens)', () => {
  it('issues a v2 app token for the proxy API: idtyp app, roles, no scp, sub = oid', async () => {
    const at = await idp.clientCredentialsToken({ clientId: ROBOT_ID, clientSecret: robotSecret, scope: 'api://gitlab-iap/.default' })
    const { payload } = await jwtVerify(at, createRemoteJWKSet(new URL(idp.jwksUri)), { issuer: idp.issuer, audience: DEMO_CLIENT_ID, algorithms: ['RS256'] })
    expect(payload).toMatchObject({ azp: ROBOT_ID, azpacr: '1', idtyp: 'app', roles: ['GitLab.Api.ReadWrite'], tid: idp.tenantId, ver: '2.0' })
    expect(payload.oid).toMatch(/^[0-9a-f-]{36}$/)
    expect(payload.sub).toBe(payload.oid)
    for (const claim of ['scp', 'name', 'preferred_username', 'upn', 'groups']) expect(payload).not.toHaveProperty(claim)
  })

  it('issues v1-shaped Graph tokens (aud https://graph.microsoft.com, iss the v1 issuer, x5t header)', async () => {
    const at = await idp.clientCredentialsToken({ clientId: ROBOT_ID, clientSecret: robotSecret, scope: 'https://graph.microsoft.com/.default' })
    const header = decodeProtectedHeader(at)
    expect(header.x5t).toBe(header.kid)
    const { payload } = await jwtVerify(at, createRemoteJWKSet(new URL(idp.v1JwksUri)), { issuer: idp.v1Issuer, audience: 'https://graph.microsoft.com' })
    expect(payload).toMatchObject({ appid: ROBOT_ID, idtyp: 'app', ver: '1.0', roles: ['GroupMember.Read.All', 'User.Read.All'] })
  })

  it('takes the resource parameter (v1 style) and client_secret_basic as well', async () => {
    const res = await fetch(idp.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${ROBOT_ID}:${robotSecret}`).toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: 'https://graph.microsoft.com' }),
    })
    expect(res.status).toBe(200)
    expect(decodeJwt(((await res.json()) as { access_token: string }).access_token).aud).toBe('https://graph.microsoft.com')
  })

  it('treats every registered client as an API: {clientId}/.default gives aud = clientId', async () => {
    const at = await idp.clientCredentialsToken({ clientId: ROBOT_ID, clientSecret: robotSecret, scope: `${ROBOT_ID}/.default` })
    expect(decodeJwt(at)).toMatchObject({ aud: ROBOT_ID, azp: ROBOT_ID, idtyp: 'app', ver: '2.0' })
  })

  it('refuses a wrong secret and an unknown resource', async () => {
    await expect(idp.clientCredentialsToken({ clientId: ROBOT_ID, clientSecret: 'wrong', scope: 'api://gitlab-iap/.default' })).rejects.toThrow(/invalid_client/)
    await expect(idp.clientCredentialsToken({ clientId: ROBOT_ID, clientSecret: robotSecret, scope: 'api://unknown-api/.default' })).rejects.toThrow(/invalid_target/)
  })
})

describe('mintAccessToken / mintIdToken', () => {
  it('mints a v2 user token that verifies against the served v2 JWKS', async () => {
    const at = idp.mintAccessToken({ user: 'bob', audience: 'api://gitlab-iap' })
    const { payload, protectedHeader } = await jwtVerify(at, createLocalJWKSet(await fetchJwks(idp.jwksUri)), { issuer: idp.issuer, audience: 'api://gitlab-iap', algorithms: ['RS256'] })
    expect(protectedHeader).toEqual({ typ: 'JWT', alg: 'RS256', kid: idp.currentKid() })
    expect(payload).toMatchObject({ oid: DEMO_USERS.bob.oid, preferred_username: DEMO_USERS.bob.upn, scp: 'access_as_user', azp: DEMO_CLIENT_ID, groups: [DEMO_GROUPS.engineering.id], ver: '2.0' })
    expect(payload.exp).toBe((payload.iat as number) + 3600)
  })

  it('mints a v1 user token: v1 issuer, appid, upn, unique_name, ver 1.0, x5t', async () => {
    const at = idp.mintAccessToken({ user: DEMO_USERS.alice.oid, version: 1, audience: 'api://gitlab-iap' })
    const { payload, protectedHeader } = await jwtVerify(at, createRemoteJWKSet(new URL(idp.v1JwksUri)), { issuer: idp.v1Issuer, audience: 'api://gitlab-iap' })
    expect(protectedHeader.x5t).toBe(idp.currentKid())
    expect(payload).toMatchObject({ appid: DEMO_CLIENT_ID, upn: DEMO_USERS.alice.upn, unique_name: DEMO_USERS.alice.upn, ver: '1.0', tid: idp.tenantId })
    expect(payload).not.toHaveProperty('azp')
    expect(payload).not.toHaveProperty('preferred_username')
  })

  it('mints app-only tokens and overage tokens', () => {
    const app = decodeJwt(idp.mintAccessToken({ app: { appId: ROBOT_ID, roles: ['GitLab.Api.Read'] } }))
    expect(app).toMatchObject({ idtyp: 'app', azp: ROBOT_ID, roles: ['GitLab.Api.Read'] })
    expect(app).not.toHaveProperty('scp')
    const erin = decodeJwt(idp.mintAccessToken({ user: 'erin' }))
    expect(erin).not.toHaveProperty('groups')
    expect(erin._claim_names).toEqual({ groups: 'src1' })
  })

  it('applies time, claim and header overrides', () => {
    const at = idp.mintAccessToken({
      user: 'carol',
      iat: 1000, nbf: 2000, exp: 3000,
      claims: { tid: '00000000-0000-0000-0000-000000000000', extra: 'x', name: undefined },
      omitClaims: ['uti'],
      header: { kid: 'not-a-key', jku: 'http://127.0.0.1:9/jwks', crit: ['exp'], typ: undefined },
    })
    const payload = decodeJwt(at)
    expect(payload).toMatchObject({ iat: 1000, nbf: 2000, exp: 3000, tid: '00000000-0000-0000-0000-000000000000', extra: 'x' })
    expect(payload).not.toHaveProperty('name')
    expect(payload).not.toHaveProperty('uti')
    expect(decodeProtectedHeader(at)).toEqual({ alg: 'RS256', kid: 'not-a-key', jku: 'http://127.0.0.1:9/jwks', crit: ['exp'] })
  })

  it.each([
    ['alg none', { header: { alg: 'none' } }, 'ERR_JOSE_NOT_SUPPORTED'],
    ['HS256 signed with the public key', { header: { alg: 'HS256' } }, 'ERR_JOSE_NOT_SUPPORTED'],
    ['a foreign RSA key under our kid', { signingKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey }, 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'],
  ])('forged token (%s) does not verify against the served JWKS', async (_name, overrides, code) => {
    const at = idp.mintAccessToken({ user: 'alice', ...overrides })
    expect(at.split('.')).toHaveLength(3)
    await expect(jwtVerify(at, createLocalJWKSet(await fetchJwks(idp.jwksUri)), { issuer: idp.issuer })).rejects.toMatchObject({ code })
  })

  it('leaves the signature empty for alg none', () => {
    expect(idp.mintAccessToken({ user: 'alice', header: { alg: 'none' } }).endsWith('.')).toBe(true)
  })

  it('signs HS256 with the public key PEM by default, so the key-confusion attack is reproducible', async () => {
    const at = idp.mintAccessToken({ user: 'alice', header: { alg: 'HS256' } })
    const { createHmac, createPublicKey } = await import('node:crypto')
    const jwk = (await fetchJwks(idp.jwksUri)).keys[0] as Record<string, string>
    const pem = createPublicKey({ key: { kty: jwk.kty, n: jwk.n, e: jwk.e } as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' })
    const [h, p, s] = at.split('.')
    expect(s).toBe(createHmac('sha256', pem).update(`${h}.${p}`).digest('base64url'))
  })

  it('mints ID tokens (aud = client id, nonce, no scp) for the ID-token-as-access-token test', async () => {
    const id = idp.mintIdToken({ user: 'bob' })
    const { payload } = await jwtVerify(id, createRemoteJWKSet(new URL(idp.jwksUri)), { issuer: idp.issuer, audience: DEMO_CLIENT_ID })
    expect(payload).toMatchObject({ oid: DEMO_USERS.bob.oid, ver: '2.0', tid: idp.tenantId })
    expect(typeof payload.nonce).toBe('string')
    expect(payload).not.toHaveProperty('scp')
    expect(decodeJwt(idp.mintIdToken({ user: 'bob', nonce: null }))).not.toHaveProperty('nonce')
  })
})

describe('key rotation', () => {
  it('makes a new key current; without keepOld the old one leaves the JWKS and its tokens stop verifying', async () => {
    const before = idp.mintAccessToken({ user: 'alice' })
    const { kid, previousKid } = await idp.rotateKeys()
    expect(kid).not.toBe(previousKid)
    expect(idp.currentKid()).toBe(kid)
    const served = await fetchJwks(idp.jwksUri)
    expect(served.keys.map((k) => k.kid)).toEqual([kid])
    expect((await fetchJwks(idp.v1JwksUri)).keys.map((k) => k.kid)).toEqual([kid])

    const after = idp.mintAccessToken({ user: 'alice' })
    expect(decodeProtectedHeader(after).kid).toBe(kid)
    await jwtVerify(after, createLocalJWKSet(served))
    await expect(jwtVerify(before, createLocalJWKSet(served))).rejects.toThrow(/no applicable key/)
    // a retired key can still sign on request (a "token signed by a rotated-out key")
    expect(decodeProtectedHeader(idp.mintAccessToken({ user: 'alice', keyId: previousKid })).kid).toBe(previousKid)
  })

  it('with keepOld serves both keys, and the provider signs with the new one', async () => {
    const { kid, previousKid } = await idp.rotateKeys({ keepOld: true })
    const served = await fetchJwks(idp.jwksUri)
    expect(served.keys.map((k) => k.kid)).toEqual([kid, previousKid])
    expect(served.keys.every((k) => (k as { issuer?: string }).issuer === idp.issuer)).toBe(true)
    const issued = await idp.clientCredentialsToken({ clientId: ROBOT_ID, clientSecret: robotSecret, scope: 'api://gitlab-iap/.default' })
    expect(decodeProtectedHeader(issued).kid).toBe(kid)
    await jwtVerify(idp.mintAccessToken({ user: 'bob', keyId: previousKid }), createLocalJWKSet(served))
  })
})
