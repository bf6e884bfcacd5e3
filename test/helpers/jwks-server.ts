/**
 * A small loopback token issuer for bearer tests, with keys generated at test time (never committed):
 * - Entra-shaped: v2 issuer `{authority}/{tid}/v2.0` and v1 issuer `{authority}/{tid}/`, discovery and
 *   JWKS at Entra's paths (`/{tid}/v2.0/.well-known/openid-configuration`, `/{tid}/discovery/v2.0/keys`,
 *   `/{tid}/.well-known/openid-configuration`, `/{tid}/discovery/keys`);
 * - a GitLab-CI-shaped extra issuer at `{authority}/gitlab` (`/gitlab/oauth/discovery/keys`);
 * - a Graph-shaped stand-in: client-credentials token endpoint and
 *   `/v1.0/users/{oid}/transitiveMemberOf/microsoft.graph.group` with `@odata.nextLink` paging;
 * - an "attacker" JWKS at `/attacker/keys` (for jku/x5u tests: it must never be fetched).
 * Key rotation, faults and request counters let tests prove what the proxy fetched and when.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomUUID } from 'node:crypto'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose'

export const TEST_TENANT = '3f9a1c2e-0000-4000-8000-0000000000aa'
export const OTHER_TENANT = '3f9a1c2e-0000-4000-8000-0000000000bb'
export const TEST_CLIENT = '5d2b7e10-0000-4000-8000-0000000000cc'
export const TEST_AUDIENCE = 'api://gitlab-iap-test'

export interface TestKey {
  readonly kid: string
  readonly alg: 'RS256' | 'ES256'
  readonly privateKey: CryptoKey
  readonly publicJwk: JWK
}

/** `v1-missing`: no v1 discovery at all (a stand-in provider that only speaks v2). */
export type Fault = 'down' | 'garbage' | 'slow' | 'v1-missing' | null

export interface MintOptions {
  /** Which issuer: Entra v2 (default), Entra v1, or the GitLab CI issuer. */
  readonly issuer?: 'v2' | 'v1' | 'ci' | string
  readonly key?: TestKey
  /** Protected header fields added or replacing the defaults (kid, alg, jku, jwk, crit...). */
  readonly header?: Record<string, unknown>
  /** Seconds from now; default 3600. */
  readonly expiresIn?: number
  /** Claims removed after building the default set. */
  readonly omit?: readonly string[]
}

export interface JwksServer {
  readonly authority: string
  readonly v2Issuer: string
  readonly v1Issuer: string
  readonly ciIssuer: string
  readonly graphUrl: string
  readonly counts: { jwks: number; discovery: number; attacker: number; graph: number; graphToken: number }
  /** Keys served by the JWKS endpoints; the first signs by default. */
  readonly keys: TestKey[]
  readonly attackerKey: TestKey
  newKey(alg?: 'RS256' | 'ES256', kid?: string): Promise<TestKey>
  /** A new current key; the old ones stay published only with `keepOld`. */
  rotate(options?: { keepOld?: boolean }): Promise<TestKey>
  setFault(fault: Fault): void
  /** Signs `claims` merged over a realistic default set for the chosen issuer. */
  mint(claims?: Record<string, unknown>, options?: MintOptions): Promise<string>
  /** Users' transitive groups served by the Graph stand-in. */
  setGraphGroups(oid: string, groups: string[]): void
  setGraphFault(fault: 'down' | null): void
  close(): Promise<void>
}

async function makeKey(alg: 'RS256' | 'ES256' = 'RS256', kid: string = randomUUID()): Promise<TestKey> {
  const pair = await generateKeyPair(alg, { extractable: true })
  return { kid, alg, privateKey: pair.privateKey, publicJwk: { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' } }
}

export async function startJwksServer(options: { tenantId?: string; graphClientSecret?: string } = {}): Promise<JwksServer> {
  const tid = options.tenantId ?? TEST_TENANT
  const keys: TestKey[] = [await makeKey('RS256', 'test-key-1')]
  const attackerKey = await makeKey('RS256', 'attacker-key')
  const counts = { jwks: 0, discovery: 0, attacker: 0, graph: 0, graphToken: 0 }
  const graphGroups = new Map<string, string[]>()
  let fault: Fault = null
  let graphFault: 'down' | null = null
  let authority = ''
  const graphTokens = new Set<string>()

  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body)
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  }
  const readBody = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let body = ''
      req.setEncoding('utf8')
      req.on('data', (c: string) => (body += c))
      req.on('end', () => resolve(body))
    })

  const serveFaulty = (res: ServerResponse, body: () => unknown): void => {
    if (fault === 'down') {
      res.socket?.destroy()
      return
    }
    if (fault === 'garbage') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"keys": [ this is not json')
      return
    }
    if (fault === 'slow') {
      setTimeout(() => json(res, 200, body()), 8000).unref()
      return
    }
    json(res, 200, body())
  }

  const discovery = (issuer: string, jwksUri: string) => ({
    issuer,
    jwks_uri: jwksUri,
    authorization_endpoint: `${authority}/${tid}/oauth2/v2.0/authorize`,
    token_endpoint: `${authority}/${tid}/oauth2/v2.0/token`,
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code'],
    subject_types_supported: ['pairwise'],
  })

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    const path = url.pathname
    if (path === `/${tid}/v2.0/.well-known/openid-configuration`) {
      counts.discovery++
      return serveFaulty(res, () => discovery(`${authority}/${tid}/v2.0`, `${authority}/${tid}/discovery/v2.0/keys`))
    }
    if (path === `/${tid}/.well-known/openid-configuration`) {
      counts.discovery++
      if (fault === 'v1-missing') return void res.writeHead(404).end()
      return serveFaulty(res, () => discovery(`${authority}/${tid}/`, `${authority}/${tid}/discovery/keys`))
    }
    if (path === '/gitlab/.well-known/openid-configuration') {
      counts.discovery++
      return serveFaulty(res, () => ({ issuer: `${authority}/gitlab`, jwks_uri: `${authority}/gitlab/oauth/discovery/keys` }))
    }
    if (path === `/${tid}/discovery/v2.0/keys`) {
      counts.jwks++
      // Entra's v2 document names a templated issuer on every key (https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens).
      return serveFaulty(res, () => ({ keys: keys.map((k) => ({ ...k.publicJwk, issuer: `${authority}/{tenantid}/v2.0` })) }))
    }
    if (path === `/${tid}/discovery/keys` || path === '/gitlab/oauth/discovery/keys') {
      counts.jwks++
      return serveFaulty(res, () => ({ keys: keys.map((k) => k.publicJwk) }))
    }
    if (path === '/attacker/keys') {
      counts.attacker++
      return json(res, 200, { keys: [attackerKey.publicJwk] })
    }
    if (path === `/${tid}/oauth2/v2.0/token` && req.method === 'POST') {
      counts.graphToken++
      void readBody(req).then((body) => {
        const form = new URLSearchParams(body)
        if (form.get('grant_type') !== 'client_credentials' || form.get('client_id') !== TEST_CLIENT || form.get('client_secret') !== options.graphClientSecret) {
          return json(res, 401, { error: 'invalid_client' })
        }
        if (form.get('scope') !== 'https://graph.microsoft.com/.default') return json(res, 400, { error: 'invalid_scope' })
        const token = randomUUID()
        graphTokens.add(token)
        json(res, 200, { token_type: 'Bearer', access_token: token, expires_in: 3599 })
      })
      return
    }
    const graph = /^\/graph\/v1\.0\/users\/([^/]+)\/transitiveMemberOf\/microsoft\.graph\.group$/.exec(path)
    if (graph) {
      counts.graph++
      if (graphFault === 'down') return json(res, 503, { error: { code: 'serviceUnavailable' } })
      const auth = req.headers.authorization ?? ''
      if (!auth.startsWith('Bearer ') || !graphTokens.has(auth.slice(7))) return json(res, 401, { error: { code: 'InvalidAuthenticationToken' } })
      if (req.headers.consistencylevel !== 'eventual') return json(res, 400, { error: { code: 'Request_UnsupportedQuery' } })
      const all = graphGroups.get(decodeURIComponent(graph[1]!))
      if (!all) return json(res, 404, { error: { code: 'Request_ResourceNotFound' } })
      // Pages of 100 regardless of $top, as Graph may return fewer than asked.
      const skip = Number(url.searchParams.get('$skiptoken') ?? 0)
      const page = all.slice(skip, skip + 100)
      const next = skip + 100 < all.length ? `${authority}${path}?$select=id&$top=999&$skiptoken=${skip + 100}` : undefined
      return json(res, 200, { value: page.map((id) => ({ '@odata.type': '#microsoft.graph.group', id })), ...(next ? { '@odata.nextLink': next } : {}) })
    }
    json(res, 404, { error: 'not found' })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  authority = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const v2Issuer = `${authority}/${tid}/v2.0`
  const v1Issuer = `${authority}/${tid}/`
  const ciIssuer = `${authority}/gitlab`

  function defaults(issuer: string): Record<string, unknown> {
    const oid = '7a1d0c55-0000-4000-8000-000000000001'
    if (issuer === ciIssuer) {
      return {
        iss: ciIssuer, aud: 'https://gitlab.test', sub: 'project_path:platform/infra:ref_type:branch:ref:main',
        namespace_id: '72', namespace_path: 'platform', project_id: '20', project_path: 'platform/infra',
        user_id: '1', user_login: 'ada', user_email: 'ada@example.test', pipeline_id: '574', pipeline_source: 'push',
        job_id: '302', ref: 'main', ref_type: 'branch', ref_path: 'refs/heads/main', ref_protected: 'true',
        runner_id: 17, jti: randomUUID(),
      }
    }
    if (issuer === v1Issuer) {
      return {
        iss: v1Issuer, aud: TEST_AUDIENCE, tid, oid, sub: 'v1-sub', upn: 'ada@example.test', unique_name: 'ada@example.test',
        name: 'Ada Lovelace', appid: TEST_CLIENT, appidacr: '0', scp: 'access_as_user', ver: '1.0', groups: ['g-eng'], uti: randomUUID(),
      }
    }
    return {
      iss: issuer, aud: TEST_AUDIENCE, tid, oid, sub: 'v2-sub', preferred_username: 'ada@example.test', email: 'ada@example.test',
      name: 'Ada Lovelace', azp: TEST_CLIENT, azpacr: '0', scp: 'access_as_user', ver: '2.0', groups: ['g-eng'], roles: ['GitLab.User'],
      // Unique per token (Entra's uti): RS256 is deterministic, and two identical tokens would share a cache entry.
      uti: randomUUID(),
    }
  }

  return {
    authority,
    v2Issuer,
    v1Issuer,
    ciIssuer,
    graphUrl: `${authority}/graph`,
    counts,
    keys,
    attackerKey,
    newKey: makeKey,
    async rotate({ keepOld = false } = {}) {
      const key = await makeKey('RS256')
      if (!keepOld) keys.length = 0
      keys.unshift(key)
      return key
    },
    setFault(f) {
      fault = f
    },
    async mint(claims = {}, opts = {}) {
      const issuer = opts.issuer === 'v1' ? v1Issuer : opts.issuer === 'ci' ? ciIssuer : opts.issuer === undefined || opts.issuer === 'v2' ? v2Issuer : opts.issuer
      const key = opts.key ?? keys[0]!
      const now = Math.floor(Date.now() / 1000)
      const payload: Record<string, unknown> = { ...defaults(issuer), iat: now, nbf: now - 5, exp: now + (opts.expiresIn ?? 3600), ...claims }
      for (const name of opts.omit ?? []) delete payload[name]
      return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...opts.header } as { alg: string }).sign(key.privateKey)
    },
    setGraphGroups(oid, groups) {
      graphGroups.set(oid, groups)
    },
    setGraphFault(f) {
      graphFault = f
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
