/**
 * Key set versions (src/auth/bearer/key-set.ts `nextKeyVersions`): what ties a verified-token cache
 * entry to the key that verified it. Unchanged keys keep their version object across refetches.
 */
import { describe, expect, it } from 'vitest'
import { nextKeyVersions, NO_KEY_VERSIONS } from '../../../src/auth/bearer/key-set.ts'

const key = (kid: string, n = `n-${kid}`) => ({ kty: 'RSA', kid, n, e: 'AQAB', alg: 'RS256', use: 'sig' })
/** A refetch: the same document parsed again, every key a new object. */
const refetch = <T>(keys: T[]): T[] => JSON.parse(JSON.stringify(keys)) as T[]

describe('key set versions', () => {
  it('an unchanged key keeps its version across a refetch; the whole set too', () => {
    const first = nextKeyVersions([key('a'), key('b')], NO_KEY_VERSIONS)
    const second = nextKeyVersions(refetch([key('a'), key('b')]), first)
    expect(second.byKid.get('a')).toBe(first.byKid.get('a'))
    expect(second.byKid.get('b')).toBe(first.byKid.get('b'))
    expect(second.all).toBe(first.all)
  })

  it('a withdrawn kid has no version; a replaced key gets a new one; the others keep theirs', () => {
    const first = nextKeyVersions([key('a'), key('b')], NO_KEY_VERSIONS)
    const second = nextKeyVersions([key('b', 'other-modulus'), key('c')], first)
    expect(second.byKid.get('a')).toBeUndefined()
    expect(second.byKid.get('b')).toBeDefined()
    expect(second.byKid.get('b')).not.toBe(first.byKid.get('b'))
    expect(second.all).not.toBe(first.all)
    const third = nextKeyVersions([key('b', 'other-modulus')], second)
    expect(third.byKid.get('b')).toBe(second.byKid.get('b'))
  })

  it('several keys under one kid are versioned together; keys without kid count for the whole set only', () => {
    const first = nextKeyVersions([key('a'), key('a', 'second'), { kty: 'RSA', n: 'x', e: 'AQAB' }], NO_KEY_VERSIONS)
    expect([...first.byKid.keys()]).toEqual(['a'])
    const second = nextKeyVersions([key('a')], first)
    expect(second.byKid.get('a')).not.toBe(first.byKid.get('a'))
    expect(nextKeyVersions([], second)).toEqual({ byKid: new Map(), all: undefined })
  })
})
