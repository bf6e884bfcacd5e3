/**
 * Key rotation at the IdP under concurrent load (Entra rolls keys without notice:
 * https://learn.microsoft.com/en-us/entra/identity-platform/signing-key-rollover):
 * requests signed with the new key arriving together share one JWKS refetch, and none of them gets
 * a false 401; tokens signed with the old key (still published) keep working meanwhile.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startJwksServer, TEST_AUDIENCE, TEST_CLIENT, TEST_TENANT, type JwksServer } from '../helpers/jwks-server.ts'
import { baseConfig, startServe, type ServeHandle } from '../helpers/serve.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

const ENG = '6c0bd1d2-0000-4000-8000-000000000002'
let idp: JwksServer
let upstream: Upstream
let proxy: ServeHandle

beforeAll(async () => {
  idp = await startJwksServer()
  upstream = await startUpstream()
  proxy = await startServe(baseConfig(upstream.url, {
    entra: { tenantId: TEST_TENANT, clientId: TEST_CLIENT, authority: idp.authority, audiences: [TEST_AUDIENCE] },
    groups: { engineering: ENG },
    policy: { rules: [{ name: 'engineering', paths: ['/**'], groups: ['engineering'] }] },
  }))
})
afterAll(async () => {
  await proxy?.stop()
  await upstream?.close()
  await idp?.close()
})

describe('key rotation under concurrent load', () => {
  it('200 concurrent requests signed by a brand-new key: all allowed, one or two JWKS fetches', async () => {
    const oldKey = idp.keys[0]!
    const oldTokens = await Promise.all(Array.from({ length: 50 }, (_, i) => idp.mint({ groups: [ENG], oid: `old-${i}` }, { key: oldKey })))
    const newKey = await idp.rotate({ keepOld: true })
    const newTokens = await Promise.all(Array.from({ length: 200 }, (_, i) => idp.mint({ groups: [ENG], oid: `new-${i}` }, { key: newKey })))
    const before = idp.counts.jwks
    const statuses = await Promise.all(
      [...newTokens, ...oldTokens].map(async (token) => (await fetch(`${proxy.url}/api/v4/x`, { headers: { authorization: `Bearer ${token}` } })).status),
    )
    expect(statuses.filter((s) => s !== 200)).toEqual([])
    expect(idp.counts.jwks - before).toBeGreaterThanOrEqual(1)
    expect(idp.counts.jwks - before).toBeLessThanOrEqual(2)
  })
})
