/**
 * Picks the credential a request presents, in this order (pure; the first present wins):
 *   1. `X-IAP-Authorization: Bearer <JWT>` (the header is always removed before forwarding), or
 *      `Bearer <LFS grant>`, which the proxy itself handed out in an LFS batch answer;
 *   2. `Authorization: Bearer <JWT>` whose `iss` is a trusted issuer (removed);
 *   3. `Authorization: Basic` whose username is such a JWT: the password is GitLab's and is forwarded
 *      as Basic with the username `gitlab-ci-token` (CI issuers) or `oauth2`; a password that is
 *      itself an IAP token is refused (`basic-password-iap-token`), never forwarded;
 *   4. `Authorization: Basic` whose password is such a JWT (removed);
 *   5. none of these: the session cookie step, else anonymous.
 * Any other `Authorization` (a GitLab PAT, an OAuth token, a JOB-TOKEN elsewhere) is left for GitLab.
 * "Is this JWT ours?" is answered by the caller (`lookup`), from an unverified peek at `iss`: that
 * only routes the token to its issuer's verifier; it is never trusted otherwise.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { looksLikeJwt, MAX_TOKEN_BYTES } from './bearer/token-shape.ts'
import { looksLikeLfsGrant } from './lfs-grant.ts'

export type CredentialSource = 'x-iap-authorization' | 'authorization-bearer' | 'basic-username' | 'basic-password'

/** What the lookup says about a JWT-shaped value from a trusted issuer. */
export interface TrustedToken {
  /** Username GitLab expects with a forwarded Basic password (credential 3 above). */
  readonly basicUsername: string
}

/** Returns a value when `token` is a JWT from a trusted issuer (by unverified `iss`), else undefined. */
export type TrustLookup = (token: string) => TrustedToken | undefined

export type Credential =
  | { readonly kind: 'none' }
  | {
      readonly kind: 'token'
      readonly source: CredentialSource
      readonly token: string
      /** What to send to GitLab as `Authorization`: a string replaces it, `null` removes it, `undefined` leaves it. */
      readonly forwardAuthorization: string | null | undefined
    }
  | {
      /** An LFS grant (src/auth/lfs-grant.ts): always in X-IAP-Authorization, checked by the proxy's own key. */
      readonly kind: 'lfs-grant'
      readonly source: 'x-iap-authorization'
      readonly token: string
      readonly forwardAuthorization: string | null | undefined
    }
  | {
      readonly kind: 'invalid'
      readonly source: CredentialSource
      readonly reason: 'credential-malformed' | 'authorization-malformed' | 'basic-password-iap-token' | 'token-too-large'
    }

const NONE: Credential = Object.freeze({ kind: 'none' })

const BEARER = /^bearer[ \t]+(\S+)[ \t]*$/i
const BASIC = /^basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i

type ParsedAuthorization =
  | { readonly scheme: 'bearer'; readonly token: string }
  | { readonly scheme: 'basic'; readonly username: string; readonly password: string }
  | { readonly scheme: 'other' }

const OTHER: ParsedAuthorization = Object.freeze({ scheme: 'other' })

function parseAuthorization(value: string | undefined): ParsedAuthorization {
  if (!value) return OTHER
  const bearer = BEARER.exec(value)
  if (bearer) return { scheme: 'bearer', token: bearer[1]! }
  const basic = BASIC.exec(value)
  if (!basic) return OTHER
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon === -1) return OTHER
  return { scheme: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

/** Basic value GitLab receives in place of the IAP's: the IAP JWT replaced by the name GitLab expects. */
export function gitlabBasic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`
}

/** A JWT-shaped value too large to inspect: ours or not, it must not pass (fail closed). */
const oversizedJwt = (value: string) => value.length > MAX_TOKEN_BYTES && looksLikeJwt(value)

/** Could `value` be an IAP token: a trusted issuer's JWT, or one too large to tell? Never for GitLab. */
const iapJwt = (value: string, lookup: TrustLookup) => lookup(value) !== undefined || oversizedJwt(value)

/** More JWT-shaped runs than any real `Authorization` carries: each costs a decode, so stop and fail closed. */
const MAX_EMBEDDED_JWTS = 16

const BASIC_SCHEME = /^[ \t]*basic[ \t]/i

const DOT = 0x2e

/** A base64url character (`[\w-]`), the alphabet of a JWT segment. */
function isSegmentChar(code: number): boolean {
  return (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) || code === 0x2d || code === 0x5f
}

/** Where the run of segment characters starting at `from` ends. */
function segmentEnd(text: string, from: number): number {
  let i = from
  while (i < text.length && isSegmentChar(text.charCodeAt(i))) i++
  return i
}

/**
 * JWT-shaped runs inside a longer value, left to right: `eyJ` (a JSON header in base64url) where a
 * run of base64url characters begins, and the rest of its segment, a dot, a non-empty segment, a
 * dot, a segment — what `/(?<![\w-])eyJ[\w-]*\.[\w-]+\.[\w-]*\/g` matches. Only where a run begins:
 * GitLab reads a token there, never in the middle of another word, and GitLab's own JWT-format job
 * tokens (`glcbt-eyJ…`) must pass. Written as one pass because such a regex backtracks
 * quadratically on `eyJeyJeyJ…`, an unauthenticated header that held the event loop for a second.
 */
export function* embeddedJwts(text: string): Generator<string> {
  let from = 0
  for (;;) {
    const start = text.indexOf('eyJ', from)
    if (start === -1) return
    // Inside a longer run: no `eyJ` in the rest of this run begins one either.
    if (start > 0 && isSegmentChar(text.charCodeAt(start - 1))) {
      from = segmentEnd(text, start + 3)
      continue
    }
    const first = segmentEnd(text, start + 3)
    // Any later `eyJ` in this segment ends at the same place and fails the same way.
    if (text.charCodeAt(first) !== DOT) {
      from = first
      continue
    }
    const second = segmentEnd(text, first + 1)
    // The second segment may itself begin a JWT: resume right after the first dot.
    if (second === first + 1 || text.charCodeAt(second) !== DOT) {
      from = first + 1
      continue
    }
    const end = segmentEnd(text, second + 1)
    yield text.slice(start, end)
    from = end
  }
}

/**
 * Does an `Authorization` value that is not a well-formed credential still carry a trusted JWT
 * (`Bearer <JWT> x`, Basic with a space inside its base64 or before the username)? GitLab's Rack
 * reads such values leniently, so the token would reach it: the proxy refuses them instead. So is
 * one with more than `MAX_EMBEDDED_JWTS` JWT-shaped runs: linear as the scan is, a megabyte of
 * `eyJ9.a.b ` would otherwise cost a failed JSON parse per run.
 */
function carriesTrustedJwt(value: string, lookup: TrustLookup): boolean {
  const texts = [value]
  const basic = BASIC_SCHEME.exec(value)
  // Decoded as leniently as Rack does: whatever is not in the base64 alphabet is skipped.
  if (basic) texts.push(Buffer.from(value.slice(basic[0].length).replace(/[^A-Za-z0-9+/]/g, ''), 'base64').toString('latin1'))
  let seen = 0
  for (const text of texts) {
    for (const jwt of embeddedJwts(text)) {
      if (++seen > MAX_EMBEDDED_JWTS || lookup(jwt) || oversizedJwt(jwt)) return true
    }
  }
  return false
}

/**
 * What happens to `Authorization` when the IAP credential came from elsewhere (X-IAP-Authorization):
 * an IAP JWT in it is still never forwarded to GitLab.
 */
function withoutIapCredentials(authorization: string | undefined, lookup: TrustLookup): string | null | undefined {
  const parsed = parseAuthorization(authorization)
  if (parsed.scheme === 'bearer' && (lookup(parsed.token) || oversizedJwt(parsed.token))) return null
  if (parsed.scheme === 'basic') {
    const trusted = lookup(parsed.username)
    if (trusted) return parsed.password === '' || iapJwt(parsed.password, lookup) ? null : gitlabBasic(trusted.basicUsername, parsed.password)
    if (lookup(parsed.password)) return null
  }
  return authorization !== undefined && carriesTrustedJwt(authorization, lookup) ? null : undefined
}

/** The credential the request presents, in the order above; never falls through past a present one. */
export function extractCredential(headers: IncomingHttpHeaders, lookup: TrustLookup): Credential {
  const authorization = typeof headers.authorization === 'string' ? headers.authorization : undefined
  const iap = headers['x-iap-authorization']
  if (iap !== undefined) {
    const value = Array.isArray(iap) ? iap.join(', ') : iap
    const bearer = BEARER.exec(value)
    if (!bearer) return { kind: 'invalid', source: 'x-iap-authorization', reason: 'credential-malformed' }
    const forwardAuthorization = withoutIapCredentials(authorization, lookup)
    if (looksLikeLfsGrant(bearer[1]!)) return { kind: 'lfs-grant', source: 'x-iap-authorization', token: bearer[1]!, forwardAuthorization }
    return { kind: 'token', source: 'x-iap-authorization', token: bearer[1]!, forwardAuthorization }
  }
  const parsed = parseAuthorization(authorization)
  if (parsed.scheme === 'bearer') {
    if (oversizedJwt(parsed.token)) return { kind: 'invalid', source: 'authorization-bearer', reason: 'token-too-large' }
    if (lookup(parsed.token)) return { kind: 'token', source: 'authorization-bearer', token: parsed.token, forwardAuthorization: null }
  }
  if (parsed.scheme === 'basic') {
    if (oversizedJwt(parsed.username)) return { kind: 'invalid', source: 'basic-username', reason: 'token-too-large' }
    const trusted = lookup(parsed.username)
    if (trusted) {
      // The password is forwarded to GitLab: an IAP token there (`$IAP_TOKEN:$IAP_TOKEN`) would reach it.
      if (oversizedJwt(parsed.password)) return { kind: 'invalid', source: 'basic-password', reason: 'token-too-large' }
      if (lookup(parsed.password)) return { kind: 'invalid', source: 'basic-password', reason: 'basic-password-iap-token' }
      // One credential only (`https://$IAP_TOKEN@host`): nothing for GitLab.
      const forward = parsed.password === '' ? null : gitlabBasic(trusted.basicUsername, parsed.password)
      return { kind: 'token', source: 'basic-username', token: parsed.username, forwardAuthorization: forward }
    }
    if (oversizedJwt(parsed.password)) return { kind: 'invalid', source: 'basic-password', reason: 'token-too-large' }
    if (lookup(parsed.password)) return { kind: 'token', source: 'basic-password', token: parsed.password, forwardAuthorization: null }
  }
  if (authorization !== undefined && carriesTrustedJwt(authorization, lookup)) {
    return { kind: 'invalid', source: parsed.scheme === 'basic' || BASIC_SCHEME.test(authorization) ? 'basic-username' : 'authorization-bearer', reason: 'authorization-malformed' }
  }
  return NONE
}
