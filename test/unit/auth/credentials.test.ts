import { describe, expect, it } from 'vitest'
import { embeddedJwts, extractCredential, gitlabBasic, type TrustLookup } from '../../../src/auth/credentials.ts'

const seg = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
const jwt = (iss: string) => `${seg({ alg: 'RS256', typ: 'JWT' })}.${seg({ iss, sub: 's' })}.c2ln`
const ENTRA = jwt('https://login.test/tid/v2.0')
const CI = jwt('https://gitlab.test')
const FOREIGN = jwt('https://someone-else.test')
const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`

// The real lookup peeks at `iss`; here a table stands in for the trusted issuers.
const lookup: TrustLookup = (token) =>
  token === ENTRA ? { basicUsername: 'oauth2' } : token === CI ? { basicUsername: 'gitlab-ci-token' } : undefined

describe('extractCredential (X-IAP-Authorization, Bearer, Basic username, Basic password; first present wins)', () => {
  it('1. X-IAP-Authorization Bearer wins over everything', () => {
    const c = extractCredential({ 'x-iap-authorization': `Bearer ${ENTRA}`, authorization: 'Bearer glpat-xyz', cookie: 'a=b' }, lookup)
    expect(c).toEqual({ kind: 'token', source: 'x-iap-authorization', token: ENTRA, forwardAuthorization: undefined })
  })

  it('1. X-IAP-Authorization that is not Bearer is a failed credential, not a fallthrough', () => {
    expect(extractCredential({ 'x-iap-authorization': basic('a', 'b'), authorization: `Bearer ${ENTRA}` }, lookup)).toEqual({
      kind: 'invalid', source: 'x-iap-authorization', reason: 'credential-malformed',
    })
    expect(extractCredential({ 'x-iap-authorization': '' }, lookup)).toMatchObject({ kind: 'invalid' })
  })

  it('1. with X-IAP-Authorization, an IAP JWT in Authorization is still never forwarded', () => {
    expect(extractCredential({ 'x-iap-authorization': `Bearer ${ENTRA}`, authorization: `Bearer ${CI}` }, lookup)).toMatchObject({ forwardAuthorization: null })
    expect(extractCredential({ 'x-iap-authorization': `Bearer ${ENTRA}`, authorization: basic(CI, 'job-token') }, lookup)).toMatchObject({
      forwardAuthorization: gitlabBasic('gitlab-ci-token', 'job-token'),
    })
  })

  it('1. an LFS grant in X-IAP-Authorization is its own kind; GitLab\'s LFS Authorization passes untouched', () => {
    const gitlabLfs = basic('gitlab-lfs-user', 'lfs-token')
    expect(extractCredential({ 'x-iap-authorization': 'Bearer iaplfs1.e30.bWFj', authorization: gitlabLfs }, lookup)).toEqual({
      kind: 'lfs-grant', source: 'x-iap-authorization', token: 'iaplfs1.e30.bWFj', forwardAuthorization: undefined,
    })
    // A grant is never taken from Authorization: there it is not the proxy's credential.
    expect(extractCredential({ authorization: 'Bearer iaplfs1.e30.bWFj' }, lookup)).toEqual({ kind: 'none' })
  })

  it('2. Authorization Bearer with a trusted issuer is consumed and removed', () => {
    expect(extractCredential({ authorization: `Bearer ${ENTRA}` }, lookup)).toEqual({ kind: 'token', source: 'authorization-bearer', token: ENTRA, forwardAuthorization: null })
    expect(extractCredential({ authorization: `bearer   ${ENTRA}` }, lookup)).toMatchObject({ source: 'authorization-bearer' })
  })

  it('2. Authorization Bearer that is not ours (PAT, OAuth, foreign JWT) passes to GitLab untouched', () => {
    for (const token of ['glpat-0123456789abcdef', 'ya29.opaque-oauth', FOREIGN]) {
      expect(extractCredential({ authorization: `Bearer ${token}` }, lookup)).toEqual({ kind: 'none' })
    }
  })

  it('a malformed Authorization that still carries an IAP JWT is refused, never passed to GitLab', () => {
    const spaced = Buffer.from(`${ENTRA}:glpat-x`).toString('base64').replace(/(.{20})/, '$1 ')
    for (const authorization of [`Bearer ${ENTRA} x`, `Bearer ${ENTRA},`, `Token ${CI}`, `Basic ${spaced}`, basic(` ${ENTRA}`, 'glpat-x'), basic('me', ` ${CI}`)]) {
      expect(extractCredential({ authorization }, lookup), authorization).toMatchObject({ kind: 'invalid', reason: 'authorization-malformed' })
      // With the IAP credential in X-IAP-Authorization, that Authorization is dropped instead.
      expect(extractCredential({ 'x-iap-authorization': `Bearer ${ENTRA}`, authorization }, lookup), authorization).toMatchObject({ kind: 'token', forwardAuthorization: null })
    }
    // Values GitLab alone reads are still left to it, a foreign JWT in an odd form included.
    for (const authorization of [`Bearer ${FOREIGN} x`, 'Bearer glpat-a b', basic('me', 'glpat-x'), `Basic ${FOREIGN}`, 'Negotiate YIIabc']) {
      expect(extractCredential({ authorization }, lookup), authorization).toEqual({ kind: 'none' })
    }
  })

  it('3. Basic with a JWT username: the password goes to GitLab under the name GitLab expects', () => {
    expect(extractCredential({ authorization: basic(ENTRA, 'glpat-secret') }, lookup)).toEqual({
      kind: 'token', source: 'basic-username', token: ENTRA, forwardAuthorization: gitlabBasic('oauth2', 'glpat-secret'),
    })
    expect(extractCredential({ authorization: basic(CI, 'job:token:with:colons') }, lookup)).toMatchObject({
      source: 'basic-username', forwardAuthorization: gitlabBasic('gitlab-ci-token', 'job:token:with:colons'),
    })
  })

  it('3. Basic with a JWT username and no password forwards nothing', () => {
    expect(extractCredential({ authorization: basic(ENTRA, '') }, lookup)).toMatchObject({ source: 'basic-username', forwardAuthorization: null })
  })

  it('4. Basic with a JWT password is one credential, removed', () => {
    expect(extractCredential({ authorization: basic('anything', ENTRA) }, lookup)).toEqual({ kind: 'token', source: 'basic-password', token: ENTRA, forwardAuthorization: null })
  })

  it('anything else is left for GitLab', () => {
    for (const headers of [
      { authorization: basic('ada', 'glpat-secret') },
      { authorization: basic('gitlab-ci-token', 'glcbt-64_job_token') },
      { authorization: basic(FOREIGN, 'x') },
      { authorization: 'Negotiate abc' },
      { authorization: 'Basic !!!notbase64' },
      { 'private-token': 'glpat-secret' },
      { 'job-token': 'job' },
      {},
    ]) {
      expect(extractCredential(headers, lookup)).toEqual({ kind: 'none' })
    }
  })

  it('an oversized JWT-shaped credential fails closed instead of passing through', () => {
    const huge = `${seg({ alg: 'RS256' })}.${seg({ iss: 'x', pad: 'p'.repeat(17_000) })}.c2ln`
    expect(extractCredential({ authorization: `Bearer ${huge}` }, lookup)).toEqual({ kind: 'invalid', source: 'authorization-bearer', reason: 'token-too-large' })
    expect(extractCredential({ authorization: basic(huge, 'pat') }, lookup)).toMatchObject({ kind: 'invalid', reason: 'token-too-large' })
  })
})

describe('a Basic password that is an IAP token too', () => {
  const huge = `${seg({ alg: 'RS256' })}.${seg({ iss: 'x', pad: 'p'.repeat(17_000) })}.c2ln`

  it('is refused with its own reason: the password would be forwarded to GitLab', () => {
    expect(extractCredential({ authorization: basic(CI, ENTRA) }, lookup)).toEqual({ kind: 'invalid', source: 'basic-password', reason: 'basic-password-iap-token' })
    expect(extractCredential({ authorization: basic(ENTRA, ENTRA) }, lookup)).toMatchObject({ kind: 'invalid', reason: 'basic-password-iap-token' })
    // Too large to tell whose it is: fail closed, as for any oversized JWT-shaped credential.
    expect(extractCredential({ authorization: basic(ENTRA, huge) }, lookup)).toMatchObject({ kind: 'invalid', source: 'basic-password', reason: 'token-too-large' })
  })

  it('with X-IAP-Authorization, that Authorization is dropped instead', () => {
    for (const authorization of [basic(CI, ENTRA), basic(ENTRA, huge)]) {
      expect(extractCredential({ 'x-iap-authorization': `Bearer ${ENTRA}`, authorization }, lookup)).toMatchObject({ kind: 'token', source: 'x-iap-authorization', forwardAuthorization: null })
    }
  })

  it('a password that is not ours still goes to GitLab (a foreign JWT may be GitLab\'s own)', () => {
    expect(extractCredential({ authorization: basic(ENTRA, FOREIGN) }, lookup)).toMatchObject({ source: 'basic-username', forwardAuthorization: gitlabBasic('oauth2', FOREIGN) })
    expect(extractCredential({ 'x-iap-authorization': `Bearer ${ENTRA}`, authorization: basic(CI, FOREIGN) }, lookup)).toMatchObject({ forwardAuthorization: gitlabBasic('gitlab-ci-token', FOREIGN) })
  })
})

describe('JWTs embedded in a malformed Authorization (linear scan)', () => {
  const PATTERN = /(?<![\w-])eyJ[\w-]*\.[\w-]+\.[\w-]*/g

  it('finds exactly what /(?<![\\w-])eyJ[\\w-]*\\.[\\w-]+\\.[\\w-]*/g finds', () => {
    const cases = ['', 'eyJ', 'eyJa.b', 'eyJa.b.', 'eyJ.b.c', 'eyJa..c', 'xeyJa.b.c.d', 'x eyJa.b.c.d', 'eyJa.eyJb.c.eyJd.e.f', 'eyJa.eyJb', 'eyJeyJ.a.b', 'a eyJh.p.s b eyJx.y.z', 'glcbt-eyJa.b.c', 'p:eyJa.b.c']
    // Deterministic pseudo-random strings over the characters that matter, short enough for the old pattern.
    let seed = 0x1a2b3c4d
    const next = () => ((seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32)
    const pieces = ['eyJ', 'eyJ', 'eyJ', 'a', '-', '_', '.', '.', '.', ' ', 'é', 'e', 'J']
    for (let i = 0; i < 20_000; i++) cases.push(Array.from({ length: Math.floor(next() * 24) }, () => pieces[Math.floor(next() * pieces.length)]).join(''))
    for (const text of cases) expect([...embeddedJwts(text)], JSON.stringify(text)).toEqual([...text.matchAll(PATTERN)].map((m) => m[0]))
  })

  it('handles 64 KiB hostile values in well under 50 ms (the regex took seconds: ReDoS)', () => {
    const hostile = 'eyJ'.repeat(Math.ceil(65_536 / 3))
    const values = [
      { authorization: `Token ${hostile}` },
      { authorization: `Bearer ${hostile} x` },
      { authorization: `Bearer ${hostile}.a` },
      { authorization: `Basic ${Buffer.from(`me:${hostile}`).toString('base64')} x` },
      { 'x-iap-authorization': `Bearer ${ENTRA}`, authorization: `Token ${hostile}` },
    ]
    extractCredential(values[0]!, lookup)
    for (const headers of values) {
      const started = performance.now()
      extractCredential(headers, lookup)
      expect(performance.now() - started, String(headers.authorization).slice(0, 12)).toBeLessThan(50)
    }
  })

  it('more JWT-shaped runs than any real header carries: refused after a bounded number of lookups', () => {
    let lookups = 0
    const counting: TrustLookup = (token) => {
      lookups++
      return lookup(token)
    }
    // Each run would cost the real lookup a failed JSON parse: 64 KiB of them, a tenth of a second.
    const authorization = `Token ${'eyJ9.a.b '.repeat(7000)}`
    expect(extractCredential({ authorization }, counting)).toMatchObject({ kind: 'invalid', reason: 'authorization-malformed' })
    expect(lookups).toBeLessThanOrEqual(20)
    expect(extractCredential({ 'x-iap-authorization': `Bearer ${ENTRA}`, authorization }, lookup)).toMatchObject({ forwardAuthorization: null })
    // A few foreign JWTs are still GitLab's to read.
    expect(extractCredential({ authorization: `Token ${FOREIGN} ${FOREIGN} ${FOREIGN}` }, lookup)).toEqual({ kind: 'none' })
  })

  it('a JWT inside a longer word is not one GitLab reads: a JWT-format job token (glcbt-<JWT>) of the CI issuer passes to GitLab', () => {
    expect(extractCredential({ authorization: basic('gitlab-ci-token', `glcbt-${CI}`) }, lookup)).toEqual({ kind: 'none' })
    expect(extractCredential({ 'x-iap-authorization': `Bearer ${ENTRA}`, authorization: basic('gitlab-ci-token', `glcbt-${CI}`) }, lookup)).toMatchObject({ forwardAuthorization: undefined })
    // Where a word begins, it is still caught.
    expect(extractCredential({ authorization: `Bearer ${CI} x` }, lookup)).toMatchObject({ kind: 'invalid', reason: 'authorization-malformed' })
  })
})
