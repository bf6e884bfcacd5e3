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
