// The relying-party library the proxy uses (openid-client v6) works against the dev IdP end to end.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as client from 'openid-client'
import { createCookieJar, createDemoClientSecret, DEMO_CLIENT_ID, DEMO_GROUPS, DEMO_USERS, startDevIdp, type DevIdp } from '../../../src/devidp/index.ts'

const REDIRECT = 'http://127.0.0.1:9/-/iap/callback'
const POST_LOGOUT = 'http://127.0.0.1:9/'
const secret = createDemoClientSecret()
let idp: DevIdp
let config: client.Configuration

beforeAll(async () => {
  idp = await startDevIdp({ clients: [{ clientId: DEMO_CLIENT_ID, clientSecret: secret, redirectUris: [REDIRECT], postLogoutRedirectUris: [POST_LOGOUT] }] })
  // entra.authority + tenant + /v2.0, as the proxy builds it
  config = await client.discovery(new URL(`${idp.authority}/${idp.tenantId}/v2.0`), DEMO_CLIENT_ID, secret, undefined, { execute: [client.allowInsecureRequests] })
})

afterAll(async () => {
  await idp?.close()
})

describe('openid-client against the dev IdP', () => {
  it('discovers, signs in with PKCE + nonce + state, refreshes and builds the logout URL', async () => {
    expect(config.serverMetadata().issuer).toBe(idp.issuer)
    const verifier = client.randomPKCECodeVerifier()
    const nonce = client.randomNonce()
    const state = client.randomState()
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid profile email offline_access',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      nonce,
      state,
    })
    const jar = createCookieJar()
    const hop = await idp.signIn(url.href, 'bob', { jar })
    const tokens = await client.authorizationCodeGrant(config, new URL(hop.url), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true })
    const claims = tokens.claims()
    expect(claims).toMatchObject({ iss: idp.issuer, tid: idp.tenantId, oid: DEMO_USERS.bob.oid, groups: [DEMO_GROUPS.engineering.id] })
    expect(tokens.refresh_token).toBeTruthy()

    idp.updateUser(DEMO_USERS.bob.oid, { groups: [DEMO_GROUPS.engineering.id, DEMO_GROUPS.contractors.id] })
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token as string)
    expect(refreshed.claims()?.groups).toEqual([DEMO_GROUPS.engineering.id, DEMO_GROUPS.contractors.id])

    const logout = client.buildEndSessionUrl(config, { post_logout_redirect_uri: POST_LOGOUT, id_token_hint: tokens.id_token as string, logout_hint: String(claims?.login_hint) })
    const back = await idp.signOut(logout.href, { jar })
    expect(back.url).toBe(POST_LOGOUT)
  })

  it('gets an app-only Graph token with client credentials', async () => {
    const tokens = await client.clientCredentialsGrant(config, { scope: 'https://graph.microsoft.com/.default' })
    const res = await fetch(`${idp.graphUrl}/v1.0/users/${DEMO_USERS.erin.oid}/transitiveMemberOf?$top=999&$select=id`, { headers: { authorization: `Bearer ${tokens.access_token}` } })
    expect(((await res.json()) as { value: unknown[] }).value).toHaveLength(250)
  })
})
