import { describe, expect, it } from 'vitest'
import { entraV1Issuer, entraV2Issuer, trustedIssuers } from '../../../src/auth/bearer/issuers.ts'
import { filterKeys } from '../../../src/auth/bearer/key-set.ts'
import { configSchema } from '../../../src/config/schema.ts'

const TID = '72f988bf-86f1-41af-91ab-2d7cd011db47'
const parse = (extra: Record<string, unknown>) =>
  configSchema.parse({ server: { publicUrl: 'https://gitlab.example.test' }, upstream: { url: 'http://gitlab:8181' }, ...extra })

describe('Entra issuers', () => {
  it('public cloud: v2 on login.microsoftonline.com, v1 on sts.windows.net', () => {
    expect(entraV2Issuer('https://login.microsoftonline.com', TID)).toBe(`https://login.microsoftonline.com/${TID}/v2.0`)
    expect(entraV1Issuer('https://login.microsoftonline.com/', TID)).toBe(`https://sts.windows.net/${TID}/`)
  })

  it('other authorities (sovereign clouds, the loopback dev provider): v1 is {authority}/{tid}/', () => {
    expect(entraV1Issuer('http://127.0.0.1:4000', TID)).toBe(`http://127.0.0.1:4000/${TID}/`)
    expect(entraV2Issuer('http://127.0.0.1:4000/', TID)).toBe(`http://127.0.0.1:4000/${TID}/v2.0`)
  })

  it('builds v2 and v1 specs with tenant-specific discovery; clientId is always an accepted audience', () => {
    const specs = trustedIssuers(parse({ entra: { tenantId: TID, clientId: 'client-1', audiences: ['api://gitlab-iap'] } }))
    expect(specs.map((s) => [s.label, s.iss, s.discoveryUrl])).toEqual([
      ['entra', `https://login.microsoftonline.com/${TID}/v2.0`, `https://login.microsoftonline.com/${TID}/v2.0/.well-known/openid-configuration`],
      ['entra/v1', `https://sts.windows.net/${TID}/`, `https://login.microsoftonline.com/${TID}/.well-known/openid-configuration`],
    ])
    expect(specs[0]!.audiences).toEqual(['api://gitlab-iap', 'client-1'])
    expect(specs[0]!.algorithms).toEqual(['RS256'])
    expect(specs[0]!.basicUsername).toBe('oauth2')
  })

  it('acceptV1Tokens: false drops the v1 issuer', () => {
    const specs = trustedIssuers(parse({ entra: { tenantId: TID, clientId: 'c', acceptV1Tokens: false } }))
    expect(specs.map((s) => s.label)).toEqual(['entra'])
  })

  it('extra issuers: discovery under the issuer, GitLab CI gets gitlab-ci-token for Basic', () => {
    const specs = trustedIssuers(parse({
      issuers: [
        { name: 'gitlab-ci', issuer: 'https://gitlab.example.test', audiences: ['https://gitlab.example.test'] },
        { name: 'corp-idp', issuer: 'https://idp.example.test/', kind: 'user', jwksUri: 'https://idp.example.test/keys', audiences: ['gitlab'] },
      ],
    }))
    expect(specs[0]).toMatchObject({ label: 'gitlab-ci', discoveryUrl: 'https://gitlab.example.test/.well-known/openid-configuration', basicUsername: 'gitlab-ci-token', kind: 'ci' })
    expect(specs[1]).toMatchObject({ label: 'corp-idp', iss: 'https://idp.example.test/', jwksUri: 'https://idp.example.test/keys', basicUsername: 'oauth2', kind: 'user' })
  })
})

describe('filterKeys (Entra key issuer property)', () => {
  const spec = { keyIssuers: [`https://login.microsoftonline.com/${TID}/v2.0`, `https://sts.windows.net/${TID}/`], tenantId: TID }
  it('keeps templated and matching keys, drops keys bound to another issuer', () => {
    const jwks = {
      keys: [
        { kid: 'templated', issuer: 'https://login.microsoftonline.com/{tenantid}/v2.0' },
        { kid: 'plain' },
        { kid: 'msa', issuer: 'https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0' },
        'junk',
      ],
    }
    expect(filterKeys(spec, jwks).keys.map((k) => k.kid)).toEqual(['templated', 'plain'])
  })
  it('extra issuers keep every public key, never a symmetric one; a non-JWKS document is an error', () => {
    expect(filterKeys({}, { keys: [{ kid: 'a', issuer: 'anything' }, { kid: 'hmac', kty: 'oct', k: 'c2VjcmV0' }] }).keys.map((k) => k.kid)).toEqual(['a'])
    expect(() => filterKeys({}, { nope: true })).toThrow(/JSON Web Key Set/)
  })
  it('a set with no usable key left is an error, not an empty key set (it must not replace good keys)', () => {
    for (const jwks of [{ keys: [] }, { keys: [1, 'x', null] }, { keys: [{ kid: 'hmac', kty: 'oct', k: 'c2VjcmV0' }] }]) {
      expect(() => filterKeys({}, jwks), JSON.stringify(jwks)).toThrow(/no usable key/)
    }
    expect(() => filterKeys(spec, { keys: [{ kid: 'msa', issuer: 'https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0' }] })).toThrow(/no usable key/)
  })
})
