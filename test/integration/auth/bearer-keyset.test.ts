/**
 * One issuer's key holder (src/auth/bearer/key-set.ts) against the Entra-shaped development provider
 * over real HTTP: discovery checks, sick IdP answers (garbage, huge, slow, down), stale-if-error,
 * one shared refetch for concurrent unknown kids, cooldown, metrics.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createIssuerKeys, type IssuerKeys } from '../../../src/auth/bearer/key-set.ts'
import { trustedIssuers, type IssuerSpec } from '../../../src/auth/bearer/issuers.ts'
import { configSchema } from '../../../src/config/schema.ts'
import { DEMO_CLIENT_ID, DEMO_TENANT_ID, startDevIdp, type DevIdp } from '../../../src/devidp/index.ts'

let idp: DevIdp
let v2: IssuerSpec
const holders: IssuerKeys[] = []

beforeAll(async () => {
  idp = await startDevIdp()
  const config = configSchema.parse({
    server: { publicUrl: 'https://gitlab.example.test' },
    upstream: { url: 'http://127.0.0.1:1' },
    entra: { tenantId: DEMO_TENANT_ID, clientId: DEMO_CLIENT_ID, authority: idp.authority },
  })
  v2 = trustedIssuers(config)[0]!
})
afterAll(async () => {
  for (const h of holders) h.close()
  await idp?.close()
})

function holder(spec: IssuerSpec = v2, options: { cooldownMs?: number; timeoutMs?: number } = {}) {
  const fetches: string[] = []
  const keys = createIssuerKeys(spec, { metrics: { jwksFetch: (issuer, result) => fetches.push(`${issuer}:${result}`) }, retryMs: 60_000, ...options })
  holders.push(keys)
  return { keys, fetches }
}

const headerFor = (kid: string) => ({ alg: 'RS256', kid })
const TOKEN = { payload: '', signature: '', protected: '' }

describe('issuer key holder', () => {
  it('discovers the JWKS of the exact issuer and becomes ready', async () => {
    const { keys, fetches } = holder()
    await keys.start()
    expect(keys.isReady()).toBe(true)
    expect(keys.status()).toMatchObject({ ready: true, keys: 1, jwksUri: idp.jwksUri })
    expect(fetches).toEqual(['entra:success'])
    await expect(keys.getKey(headerFor(idp.currentKid()), TOKEN)).resolves.toBeTruthy()
  })

  it('refuses a discovery document that names another issuer', async () => {
    const { keys } = holder({ ...v2, iss: `${idp.authority}/${DEMO_TENANT_ID}/v2.0-other` })
    await keys.start()
    expect(keys.isReady()).toBe(false)
    expect(keys.status().lastError).toMatch(/discovery names issuer/)
    await expect(keys.getKey(headerFor(idp.currentKid()), TOKEN)).rejects.toMatchObject({ code: 'IAP_ERR_JWKS_UNAVAILABLE' })
  })

  it.each([
    ['garbage', /not JSON/],
    ['huge', /larger than/],
    ['down', /HTTP 503/],
  ] as const)('a %s JWKS answer at start: not ready, the cause in status', async (fault, message) => {
    idp.setFault(fault, 'jwks')
    try {
      const { keys, fetches } = holder()
      await keys.start()
      expect(keys.isReady()).toBe(false)
      expect(keys.status().lastError).toMatch(message)
      expect(fetches).toEqual(['entra:failure'])
    } finally {
      idp.setFault(null)
    }
  })

  it('a slow JWKS times out instead of hanging requests', async () => {
    idp.setFault('slow', 'jwks')
    try {
      const { keys } = holder(v2, { timeoutMs: 300 })
      const t0 = Date.now()
      await keys.start()
      expect(Date.now() - t0).toBeLessThan(3000)
      expect(keys.isReady()).toBe(false)
    } finally {
      idp.setFault(null)
    }
  })

  it('concurrent unknown kids share one refetch; then the cooldown holds', async () => {
    const { keys, fetches } = holder(v2, { cooldownMs: 60_000 })
    await keys.start()
    const before = idp.stats().jwksRequests
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => keys.getKey(headerFor(randomUUID()), TOKEN)))
    expect(results.every((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'ERR_JWKS_NO_MATCHING_KEY')).toBe(true)
    expect(idp.stats().jwksRequests - before).toBe(1)
    await expect(keys.getKey(headerFor(randomUUID()), TOKEN)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' })
    expect(idp.stats().jwksRequests - before).toBe(1)
    expect(fetches).toEqual(['entra:success', 'entra:success'])
  })

  it('a new kid is found by the refetch; a failed refetch keeps the old keys (stale-if-error)', async () => {
    const { keys, fetches } = holder(v2, { cooldownMs: 0 })
    await keys.start()
    const { kid: newKid, previousKid } = await idp.rotateKeys({ keepOld: true })
    await expect(keys.getKey(headerFor(newKid), TOKEN)).resolves.toBeTruthy()
    idp.setFault('down')
    try {
      await expect(keys.getKey(headerFor(randomUUID()), TOKEN)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' })
      expect(keys.status()).toMatchObject({ ready: true, keys: 2, lastError: expect.stringMatching(/503/) })
      await expect(keys.getKey(headerFor(newKid), TOKEN)).resolves.toBeTruthy()
      await expect(keys.getKey(headerFor(previousKid), TOKEN)).resolves.toBeTruthy()
    } finally {
      idp.setFault(null)
    }
    expect(fetches).toEqual(['entra:success', 'entra:success', 'entra:failure'])
  })
})
