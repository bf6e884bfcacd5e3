// Real OpenID flows against the dev IdP, driven with plain fetch: code + PKCE, refresh, logout, SSO, form_post.
import { createHash, randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createRemoteJWKSet, decodeJwt, jwtVerify, type JWTPayload } from 'jose'
import {
  createCookieJar, createDemoClientSecret, DEMO_CLIENT_ID, DEMO_GROUPS, DEMO_USERS, startDevIdp, type DevIdp, type DevUser,
} from '../../../src/devidp/index.ts'

const REDIRECT = 'http://127.0.0.1:9/-/iap/callback'
const POST_LOGOUT = 'http://127.0.0.1:9/-/iap/signed-out'
const secret = createDemoClientSecret()
let idp: DevIdp
let jwks: ReturnType<typeof createRemoteJWKSet>

function pkce() {
  const verifier = randomBytes(32).toString('base64url')
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') }
}

function authorizeUrl(params: Record<string, string>, endpoint = idp.authorizationEndpoint): string {
  const url = new URL(endpoint)
  url.search = new URLSearchParams({
    client_id: DEMO_CLIENT_ID,
    response_type: 'code',
    redirect_uri: REDIRECT,
    scope: 'openid profile email offline_access',
    state: randomBytes(8).toString('hex'),
    nonce: randomBytes(8).toString('hex'),
    ...params,
  }).toString()
  return url.href
}

interface TokenResponse {
  access_token?: string
  id_token?: string
  refresh_token?: string
  scope?: string
  error?: string
  error_description?: string
}

async function token(body: Record<string, string>): Promise<{ status: number; body: TokenResponse }> {
  const res = await fetch(idp.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: DEMO_CLIENT_ID, client_secret: secret, ...body }),
  })
  return { status: res.status, body: (await res.json()) as TokenResponse }
}

/** Signs in as `login` with PKCE and redeems the code. */
async function signInAndRedeem(login: string, extra: Record<string, string> = {}, jar = createCookieJar()) {
  const { verifier, challenge } = pkce()
  const nonce = randomBytes(8).toString('hex')
  const hop = await idp.signIn(authorizeUrl({ code_challenge: challenge, code_challenge_method: 'S256', nonce, ...extra }), login, { jar })
  const code = new URL(hop.url).searchParams.get('code')
  expect(code).toBeTruthy()
  const res = await token({ grant_type: 'authorization_code', code: code as string, redirect_uri: REDIRECT, code_verifier: verifier })
  expect(res.status).toBe(200)
  return { ...res.body, nonce, jar }
}

async function verifyIdToken(idToken: string): Promise<JWTPayload> {
  const { payload } = await jwtVerify(idToken, jwks, { issuer: idp.issuer, audience: DEMO_CLIENT_ID, algorithms: ['RS256'] })
  return payload
}

beforeAll(async () => {
  idp = await startDevIdp({
    clients: [{ clientId: DEMO_CLIENT_ID, clientSecret: secret, redirectUris: [REDIRECT], postLogoutRedirectUris: [POST_LOGOUT] }],
  })
  jwks = createRemoteJWKSet(new URL(idp.jwksUri))
})

afterAll(async () => {
  await idp?.close()
})

describe('authorization code + PKCE', () => {
  it('signs alice in through the login form and issues Entra-shaped tokens', async () => {
    const tokens = await signInAndRedeem('alice', { scope: 'openid profile email offline_access api://gitlab-iap/access_as_user' })
    expect(tokens.refresh_token).toBeTruthy()
    const id = await verifyIdToken(tokens.id_token as string)
    const alice = DEMO_USERS.alice
    expect(id).toMatchObject({
      iss: idp.issuer,
      aud: DEMO_CLIENT_ID,
      tid: idp.tenantId,
      oid: alice.oid,
      preferred_username: alice.upn,
      upn: alice.upn,
      name: alice.name,
      email: alice.email,
      groups: [DEMO_GROUPS.admins.id, DEMO_GROUPS.engineering.id],
      roles: ['GitLab.Admin'],
      ver: '2.0',
      nonce: tokens.nonce,
    })
    // sub is pairwise (per app), never the object id; sid and login_hint are there for logout
    expect(id.sub).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(id.sub).not.toBe(alice.oid)
    expect(id.sid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(String(id.login_hint)).toMatch(/^O\./)

    // The access token is a v2 JWT for the proxy's API (aud = its app id GUID), verifiable with the same JWKS
    const { payload: at, protectedHeader } = await jwtVerify(tokens.access_token as string, jwks, { issuer: idp.issuer, audience: DEMO_CLIENT_ID, algorithms: ['RS256'] })
    expect(protectedHeader.typ).toBe('JWT')
    expect(at).toMatchObject({ azp: DEMO_CLIENT_ID, azpacr: '1', scp: 'access_as_user', oid: alice.oid, tid: idp.tenantId, ver: '2.0', groups: alice.groups })
    expect(at.sub).toBe(id.sub)
    expect(at).not.toHaveProperty('idtyp')
    expect(at).not.toHaveProperty('scope')
    expect(at).not.toHaveProperty('client_id')
  })

  it('refuses a code redeemed with the wrong PKCE verifier', async () => {
    const { challenge } = pkce()
    const hop = await idp.signIn(authorizeUrl({ code_challenge: challenge, code_challenge_method: 'S256' }), 'bob')
    const code = new URL(hop.url).searchParams.get('code') as string
    const res = await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: pkce().verifier })
    expect(res.status).toBe(400)
    expect(res.body.error).toBe('invalid_grant')
  })

  it('refuses a code redeemed twice', async () => {
    const { verifier, challenge } = pkce()
    const hop = await idp.signIn(authorizeUrl({ code_challenge: challenge, code_challenge_method: 'S256' }), 'bob')
    const code = new URL(hop.url).searchParams.get('code') as string
    const first = await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier })
    expect(first.status).toBe(200)
    const second = await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier })
    expect(second.body.error).toBe('invalid_grant')
  })

  it('rejects unknown and disabled users on the login form', async () => {
    await expect(idp.signIn(authorizeUrl({}), 'mallory@contoso.test')).rejects.toThrow(/AADSTS50034/)
    idp.upsertUser({ oid: 'd15ab1ed-0000-4000-8000-000000000001', upn: 'gone@contoso.test', name: 'Gone', groups: [], disabled: true })
    await expect(idp.signIn(authorizeUrl({}), 'gone@contoso.test')).rejects.toThrow(/AADSTS50057/)
  })

  it('rejects a redirect_uri that is not registered (no redirect to it)', async () => {
    await expect(idp.signIn(authorizeUrl({ redirect_uri: 'http://127.0.0.1:9/evil' }), 'alice')).rejects.toThrow(/HTTP 400/)
  })

  it('keeps the IdP session: a second sign-in in the same browser asks for no password', async () => {
    const jar = createCookieJar()
    await idp.signIn(authorizeUrl({}), 'bob', { jar })
    // no `login` given: it would throw if the login form showed up
    const hop = await idp.signOut(authorizeUrl({}), { jar })
    expect('method' in hop && new URL(hop.url).searchParams.get('code')).toBeTruthy()
  })

  it('answers with form_post when asked (the mode Entra recommends)', async () => {
    const hop = await idp.signIn(authorizeUrl({ response_mode: 'form_post', state: 'st-1' }), 'carol')
    expect(hop.method).toBe('POST')
    expect(hop.url).toBe(REDIRECT)
    expect(hop.form?.state).toBe('st-1')
    expect(hop.form?.code).toBeTruthy()
  })

  it('serves the v1 spellings of the endpoints too', async () => {
    const v1 = (await (await fetch(idp.v1DiscoveryUrl)).json()) as { authorization_endpoint: string }
    const hop = await idp.signIn(authorizeUrl({}, v1.authorization_endpoint), 'bob')
    expect(new URL(hop.url).searchParams.get('code')).toBeTruthy()
  })

  it('puts the overage markers instead of groups for a user with 250 groups', async () => {
    const tokens = await signInAndRedeem('erin')
    const id = await verifyIdToken(tokens.id_token as string)
    expect(id).not.toHaveProperty('groups')
    expect(id._claim_names).toEqual({ groups: 'src1' })
    const endpoint = (id._claim_sources as { src1: { endpoint: string } }).src1.endpoint
    expect(endpoint).toBe(`${idp.graphUrl}/${idp.tenantId}/users/${DEMO_USERS.erin.oid}/getMemberObjects`)
  })
})

describe('refresh tokens', () => {
  const frank: DevUser = { oid: 'f2a4c000-0000-4000-8000-00000000f2a4', upn: 'frank@contoso.test', name: 'Frank', groups: [DEMO_GROUPS.engineering.id, DEMO_GROUPS.contractors.id] }

  it('re-reads the directory: a removed group disappears from the refreshed ID token', async () => {
    idp.upsertUser(frank)
    const tokens = await signInAndRedeem('frank')
    expect(decodeJwt(tokens.id_token as string).groups).toEqual([DEMO_GROUPS.engineering.id, DEMO_GROUPS.contractors.id])

    idp.updateUser(frank.oid, { groups: [DEMO_GROUPS.contractors.id] })
    const refreshed = await token({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token as string })
    expect(refreshed.status).toBe(200)
    const id = await verifyIdToken(refreshed.body.id_token as string)
    expect(id.oid).toBe(frank.oid)
    expect(id.groups).toEqual([DEMO_GROUPS.contractors.id])
  })

  it('fails with invalid_grant once the user is disabled', async () => {
    const gina = idp.upsertUser({ oid: '91a40000-0000-4000-8000-0000000091a4', upn: 'gina@contoso.test', name: 'Gina', groups: [DEMO_GROUPS.engineering.id] })
    const tokens = await signInAndRedeem('gina')
    const ok = await token({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token as string })
    expect(ok.status).toBe(200)

    idp.updateUser(gina.oid, { disabled: true })
    const refused = await token({ grant_type: 'refresh_token', refresh_token: (ok.body.refresh_token ?? tokens.refresh_token) as string })
    expect(refused.status).toBe(400)
    expect(refused.body.error).toBe('invalid_grant')
  })

  it('issues no refresh token without offline_access', async () => {
    const tokens = await signInAndRedeem('bob', { scope: 'openid profile' })
    expect(tokens.id_token).toBeTruthy()
    expect(tokens.refresh_token).toBeUndefined()
  })
})

describe('RP-initiated logout', () => {
  it('ends the IdP session and returns to post_logout_redirect_uri with state', async () => {
    const tokens = await signInAndRedeem('alice')
    const id = decodeJwt(tokens.id_token as string)
    const url = new URL(idp.endSessionEndpoint)
    url.search = new URLSearchParams({
      id_token_hint: tokens.id_token as string,
      post_logout_redirect_uri: POST_LOGOUT,
      logout_hint: String(id.login_hint),
      state: 'bye-1',
    }).toString()
    const hop = await idp.signOut(url.href, { jar: tokens.jar })
    expect('method' in hop).toBe(true)
    expect(hop.url).toBe(`${POST_LOGOUT}?state=bye-1`)
    expect(idp.lastLogout()).toEqual({ hasIdTokenHint: true, logoutHint: id.login_hint, postLogoutRedirectUri: POST_LOGOUT, clientId: undefined, state: 'bye-1' })

    // The IdP session is gone: the next sign-in in that browser shows the login form again
    await expect(idp.signOut(authorizeUrl({}), { jar: tokens.jar })).rejects.toThrow(/asks for a login/)
  })

  it('refuses a post_logout_redirect_uri that is not registered', async () => {
    const tokens = await signInAndRedeem('bob')
    const url = new URL(idp.endSessionEndpoint)
    url.search = new URLSearchParams({ id_token_hint: tokens.id_token as string, post_logout_redirect_uri: 'http://127.0.0.1:9/evil' }).toString()
    const res = await fetch(url, { redirect: 'manual' })
    expect(res.status).toBe(400)
    expect(res.headers.get('location')).toBeNull()
    expect(await res.text()).toContain('post_logout_redirect_uri not registered')
  })
})
