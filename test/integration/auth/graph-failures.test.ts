/**
 * Groups overage lookups (src/auth/graph-groups.ts) when Graph fails, against the dev IdP's Graph and
 * its faults: every failure is logged (rate-limited per cause) with Graph's status and error code, a
 * missing permission apart from an outage; an interactive sign-in asks Graph again at once, while
 * session refreshes and bearer lookups keep the remembered failure (shorter for transient ones).
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createGraphGroups, type GraphGroupsOptions } from '../../../src/auth/graph-groups.ts'
import { createDemoClientSecret, DEMO_USERS, startDevIdp, type DevIdp } from '../../../src/devidp/index.ts'
import { isIapError } from '../../../src/errors.ts'

const READER = '9ea0e200-0000-4000-8000-0000000f0a11'
const NO_CONSENT = '90b0d100-0000-4000-8000-0000000f0a12'
const readerSecret = createDemoClientSecret()
const noConsentSecret = createDemoClientSecret()
const ERIN = DEMO_USERS.erin.oid
let idp: DevIdp

beforeAll(async () => {
  idp = await startDevIdp({
    clients: [
      { clientId: READER, clientSecret: readerSecret },
      // An app registration without GroupMember.Read.All (no admin consent): Graph answers 403.
      { clientId: NO_CONSENT, clientSecret: noConsentSecret, graphRoles: [] },
    ],
  })
})
afterEach(() => {
  idp.setGraphFault(null)
  idp.setFault(null, 'token')
})
afterAll(async () => {
  await idp?.close()
})

interface Line {
  obj: Record<string, unknown>
  msg: string | undefined
}

function make(overrides: Partial<GraphGroupsOptions> & { clientId?: string; clientSecret?: string } = {}) {
  const lines: Line[] = []
  const graph = createGraphGroups({
    tenantId: idp.tenantId,
    clientId: READER,
    clientSecret: readerSecret,
    authority: idp.authority,
    graphUrl: idp.graphUrl,
    log: { warn: (obj, msg) => void lines.push({ obj: obj as Record<string, unknown>, msg }) },
    ...overrides,
  })
  return { graph, lines }
}

const graphCalls = () => idp.stats().graphRequests
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('Graph failures are logged', () => {
  it('an outage (503): IAP_ERR_GRAPH_UNAVAILABLE with the status, Graph\'s code and Retry-After; never a token or secret', async () => {
    const { graph, lines } = make()
    idp.setGraphFault('down')
    const err = await graph.groupsOf(idp.tenantId, ERIN, { fresh: true, interactive: true }).catch((e: unknown) => e)
    expect(isIapError(err, 'IAP_ERR_GRAPH_UNAVAILABLE')).toBe(true)
    expect(lines).toHaveLength(1)
    expect(lines[0]!.obj).toMatchObject({ code: 'IAP_ERR_GRAPH_UNAVAILABLE', stage: 'groups', status: 503, graphError: 'serviceNotAvailable', retryAfterSeconds: 1 })
    expect(lines[0]!.msg).toMatch(/groups overage/)
    const text = JSON.stringify(lines)
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{8,}/)
    expect(text).not.toContain(readerSecret)
  })

  it('throttling (429) is its own cause', async () => {
    const { graph, lines } = make()
    idp.setGraphFault('throttle')
    await expect(graph.groupsOf(idp.tenantId, ERIN, { fresh: true, interactive: true })).rejects.toThrow(/HTTP 429/)
    expect(lines.map((l) => l.obj)).toEqual([expect.objectContaining({ code: 'IAP_ERR_GRAPH_UNAVAILABLE', status: 429, graphError: 'TooManyRequests', retryAfterSeconds: 1 })])
  })

  it('a missing permission (403) is IAP_ERR_GRAPH_FORBIDDEN, naming the permission and the admin consent; granted, the next sign-in works', async () => {
    const { graph, lines } = make({ clientId: NO_CONSENT, clientSecret: noConsentSecret })
    await expect(graph.groupsOf(idp.tenantId, ERIN, { fresh: true, interactive: true })).rejects.toThrow(/HTTP 403/)
    expect(lines).toHaveLength(1)
    expect(lines[0]!.obj).toMatchObject({ code: 'IAP_ERR_GRAPH_FORBIDDEN', stage: 'groups', status: 403, graphError: 'Authorization_RequestDenied' })
    expect(String(lines[0]!.obj.hint)).toMatch(/GroupMember\.Read\.All.*admin consent/)
    // The admin grants consent: the token from before lacked the permission, a new one has it.
    idp.registerClient({ clientId: NO_CONSENT, clientSecret: noConsentSecret })
    try {
      expect(await graph.groupsOf(idp.tenantId, ERIN, { fresh: true, interactive: true })).toHaveLength(DEMO_USERS.erin.groups.length)
    } finally {
      idp.registerClient({ clientId: NO_CONSENT, clientSecret: noConsentSecret, graphRoles: [] })
    }
  })

  it('the client credentials refused at the token endpoint: IAP_ERR_ENTRA_CLIENT_AUTH, without the secret', async () => {
    const { graph, lines } = make({ clientSecret: 'wrong-secret-value-0123456789' })
    await expect(graph.groupsOf(idp.tenantId, ERIN, { fresh: true, interactive: true })).rejects.toThrow(/invalid_client/)
    expect(lines.map((l) => l.obj)).toEqual([expect.objectContaining({ code: 'IAP_ERR_ENTRA_CLIENT_AUTH', stage: 'token', graphError: 'invalid_client' })])
    expect(JSON.stringify(lines)).not.toContain('wrong-secret-value')
  })

  it('the token endpoint down: IAP_ERR_GRAPH_UNAVAILABLE at the token stage', async () => {
    const { graph, lines } = make()
    idp.setFault('down', 'token')
    await expect(graph.groupsOf(idp.tenantId, ERIN, { fresh: true, interactive: true })).rejects.toThrow(/HTTP 503/)
    expect(lines.map((l) => l.obj)).toEqual([expect.objectContaining({ code: 'IAP_ERR_GRAPH_UNAVAILABLE', stage: 'token', status: 503, graphError: 'temporarily_unavailable' })])
  })

  it('Graph unreachable: the socket error\'s code', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise((resolve) => closed.close(resolve))
    const { graph, lines } = make({ graphUrl: `http://127.0.0.1:${port}` })
    await expect(graph.groupsOf(idp.tenantId, ERIN, { fresh: true, interactive: true })).rejects.toSatisfy((e) => isIapError(e, 'IAP_ERR_GRAPH_UNAVAILABLE'))
    expect(lines.map((l) => l.obj)).toEqual([expect.objectContaining({ code: 'IAP_ERR_GRAPH_UNAVAILABLE', stage: 'groups', networkError: 'ECONNREFUSED' })])
  })

  it('at most one line per cause per interval; the next one counts those left out', async () => {
    const { graph, lines } = make({ logIntervalMs: 400 })
    idp.setGraphFault('down')
    for (let i = 0; i < 5; i++) await graph.groupsOf(idp.tenantId, ERIN, { fresh: true, interactive: true }).catch(() => {})
    expect(lines).toHaveLength(1)
    // Another cause within the interval has its own line.
    idp.setGraphFault('throttle')
    await graph.groupsOf(idp.tenantId, ERIN, { fresh: true, interactive: true }).catch(() => {})
    expect(lines.map((l) => l.obj.status)).toEqual([503, 429])
    idp.setGraphFault('down')
    await sleep(450)
    await graph.groupsOf(idp.tenantId, ERIN, { fresh: true, interactive: true }).catch(() => {})
    expect(lines.map((l) => l.obj.status)).toEqual([503, 429, 503])
    expect(lines[2]!.obj.suppressed).toBe(4)
  })
})

describe('remembered failures', () => {
  it('an interactive sign-in asks Graph again right after a failure: once Graph is back, the sign-in works', async () => {
    const { graph } = make()
    idp.setGraphFault('down')
    await expect(graph.groupsOf(idp.tenantId, ERIN, { fresh: true, interactive: true })).rejects.toThrow(/HTTP 503/)
    idp.setGraphFault(null)
    const before = graphCalls()
    expect(await graph.groupsOf(idp.tenantId, ERIN, { fresh: true, interactive: true })).toHaveLength(DEMO_USERS.erin.groups.length)
    expect(graphCalls()).toBeGreaterThan(before)
    // The answer replaces the failure for cached lookups too.
    expect(await graph.groupsOf(idp.tenantId, ERIN)).toHaveLength(DEMO_USERS.erin.groups.length)
  })

  it('a session refresh reads the groups afresh but keeps a remembered failure: a browser past its grace does not call Graph on every request', async () => {
    const { graph } = make()
    expect(await graph.groupsOf(idp.tenantId, ERIN)).toHaveLength(DEMO_USERS.erin.groups.length)
    idp.setGraphFault('down')
    // Fresh: not the cached answer, Graph is asked (and fails).
    await expect(graph.groupsOf(idp.tenantId, ERIN, { fresh: true })).rejects.toThrow(/HTTP 503/)
    const calls = graphCalls()
    for (let i = 0; i < 5; i++) await expect(graph.groupsOf(idp.tenantId, ERIN, { fresh: true })).rejects.toThrow(/HTTP 503/)
    expect(graphCalls()).toBe(calls)
    idp.setGraphFault(null)
  })

  it('lookups that are not fresh (bearer) keep a transient failure for Graph\'s Retry-After, then ask again', async () => {
    const { graph } = make({ transientFailureTtlMs: 100 })
    idp.setGraphFault('down')
    await expect(graph.groupsOf(idp.tenantId, ERIN)).rejects.toThrow(/HTTP 503/)
    idp.setGraphFault(null)
    const calls = graphCalls()
    await sleep(300)
    // Retry-After: 1 outlasts the 100 ms: still remembered, Graph is not asked.
    await expect(graph.groupsOf(idp.tenantId, ERIN)).rejects.toThrow(/HTTP 503/)
    expect(graphCalls()).toBe(calls)
    await sleep(800)
    expect(await graph.groupsOf(idp.tenantId, ERIN)).toHaveLength(DEMO_USERS.erin.groups.length)
  })

  it('a transient failure is remembered shorter than a refusal (403)', async () => {
    let stubCalls = 0
    // Graph's 503 without Retry-After: the transient TTL alone decides.
    const stub: typeof fetch = (input, init) => {
      if (!String(input).startsWith(idp.graphUrl)) return fetch(input, init)
      stubCalls++
      return Promise.resolve(new Response('{"error":{"code":"serviceNotAvailable"}}', { status: 503 }))
    }
    const outage = make({ transientFailureTtlMs: 200, failureTtlMs: 5000, fetch: stub })
    const forbidden = make({ clientId: NO_CONSENT, clientSecret: noConsentSecret, transientFailureTtlMs: 200, failureTtlMs: 5000 })
    await expect(outage.graph.groupsOf(idp.tenantId, ERIN)).rejects.toThrow(/HTTP 503/)
    await expect(forbidden.graph.groupsOf(idp.tenantId, ERIN)).rejects.toThrow(/HTTP 403/)
    expect(stubCalls).toBe(1)
    await sleep(300)
    const calls = graphCalls()
    // The 403 is still remembered: Graph is not asked.
    await expect(forbidden.graph.groupsOf(idp.tenantId, ERIN)).rejects.toThrow(/HTTP 403/)
    expect(graphCalls()).toBe(calls)
    // The 503 is not: Graph is asked again.
    await expect(outage.graph.groupsOf(idp.tenantId, ERIN)).rejects.toThrow(/HTTP 503/)
    expect(stubCalls).toBe(2)
  })
})
