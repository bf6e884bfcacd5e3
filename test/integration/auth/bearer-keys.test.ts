/**
 * Signing-key lifecycle against a real `serve`: rotation picked up without restart, rotated-out keys
 * refused, a flood of random `kid`s bounded to one refetch, the IdP going down after start (last good
 * keys keep serving, the failure shows in /readyz) and an IdP that is down at start (not ready, 503,
 * then recovery in the background).
 */
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'
import { startJwksServer, TEST_AUDIENCE, TEST_CLIENT, TEST_TENANT, type JwksServer } from '../../helpers/jwks-server.ts'

let idp: JwksServer
let upstream: Upstream
const running: ServeHandle[] = []

beforeAll(async () => {
  idp = await startJwksServer()
  upstream = await startUpstream()
})
afterEach(async () => {
  idp.setFault(null)
  await Promise.all(running.splice(0).map((p) => p.stop()))
})
afterAll(async () => {
  await upstream?.close()
  await idp?.close()
})

async function startProxy(options: { waitForReady?: boolean } = {}): Promise<ServeHandle> {
  const proxy = await startServe(
    baseConfig(upstream.url, {
      entra: { tenantId: TEST_TENANT, clientId: TEST_CLIENT, authority: idp.authority, audiences: [TEST_AUDIENCE] },
      groups: { engineering: 'g-eng' },
      policy: { rules: [{ name: 'engineering', paths: ['/**'], groups: ['engineering'] }] },
    }),
    options,
  )
  running.push(proxy)
  return proxy
}

async function get(proxy: ServeHandle, token: string, path = `/api/v4/keys/${randomUUID()}`): Promise<{ status: number; reason?: string; reached: number }> {
  const res = await fetch(`${proxy.url}${path}`, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } })
  const body = (await res.json().catch(() => ({}))) as { reason?: string }
  return { status: res.status, ...(body.reason ? { reason: body.reason } : {}), reached: upstream.reached(path).length }
}

async function readyz(proxy: ServeHandle): Promise<{ status: number; entra: Record<string, unknown> }> {
  const res = await fetch(`${proxy.adminUrl}/readyz`)
  const body = (await res.json()) as { checks: { auth: { entra: Record<string, unknown> } } }
  return { status: res.status, entra: body.checks.auth.entra }
}

describe('signing keys', () => {
  it('1,000 requests with random kids cause at most a handful of JWKS fetches; valid tokens keep working', async () => {
    const proxy = await startProxy()
    // Tokens with random kids in otherwise well-formed, signed tokens: only the key lookup can refuse them.
    const [, payload, signature] = (await idp.mint()).split('.')
    const header = (kid: string) => Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid })).toString('base64url')
    const tokens = Array.from({ length: 1000 }, () => `${header(randomUUID())}.${payload}.${signature}`)
    const valid = await idp.mint()
    const before = idp.counts.jwks
    const statuses = new Map<string, number>()
    let next = 0
    await Promise.all(
      Array.from({ length: 25 }, async () => {
        while (next < tokens.length) {
          const r = await get(proxy, tokens[next++]!)
          const key = `${r.status} ${r.reason} ${r.reached}`
          statuses.set(key, (statuses.get(key) ?? 0) + 1)
        }
      }),
    )
    const fetches = idp.counts.jwks - before
    expect(Object.fromEntries(statuses)).toEqual({ '401 token-unknown-key 0': 1000 })
    expect(fetches).toBeGreaterThanOrEqual(1)
    expect(fetches).toBeLessThanOrEqual(2)
    expect((await get(proxy, valid)).status).toBe(200)
  })

  it('key rotation at the IdP is picked up without restart; a rotated-out key is refused', async () => {
    const proxy = await startProxy()
    const oldKey = idp.keys[0]!
    expect((await get(proxy, await idp.mint())).status).toBe(200)
    const newKey = await idp.rotate({ keepOld: false })
    const before = idp.counts.jwks
    expect(await get(proxy, await idp.mint({}, { key: newKey }))).toMatchObject({ status: 200, reached: 1 })
    expect(idp.counts.jwks - before).toBe(1)
    // A fresh token signed by the key the IdP no longer publishes.
    expect(await get(proxy, await idp.mint({}, { key: oldKey }))).toMatchObject({ status: 401, reason: 'token-unknown-key', reached: 0 })
    expect(idp.counts.jwks - before).toBe(1)
  })

  it('a token used before its key was withdrawn is refused after the refetch, not served from the cache', async () => {
    const proxy = await startProxy()
    const oldKey = idp.keys[0]!
    const held = await idp.mint({}, { key: oldKey })
    expect((await get(proxy, held)).status).toBe(200)
    expect((await get(proxy, held)).status).toBe(200)
    const newKey = await idp.rotate({ keepOld: false })
    // The new kid triggers the refetch that learns the old key is gone.
    expect((await get(proxy, await idp.mint({}, { key: newKey }))).status).toBe(200)
    expect(await get(proxy, held)).toMatchObject({ status: 401, reason: 'token-unknown-key', reached: 0 })
  })

  it('a key set without a usable key keeps the last good keys: counted as a failed fetch, still ready', async () => {
    const proxy = await startProxy()
    const published = idp.keys.splice(0)
    try {
      // An unknown kid makes the proxy refetch; the IdP answers {"keys": []}.
      const stranger = await idp.newKey('RS256')
      expect(await get(proxy, await idp.mint({}, { key: stranger }))).toMatchObject({ status: 401, reason: 'token-unknown-key', reached: 0 })
      expect(await get(proxy, await idp.mint({ oid: '7a1d0c55-0000-4000-8000-0000000000d4' }, { key: published[0]! }))).toMatchObject({ status: 200, reached: 1 })
      const ready = await readyz(proxy)
      expect(ready.status).toBe(200)
      expect(ready.entra).toMatchObject({ ready: true, keys: 1, lastError: expect.stringMatching(/no usable key/) })
      const metrics = await (await fetch(`${proxy.adminUrl}/metrics`)).text()
      expect(metrics).toMatch(/gitlab_iap_jwks_fetch_total\{issuer="entra",result="failure"\} 1/)
    } finally {
      idp.keys.push(...published)
    }
  })

  it('IdP down after start: the last good keys keep serving, the failure shows in /readyz', async () => {
    const proxy = await startProxy()
    const cached = await idp.mint()
    expect((await get(proxy, cached)).status).toBe(200)
    idp.setFault('down')
    expect((await get(proxy, cached)).status).toBe(200)
    // Not cached yet: verified with the kept keys.
    expect((await get(proxy, await idp.mint({ oid: '7a1d0c55-0000-4000-8000-0000000000d2' }))).status).toBe(200)
    // An unknown kid makes the proxy try the IdP once; that fails and is reported.
    const stranger = await idp.newKey('RS256')
    expect(await get(proxy, await idp.mint({}, { key: stranger }))).toMatchObject({ status: 401, reason: 'token-unknown-key', reached: 0 })
    const ready = await readyz(proxy)
    expect(ready.status).toBe(200)
    expect(ready.entra).toMatchObject({ ready: true, keys: 1 })
    expect(String(ready.entra.lastError)).not.toBe('undefined')
    expect(proxy.stderr()).toContain('IAP_ERR_JWKS_UNAVAILABLE')
    expect((await get(proxy, await idp.mint({ oid: '7a1d0c55-0000-4000-8000-0000000000d3' }))).status).toBe(200)
  })

  it('a provider without v1 discovery: ready on v2, v2 tokens work, v1 tokens are refused', async () => {
    idp.setFault('v1-missing')
    const proxy = await startProxy()
    const ready = await fetch(`${proxy.adminUrl}/readyz`)
    expect(ready.status).toBe(200)
    const body = (await ready.json()) as { checks: { auth: Record<string, { ready: boolean }> } }
    expect(body.checks.auth['entra/v1']!.ready).toBe(false)
    expect((await get(proxy, await idp.mint())).status).toBe(200)
    expect((await get(proxy, await idp.mint({}, { issuer: 'v1' }))).status).not.toBe(200)
  })

  it('a wrong tenant: /readyz and the log say what Entra answered and which keys to check', async () => {
    // Entra's answer to discovery for a tenant that does not exist.
    const entra = createServer((req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: 'invalid_tenant', error_description: "AADSTS90002: Tenant '0000dead-0000-4000-8000-000000000000' not found.\r\nTrace ID: x" }))
    })
    await new Promise<void>((resolve) => entra.listen(0, '127.0.0.1', resolve))
    try {
      const authority = `http://127.0.0.1:${(entra.address() as AddressInfo).port}`
      const proxy = await startServe(baseConfig(upstream.url, { entra: { tenantId: '0000dead-0000-4000-8000-000000000000', clientId: TEST_CLIENT, authority } }), { waitForReady: false })
      running.push(proxy)
      let ready = await readyz(proxy)
      for (let i = 0; i < 60 && ready.entra.lastError === undefined; i++) {
        await new Promise((r) => setTimeout(r, 50))
        ready = await readyz(proxy)
      }
      expect(ready.entra.lastError).toContain('HTTP 400 invalid_tenant: AADSTS90002')
      expect(ready.entra.lastError).toContain('/0000dead-0000-4000-8000-000000000000/v2.0/.well-known/openid-configuration')
      expect(ready.entra.lastError).toContain('check entra.tenantId and entra.authority')
      expect(ready.entra.lastError).not.toMatch(/[\r\n]/)
      await expect.poll(() => proxy.stderr(), { timeout: 5000 }).toContain('AADSTS90002')
    } finally {
      entra.close()
    }
  })

  it('IdP down at start: not ready and 503 (fail closed), then recovery in the background', async () => {
    idp.setFault('down')
    const proxy = await startProxy({ waitForReady: false })
    const token = await idp.mint()
    let ready = await readyz(proxy)
    for (let i = 0; i < 40 && ready.entra.lastError === undefined; i++) {
      await new Promise((r) => setTimeout(r, 50))
      ready = await readyz(proxy)
    }
    expect(ready.status).toBe(503)
    expect(ready.entra).toMatchObject({ ready: false, keys: 0 })
    expect(ready.entra.lastError).toMatch(/discovery failed/)
    expect(await get(proxy, token)).toMatchObject({ status: 503, reason: 'jwks-unavailable', reached: 0 })
    idp.setFault(null)
    const deadline = Date.now() + 8000
    while ((await readyz(proxy)).status !== 200) {
      if (Date.now() > deadline) throw new Error('did not become ready after the IdP came back')
      await new Promise((r) => setTimeout(r, 100))
    }
    expect((await get(proxy, token)).status).toBe(200)
  })
})
