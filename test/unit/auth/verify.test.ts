/**
 * Bearer verification against in-process key sets (jose local JWKS, keys generated here): every
 * accept and reject rule of docs/bearer.md, the verified-token cache, and revocation over the cache.
 */
import { createHmac, createPublicKey, KeyObject, sign as rsaSign } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import { createLocalJWKSet, exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose'
import { trustedIssuers } from '../../../src/auth/bearer/issuers.ts'
import { nextKeyVersions, NO_KEY_VERSIONS, type KeyVersions } from '../../../src/auth/bearer/key-set.ts'
import { createTokenCache } from '../../../src/auth/bearer/token-cache.ts'
import { createBearerVerifier, type BearerVerifier, type VerifyResult } from '../../../src/auth/bearer/verify.ts'
import { createRevocations, type Revocations } from '../../../src/auth/revocations.ts'
import { configSchema } from '../../../src/config/schema.ts'

const TID = '3f9a1c2e-0000-4000-8000-0000000000aa'
const CLIENT = '5d2b7e10-0000-4000-8000-0000000000cc'
const AUTHORITY = 'https://login.example.test'
const V2 = `${AUTHORITY}/${TID}/v2.0`
const V1 = `${AUTHORITY}/${TID}/`
const CI = 'https://gitlab.example.test'

const config = configSchema.parse({
  server: { publicUrl: 'https://gitlab.example.test' },
  upstream: { url: 'http://127.0.0.1:1' },
  entra: { tenantId: TID, clientId: CLIENT, authority: AUTHORITY, audiences: ['api://gitlab-iap'] },
  issuers: [{ name: 'gitlab-ci', issuer: CI, jwksUri: `${CI}/oauth/discovery/keys`, audiences: ['https://gitlab.example.test'], claims: { user: 'user_login', email: 'user_email', groups: ['namespace_path', 'project_path'] } }],
})

interface Key {
  kid: string
  privateKey: CryptoKey
  jwk: JWK
}
let entraKey: Key
let ciKey: Key
let attacker: Key
let keyLookups = 0

async function makeKey(kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } }
}

const now = () => Math.floor(Date.now() / 1000)
const seg = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')

function userClaims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: V2, aud: 'api://gitlab-iap', tid: TID, oid: '7a1d0c55-0000-4000-8000-000000000001', sub: 'pairwise',
    preferred_username: 'ada@example.test', email: 'ada@example.test', name: 'Ada', azp: CLIENT, scp: 'access_as_user',
    groups: ['g1', 'g2'], roles: ['GitLab.User'], ver: '2.0', iat: now(), nbf: now() - 5, exp: now() + 3600, ...extra,
  }
}

function sign(claims: Record<string, unknown>, key: Key = entraKey, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT', ...header } as { alg: string }).sign(key.privateKey)
}

function makeVerifier(revocations: Revocations = createRevocations(), counters = { hit: 0, miss: 0 }): BearerVerifier {
  const issuers = trustedIssuers(config)
  const entraSet = createLocalJWKSet({ keys: [entraKey.jwk] })
  const ciSet = createLocalJWKSet({ keys: [ciKey.jwk] })
  const keys = new Map(
    issuers.map((spec) => [
      spec.label,
      {
        getKey: (async (h: never, t: never) => {
          keyLookups++
          return spec.flavor === 'entra' ? entraSet(h, t) : ciSet(h, t)
        }) as never,
      },
    ]),
  )
  return createBearerVerifier({ issuers, keys, cache: createTokenCache(), revocations, metrics: { tokenCache: (r) => counters[r]++ } })
}

async function verdict(verifier: BearerVerifier, token: string): Promise<VerifyResult> {
  return await verifier.verify(token)
}

async function reasonOf(token: string): Promise<string> {
  const result = await verdict(makeVerifier(), token)
  return result.ok ? 'accepted' : result.failure.reason
}

beforeAll(async () => {
  entraKey = await makeKey('entra-1')
  ciKey = await makeKey('ci-1')
  attacker = await makeKey('attacker')
})

describe('accepts', () => {
  it('an Entra v2 user access token, as a user identity', async () => {
    const result = await verdict(makeVerifier(), await sign(userClaims()))
    expect(result.ok).toBe(true)
    if (!result.ok) return
    expect(result.identity).toMatchObject({
      kind: 'user', id: '7a1d0c55-0000-4000-8000-000000000001', name: 'ada@example.test', email: 'ada@example.test',
      groups: ['g1', 'g2'], roles: ['GitLab.User'], appId: CLIENT, issuer: 'entra', tenantId: TID, groupsSource: 'token',
    })
    expect(result.spec.label).toBe('entra')
  })

  it('a guest (idp of another tenant, or acct 1) is marked, a member is not', async () => {
    const verifier = makeVerifier()
    const guest = await verifier.verify(await sign(userClaims({ idp: 'https://sts.windows.net/3f9a1c2e-0000-4000-8000-0000000000bb/' })))
    expect(guest).toMatchObject({ ok: true, identity: { kind: 'user', guest: true } })
    expect(await verifier.verify(await sign(userClaims({ acct: 1, oid: '7a1d0c55-0000-4000-8000-0000000000a2' })))).toMatchObject({ ok: true, identity: { guest: true } })
    const member = await verifier.verify(await sign(userClaims({ oid: '7a1d0c55-0000-4000-8000-0000000000a3' })))
    expect(member.ok && member.identity.guest).toBeFalsy()
  })

  it('an Entra v1 token (upn, appid, App ID URI audience)', async () => {
    const claims = userClaims({ iss: V1, ver: '1.0', upn: 'ada@example.test', appid: CLIENT, azp: undefined, preferred_username: undefined })
    const result = await verdict(makeVerifier(), await sign(claims))
    expect(result).toMatchObject({ ok: true, identity: { kind: 'user', name: 'ada@example.test', appId: CLIENT }, spec: { label: 'entra/v1' } })
  })

  it('the client id as audience', async () => {
    expect(await reasonOf(await sign(userClaims({ aud: CLIENT })))).toBe('accepted')
  })

  it('app-only tokens: idtyp=app, or roles without scp', async () => {
    for (const extra of [{ idtyp: 'app', scp: undefined, roles: ['GitLab.Api'] }, { scp: undefined, roles: ['GitLab.Api'] }]) {
      const claims = userClaims({ ...extra, preferred_username: undefined, email: undefined, name: undefined, oid: '5c0f2d7e-0000-4000-8000-00000000000a' })
      const result = await verdict(makeVerifier(), await sign(claims))
      expect(result).toMatchObject({ ok: true, identity: { kind: 'app', id: '5c0f2d7e-0000-4000-8000-00000000000a', roles: ['GitLab.Api'], appId: CLIENT } })
      if (result.ok) expect(result.identity.name).toBeUndefined()
    }
  })

  it('a GitLab CI id_token from an extra issuer, with qualified groups and CI facts', async () => {
    const claims = {
      iss: CI, aud: 'https://gitlab.example.test', sub: 'project_path:platform/infra:ref_type:branch:ref:main', user_login: 'ada',
      user_email: 'ada@example.test', namespace_path: 'platform', project_path: 'platform/infra', ref: 'main', ref_protected: 'true',
      pipeline_id: '574', job_id: '302', iat: now(), nbf: now() - 5, exp: now() + 300,
    }
    const result = await verdict(makeVerifier(), await sign(claims, ciKey))
    expect(result).toMatchObject({
      ok: true,
      identity: {
        kind: 'ci', id: 'ada', name: 'ada', email: 'ada@example.test', issuer: 'gitlab-ci',
        groups: ['gitlab-ci:platform', 'gitlab-ci:platform/infra'],
        ci: { projectPath: 'platform/infra', ref: 'main', refProtected: true, pipelineId: '574', jobId: '302' },
      },
      spec: { basicUsername: 'gitlab-ci-token' },
    })
  })

  it('exp and nbf within the 60 s skew', async () => {
    expect(await reasonOf(await sign(userClaims({ exp: now() - 30 })))).toBe('accepted')
    expect(await reasonOf(await sign(userClaims({ nbf: now() + 30, iat: now() + 30 })))).toBe('accepted')
  })

  it('groups overage without Graph: no groups, and says so', async () => {
    const claims = userClaims({ groups: undefined, _claim_names: { groups: 'src1' }, _claim_sources: { src1: { endpoint: 'https://graph.windows.net/x/users/y/getMemberObjects' } } })
    const result = await verdict(makeVerifier(), await sign(claims))
    expect(result).toMatchObject({ ok: true, identity: { groups: [], groupsSource: 'overage-unresolved' } })
  })
})

describe('rejects', () => {
  const unsigned = (header: Record<string, unknown>, claims: Record<string, unknown>, signature = '') => `${seg(header)}.${seg(claims)}.${signature}`

  it.each(['none', 'None', 'NONE', 'nOnE'])('alg %s (with and without a signature)', async (alg) => {
    expect(await reasonOf(unsigned({ alg, typ: 'JWT' }, userClaims()))).toBe('token-alg-not-allowed')
    expect(await reasonOf(unsigned({ alg, typ: 'JWT', kid: 'entra-1' }, userClaims(), 'c2ln'))).toBe('token-alg-not-allowed')
  })

  it('HS256 signed with the issuer public key (PEM and JWK forms) as the HMAC secret', async () => {
    const pem = await exportSPKI(createPublicKey({ key: entraKey.jwk as never, format: 'jwk' }) as never)
    for (const secret of [pem, JSON.stringify(entraKey.jwk), entraKey.jwk.n!]) {
      const input = `${seg({ alg: 'HS256', typ: 'JWT', kid: 'entra-1' })}.${seg(userClaims())}`
      const token = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
      expect(await reasonOf(token)).toBe('token-alg-not-allowed')
    }
  })

  it('an asymmetric alg outside the allow-list (PS256, ES256 by default)', async () => {
    expect(await reasonOf(unsigned({ alg: 'PS256', kid: 'entra-1' }, userClaims(), 'c2ln'))).toBe('token-alg-not-allowed')
    expect(await reasonOf(unsigned({ alg: 'ES256', kid: 'entra-1' }, userClaims(), 'c2ln'))).toBe('token-alg-not-allowed')
  })

  it('jku / x5u / embedded jwk / x5c pointing at an attacker key are never used', async () => {
    const headers = [
      { jku: 'https://attacker.test/keys' },
      { x5u: 'https://attacker.test/cert.pem' },
      { jwk: attacker.jwk },
      { x5c: ['MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'] },
    ]
    for (const header of headers) {
      // Attacker kid: not in the issuer's set.
      expect(await reasonOf(await sign(userClaims(), attacker, header))).toBe('token-unknown-key')
      // Our kid, attacker signature: the key comes from the JWKS, so the signature fails.
      expect(await reasonOf(await sign(userClaims(), attacker, { ...header, kid: 'entra-1' }))).toBe('token-bad-signature')
    }
  })

  it('a kid known to another trusted issuer (keys are per issuer)', async () => {
    expect(await reasonOf(await sign(userClaims(), ciKey))).toBe('token-unknown-key')
  })

  it.each([
    ['wrong iss', { iss: 'https://login.example.test/other/v2.0' }, 'token-issuer-untrusted'],
    ['another tenant\'s issuer', { iss: `${AUTHORITY}/3f9a1c2e-0000-4000-8000-0000000000bb/v2.0` }, 'token-issuer-untrusted'],
    ['wrong aud', { aud: 'https://graph.microsoft.com' }, 'token-audience-invalid'],
    ['no aud', { aud: undefined }, 'token-audience-invalid'],
    ['wrong tid', { tid: '3f9a1c2e-0000-4000-8000-0000000000bb' }, 'token-tenant-invalid'],
    ['no tid', { tid: undefined }, 'token-tenant-invalid'],
    ['expired beyond skew', { exp: now() - 120 }, 'token-expired'],
    ['nbf in the future', { nbf: now() + 300 }, 'token-not-yet-valid'],
    ['iat in the future', { iat: now() + 300 }, 'token-issued-in-future'],
    ['no exp', { exp: undefined }, 'token-exp-missing'],
    ['an ID token (nonce)', { nonce: 'n-0S6_WzA2Mj' }, 'token-not-access-token'],
    ['an ID token from a refresh (no nonce, app roles, no azp/appid)', { azp: undefined, scp: undefined, roles: ['GitLab.User'] }, 'token-not-access-token'],
    ['neither scp nor roles', { scp: undefined, roles: undefined }, 'token-not-access-token'],
    ['no oid', { oid: undefined }, 'token-subject-missing'],
    ['exp not a number', { exp: String(now() + 3600) }, 'token-exp-invalid'],
    ['nbf not a number', { nbf: String(now() - 5) }, 'token-nbf-invalid'],
    ['iat not a number', { iat: String(now()) }, 'token-iat-invalid'],
  ])('%s', async (_name, claims, reason) => {
    expect(await reasonOf(await sign(userClaims(claims)))).toBe(reason)
  })

  // Identity values go to GitLab in headers, which cannot carry C0 controls or DEL.
  it.each([
    ['CR/LF in preferred_username', { preferred_username: 'ada@example.test\r\nX-Forwarded-User: root' }],
    ['LF in upn', { upn: 'ada\n@example.test' }],
    ['NUL in email', { email: 'ada\u0000@example.test' }],
    ['TAB in a group', { groups: ['g1', 'g\t2'] }],
    ['DEL in oid', { oid: '7a1d0c55-0000-4000-8000-00000000000\u007f' }],
  ])('an Entra token with %s: token-claim-invalid', async (_name, claims) => {
    expect(await reasonOf(await sign(userClaims(claims)))).toBe('token-claim-invalid')
  })

  it('control characters in claims the identity does not use are no reason to refuse', async () => {
    // `name` (display name) never goes into a header; upn wins over preferred_username.
    expect(await reasonOf(await sign(userClaims({ name: 'Ada\r\nLovelace' })))).toBe('accepted')
    expect(await reasonOf(await sign(userClaims({ upn: 'ada@example.test', preferred_username: 'a\nb' })))).toBe('accepted')
  })

  it('an extra issuer token with a control character in the mapped user, email or a group: token-claim-invalid', async () => {
    const ci = (extra: Record<string, unknown>) => ({
      iss: CI, aud: 'https://gitlab.example.test', user_login: 'ada', user_email: 'ada@example.test', namespace_path: 'platform',
      project_path: 'platform/infra', iat: now(), exp: now() + 300, ...extra,
    })
    expect(await reasonOf(await sign(ci({}), ciKey))).toBe('accepted')
    for (const extra of [{ user_login: 'ada\r' }, { user_email: 'a\nda@example.test' }, { project_path: 'platform/\u001binfra' }]) {
      expect(await reasonOf(await sign(ci(extra), ciKey)), JSON.stringify(extra)).toBe('token-claim-invalid')
    }
  })

  it('non-ASCII identity values are valid (they go out as UTF-8)', async () => {
    expect(await reasonOf(await sign(userClaims({ preferred_username: '李雷@example.test', email: 'renée@example.test' })))).toBe('accepted')
  })

  it('crit header parameters (validly signed with the issuer key)', async () => {
    // jose refuses to produce such a token, so sign it by hand.
    for (const header of [{ crit: ['exp'], exp: 1 }, { crit: ['b64'], b64: true }, { crit: [] }]) {
      const input = `${seg({ alg: 'RS256', kid: 'entra-1', ...header })}.${seg(userClaims())}`
      const token = `${input}.${rsaSign('sha256', Buffer.from(input), KeyObject.from(entraKey.privateKey)).toString('base64url')}`
      expect(await reasonOf(token)).toBe('token-crit-unsupported')
    }
  })

  it('a tampered payload', async () => {
    const [h, , s] = (await sign(userClaims())).split('.')
    expect(await reasonOf(`${h}.${seg(userClaims({ groups: ['admins'] }))}.${s}`)).toBe('token-bad-signature')
  })

  it('malformed tokens', async () => {
    const good = await sign(userClaims())
    const [h, p, s] = good.split('.')
    expect(await reasonOf(`${h}.${p}`)).toBe('token-malformed')
    expect(await reasonOf(`${h}.${p}.${s}.${s}`)).toBe('token-malformed')
    expect(await reasonOf(`${h}.${p}*.${s}`)).toBe('token-malformed')
    expect(await reasonOf(`${h}.${seg('{')}.${s}`.replace(seg('{'), Buffer.from('{"iss":').toString('base64url')))).toBe('token-malformed')
  })

  it('an oversized token before any parsing', async () => {
    expect(await reasonOf(await sign(userClaims({ pad: 'x'.repeat(17_000) })))).toBe('token-too-large')
  })
})

describe('verified-token cache', () => {
  it('answers a repeated token synchronously, without crypto', async () => {
    const counters = { hit: 0, miss: 0 }
    const verifier = makeVerifier(createRevocations(), counters)
    const token = await sign(userClaims())
    const first = verifier.verify(token)
    expect(first).toBeInstanceOf(Promise)
    expect((await first).ok).toBe(true)
    const lookups = keyLookups
    const second = verifier.verify(token)
    expect(second).not.toBeInstanceOf(Promise)
    expect((second as VerifyResult).ok).toBe(true)
    expect(keyLookups).toBe(lookups)
    expect(counters).toEqual({ hit: 1, miss: 1 })
  })

  it('shares one verification between concurrent requests for the same token', async () => {
    const verifier = makeVerifier()
    const token = await sign(userClaims())
    const before = keyLookups
    const results = await Promise.all(Array.from({ length: 20 }, () => verifier.verify(token)))
    expect(results.every((r) => r.ok)).toBe(true)
    expect(keyLookups - before).toBe(1)
  })

  it('revocation wins over the cache; a token issued after the revocation is accepted', async () => {
    const revocations = createRevocations()
    const verifier = makeVerifier(revocations)
    const old = await sign(userClaims({ iat: now() - 10 }))
    expect((await verifier.verify(old)).ok).toBe(true)
    revocations.revoke('ADA@example.test')
    const again = verifier.verify(old)
    expect(again).not.toBeInstanceOf(Promise)
    expect(again).toMatchObject({ ok: false, failure: { reason: 'token-revoked', status: 401 } })
    const fresh = await sign(userClaims({ iat: now() + 2 }))
    expect((await verifier.verify(fresh)).ok).toBe(true)
  })

  it('does not cache failures as successes', async () => {
    const verifier = makeVerifier()
    const expired = await sign(userClaims({ exp: now() - 120 }))
    expect(await verdict(verifier, expired)).toMatchObject({ ok: false, failure: { reason: 'token-expired' } })
    expect(await verdict(verifier, expired)).toMatchObject({ ok: false, failure: { reason: 'token-expired' } })
  })
})

describe('verified-token cache and the issuer\'s current keys', () => {
  /** An Entra key holder whose published keys change, versioned as the real one is. */
  function liveKeys(initial: JWK[]) {
    let set = createLocalJWKSet({ keys: initial })
    let versions: KeyVersions = nextKeyVersions(initial, NO_KEY_VERSIONS)
    return {
      getKey: (async (h: never, t: never) => {
        keyLookups++
        return set(h, t)
      }) as never,
      keyVersion: (kid: string | undefined) => (kid === undefined ? versions.all : versions.byKid.get(kid)),
      /** A refetch: every key arrives as a new object, as parsed from a new response. */
      publish(keys: JWK[]) {
        const parsed = JSON.parse(JSON.stringify(keys)) as JWK[]
        set = createLocalJWKSet({ keys: parsed })
        versions = nextKeyVersions(parsed, versions)
      },
    }
  }

  function verifierWith(entra: ReturnType<typeof liveKeys>, revocations: Revocations = createRevocations()): BearerVerifier {
    const issuers = trustedIssuers(config)
    const keys = new Map(issuers.map((spec) => [spec.label, entra]))
    return createBearerVerifier({ issuers, keys, cache: createTokenCache(), revocations, metrics: { tokenCache: () => {} } })
  }

  it('a cached token whose key the issuer withdrew is verified again, and refused', async () => {
    const other = await makeKey('entra-2')
    const entra = liveKeys([entraKey.jwk])
    const verifier = verifierWith(entra)
    const token = await sign(userClaims())
    expect((await verifier.verify(token)).ok).toBe(true)
    expect(verifier.verify(token)).toMatchObject({ ok: true })
    entra.publish([other.jwk])
    const after = verifier.verify(token)
    expect(after).toBeInstanceOf(Promise)
    expect(await after).toMatchObject({ ok: false, failure: { reason: 'token-unknown-key' } })
    // And stays refused: the stale entry is gone, not reused.
    expect(await verifier.verify(token)).toMatchObject({ ok: false, failure: { reason: 'token-unknown-key' } })
  })

  it('a key replaced under the same kid: the cached token is checked against the new key', async () => {
    const entra = liveKeys([entraKey.jwk])
    const verifier = verifierWith(entra)
    const token = await sign(userClaims())
    expect((await verifier.verify(token)).ok).toBe(true)
    entra.publish([{ ...attacker.jwk, kid: 'entra-1' }])
    expect(await verifier.verify(token)).toMatchObject({ ok: false, failure: { reason: 'token-bad-signature' } })
  })

  it('a refetch that keeps the key (others added or removed) keeps the hit synchronous, without crypto', async () => {
    const other = await makeKey('entra-3')
    const entra = liveKeys([entraKey.jwk, other.jwk])
    const verifier = verifierWith(entra)
    const token = await sign(userClaims())
    expect((await verifier.verify(token)).ok).toBe(true)
    const lookups = keyLookups
    entra.publish([entraKey.jwk, other.jwk])
    entra.publish([entraKey.jwk])
    const hit = verifier.verify(token)
    expect(hit).not.toBeInstanceOf(Promise)
    expect(hit).toMatchObject({ ok: true })
    expect(keyLookups).toBe(lookups)
  })

  it('a token without kid is tied to the whole set', async () => {
    const other = await makeKey('entra-4')
    const entra = liveKeys([entraKey.jwk])
    const verifier = verifierWith(entra)
    const token = await new SignJWT(userClaims()).setProtectedHeader({ alg: 'RS256', typ: 'JWT' }).sign(entraKey.privateKey)
    expect((await verifier.verify(token)).ok).toBe(true)
    expect(verifier.verify(token)).not.toBeInstanceOf(Promise)
    entra.publish([other.jwk])
    expect(await verifier.verify(token)).toMatchObject({ ok: false })
  })

  it('a token accepted before a revocation is refused after it, even with an iat up to the skew ahead', async () => {
    const revocations = createRevocations()
    const verifier = verifierWith(liveKeys([entraKey.jwk]), revocations)
    const ahead = await sign(userClaims({ oid: '7a1d0c55-0000-4000-8000-0000000000f1', iat: now() + 45, nbf: now() + 40 }))
    expect((await verifier.verify(ahead)).ok).toBe(true)
    revocations.revoke('7a1d0c55-0000-4000-8000-0000000000f1')
    expect(verifier.verify(ahead)).toMatchObject({ ok: false, failure: { reason: 'token-revoked' } })
  })
})

describe('lookup (which issuer verifies; unverified)', () => {
  it('routes by iss and ignores foreign tokens', async () => {
    const verifier = makeVerifier()
    expect(verifier.lookup(await sign(userClaims()))?.label).toBe('entra')
    expect(verifier.lookup(await sign(userClaims({ iss: V1 })))?.label).toBe('entra/v1')
    expect(verifier.lookup(await sign(userClaims({ iss: 'https://elsewhere.test' })))).toBeUndefined()
    expect(verifier.lookup('glpat-0123456789')).toBeUndefined()
  })
})
