/**
 * One issuer's key holder (src/auth/bearer/key-set.ts) against the Entra-shaped development provider
 * over real HTTP: discovery checks, sick IdP answers (garbage, huge, slow, down), stale-if-error,
 * one shared refetch for concurrent unknown kids, cooldown, metrics.
 */
import { randomUUID } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { exportJWK, generateKeyPair } from 'jose'
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

describe('a key set document without a usable key', () => {
  let server: Server
  let body: unknown
  let spec: IssuerSpec
  let goodKey: Record<string, unknown>

  beforeAll(async () => {
    const { publicKey } = await generateKeyPair('RS256', { extractable: true })
    goodKey = { ...(await exportJWK(publicKey)), kid: 'good', alg: 'RS256', use: 'sig' }
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const jwksUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/keys`
    spec = { label: 'ci', name: 'ci', flavor: 'extra', iss: 'https://ci.example.test', audiences: ['aud'], algorithms: ['RS256'], discoveryUrl: `${jwksUri}/unused`, jwksUri, basicUsername: 'gitlab-ci-token' }
  })
  afterAll(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())))

  it.each([
    ['empty', { keys: [] }],
    ['junk entries', { keys: [1, 'x', null] }],
    ['only a symmetric key', { keys: [{ kty: 'oct', kid: 'good', k: 'c2VjcmV0' }] }],
  ])('%s, on a reload: a failure (counted, in status); the last good keys keep serving, readiness stays', async (_name, bad) => {
    body = { keys: [goodKey] }
    const { keys, fetches } = holder(spec, { cooldownMs: 0 })
    await keys.start()
    body = bad
    await expect(keys.getKey(headerFor(randomUUID()), TOKEN)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' })
    expect(fetches).toEqual(['ci:success', 'ci:failure'])
    expect(keys.status()).toMatchObject({ ready: true, keys: 1, lastError: expect.stringMatching(/no usable key/) })
    expect(keys.isReady()).toBe(true)
    await expect(keys.getKey(headerFor('good'), TOKEN)).resolves.toBeTruthy()
  })

  it('at start: not ready (no keys yet), the cause in status', async () => {
    body = { keys: [] }
    const { keys, fetches } = holder(spec)
    await keys.start()
    expect(keys.isReady()).toBe(false)
    expect(fetches).toEqual(['ci:failure'])
    expect(keys.status()).toMatchObject({ ready: false, keys: 0, lastError: expect.stringMatching(/no usable key/) })
  })
})

describe('key versions (what ties a cached token to its key)', () => {
  it('a refetch of the same keys keeps the version; a withdrawn kid has none; a new kid gets one', async () => {
    const { keys } = holder(v2, { cooldownMs: 0 })
    await keys.start()
    const kid = idp.currentKid()
    const version = keys.keyVersion(kid)
    expect(version).toBeDefined()
    await expect(keys.getKey(headerFor(randomUUID()), TOKEN)).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' })
    expect(keys.keyVersion(kid)).toBe(version)
    const { kid: newKid } = await idp.rotateKeys({ keepOld: false })
    await expect(keys.getKey(headerFor(newKid), TOKEN)).resolves.toBeTruthy()
    expect(keys.keyVersion(kid)).toBeUndefined()
    expect(keys.keyVersion(newKid)).toBeDefined()
  })
})

