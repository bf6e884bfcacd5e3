import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it, expect } from 'vitest'
import { loginReturnTarget, validateRedirectTarget } from '../../../src/http/redirect-target.ts'

/** The corpus holds raw query values; decode them the way the login endpoint does. */
function loadOpenRedirectCorpus(): { line: string; value: string }[] {
  const text = readFileSync(join(import.meta.dirname, '../../fixtures/open-redirects.txt'), 'utf8')
  return text
    .split('\n')
    .slice(0, -1)
    .filter((line) => !line.startsWith('# '))
    .map((line) => ({ line, value: new URL(`http://iap.test/-/iap/login?rd=${line}`).searchParams.get('rd') ?? '' }))
}

describe('validateRedirectTarget', () => {
  const corpus = loadOpenRedirectCorpus()

  it('has a corpus of at least 100 hostile inputs', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(100)
  })

  it.each(corpus.map((c) => [c.line, c.value]))('refuses %j', (_line, value) => {
    expect(validateRedirectTarget(value)).toEqual({ ok: false, reason: 'redirect-target-invalid' })
  })

  it.each([
    '/',
    '/group/project',
    '/group/sub/project/-/issues?state=opened&sort=created_desc',
    '/api/v4/projects/group%2Fproject/repository/files/a%2Fb.md/raw?ref=main',
    '/-/profile',
    '/users/sign_in',
    "/search?search=a+b&scope=(x)!$*,;:@",
    '/group/project/-/blob/main/README.md',
    '/-/ide/project/group/project/edit/main/-/',
  ])('accepts the same-origin path %s unchanged', (rd) => {
    expect(validateRedirectTarget(rd)).toEqual({ ok: true, target: rd })
  })

  it.each(['/group/project/-/issues?label_name[]=bug', '/g/p/-/merge_requests?label_name[]=a&label_name[]=b&not[label_name][]=c', '/search?q=[x]'])(
    'accepts [ and ] in the query of %s (GitLab array parameters; they cannot change the origin there)',
    (rd) => {
      expect(validateRedirectTarget(rd)).toEqual({ ok: true, target: rd })
    },
  )

  it.each(['/[::1]/x', '/a[b]?x=1', '/a]?x=1', '?x=[1]'])('still refuses [ and ] outside the query: %s', (rd) => {
    expect(validateRedirectTarget(rd).ok).toBe(false)
  })

  it.each(['/-/iap/logout', '/-/iap/login?rd=/x', '/-/iap', '/-/IAP/whoami', '/-/Iap/callback?code=x', '/%2D/iap/logout', '/-/%69ap/logout', '/-%2Fiap%2Flogout', '/-/iap%2Flogout', '/%252D/iap/logout'])(
    'refuses the proxy\'s own endpoint %s',
    (rd) => {
      expect(validateRedirectTarget(rd)).toEqual({ ok: false, reason: 'redirect-target-invalid' })
    },
  )

  it('does not mistake GitLab pages for its own endpoints', () => {
    for (const rd of ['/-/iapx', '/group/-/iap/x', '/-/ia/p']) expect(validateRedirectTarget(rd).ok, rd).toBe(true)
  })

  it('refuses non-strings', () => {
    expect(validateRedirectTarget(undefined).ok).toBe(false)
    expect(validateRedirectTarget(null).ok).toBe(false)
    expect(validateRedirectTarget(['/a']).ok).toBe(false)
  })
})

describe('loginReturnTarget', () => {
  const long = 'a'.repeat(3000)
  it.each([
    ['a valid target is kept whole', '/group/project/-/issues?label_name[]=bug', '/group/project/-/issues', '/group/project/-/issues?label_name[]=bug'],
    ['a valid path without query', '/group/project', '/group/project', '/group/project'],
    // A query the login endpoint would refuse: the path alone.
    ['a query with { }', '/group/project/-/issues?search={x}', '/group/project/-/issues', '/group/project/-/issues'],
    ['a query with encoded CR LF', '/group/project/-/issues?x=%0d%0a', '/group/project/-/issues', '/group/project/-/issues'],
    ['a query that makes the target too long', `/group/project?q=${long}`, '/group/project', '/group/project'],
    // A path the login endpoint would refuse (decodes to a dot segment, or too long): the start page.
    ['a path decoding to a dot segment', '/g/p/-/blob/main/%252e%252e?x=1', '/g/p/-/blob/main/%252e%252e', '/'],
    ['a path too long', `/${long}`, `/${long}`, '/'],
  ])('%s', (_name, target, path, expected) => {
    const rd = loginReturnTarget(target, path)
    expect(rd).toBe(expected)
    expect(validateRedirectTarget(rd).ok).toBe(true)
  })
})
