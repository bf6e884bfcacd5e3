import { describe, expect, it } from 'vitest'
import { createRevocations } from '../../../src/auth/revocations.ts'
import type { Identity } from '../../../src/auth/identity.ts'

const user = (issuedAt: number | undefined): Identity => ({ kind: 'user', id: 'oid-1', name: 'Ada@Example.test', groups: [], roles: [], issuer: 'entra', ...(issuedAt !== undefined ? { issuedAt } : {}) })

describe('revocations', () => {
  it('nothing is revoked at first', () => {
    expect(createRevocations().isRevoked(user(1))).toBe(false)
  })

  it('revokes credentials issued before the revocation, by object id or upn (any case)', () => {
    let t = 1_000_000_000_500
    const r = createRevocations({ now: () => t })
    r.revoke('oid-1')
    expect(r.isRevoked(user(1_000_000_000 - 60))).toBe(true)
    // Same second as the revocation: counted as earlier (fail closed), unless first presented after it.
    expect(r.isRevoked(user(1_000_000_000))).toBe(true)
    expect(r.isRevoked(user(1_000_000_000), 1_000_000_000_400)).toBe(true)
    expect(r.isRevoked(user(1_000_000_000), 1_000_000_000_600)).toBe(false)
    expect(r.isRevoked(user(1_000_000_000 - 1), 1_000_000_000_600)).toBe(true)
    expect(r.isRevoked(user(1_000_000_001))).toBe(false)
    const r2 = createRevocations({ now: () => t })
    r2.revoke('  ada@EXAMPLE.test ')
    expect(r2.isRevoked(user(999_999_000))).toBe(true)
    t += 10_000
    r2.revoke('ada@example.test', t - 60_000)
    expect(r2.revokedAt('ada@example.test')).toBe(1_000_000_000_500)
  })

  it('a credential without iat is revoked (cannot prove it is newer)', () => {
    const r = createRevocations()
    r.revoke('oid-1')
    expect(r.isRevoked(user(undefined))).toBe(true)
  })

  it('other users are unaffected; empty names are ignored', () => {
    const r = createRevocations()
    r.revoke('someone-else')
    r.revoke('   ')
    expect(r.isRevoked(user(1))).toBe(false)
  })
})

describe('revocations of extra issuers\' identities', () => {
  const ci = (issuedAt: number, name = 'ada'): Identity => ({ kind: 'ci', id: name, name, groups: [], roles: [], issuer: 'gitlab-ci', issuedAt })
  const entra = (issuedAt: number): Identity => ({ kind: 'user', id: 'oid-2', name: 'ada', groups: [], roles: [], issuer: 'entra', issuedAt })

  it('revoke by the qualified name the policy, X-Forwarded-User and the assertion show (any case)', () => {
    const r = createRevocations({ now: () => 1_000_000_000_000 })
    r.revoke('GitLab-CI:Ada')
    expect(r.isRevoked(ci(999_999_000))).toBe(true)
    expect(r.isRevoked(ci(999_999_000, 'bob'))).toBe(false)
  })

  it('a bare name is the Entra user\'s, never another issuer\'s identity of that name, and the other way round', () => {
    const bare = createRevocations({ now: () => 1_000_000_000_000 })
    bare.revoke('ada')
    expect(bare.isRevoked(entra(999_999_000))).toBe(true)
    expect(bare.isRevoked(ci(999_999_000))).toBe(false)
    const qualified = createRevocations({ now: () => 1_000_000_000_000 })
    qualified.revoke('gitlab-ci:ada')
    expect(qualified.isRevoked(entra(999_999_000))).toBe(false)
  })
})

describe('an iat ahead of the revocation (the IdP clock within the accepted skew)', () => {
  it('is revoked when this process accepted the token before the revocation', () => {
    const at = 1_000_000_000_500
    const r = createRevocations({ now: () => at })
    r.revoke('oid-1')
    // iat 45 s after the revocation, first accepted 10 s before it.
    expect(r.isRevoked(user(1_000_000_045), at - 10_000)).toBe(true)
    expect(r.isRevoked(user(1_000_000_045), at)).toBe(true)
    // First presented after the revocation: the fresh token of a user let back in.
    expect(r.isRevoked(user(1_000_000_045), at + 1)).toBe(false)
  })
})
