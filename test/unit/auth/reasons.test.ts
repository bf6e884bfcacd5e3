import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { errors } from 'jose'
import { BEARER_FAILURES, bearerFailure, reasonForJoseError, type BearerFailureReason } from '../../../src/auth/bearer/reasons.ts'
import { IapError } from '../../../src/errors.ts'

describe('reasonForJoseError', () => {
  it.each<[unknown, BearerFailureReason]>([
    [new errors.JWTExpired('x', {}, 'exp', 'check_failed'), 'token-expired'],
    [new errors.JWTClaimValidationFailed('x', {}, 'iss', 'check_failed'), 'token-issuer-untrusted'],
    [new errors.JWTClaimValidationFailed('x', {}, 'aud', 'check_failed'), 'token-audience-invalid'],
    [new errors.JWTClaimValidationFailed('x', {}, 'nbf', 'check_failed'), 'token-not-yet-valid'],
    [new errors.JWTClaimValidationFailed('x', {}, 'exp', 'missing'), 'token-exp-missing'],
    [new errors.JWTClaimValidationFailed('x', {}, 'exp', 'invalid'), 'token-exp-invalid'],
    [new errors.JWTClaimValidationFailed('x', {}, 'exp', 'check_failed'), 'token-claim-invalid'],
    [new errors.JWTClaimValidationFailed('x', {}, 'nbf', 'invalid'), 'token-nbf-invalid'],
    [new errors.JWTClaimValidationFailed('x', {}, 'iat', 'invalid'), 'token-iat-invalid'],
    [new errors.JWTClaimValidationFailed('x', {}, 'iat', 'check_failed'), 'token-issued-in-future'],
    [new errors.JWTClaimValidationFailed('x', {}, 'constructor', 'check_failed'), 'token-claim-invalid'],
    [new errors.JWTClaimValidationFailed('x', {}, 'toString', 'invalid'), 'token-claim-invalid'],
    [new errors.JWTClaimValidationFailed('x', {}, 'sub', 'check_failed'), 'token-claim-invalid'],
    [new errors.JWSSignatureVerificationFailed(), 'token-bad-signature'],
    [new errors.JWKSNoMatchingKey(), 'token-unknown-key'],
    [new errors.JOSEAlgNotAllowed(), 'token-alg-not-allowed'],
    [new errors.JOSENotSupported(), 'token-crit-unsupported'],
    [new errors.JWSInvalid(), 'token-malformed'],
    [new errors.JWTInvalid(), 'token-malformed'],
    [new errors.JWKSTimeout(), 'jwks-unavailable'],
    [new IapError('IAP_ERR_JWKS_UNAVAILABLE', 'down'), 'jwks-unavailable'],
    [new TypeError('surprise'), 'token-bad-signature'],
    [undefined, 'token-bad-signature'],
  ])('%s → %s', (err, reason) => {
    expect(reasonForJoseError(err)).toBe(reason)
  })

  it('401 for credentials, 503 only when keys are unavailable; descriptions never carry a token', () => {
    for (const reason of Object.keys(BEARER_FAILURES) as BearerFailureReason[]) {
      const failure = bearerFailure(reason)
      expect(failure.status).toBe(reason === 'jwks-unavailable' ? 503 : 401)
      expect(failure.description).not.toMatch(/eyJ/)
      expect(reason).toMatch(/^[a-z]+(-[a-z0-9]+)*$/)
    }
  })

  it('every reason is documented in docs/errors.md', () => {
    const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8')
    for (const reason of Object.keys(BEARER_FAILURES)) expect(doc, reason).toContain(`\`${reason}\``)
  })
})
