/**
 * The shape of a compact JWS, checked before any cryptography: size, three base64url segments,
 * JSON objects in header and payload. Also the unverified peek at `iss` that only chooses which
 * issuer's keys to try (nothing else is taken from it before verification).
 */

/** Tokens longer than this are refused before parsing (DoS guard; Entra tokens with 200 groups are ~8 KiB). */
export const MAX_TOKEN_BYTES = 16 * 1024

const SEGMENT = /^[A-Za-z0-9_-]+$/

export type TokenShape =
  | { readonly ok: true; readonly header: Readonly<Record<string, unknown>>; readonly payload: Readonly<Record<string, unknown>> }
  | { readonly ok: false; readonly reason: 'token-too-large' | 'token-malformed' }

/** Looks like a compact JWS (three dot-separated base64url segments)? Cheap; no decoding. */
export function looksLikeJwt(value: string): boolean {
  const first = value.indexOf('.')
  if (first <= 0) return false
  const second = value.indexOf('.', first + 1)
  if (second <= first + 1 || value.indexOf('.', second + 1) !== -1) return false
  return SEGMENT.test(value.slice(0, first)) && SEGMENT.test(value.slice(first + 1, second))
}

function decodeObject(segment: string): Record<string, unknown> | undefined {
  if (!SEGMENT.test(segment)) return undefined
  // base64url without padding: a length of 1 mod 4 cannot come from any byte string.
  if (segment.length % 4 === 1) return undefined
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** Size, segment count, base64url and JSON checks (the signature segment, when present, must be base64url). */
export function inspectToken(token: string, maxBytes = MAX_TOKEN_BYTES): TokenShape {
  if (token.length > maxBytes) return { ok: false, reason: 'token-too-large' }
  const parts = token.split('.')
  if (parts.length !== 3) return { ok: false, reason: 'token-malformed' }
  const [h, p, s] = parts as [string, string, string]
  // An empty signature is left to the alg check and jose (an `alg: none` token then says so).
  if (s !== '' && (!SEGMENT.test(s) || s.length % 4 === 1)) return { ok: false, reason: 'token-malformed' }
  const header = decodeObject(h)
  const payload = header && decodeObject(p)
  if (!header || !payload) return { ok: false, reason: 'token-malformed' }
  return { ok: true, header, payload }
}

/**
 * The unverified `iss` of a JWT-shaped string, or undefined. Used ONLY to pick the issuer whose
 * keys verify the token (and whether an `Authorization: Bearer` value is ours at all).
 */
export function peekIssuer(token: string, maxBytes = MAX_TOKEN_BYTES): string | undefined {
  if (token.length > maxBytes || !looksLikeJwt(token)) return undefined
  const first = token.indexOf('.')
  // The header must decode too: a prefixed token (GitLab's `glcbt-<JWT>` job tokens) is not ours.
  if (!decodeObject(token.slice(0, first))) return undefined
  const payload = decodeObject(token.slice(first + 1, token.indexOf('.', first + 1)))
  const iss = payload?.iss
  return typeof iss === 'string' ? iss : undefined
}
