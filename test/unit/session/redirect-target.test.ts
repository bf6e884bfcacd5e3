import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it, expect } from 'vitest'
import { validateRedirectTarget } from '../../../src/http/redirect-target.ts'

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

  it('refuses non-strings', () => {
    expect(validateRedirectTarget(undefined).ok).toBe(false)
    expect(validateRedirectTarget(null).ok).toBe(false)
    expect(validateRedirectTarget(['/a']).ok).toBe(false)
  })
})
