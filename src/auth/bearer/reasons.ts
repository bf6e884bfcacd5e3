/**
 * Why a bearer credential was refused: stable kebab-case reasons (logs, metrics, the 401 body) and a
 * description that is safe to send to the client (it never echoes the token). jose's error codes are
 * translated in exactly one function, `reasonForJoseError`.
 */

export const BEARER_FAILURES = {
  'token-malformed': 'The bearer token is not a well-formed JWT.',
  'token-too-large': 'The bearer token is larger than 16 KiB.',
  'token-alg-not-allowed': 'The token is signed with an algorithm that is not accepted.',
  'token-crit-unsupported': 'The token carries critical header parameters that are not supported.',
  'token-unknown-key': 'The token is signed with a key its issuer does not publish.',
  'token-bad-signature': 'The token signature is invalid.',
  'token-issuer-untrusted': 'The token issuer is not trusted.',
  'token-audience-invalid': 'The token audience is not accepted.',
  'token-tenant-invalid': 'The token was issued for another tenant.',
  'token-expired': 'The token has expired.',
  'token-not-yet-valid': 'The token is not valid yet.',
  'token-issued-in-future': 'The token issue time is in the future.',
  'token-exp-missing': 'The token has no expiry time.',
  'token-exp-invalid': 'The token expiry time (exp) is not a number.',
  'token-nbf-invalid': 'The token not-before time (nbf) is not a number.',
  'token-iat-invalid': 'The token issue time (iat) is not a number.',
  'token-claim-invalid': 'A token claim is invalid (for example a name, email or group with control characters).',
  'token-not-access-token': 'An ID token cannot be used as an access token.',
  'token-subject-missing': 'The token does not identify a user or application.',
  'token-revoked': 'The token was revoked; obtain a new one.',
  'credential-malformed': 'The X-IAP-Authorization header must be "Bearer <JWT>".',
  'authorization-malformed': 'The Authorization header carries an IAP token but is neither "Bearer <JWT>" nor "Basic <base64 of user:password>".',
  'basic-password-iap-token': "The Basic password is an IAP token too; it would be passed to GitLab: put GitLab's credential there, or leave it empty.",
  'lfs-grant-invalid': 'The LFS grant was not issued by this proxy, or is damaged; run the git command again.',
  'lfs-grant-expired': 'The LFS grant has expired; run the git command again.',
  'lfs-grant-out-of-scope': 'The LFS grant is for another object or operation.',
  'jwks-unavailable': "The issuer's signing keys are not available; try again shortly.",
} as const

export type BearerFailureReason = keyof typeof BEARER_FAILURES

export interface BearerFailure {
  readonly reason: BearerFailureReason
  readonly description: string
  /** 401 for a bad credential; 503 when the issuer's keys cannot be had (nothing the client can fix). */
  readonly status: 401 | 503
}

const FAILURES = new Map<BearerFailureReason, BearerFailure>(
  (Object.keys(BEARER_FAILURES) as BearerFailureReason[]).map((reason) => [
    reason,
    Object.freeze({ reason, description: BEARER_FAILURES[reason], status: reason === 'jwks-unavailable' ? 503 : 401 }),
  ]),
)

/** The shared, frozen failure value for a reason. */
export function bearerFailure(reason: BearerFailureReason): BearerFailure {
  return FAILURES.get(reason)!
}

/**
 * jose's claim failures: by `claim:reason` first (its reason is 'missing', 'invalid' = not a number, or
 * 'check_failed'), then by claim. A Map, so no claim name can reach Object.prototype.
 */
const BY_CLAIM = new Map<string, BearerFailureReason>([
  ['iss', 'token-issuer-untrusted'],
  ['aud', 'token-audience-invalid'],
  ['nbf:invalid', 'token-nbf-invalid'],
  ['nbf', 'token-not-yet-valid'],
  ['iat:invalid', 'token-iat-invalid'],
  ['iat', 'token-issued-in-future'],
  ['exp:missing', 'token-exp-missing'],
  ['exp:invalid', 'token-exp-invalid'],
])

/** The one place that knows jose's error codes. Unknown errors fail closed as a bad signature. */
export function reasonForJoseError(err: unknown): BearerFailureReason {
  const { code, claim, reason } = (err ?? {}) as { code?: unknown; claim?: unknown; reason?: unknown }
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'token-expired'
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return BY_CLAIM.get(`${String(claim)}:${String(reason)}`) ?? BY_CLAIM.get(String(claim)) ?? 'token-claim-invalid'
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return 'token-bad-signature'
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'token-unknown-key'
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'token-alg-not-allowed'
    case 'ERR_JOSE_NOT_SUPPORTED':
      // Unrecognised `crit` extensions and unsupported algorithms land here.
      return 'token-crit-unsupported'
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return 'token-malformed'
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
    case 'IAP_ERR_JWKS_UNAVAILABLE':
      return 'jwks-unavailable'
    default:
      return 'token-bad-signature'
  }
}
