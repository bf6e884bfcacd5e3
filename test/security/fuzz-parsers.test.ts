/**
 * Property tests of the other parsers that see untrusted bytes: credentials (Authorization, Basic,
 * X-IAP-Authorization), token shape, session cookies, and the `rd` return-to target.
 * FUZZ_RUNS (default 1000) sets the cases per property.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { inspectToken, peekIssuer } from '../../src/auth/bearer/token-shape.ts'
import { extractCredential } from '../../src/auth/credentials.ts'
import { cookieValues, signSessionId, createSessionId, verifySessionCookie } from '../../src/auth/session/cookies.ts'
import { deriveSessionKeys } from '../../src/auth/session/keys.ts'
import { validateRedirectTarget } from '../../src/http/redirect-target.ts'

const runs = Number(process.env.FUZZ_RUNS ?? 1000)
const b64 = (text: string) => Buffer.from(text).toString('base64')
const jwtish = fc.tuple(fc.string(), fc.string(), fc.string()).map(([a, b, c]) => `${Buffer.from(a).toString('base64url')}.${Buffer.from(b).toString('base64url')}.${Buffer.from(c).toString('base64url')}`)
const headerValue = fc.oneof(
  fc.string(),
  jwtish.map((t) => `Bearer ${t}`),
  fc.tuple(fc.string(), fc.string()).map(([u, p]) => `Basic ${b64(`${u}:${p}`)}`),
  fc.tuple(jwtish, fc.string()).map(([u, p]) => `Basic ${b64(`${u}:${p}`)}`),
  fc.string().map((s) => `Basic ${s}`),
)

describe('credential extraction', () => {
  it('never throws and never forwards a trusted JWT to GitLab', () => {
    const trusted = new Set<string>()
    const lookup = (token: string) => (trusted.has(token) ? { issuer: 'entra', basicUsername: 'oauth2' } : undefined) as ReturnType<Parameters<typeof extractCredential>[1]>
    fc.assert(
      fc.property(fc.option(headerValue, { nil: undefined }), fc.option(headerValue, { nil: undefined }), jwtish, (authorization, iap, trustedJwt) => {
        trusted.clear()
        trusted.add(trustedJwt)
        const mix = (v: string | undefined) => v?.replace(/^Bearer .*/, `Bearer ${trustedJwt}`)
        const headers: Record<string, string> = {}
        if (authorization !== undefined) headers.authorization = Math.random() < 0.5 ? authorization : mix(authorization)!
        if (iap !== undefined) headers['x-iap-authorization'] = iap
        const credential = extractCredential(headers, lookup)
        if (credential.kind === 'token' && typeof credential.forwardAuthorization === 'string') {
          expect(credential.forwardAuthorization).not.toContain(trustedJwt)
          const decoded = Buffer.from(credential.forwardAuthorization.replace(/^Basic /, ''), 'base64').toString()
          expect(decoded).not.toContain(trustedJwt)
        }
      }),
      { numRuns: runs },
    )
  })
})

describe('token shape', () => {
  it('never throws on arbitrary input', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), jwtish, fc.string({ minLength: 17_000, maxLength: 17_100 })), (token) => {
      inspectToken(token)
      peekIssuer(token)
    }), { numRuns: runs })
  })
})

describe('session cookies', () => {
  const keys = deriveSessionKeys('s'.repeat(48))
  it('cookie parsing never throws; only a value this proxy signed verifies', () => {
    const good = signSessionId(keys, createSessionId())
    fc.assert(
      fc.property(fc.string(), fc.string(), (header, value) => {
        cookieValues(header, '__Host-gitlab-iap')
        expect(verifySessionCookie(keys, value)).toBeUndefined()
        // One flipped character anywhere breaks it.
        const i = value.length % good.length
        const tampered = good.slice(0, i) + (good[i] === 'A' ? 'B' : 'A') + good.slice(i + 1)
        expect(verifySessionCookie(keys, tampered)).toBeUndefined()
      }),
      { numRuns: runs },
    )
    expect(verifySessionCookie(keys, good)).toBeDefined()
  })
})

describe('rd (return-to) validation', () => {
  const origin = 'https://gitlab.example.com'
  const piece = fc.constantFrom('/', '//', '\\', '/\\', '%2f', '%5c', '%09', '\t', '.', '..', '@', ':', 'evil.example', 'https:', 'javascript:', '?', '#', '%00', 'a', '%2e', ' ', '\n')
  it('an accepted target always stays on the same origin, as a browser resolves it', () => {
    fc.assert(
      fc.property(fc.oneof(fc.array(piece, { maxLength: 10 }).map((p) => p.join('')), fc.string(), fc.webUrl()), (rd) => {
        const result = validateRedirectTarget(rd)
        if (!result.ok) return
        const resolved = new URL(result.target, origin)
        expect(resolved.origin).toBe(origin)
        expect(result.target.startsWith('/')).toBe(true)
        expect(result.target.startsWith('//')).toBe(false)
      }),
      { numRuns: runs },
    )
  })
})
