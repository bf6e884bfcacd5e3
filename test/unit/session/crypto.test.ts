import { describe, it, expect } from 'vitest'
import { cookieValues, createSessionId, serializeCookie, signSessionId, storeKeyFor, verifySessionCookie } from '../../../src/auth/session/cookies.ts'
import { deriveSessionKeys } from '../../../src/auth/session/keys.ts'
import { open, seal } from '../../../src/auth/session/seal.ts'

const keys = deriveSessionKeys('a-test-secret-that-is-at-least-32-bytes-long')
const otherKeys = deriveSessionKeys('another-test-secret-of-at-least-32-bytes!!')

describe('session keys', () => {
  it('derives distinct 32-byte keys per purpose', () => {
    const all = [keys.cookieMac, keys.storeId, keys.tokenSeal, keys.transactionSeal]
    for (const k of all) expect(k.length).toBe(32)
    expect(new Set(all.map((k) => k.toString('hex'))).size).toBe(4)
    expect(keys.cookieMac.equals(otherKeys.cookieMac)).toBe(false)
  })
  it('refuses a short secret', () => {
    expect(() => deriveSessionKeys('short')).toThrow(TypeError)
  })
})

describe('session cookie', () => {
  it('ids are 256-bit, random and url-safe', () => {
    const ids = new Set(Array.from({ length: 1000 }, createSessionId))
    expect(ids.size).toBe(1000)
    for (const id of ids) expect(Buffer.from(id, 'base64url').length).toBe(32)
  })

  it('verifies its own signature and rejects tampering', () => {
    const id = createSessionId()
    const value = signSessionId(keys, id)
    expect(verifySessionCookie(keys, value)).toBe(id)
    const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1)
    expect(verifySessionCookie(keys, flip(value, 0))).toBeUndefined()
    expect(verifySessionCookie(keys, flip(value, value.length - 2))).toBeUndefined()
    expect(verifySessionCookie(otherKeys, value)).toBeUndefined()
    expect(verifySessionCookie(keys, `${createSessionId()}.${value.split('.')[1]}`)).toBeUndefined()
    for (const junk of ['', '.', id, `${id}.`, `${value}.x`, value + 'A', 'a'.repeat(5000), `${id}.${'A'.repeat(22)}`]) {
      expect(verifySessionCookie(keys, junk)).toBeUndefined()
    }
  })

  it('store keys are not the cookie id and depend on the secret', () => {
    const id = createSessionId()
    expect(storeKeyFor(keys, id)).not.toContain(id)
    expect(storeKeyFor(keys, id)).not.toBe(storeKeyFor(otherKeys, id))
    expect(storeKeyFor(keys, id)).toBe(storeKeyFor(keys, id))
  })

  it('serializes with HttpOnly, SameSite=Lax, Path=/, Secure and no Domain', () => {
    const c = serializeCookie('__Host-gitlab-iap', 'v', { secure: true, maxAgeSeconds: 3600 })
    expect(c).toBe('__Host-gitlab-iap=v; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=3600')
    expect(serializeCookie('n', '', { secure: true, maxAgeSeconds: 0 })).toMatch(/Max-Age=0; Expires=Thu, 01 Jan 1970/)
    expect(c).not.toMatch(/domain/i)
  })

  it('parses duplicate and quoted cookie values', () => {
    expect(cookieValues('a=1; __Host-x=one; _gitlab_session=g; __Host-x="two"', '__Host-x')).toEqual(['one', 'two'])
    expect(cookieValues('__Host-xy=1', '__Host-x')).toEqual([])
    expect(cookieValues(undefined, 'x')).toEqual([])
  })
})

describe('seal', () => {
  it('round-trips and binds the associated data', () => {
    const sealed = seal(keys.tokenSeal, 'refresh-token-value', 'store-key-1')
    expect(sealed).not.toContain('refresh-token-value')
    expect(open(keys.tokenSeal, sealed, 'store-key-1')).toBe('refresh-token-value')
    expect(open(keys.tokenSeal, sealed, 'store-key-2')).toBeUndefined()
    expect(open(keys.transactionSeal, sealed, 'store-key-1')).toBeUndefined()
    expect(open(otherKeys.tokenSeal, sealed, 'store-key-1')).toBeUndefined()
  })
  it('rejects any changed byte and junk', () => {
    const sealed = seal(keys.tokenSeal, 'x'.repeat(100), 'aad')
    const raw = Buffer.from(sealed.slice(3), 'base64url')
    for (const i of [0, 11, 12, 27, 28, raw.length - 1]) {
      const copy = Buffer.from(raw)
      copy[i]! ^= 1
      expect(open(keys.tokenSeal, 'v1.' + copy.toString('base64url'), 'aad')).toBeUndefined()
    }
    for (const junk of ['', 'v1.', 'v2.' + sealed.slice(3), 'v1.AAAA', sealed.slice(0, 20)]) expect(open(keys.tokenSeal, junk, 'aad')).toBeUndefined()
  })
  it('uses a fresh IV each time', () => {
    expect(seal(keys.tokenSeal, 'same', 'aad')).not.toBe(seal(keys.tokenSeal, 'same', 'aad'))
  })
})
