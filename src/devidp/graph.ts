/**
 * A Microsoft-Graph-shaped server for group look-ups (the overage path):
 * - `GET /v1.0/users/{id|upn}/transitiveMemberOf[/microsoft.graph.group]` and `/memberOf`, with `$select`,
 *   `$top` (default page 100, max 999) and paging through `@odata.nextLink`; casts need `ConsistencyLevel: eventual`;
 * - `POST /v1.0/users/{id}/getMemberGroups` and `getMemberObjects` `{ securityEnabledOnly }` → `{ value: [ids] }`;
 * - the same under `/v1.0/me/...` for delegated (user) tokens; `GET /v1.0/users/{id}`;
 * - `/{tenant}/users/{oid}/getMemberObjects`: the AAD-Graph-like `_claim_sources` endpoint, which clients must
 *   not call (Entra says so); it answers 410 and is counted so tests can prove nobody followed it.
 * Every call needs `Authorization: Bearer` with a token this dev IdP issued for Graph, verified with jose.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createLocalJWKSet, jwtVerify, type JWTPayload } from 'jose'
import { v1IssuerOf, v2IssuerOf, type Tenant } from './claims.ts'
import { GRAPH_RESOURCE, type DevUser, type Directory } from './directory.ts'
import type { PublicJwk } from './keys.ts'

/** Faults the Graph-shaped server can simulate. */
export type GraphFault = 'down' | 'slow' | 'throttle' | null

export interface GraphDeps {
  readonly tenant: Tenant
  readonly directory: Directory
  readonly jwks: () => { keys: PublicJwk[] }
  readonly fault: () => GraphFault
  readonly delay: () => Promise<void>
  readonly count: (what: 'graph' | 'claimSource') => void
}

const DEFAULT_PAGE = 100
const MAX_PAGE = 999
const READ_ROLES = ['GroupMember.Read.All', 'Group.Read.All', 'Directory.Read.All', 'User.Read.All']
const READ_OTHER_SCOPES = ['GroupMember.Read.All', 'Group.Read.All', 'Directory.Read.All', 'User.Read.All', 'User.ReadBasic.All']

type Route =
  | { kind: 'members'; who: string; cast: boolean; transitive: boolean }
  | { kind: 'member-ids'; who: string; objects: boolean }
  | { kind: 'user'; who: string }
  | { kind: 'claim-source' }

/** Matches a Graph path; `who` is `me` or a user id/UPN (still percent-encoded segments are decoded). */
export function matchGraphRoute(method: string, pathname: string, tenantId: string): Route | undefined {
  if (new RegExp(`^/${tenantId}/users/[^/]+/getMemberObjects$`, 'i').test(pathname)) return { kind: 'claim-source' }
  const m = /^\/v1\.0\/(?:me|users\/([^/]+))(?:\/([A-Za-z]+)(\/microsoft\.graph\.group)?)?\/?$/.exec(pathname)
  if (!m) return undefined
  const who = m[1] === undefined ? 'me' : decodeURIComponent(m[1])
  const action = m[2]
  if (!action && method === 'GET') return { kind: 'user', who }
  if ((action === 'transitiveMemberOf' || action === 'memberOf') && method === 'GET') {
    return { kind: 'members', who, cast: m[3] !== undefined, transitive: action === 'transitiveMemberOf' }
  }
  if ((action === 'getMemberGroups' || action === 'getMemberObjects') && method === 'POST' && !m[3]) {
    return { kind: 'member-ids', who, objects: action === 'getMemberObjects' }
  }
  return undefined
}

/** A skiptoken is opaque to clients; here it is the offset, base64url-encoded. */
const encodeSkip = (offset: number) => Buffer.from(`o:${offset}`).toString('base64url')
function decodeSkip(token: string | null): number | undefined {
  if (token === null) return 0
  const m = /^o:(\d+)$/.exec(Buffer.from(token, 'base64url').toString('utf8'))
  return m ? Number(m[1]) : undefined
}

/** One page of a user's memberships plus the next link, as Graph answers it. */
export function membershipPage(deps: Pick<GraphDeps, 'directory'>, user: DevUser, url: URL, top: number, offset: number): Record<string, unknown> {
  const select = url.searchParams.get('$select')?.split(',').map((s) => s.trim()).filter(Boolean)
  const slice = user.groups.slice(offset, offset + top)
  const value = slice.map((id) => {
    const full: Record<string, unknown> = { '@odata.type': '#microsoft.graph.group', id, displayName: deps.directory.groupName(id), securityEnabled: true, mailEnabled: false }
    return select ? Object.fromEntries(Object.entries(full).filter(([k]) => k === '@odata.type' || select.includes(k))) : full
  })
  const body: Record<string, unknown> = { '@odata.context': `${url.origin}/v1.0/$metadata#directoryObjects`, value }
  if (offset + top < user.groups.length) {
    // Graph writes `$` literally in next links; keep every query option but the old skiptoken.
    const kept = [...url.searchParams].filter(([k]) => k !== '$skiptoken').map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    body['@odata.nextLink'] = `${url.origin}${url.pathname}?${[...kept, `$skiptoken=${encodeSkip(offset + top)}`].join('&')}`
  }
  return body
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; odata.metadata=minimal', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

function graphError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { error: { code, message, innerError: { date: new Date().toISOString(), 'request-id': crypto.randomUUID() } } }, headers)
}

async function readJson(req: IncomingMessage, limit = 64 * 1024): Promise<unknown> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > limit) throw new Error('body too large')
    chunks.push(chunk as Buffer)
  }
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {}
}

/** Verifies a Graph bearer token: signature with this IdP's keys, Graph audience, tenant, expiry. */
async function verifyGraphToken(deps: GraphDeps, authorization: string | undefined): Promise<JWTPayload | undefined> {
  const m = /^Bearer ([A-Za-z0-9_.-]+)$/.exec(authorization ?? '')
  if (!m?.[1]) return undefined
  try {
    const { payload } = await jwtVerify(m[1], createLocalJWKSet(deps.jwks()), {
      issuer: [v1IssuerOf(deps.tenant), v2IssuerOf(deps.tenant)],
      audience: [GRAPH_RESOURCE.identifier, `${GRAPH_RESOURCE.identifier}/`, GRAPH_RESOURCE.appId as string],
      algorithms: ['RS256'],
      requiredClaims: ['exp', 'tid', 'oid'],
      clockTolerance: 60,
    })
    return payload.tid === deps.tenant.tenantId ? payload : undefined
  } catch {
    return undefined
  }
}

/** Whether the caller may read `target`'s memberships: app tokens need a read role, users may read their own. */
function allowed(payload: JWTPayload, target: DevUser): boolean {
  const roles = Array.isArray(payload.roles) ? payload.roles.map(String) : []
  const scp = typeof payload.scp === 'string' ? payload.scp.split(' ') : []
  if (payload.idtyp === 'app' || scp.length === 0) return roles.some((r) => READ_ROLES.includes(r))
  return payload.oid === target.oid || scp.some((s) => READ_OTHER_SCOPES.includes(s))
}

/** Returns the request handler of the Graph-shaped server. */
export function createGraphHandler(deps: GraphDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? '127.0.0.1'}`)
    const route = matchGraphRoute(req.method ?? 'GET', url.pathname, deps.tenant.tenantId)
    if (route?.kind === 'claim-source') {
      deps.count('claimSource')
      return graphError(res, 410, 'Deprecated', 'Azure AD Graph is retired: call Microsoft Graph (getMemberGroups / transitiveMemberOf) instead.')
    }
    deps.count('graph')
    const fault = deps.fault()
    if (fault === 'down') return graphError(res, 503, 'serviceNotAvailable', 'The service is temporarily unavailable.', { 'retry-after': '1' })
    if (fault === 'throttle') return graphError(res, 429, 'TooManyRequests', 'Too many requests.', { 'retry-after': '1' })
    if (fault === 'slow') await deps.delay()
    if (!route) return graphError(res, 400, 'BadRequest', `Resource not found for the segment '${url.pathname.split('/').pop() ?? ''}'.`)

    const payload = await verifyGraphToken(deps, req.headers.authorization)
    if (!payload) {
      return graphError(res, 401, 'InvalidAuthenticationToken', 'Access token is empty, invalid or not for Microsoft Graph.', { 'www-authenticate': 'Bearer realm=""' })
    }
    const who = route.who === 'me' ? String(payload.oid) : route.who
    if (route.who === 'me' && payload.idtyp === 'app') return graphError(res, 400, 'BadRequest', '/me request is only valid with delegated authentication flow.')
    const user = deps.directory.getUser(who)
    if (!user || (user.oid.toLowerCase() !== who.toLowerCase() && user.upn.toLowerCase() !== who.toLowerCase())) {
      return graphError(res, 404, 'Request_ResourceNotFound', `Resource '${who}' does not exist or one of its queried reference-property objects are not present.`)
    }
    if (!allowed(payload, user)) return graphError(res, 403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.')

    if (route.kind === 'user') {
      return sendJson(res, 200, { id: user.oid, displayName: user.name, userPrincipalName: user.upn, mail: user.email ?? null, accountEnabled: !user.disabled })
    }
    if (route.kind === 'member-ids') {
      let body: unknown
      try {
        body = await readJson(req)
      } catch {
        return graphError(res, 400, 'BadRequest', 'Invalid JSON body.')
      }
      if (!body || typeof body !== 'object' || typeof (body as { securityEnabledOnly?: unknown }).securityEnabledOnly !== 'boolean') {
        return graphError(res, 400, 'Request_BadRequest', "The parameter 'securityEnabledOnly' is required and must be a boolean.")
      }
      return sendJson(res, 200, { '@odata.context': `${url.origin}/v1.0/$metadata#Collection(Edm.String)`, value: [...user.groups] })
    }
    // members: casts and other advanced queries need ConsistencyLevel: eventual
    if (route.cast && req.headers.consistencylevel !== 'eventual') {
      return graphError(res, 400, 'Request_UnsupportedQuery', 'OData casts on this resource need the ConsistencyLevel: eventual header.')
    }
    const topText = url.searchParams.get('$top')
    const top = topText === null ? DEFAULT_PAGE : Number(topText)
    if (!Number.isInteger(top) || top < 1 || top > MAX_PAGE) return graphError(res, 400, 'Request_BadRequest', `Invalid page size specified: '${topText}'. Must be between 1 and ${MAX_PAGE} inclusive.`)
    const offset = decodeSkip(url.searchParams.get('$skiptoken'))
    if (offset === undefined) return graphError(res, 400, 'Directory_ExpiredPageToken', 'The specified page token value has expired or is invalid.')
    return sendJson(res, 200, membershipPage(deps, user, url, top, offset))
  }
  return (req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) graphError(res, 500, 'generalException', 'An unexpected error occurred.')
      else res.destroy()
    })
  }
}
