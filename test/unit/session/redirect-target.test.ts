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

  it.each(['/-/iap/whoami', '/-/iap/jwks.json', '/-/iap/whoami?x=1', '/-/iap/whoami#groups'])('accepts the read-only endpoint %s as a page to land on', (rd) => {
    expect(validateRedirectTarget(rd)).toEqual({ ok: true, target: rd })
  })

  it.each([
    // Spellings the proxy does not route to whoami (it matches the path as sent), encoded ones included.
    '/-/IAP/whoami', '/-/iap/WHOAMI', '/-/iap/whoami/', '/-/iap/whoami;x', '/-/iap/jwks.json/', '/-/iap/JWKS.json',
    '/-/%69ap/whoami', '/-/iap/%77hoami', '/%2D/iap/whoami', '/-/iap/%2577hoami', '/-/%2569ap/jwks.json', '/-%2Fiap%2Fwhoami',
    // A landing page as a way into another endpoint.
    '/-/iap/whoami/../logout', '/-/iap/whoami/./', '/-/iap/whoami%2F..%2Flogout', '/-/iap/whoami/%2e%2e/logout', '/-/iap/whoami/%252e%252e/logout',
    '/-/iap/whoami//evil.example', '/-/iap/whoami%00', '/-/iap/whoami%0d%0a',
    // The rest of the prefix stays refused.
    '/-/iap/login', '/-/iap/callback', '/-/iap/logout?x=1#y', '/-/iap/unknown', '/-/iap/',
  ])('refuses %s (not the read-only endpoint as the proxy routes it)', (rd) => {
    expect(validateRedirectTarget(rd)).toEqual({ ok: false, reason: 'redirect-target-invalid' })
  })

  it.each([
    '/group/project#frag',
    '/g/p/-/blob/main/README.md#L10-20',
    '/g/p/-/issues/1?sort=asc#note_12',
    '/g/p/-/merge_requests/3/diffs#a1b2c3_10_12',
    '/g/p/-/wikis/home#user-content-h%C3%A9llo',
    '/g/p#section?x=1',
    '/g/p/-/issues?label_name[]=bug#top',
  ])('accepts the fragment of %s and keeps it', (rd) => {
    expect(validateRedirectTarget(rd)).toEqual({ ok: true, target: rd })
  })

  it.each([
    '/g/p#', '/g/p#a#b', '/g/p#a b', '/g/p#a\tb', '/g/p#a\\b', '/g/p#a\r\nSet-Cookie: x=1', '/g/p#a%0d%0aSet-Cookie:x=1', '/g/p#%00',
    '/g/p#%E0%A4%A', '/g/p#<script>', '/g/p#a"b', '/g/p#{x}', '/g/p#\u2028', '/g/p#é', '/g/p#@evil.example', '/g/p?a=1#@evil.example/../..',
    '#frag', '#//evil.example', '//evil.example#x', '/\\evil.example#x', '/%2F%2Fevil.example#x', 'javascript:alert(1)#/x', '/-/iap/logout#x',
  ])('refuses the fragment target %j', (rd) => {
    expect(validateRedirectTarget(rd)).toEqual({ ok: false, reason: 'redirect-target-invalid' })
  })

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
