import { describe, expect, it } from 'vitest'
import { createTokenCache, tokenKey } from '../../../src/auth/bearer/token-cache.ts'
import type { IssuerSpec } from '../../../src/auth/bearer/issuers.ts'
import type { Identity } from '../../../src/auth/identity.ts'

const spec = { label: 'entra' } as IssuerSpec
const identity = (groups: number): Identity => ({ kind: 'user', id: 'x', groups: Array.from({ length: groups }, (_, i) => `6c0bd1d2-0000-4000-8000-${String(i).padStart(12, '0')}`), roles: [], issuer: 'entra' })

describe('verified-token cache', () => {
  it('keys by SHA-256 (the token is not kept)', () => {
    expect(tokenKey('abc')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0')
  })

  it('is bounded in entries', () => {
    const cache = createTokenCache({ maxEntries: 10 })
    for (let i = 0; i < 50; i++) cache.set(`k${i}`, { identity: identity(1), spec, verifiedAt: 0 }, 60_000)
    expect(cache.size).toBe(10)
    expect(cache.get('k49')).toBeDefined()
    expect(cache.get('k0')).toBeUndefined()
  })

  it('is bounded in bytes (identities with many groups take more room)', () => {
    const cache = createTokenCache({ maxBytes: 100_000 })
    for (let i = 0; i < 100; i++) cache.set(`k${i}`, { identity: identity(250), spec, verifiedAt: 0 }, 60_000)
    expect(cache.size).toBeLessThan(10)
    expect(cache.size).toBeGreaterThan(0)
  })

  it('never caches an already expired token; entries expire with the token', async () => {
    const cache = createTokenCache()
    cache.set('gone', { identity: identity(0), spec, verifiedAt: 0 }, 0)
    cache.set('neg', { identity: identity(0), spec, verifiedAt: 0 }, -5)
    expect(cache.get('gone')).toBeUndefined()
    expect(cache.get('neg')).toBeUndefined()
    cache.set('short', { identity: identity(0), spec, verifiedAt: 0 }, 30)
    expect(cache.get('short')).toBeDefined()
    await new Promise((r) => setTimeout(r, 60))
    expect(cache.get('short')).toBeUndefined()
  })

  it('forgets an entry on delete (a token whose key was withdrawn)', () => {
    const cache = createTokenCache()
    cache.set('k', { identity: identity(0), spec, verifiedAt: 0 }, 60_000)
    cache.delete('k')
    expect(cache.get('k')).toBeUndefined()
    expect(cache.size).toBe(0)
  })
})
