import { describe, expect, it } from 'vitest'
import { matchPath } from '../../../src/http/canonical-path.ts'
import { compileBelow, compileGlob, compileGlobs, GlobError } from '../../../src/policy/glob.ts'

describe('compileGlob', () => {
  it.each([
    // Patterns are read in the form requests are matched in (matchPath): decoded except %2F, lower-cased.
    ['/caf%C3%A9/**', '/caf%C3%A9/menu', true],
    ['/café/**', '/caf%c3%a9', true],
    ['/Group%2FProject', '/group%2fproject', true],
    ['/group%2Fproject', '/group/project', false],
    // A trailing slash is dropped, as requests drop theirs; "/" itself stays.
    ['/t/', '/t', true],
    ['/t//', '/t', true],
    ['/', '/', true],
    ['/', '/t', false],
    // Only a raw "*" is a wildcard; "%2A" is a literal star, as it is in a request.
    ['/a%2A', '/a*', true],
    ['/a%2A', '/ab', false],
    ['/a*', '/ab', true],
    ['/admin/**', '/admin', true],
    ['/x/**/y', '/x/a/b/y', true],
  ])('%s against %s → %s', (pattern, path, expected) => {
    expect(compileGlob(pattern).test(matchPath(path))).toBe(expected)
  })

  it('project globs decode everything, %2F included (as projectCandidates does)', () => {
    expect(compileGlob('secret-group%2Fvault', 'project').test('secret-group/vault')).toBe(true)
    expect(compileGlob('secret-group%2F*', 'project').test('secret-group/vault')).toBe(true)
  })

  it('a malformed escape throws a GlobError with the index of the pattern', () => {
    for (const bad of ['/a%', '/a%2', '/a%zz', '/caf%C3', '/%C0%AE', '/%ff']) expect(() => compileGlob(bad), bad).toThrow(GlobError)
    try {
      compileGlobs(['/ok', '/also-ok', '/bad%g0'])
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(GlobError)
      expect((err as GlobError).index).toBe(2)
    }
  })
})

describe('compileBelow (a projects pattern below a group)', () => {
  it.each([
    [['parent/secret/**'], 'parent', true],
    [['parent/secret/**'], 'parent/secret', true],
    [['parent/secret/**'], 'parent/open', false],
    [['parent/secret/**'], 'par', false],
    [['parent/secret/**'], 'other', false],
    [['parent/secret'], 'parent', true],
    [['Parent/Secret%2Fvault'], 'parent/secret', true],
    [['*/secret'], 'anything', true],
    [['*/secret'], 'a/b', false],
    [['p*/secret/**'], 'parent', true],
    [['p*/secret/**'], 'other', false],
    [['**/secret'], 'any/group', true],
    [['pa**'], 'parent', true],
    [['pa**'], 'other', false],
    [['other/**', 'parent/x'], 'parent', true],
  ])('%j below %s → %s', (patterns, group, expected) => {
    expect(compileBelow(patterns)?.test(group) ?? false).toBe(expected)
  })

  it('a pattern of one segment without "**" lies below no group', () => {
    expect(compileBelow(['secret-group'])).toBeUndefined()
    expect(compileBelow(['secret-*'])).toBeUndefined()
  })
})
