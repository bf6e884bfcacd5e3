import { describe, expect, it } from 'vitest'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { createAssertionSigner, deriveP256Key } from '../../../src/proxy/assertion.ts'
import type { Identity } from '../../../src/auth/identity.ts'

const ada: Identity = Object.freeze({
  kind: 'user', id: '7a1d0c55-0000-4000-8000-000000000001', name: 'ada@example.test', email: 'ada@example.test', displayName: 'Ada',
  groups: ['g1', 'g2'], roles: ['GitLab.User'], appId: 'client', issuer: 'entra', tenantId: 'tid',
})

describe('X-IAP-Assertion', () => {
  it('is an ES256 JWT verifiable with jwks(), carrying the identity', async () => {
    const signer = createAssertionSigner({ publicUrl: 'https://gitlab.example.test/some/path' })
    const jwt = signer.assertionFor(ada)!
    const { payload, protectedHeader } = await jwtVerify(jwt, createLocalJWKSet(signer.jwks() as never), {
      issuer: 'https://gitlab.example.test/-/iap', audience: 'https://gitlab.example.test', algorithms: ['ES256'], requiredClaims: ['exp'],
    })
    expect(protectedHeader).toMatchObject({ alg: 'ES256', kid: signer.kid, typ: 'JWT' })
    expect(payload).toMatchObject({ sub: ada.id, kind: 'user', idp: 'entra', preferred_username: 'ada@example.test', email: 'ada@example.test', groups: ['g1', 'g2'], roles: ['GitLab.User'], azp: 'client', tid: 'tid' })
    expect(payload.exp! - payload.iat!).toBe(120)
    expect(signer.jwks().keys[0]).not.toHaveProperty('d')
  })

  it('an extra issuer\'s sub and preferred_username are qualified, so they never read as an Entra user', async () => {
    const signer = createAssertionSigner({ publicUrl: 'https://gitlab.example.test' })
    // A GitLab username shaped like ada's Entra object id.
    const ci: Identity = { kind: 'ci', id: ada.id, name: ada.id, email: 'ada@example.test', groups: ['gitlab-ci:platform'], roles: [], issuer: 'gitlab-ci' }
    const { payload } = await jwtVerify(signer.assertionFor(ci)!, createLocalJWKSet(signer.jwks() as never), { algorithms: ['ES256'] })
    expect(payload).toMatchObject({ sub: `gitlab-ci:${ada.id}`, preferred_username: `gitlab-ci:${ada.id}`, email: 'ada@example.test', idp: 'gitlab-ci', kind: 'ci' })
    const entra = await jwtVerify(signer.assertionFor(ada)!, createLocalJWKSet(signer.jwks() as never), { algorithms: ['ES256'] })
    expect(entra.payload.sub).not.toBe(payload.sub)
  })

  it('a guest (B2B) is marked, its home-chosen name being no proof of who it is; members are not', async () => {
    const signer = createAssertionSigner({ publicUrl: 'https://gitlab.example.test' })
    const verify = async (identity: Identity) => (await jwtVerify(signer.assertionFor(identity)!, createLocalJWKSet(signer.jwks() as never), { algorithms: ['ES256'] })).payload
    expect(await verify({ ...ada, guest: true })).toMatchObject({ guest: true, preferred_username: 'ada@example.test' })
    expect(await verify(ada)).not.toHaveProperty('guest')
  })

  it('nothing for anonymous requests', () => {
    const signer = createAssertionSigner({ publicUrl: 'https://gitlab.example.test' })
    const headers: Record<string, string> = {}
    signer.setHeader(headers, { kind: 'anonymous', id: '', groups: [], roles: [], issuer: '' })
    expect(headers).toEqual({})
    signer.setHeader(headers, ada)
    expect(headers['x-iap-assertion']).toMatch(/^ey/)
  })

  it('reuses one assertion per identity for three quarters of its lifetime, then re-signs', () => {
    let t = 1_700_000_000_000
    const signer = createAssertionSigner({ publicUrl: 'https://gitlab.example.test', ttlSeconds: 60, now: () => t })
    const first = signer.assertionFor(ada)
    expect(signer.assertionFor(ada)).toBe(first)
    // A copy of the identity (sessions build new objects) still hits the cache.
    expect(signer.assertionFor({ ...ada })).toBe(first)
    expect(signer.assertionFor({ ...ada, groups: ['g1'] })).not.toBe(first)
    t += 44_000
    expect(signer.assertionFor(ada)).toBe(first)
    t += 2_000
    expect(signer.assertionFor(ada)).not.toBe(first)
  })

  it('replicas sharing a secret share the key; different secrets give different keys', () => {
    const a = createAssertionSigner({ publicUrl: 'https://g.test', secret: 's'.repeat(40) })
    const b = createAssertionSigner({ publicUrl: 'https://g.test', secret: 's'.repeat(40) })
    const c = createAssertionSigner({ publicUrl: 'https://g.test', secret: 't'.repeat(40) })
    expect(a.kid).toBe(b.kid)
    expect(a.jwks()).toEqual(b.jwks())
    expect(c.kid).not.toBe(a.kid)
    expect(deriveP256Key('x'.repeat(32)).asymmetricKeyDetails).toMatchObject({ namedCurve: 'prime256v1' })
  })

  it('an assertion from a replica with the same secret verifies against another replica\'s jwks', async () => {
    const a = createAssertionSigner({ publicUrl: 'https://g.test', secret: 'q'.repeat(48) })
    const b = createAssertionSigner({ publicUrl: 'https://g.test', secret: 'q'.repeat(48) })
    await expect(jwtVerify(a.assertionFor(ada)!, createLocalJWKSet(b.jwks() as never), { algorithms: ['ES256'] })).resolves.toBeTruthy()
  })
})
