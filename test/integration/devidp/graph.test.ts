// The Graph-shaped server: paging through the overage user's 250 groups, getMemberGroups, token checks, faults.
import { generateKeyPairSync } from 'node:crypto'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { decodeJwt } from 'jose'
import { createDemoClientSecret, DEMO_GROUPS, DEMO_USERS, startDevIdp, type DevIdp } from '../../../src/devidp/index.ts'

const READER_ID = '9ea0e200-0000-4000-8000-00000009ea0e'
const NOBODY_ID = '90b0d100-0000-4000-8000-0000000090b0'
const readerSecret = createDemoClientSecret()
const nobodySecret = createDemoClientSecret()
let idp: DevIdp
let appToken: string

interface Page {
  value: { id: string; '@odata.type': string; displayName?: string }[]
  '@odata.nextLink'?: string
  error?: { code: string }
}

async function graph(path: string, init: RequestInit & { token?: string } = {}): Promise<{ status: number; body: Page; headers: Headers }> {
  const { token = appToken, ...rest } = init
  const url = path.startsWith('http') ? path : `${idp.graphUrl}${path}`
  const res = await fetch(url, { ...rest, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(rest.headers as Record<string, string>) } })
  return { status: res.status, body: (await res.json()) as Page, headers: res.headers }
}

beforeAll(async () => {
  idp = await startDevIdp({
    faultDelayMs: 300,
    clients: [
      { clientId: READER_ID, clientSecret: readerSecret },
      { clientId: NOBODY_ID, clientSecret: nobodySecret, graphRoles: [] },
    ],
  })
  appToken = await idp.clientCredentialsToken({ clientId: READER_ID, clientSecret: readerSecret, scope: 'https://graph.microsoft.com/.default' })
})

afterEach(() => {
  idp.setGraphFault(null)
})

afterAll(async () => {
  await idp?.close()
})

describe('transitiveMemberOf', () => {
  it('pages through all 250 groups of the overage user with @odata.nextLink (default page 100)', async () => {
    idp.resetStats()
    const erin = DEMO_USERS.erin
    const ids: string[] = []
    const pageSizes: number[] = []
    let next: string | undefined = `/v1.0/users/${erin.oid}/transitiveMemberOf?$select=id`
    while (next) {
      const { status, body } = await graph(next)
      expect(status).toBe(200)
      pageSizes.push(body.value.length)
      ids.push(...body.value.map((g) => g.id))
      expect(body.value.every((g) => g['@odata.type'] === '#microsoft.graph.group' && g.displayName === undefined)).toBe(true)
      next = body['@odata.nextLink']
    }
    expect(pageSizes).toEqual([100, 100, 50])
    expect(ids).toEqual([...erin.groups])
    expect(ids).toContain(DEMO_GROUPS.engineering.id)
    expect(idp.stats().graphRequests).toBe(3)
  })

  it('honours $top (max 999) and keeps it in the next link', async () => {
    const all = await graph(`/v1.0/users/${DEMO_USERS.erin.oid}/transitiveMemberOf?$top=999`)
    expect(all.body.value).toHaveLength(250)
    expect(all.body['@odata.nextLink']).toBeUndefined()
    const small = await graph(`/v1.0/users/${DEMO_USERS.erin.oid}/transitiveMemberOf?$top=120`)
    expect(small.body['@odata.nextLink']).toMatch(/\$top=120&\$skiptoken=/)
    expect((await graph(`/v1.0/users/${DEMO_USERS.erin.oid}/transitiveMemberOf?$top=1000`)).status).toBe(400)
  })

  it('needs ConsistencyLevel: eventual for the microsoft.graph.group cast', async () => {
    const path = `/v1.0/users/${DEMO_USERS.alice.oid}/transitiveMemberOf/microsoft.graph.group`
    const refused = await graph(path)
    expect(refused.status).toBe(400)
    expect(refused.body.error?.code).toBe('Request_UnsupportedQuery')
    const ok = await graph(path, { headers: { consistencylevel: 'eventual' } })
    expect(ok.body.value.map((g) => [g.id, g.displayName])).toEqual([[DEMO_GROUPS.admins.id, 'GitLab Admins'], [DEMO_GROUPS.engineering.id, 'Engineering']])
  })

  it('finds users by UPN and answers 404 for unknown ones', async () => {
    expect((await graph(`/v1.0/users/${encodeURIComponent(DEMO_USERS.bob.upn)}/transitiveMemberOf`)).body.value.map((g) => g.id)).toEqual([DEMO_GROUPS.engineering.id])
    const missing = await graph('/v1.0/users/00000000-0000-4000-8000-000000000000/transitiveMemberOf')
    expect(missing.status).toBe(404)
    expect(missing.body.error?.code).toBe('Request_ResourceNotFound')
  })
})

describe('getMemberGroups', () => {
  it('returns every group id in one answer', async () => {
    const res = await graph(`/v1.0/users/${DEMO_USERS.erin.oid}/getMemberGroups`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ securityEnabledOnly: true }),
    })
    expect(res.status).toBe(200)
    expect(res.body.value).toEqual([...DEMO_USERS.erin.groups])
  })

  it('requires securityEnabledOnly', async () => {
    const res = await graph(`/v1.0/users/${DEMO_USERS.erin.oid}/getMemberGroups`, { method: 'POST', body: '{}' })
    expect(res.status).toBe(400)
  })
})

describe('authorization', () => {
  it.each([
    ['no token', () => ''],
    ['a token for another audience', () => idp.mintAccessToken({ app: { appId: READER_ID, roles: ['GroupMember.Read.All'] }, audience: 'api://gitlab-iap' })],
    ['an expired Graph token', () => idp.mintAccessToken({ app: { appId: READER_ID, roles: ['GroupMember.Read.All'] }, audience: 'https://graph.microsoft.com', version: 1, exp: 1000, iat: 900 })],
    ['a Graph token signed by a foreign key', () => idp.mintAccessToken({ app: { appId: READER_ID, roles: ['GroupMember.Read.All'] }, audience: 'https://graph.microsoft.com', version: 1, signingKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey })],
    ['a Graph token from another tenant', () => idp.mintAccessToken({ app: { appId: READER_ID, roles: ['GroupMember.Read.All'] }, audience: 'https://graph.microsoft.com', version: 1, claims: { tid: '11111111-1111-4111-8111-111111111111' } })],
  ])('401 for %s', async (_name, make) => {
    const res = await graph(`/v1.0/users/${DEMO_USERS.alice.oid}/transitiveMemberOf`, { token: make() })
    expect(res.status).toBe(401)
    expect(res.body.error?.code).toBe('InvalidAuthenticationToken')
  })

  it('403 for an app without a directory read permission', async () => {
    const weak = await idp.clientCredentialsToken({ clientId: NOBODY_ID, clientSecret: nobodySecret, scope: 'https://graph.microsoft.com/.default' })
    expect(decodeJwt(weak)).not.toHaveProperty('roles')
    const res = await graph(`/v1.0/users/${DEMO_USERS.alice.oid}/transitiveMemberOf`, { token: weak })
    expect(res.status).toBe(403)
    expect(res.body.error?.code).toBe('Authorization_RequestDenied')
  })

  it('lets a delegated token read /me, but not another user without GroupMember.Read.All', async () => {
    const bobToken = idp.mintAccessToken({ user: 'bob', audience: 'https://graph.microsoft.com', version: 1, scp: 'User.Read' })
    const me = await graph('/v1.0/me/getMemberGroups', { token: bobToken, method: 'POST', body: JSON.stringify({ securityEnabledOnly: false }) })
    expect(me.body.value).toEqual([DEMO_GROUPS.engineering.id])
    expect((await graph(`/v1.0/users/${DEMO_USERS.alice.oid}/transitiveMemberOf`, { token: bobToken })).status).toBe(403)
  })
})

describe('faults and the overage claim source', () => {
  it('setGraphFault: down → 503, throttle → 429 with Retry-After, slow → delayed, null → healthy', async () => {
    const path = `/v1.0/users/${DEMO_USERS.alice.oid}/transitiveMemberOf`
    idp.setGraphFault('down')
    expect((await graph(path)).status).toBe(503)
    idp.setGraphFault('throttle')
    const throttled = await graph(path)
    expect(throttled.status).toBe(429)
    expect(throttled.headers.get('retry-after')).toBe('1')
    idp.setGraphFault('slow')
    const started = Date.now()
    expect((await graph(path)).status).toBe(200)
    expect(Date.now() - started).toBeGreaterThanOrEqual(280)
    idp.setGraphFault(null)
    expect((await graph(path)).status).toBe(200)
  })

  it('the _claim_sources endpoint of an overage token is local, refuses service and is counted apart', async () => {
    idp.resetStats()
    const claims = decodeJwt(idp.mintAccessToken({ user: 'erin' }))
    const endpoint = (claims._claim_sources as { src1: { endpoint: string } }).src1.endpoint
    expect(new URL(endpoint).origin).toBe(idp.graphUrl)
    expect((await fetch(endpoint, { method: 'POST' })).status).toBe(410)
    expect(idp.stats()).toMatchObject({ claimSourceRequests: 1, graphRequests: 0 })
  })
})
