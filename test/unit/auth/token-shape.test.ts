import { describe, expect, it } from 'vitest'
import { inspectToken, looksLikeJwt, MAX_TOKEN_BYTES, peekIssuer } from '../../../src/auth/bearer/token-shape.ts'

const seg = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
const header = seg({ alg: 'RS256', kid: 'k1', typ: 'JWT' })
const payload = seg({ iss: 'https://issuer.test', sub: 'x' })
const sig = 'c2lnbmF0dXJl'

describe('inspectToken', () => {
  it('accepts a well-formed compact JWS and returns header and payload', () => {
    const shape = inspectToken(`${header}.${payload}.${sig}`)
    expect(shape).toEqual({ ok: true, header: { alg: 'RS256', kid: 'k1', typ: 'JWT' }, payload: { iss: 'https://issuer.test', sub: 'x' } })
  })

  it.each([
    ['two segments', `${header}.${payload}`],
    ['four segments', `${header}.${payload}.${sig}.${sig}`],
    ['five segments (JWE)', `${header}.${payload}.${sig}.${sig}.${sig}`],
    ['bad base64 in header', `${header}*.${payload}.${sig}`],
    ['padding in payload', `${header}.${payload}==.${sig}`],
    ['impossible base64 length', `${header}.AAAAA.${sig}`],
    ['header is not JSON', `${seg('not json')}.${payload}.${sig}`],
    ['payload is not JSON', `${header}.${seg('{"iss":')}.${sig}`],
    ['payload is a JSON array', `${header}.${seg([1, 2])}.${sig}`],
    ['payload is a JSON string', `${header}.${seg('"text"')}.${sig}`],
    ['empty header', `.${payload}.${sig}`],
    ['bad base64 in signature', `${header}.${payload}.a+b/c`],
    ['whitespace inside', `${header}. ${payload}.${sig}`],
  ])('rejects %s as token-malformed', (_name, token) => {
    expect(inspectToken(token)).toEqual({ ok: false, reason: 'token-malformed' })
  })

  it('rejects a token over 16 KiB before parsing it', () => {
    const big = `${header}.${seg({ iss: 'x', pad: 'a'.repeat(MAX_TOKEN_BYTES) })}.${sig}`
    expect(inspectToken(big)).toEqual({ ok: false, reason: 'token-too-large' })
    // Not even valid JSON: size is checked first.
    expect(inspectToken('a'.repeat(MAX_TOKEN_BYTES + 1))).toEqual({ ok: false, reason: 'token-too-large' })
  })
})

describe('peekIssuer and looksLikeJwt', () => {
  it('reads iss without verifying', () => {
    expect(peekIssuer(`${header}.${payload}.${sig}`)).toBe('https://issuer.test')
    expect(looksLikeJwt(`${header}.${payload}.${sig}`)).toBe(true)
  })

  it.each([
    ['a GitLab PAT', 'glpat-abcdefghijklmnopqrst'],
    ['an opaque OAuth token', 'a'.repeat(64)],
    ['a prefixed JWT-format job token', `glcbt-${header}.${payload}.${sig}`],
    ['no iss', `${header}.${seg({ sub: 'x' })}.${sig}`],
    ['numeric iss', `${header}.${seg({ iss: 42 })}.${sig}`],
  ])('returns undefined for %s', (_name, value) => {
    expect(peekIssuer(value)).toBeUndefined()
  })
})
