import type { IncomingMessage } from 'node:http'
import { describe, expect, it } from 'vitest'
import { createAuthenticator, type AuthOutcome, type SessionStep } from '../../../src/auth/authenticate.ts'
import type { RequestContext } from '../../../src/server/context.ts'

const ctx = {} as RequestContext
const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage
const seg = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
const jwt = `${seg({ alg: 'RS256' })}.${seg({ iss: 'https://untrusted.test', sub: 'x' })}.c2ln`

const SESSION_OUTCOME: AuthOutcome = { ok: true, method: 'session', identity: { kind: 'user', id: 'u', groups: [], roles: [], issuer: 'entra' } }

function withSession() {
  const calls: string[] = []
  const session: SessionStep = {
    authenticate(r) {
      calls.push(String(r.headers.cookie ?? ''))
      return r.headers.cookie ? SESSION_OUTCOME : undefined
    },
  }
  // No trusted issuers: nothing is fetched, every JWT is someone else's.
  return { calls, auth: createAuthenticator({ config: { issuers: [] }, metrics: { jwksFetch() {}, tokenCache() {} }, session }) }
}

describe('createAuthenticator: credential order and the session step', () => {
  it('no credential and no session cookie: anonymous, synchronously', () => {
    const { auth } = withSession()
    expect(auth.authenticate(req({}), ctx)).toEqual({ ok: true, method: 'none', identity: expect.objectContaining({ kind: 'anonymous' }) })
  })

  it('no credential: the session step decides', () => {
    const { auth, calls } = withSession()
    expect(auth.authenticate(req({ cookie: 'session=1' }), ctx)).toBe(SESSION_OUTCOME)
    expect(calls).toEqual(['session=1'])
  })

  it('a GitLab credential is not an IAP credential: the session step still runs', () => {
    const { auth, calls } = withSession()
    expect(auth.authenticate(req({ authorization: 'Bearer glpat-abc', cookie: 'session=1' }), ctx)).toBe(SESSION_OUTCOME)
    expect(auth.authenticate(req({ authorization: `Bearer ${jwt}`, cookie: 'session=1' }), ctx)).toBe(SESSION_OUTCOME)
    expect(calls).toHaveLength(2)
  })

  it('a presented IAP credential that fails is final: the session is never consulted', async () => {
    const { auth, calls } = withSession()
    const outcome = await auth.authenticate(req({ 'x-iap-authorization': `Bearer ${jwt}`, cookie: 'session=1' }), ctx)
    expect(outcome).toEqual({ ok: false, method: 'bearer', reason: 'token-issuer-untrusted', description: 'The token issuer is not trusted.', status: 401 })
    const malformed = await auth.authenticate(req({ 'x-iap-authorization': 'Token abc', cookie: 'session=1' }), ctx)
    expect(malformed).toMatchObject({ ok: false, reason: 'credential-malformed', status: 401 })
    expect(calls).toEqual([])
  })

  it('with no issuers it is ready at once and reports no key sets', async () => {
    const { auth } = withSession()
    await auth.started()
    expect(auth.isReady()).toBe(true)
    expect(auth.readiness()).toEqual({})
    await auth.close()
  })
})
