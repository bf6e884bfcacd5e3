// Discovery and JWKS faults, request counters, and a clean close while a slow answer is pending.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { startDevIdp, type DevIdp } from '../../../src/devidp/index.ts'

const DELAY_MS = 400
let idp: DevIdp

beforeAll(async () => {
  idp = await startDevIdp({ faultDelayMs: DELAY_MS })
})

afterEach(() => {
  idp.setFault(null)
})

afterAll(async () => {
  await idp?.close()
})

const endpoints = () => [
  ['v2 discovery', idp.discoveryUrl],
  ['v1 discovery', idp.v1DiscoveryUrl],
  ['v2 JWKS', idp.jwksUri],
  ['v1 JWKS', idp.v1JwksUri],
] as const

describe('setFault', () => {
  it('down: 503 on discovery and JWKS, healed by null', async () => {
    idp.setFault('down')
    for (const [, url] of endpoints()) expect((await fetch(url)).status).toBe(503)
    idp.setFault(null)
    for (const [, url] of endpoints()) expect((await fetch(url)).status).toBe(200)
  })

  it('reset: the connection is dropped without an answer', async () => {
    idp.setFault('reset')
    for (const [, url] of endpoints()) await expect(fetch(url)).rejects.toThrow(/fetch failed/)
  })

  it('garbage: 200 with a body that is not JSON', async () => {
    idp.setFault('garbage')
    for (const [, url] of endpoints()) {
      const res = await fetch(url)
      expect(res.status).toBe(200)
      await expect(res.json()).rejects.toThrow(SyntaxError)
    }
  })

  it('huge: 200 with a valid but multi-MiB document', async () => {
    idp.setFault('huge')
    const text = await (await fetch(idp.jwksUri)).text()
    expect(text.length).toBeGreaterThan(8 * 1024 * 1024)
    expect((JSON.parse(text) as { keys: { kid: string }[] }).keys[0]?.kid).toBe(idp.currentKid())
  })

  it('slow: the answer comes after the delay; a client with a shorter timeout gives up', async () => {
    idp.setFault('slow', 'jwks')
    const started = Date.now()
    const res = await fetch(idp.jwksUri)
    expect(res.status).toBe(200)
    expect(Date.now() - started).toBeGreaterThanOrEqual(DELAY_MS - 20)

    // discovery is not affected when only the JWKS is targeted
    const quick = Date.now()
    expect((await fetch(idp.discoveryUrl)).status).toBe(200)
    expect(Date.now() - quick).toBeLessThan(DELAY_MS)

    const token = idp.mintAccessToken({ user: 'bob' })
    const impatient = createRemoteJWKSet(new URL(idp.jwksUri), { timeoutDuration: 100 })
    await expect(jwtVerify(token, impatient)).rejects.toMatchObject({ code: 'ERR_JWKS_TIMEOUT' })
    idp.setFault(null)
    await expect(jwtVerify(token, createRemoteJWKSet(new URL(idp.jwksUri)))).resolves.toMatchObject({ payload: { oid: idp.getUser('bob')?.oid } })
  })

  it('targets discovery only when asked', async () => {
    idp.setFault('down', 'discovery')
    expect((await fetch(idp.discoveryUrl)).status).toBe(503)
    expect((await fetch(idp.jwksUri)).status).toBe(200)
  })
})

describe('stats', () => {
  it('counts discovery, JWKS (faulted answers included) and token requests; resetStats zeroes them', async () => {
    idp.resetStats()
    await fetch(idp.discoveryUrl)
    await fetch(idp.v1DiscoveryUrl)
    idp.setFault('down', 'jwks')
    await fetch(idp.jwksUri)
    idp.setFault(null)
    await fetch(idp.v1JwksUri)
    await fetch(idp.tokenEndpoint, { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials' }) })
    expect(idp.stats()).toMatchObject({ discoveryRequests: 2, jwksRequests: 2, tokenRequests: 1, graphRequests: 0 })
    idp.resetStats()
    expect(Object.values(idp.stats()).every((n) => n === 0)).toBe(true)
  })

  it('a jose remote JWKS fetches once and then serves from its cache', async () => {
    idp.resetStats()
    const set = createRemoteJWKSet(new URL(idp.jwksUri))
    for (let i = 0; i < 5; i++) await jwtVerify(idp.mintAccessToken({ user: 'alice' }), set)
    expect(idp.stats().jwksRequests).toBe(1)
  })
})

describe('close', () => {
  it('returns promptly even while a slow answer is pending', async () => {
    const other = await startDevIdp({ faultDelayMs: 30_000 })
    other.setFault('slow')
    const pending = fetch(other.jwksUri).then(() => 'answered', () => 'dropped')
    await new Promise((r) => setTimeout(r, 50))
    const started = Date.now()
    await other.close()
    expect(Date.now() - started).toBeLessThan(2000)
    expect(await pending).toBe('dropped')
  })
})
