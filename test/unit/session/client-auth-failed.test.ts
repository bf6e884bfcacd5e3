import { describe, expect, it } from 'vitest'
import { ResponseBodyError, WWWAuthenticateChallengeError } from 'openid-client'
import { classifyRedeemError, classifyRefreshError, IDP_DESCRIPTION_MAX } from '../../../src/iap/entra-client.ts'

const bodyError = (status: number, error: string, error_description?: string) =>
  new ResponseBodyError('server responded with an error in the response body', { cause: { error, ...(error_description !== undefined && { error_description }) }, response: new Response('', { status }) })

describe('classifyRedeemError: the proxy\'s own client credentials refused', () => {
  it.each(['invalid_client', 'unauthorized_client'])('%s → login-client-auth-failed, 502, with the IdP error for the log', (error) => {
    expect(classifyRedeemError(bodyError(401, error, 'AADSTS7000215: Invalid client secret provided.'))).toEqual({
      reason: 'login-client-auth-failed',
      status: 502,
      idpError: { error, description: 'AADSTS7000215: Invalid client secret provided.' },
    })
  })

  it('sanitizes the description: control characters out, the secret and the code cut out, length capped', () => {
    const secret = 'the-client-secret-value'
    const code = 'the-authorization-code'
    const description = `AADSTS7000215: Invalid client secret ${secret} for code ${code}.\r\nTrace ID: abc\r\nCorrelation ID: def\u0000${'x'.repeat(2000)}`
    const { idpError } = classifyRedeemError(bodyError(401, 'invalid_client', description), [secret, code])
    expect(idpError!.description).not.toContain(secret)
    expect(idpError!.description).not.toContain(code)
    expect(idpError!.description).toMatch(/^AADSTS7000215: Invalid client secret \[redacted\] for code \[redacted\]\. Trace ID: abc Correlation ID: def x+…$/)
    expect(idpError!.description!.length).toBe(IDP_DESCRIPTION_MAX)
    expect(idpError!.description).not.toMatch(/[\u0000-\u001f]/)
  })

  it('without a description, only the error', () => {
    expect(classifyRedeemError(bodyError(401, 'invalid_client')).idpError).toEqual({ error: 'invalid_client' })
  })

  it('reads the error from a WWW-Authenticate challenge too (a 401 may carry it there)', () => {
    const err = new WWWAuthenticateChallengeError('server responded with a challenge', {
      cause: [{ scheme: 'basic', parameters: { error: 'invalid_client', error_description: 'client authentication failed' } }],
      response: new Response('', { status: 401 }),
    } as never)
    expect(classifyRedeemError(err)).toMatchObject({ reason: 'login-client-auth-failed', status: 502, idpError: { error: 'invalid_client' } })
  })

  it('other token-endpoint errors stay the code\'s fault (login-code-rejected, 400)', () => {
    expect(classifyRedeemError(bodyError(400, 'invalid_grant', 'AADSTS70008: The provided authorization code has expired.'))).toEqual({ reason: 'login-code-rejected', status: 400 })
  })
})

describe('classifyRefreshError: the proxy\'s own client credentials refused at a refresh', () => {
  it('is an outage (served within the grace), not a rejected grant that ends the session', () => {
    expect(classifyRefreshError(bodyError(401, 'invalid_client', 'AADSTS7000222: The provided client secret keys are expired.'))).toBe('session-refresh-unavailable')
    expect(classifyRefreshError(bodyError(400, 'unauthorized_client'))).toBe('session-refresh-unavailable')
    expect(classifyRefreshError(bodyError(400, 'invalid_grant', 'AADSTS50173: The provided grant has expired due to it being revoked.'))).toBe('session-refresh-rejected')
  })
})
