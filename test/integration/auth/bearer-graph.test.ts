/**
 * Groups overage lookups (src/auth/graph-groups.ts) over real HTTP against the Graph-shaped stand-in
 * of the test issuer: client-credentials token, paging, per-user cache, shared in-flight lookups,
 * failures that fail closed and are remembered briefly.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createGraphGroups, graphScope } from '../../../src/auth/graph-groups.ts'
import { isIapError } from '../../../src/errors.ts'
import { startJwksServer, TEST_CLIENT, TEST_TENANT, type JwksServer } from '../../helpers/jwks-server.ts'

const SECRET = `graph-secret-${process.pid}-${Date.now()}`
const ERIN = '0e0e0e0e-0000-4000-8000-000000000250'
const ALL = Array.from({ length: 250 }, (_, i) => `6c0bd1d2-0000-4000-9000-${String(i).padStart(12, '0')}`)
let idp: JwksServer

beforeAll(async () => {
  idp = await startJwksServer({ graphClientSecret: SECRET })
  idp.setGraphGroups(ERIN, ALL)
})
afterAll(async () => {
  await idp?.close()
})

const make = (overrides: { clientSecret?: string; failureTtlMs?: number } = {}) =>
  createGraphGroups({ tenantId: TEST_TENANT, clientId: TEST_CLIENT, clientSecret: overrides.clientSecret ?? SECRET, authority: idp.authority, graphUrl: idp.graphUrl, ...(overrides.failureTtlMs ? { failureTtlMs: overrides.failureTtlMs } : {}) })

describe('graph-groups', () => {
  it('reads every transitive group across pages with an app-only token', async () => {
    const graph = make()
    const before = { ...idp.counts }
    const groups = await graph.groupsOf(TEST_TENANT, ERIN)
    expect(groups).toEqual(ALL)
    expect(idp.counts.graph - before.graph).toBe(3)
    expect(idp.counts.graphToken - before.graphToken).toBe(1)
  })

  it('keeps only group object ids from Graph (lower-cased): any other value is not a group', async () => {
    const ODD = '0e0e0e0e-0000-4000-8000-000000000251'
    idp.setGraphGroups(ODD, ['6C0BD1D2-0000-4000-9000-00000000AAAA', 'admins,other', 'x\r\nX-Evil: 1', '6c0bd1d2-0000-4000-9000-00000000bbbb'])
    expect(await make().groupsOf(TEST_TENANT, ODD)).toEqual(['6c0bd1d2-0000-4000-9000-00000000aaaa', '6c0bd1d2-0000-4000-9000-00000000bbbb'])
  })

  it('caches per tenant:user and shares one lookup between concurrent callers', async () => {
    const graph = make()
    const before = idp.counts.graph
    const results = await Promise.all(Array.from({ length: 10 }, () => graph.groupsOf(TEST_TENANT, ERIN)))
    expect(results.every((r) => r.length === 250)).toBe(true)
    expect(idp.counts.graph - before).toBe(3)
    await graph.groupsOf(TEST_TENANT, ERIN)
    expect(idp.counts.graph - before).toBe(3)
  })

  it('fails closed with IAP_ERR_GRAPH_UNAVAILABLE when Graph is down, and remembers it briefly', async () => {
    const graph = make({ failureTtlMs: 300 })
    idp.setGraphFault('down')
    try {
      const err = await graph.groupsOf(TEST_TENANT, ERIN).catch((e: unknown) => e)
      expect(isIapError(err, 'IAP_ERR_GRAPH_UNAVAILABLE')).toBe(true)
      expect(String((err as Error).message)).toContain('HTTP 503')
      const calls = idp.counts.graph
      await expect(graph.groupsOf(TEST_TENANT, ERIN)).rejects.toThrow(/HTTP 503/)
      expect(idp.counts.graph).toBe(calls)
    } finally {
      idp.setGraphFault(null)
    }
    await new Promise((r) => setTimeout(r, 350))
    expect(await graph.groupsOf(TEST_TENANT, ERIN)).toHaveLength(250)
  })

  it('a wrong client secret fails closed without echoing the secret', async () => {
    const err = (await make({ clientSecret: 'wrong-secret-value' }).groupsOf(TEST_TENANT, ERIN).catch((e: unknown) => e)) as Error
    expect(isIapError(err, 'IAP_ERR_GRAPH_UNAVAILABLE')).toBe(true)
    expect(err.message).toContain('invalid_client')
    expect(err.message).not.toContain('wrong-secret-value')
  })

  it('refuses a user id that is not an object id, and unknown users', async () => {
    await expect(make().groupsOf(TEST_TENANT, '../../admin')).rejects.toThrow(/not a GUID/)
    await expect(make().groupsOf(TEST_TENANT, '0e0e0e0e-0000-4000-8000-000000000999')).rejects.toThrow(/HTTP 404/)
  })

  /** A server standing in for a broken Graph (and its token endpoint) on loopback. */
  async function brokenGraph(page: (url: URL, res: import('node:http').ServerResponse) => void): Promise<{ url: string; close(): Promise<void> }> {
    const server: Server = createServer((req, res) => {
      const url = new URL(req.url!, 'http://127.0.0.1')
      if (url.pathname === '/token') {
        res.writeHead(200, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ access_token: 'app-token', expires_in: 3600 }))
      }
      page(url, res)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    return { url, close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }) }
  }

  it('refuses a Graph answer far larger than any page of group ids, before it is all in memory', async () => {
    const huge = await brokenGraph((_url, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      // Valid JSON, 4 MiB of it, chunked (no Content-Length to refuse it by).
      res.write(`{"value":[{"id":"${ALL[0]}"}],"padding":"`)
      const chunk = 'x'.repeat(64 * 1024)
      for (let i = 0; i < 64; i++) res.write(chunk)
      res.end('"}')
    })
    try {
      const graph = createGraphGroups({ tenantId: TEST_TENANT, clientId: TEST_CLIENT, clientSecret: SECRET, authority: huge.url, tokenEndpoint: `${huge.url}/token`, graphUrl: huge.url })
      const err = await graph.groupsOf(TEST_TENANT, ERIN).catch((e: unknown) => e)
      expect(isIapError(err, 'IAP_ERR_GRAPH_UNAVAILABLE')).toBe(true)
    } finally {
      await huge.close()
    }
  })

  it('a slow Graph fails closed within the lookup deadline, however many pages it promises', async () => {
    const slow = await brokenGraph((url, res) => {
      const n = Number(url.searchParams.get('n') ?? 0)
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ value: [{ id: ALL[n] }], '@odata.nextLink': `${slow.url}/v1.0/next?n=${n + 1}` }))
      }, 200)
    })
    try {
      const graph = createGraphGroups({ tenantId: TEST_TENANT, clientId: TEST_CLIENT, clientSecret: SECRET, authority: slow.url, tokenEndpoint: `${slow.url}/token`, graphUrl: slow.url, lookupTimeoutMs: 1000 })
      const started = Date.now()
      const err = await graph.groupsOf(TEST_TENANT, ERIN).catch((e: unknown) => e)
      expect(isIapError(err, 'IAP_ERR_GRAPH_UNAVAILABLE')).toBe(true)
      // 50 pages × 200 ms would be 10 s; the deadline ends it after about 1 s.
      expect(Date.now() - started).toBeLessThan(4000)
    } finally {
      await slow.close()
    }
  })

  it('asks for the Graph scope of the cloud it talks to', () => {
    expect(graphScope('https://graph.microsoft.com')).toBe('https://graph.microsoft.com/.default')
    expect(graphScope('https://graph.microsoft.us/')).toBe('https://graph.microsoft.us/.default')
    expect(graphScope('http://127.0.0.1:1234/graph')).toBe('https://graph.microsoft.com/.default')
  })
})
