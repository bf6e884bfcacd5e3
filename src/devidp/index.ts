/**
 * Development OpenID provider shaped like Microsoft Entra ID, plus a Microsoft-Graph-shaped server.
 * The stand-in for Microsoft in tests and in `gitlab-iap demo`; never used by `serve`. Loopback only.
 *
 * Shape (authority = `http://127.0.0.1:PORT`, tenant `tid` in the path, as in Entra):
 * - v2 issuer `${authority}/${tid}/v2.0`, discovery `${issuer}/.well-known/openid-configuration`,
 *   JWKS `${authority}/${tid}/discovery/v2.0/keys` (every key carries `issuer`, as Entra's do);
 * - v1 issuer `${authority}/${tid}/` (the stand-in for `https://sts.windows.net/{tid}/`), discovery
 *   `${authority}/${tid}/.well-known/openid-configuration`, JWKS `${authority}/${tid}/discovery/keys` (same keys);
 * - `/${tid}/oauth2/v2.0/authorize`, `/token`, `/logout` (end_session), served by a real `oidc-provider`:
 *   authorization code + PKCE, refresh tokens (`offline_access`; fail with `invalid_grant` once the user is
 *   disabled; groups re-read on every refresh), RP-initiated logout (`post_logout_redirect_uri`,
 *   `id_token_hint`, `logout_hint`), client credentials (app-only tokens), a login form (`input name="login"`,
 *   any password) and no consent screen;
 * - Entra v2 claims (`tid`, `oid`, pairwise `sub`, `preferred_username`, `upn`, `name`, `email`, `groups`
 *   or the overage markers above 200 groups, `roles`, `ver`, `azp`, `scp`, `idtyp: "app"`, `sid`, `login_hint`);
 *   access tokens are RS256 JWTs for resources named the Entra way (`api://gitlab-iap/access_as_user`,
 *   `https://graph.microsoft.com/.default`); Graph tokens are v1-shaped, as Microsoft's are;
 * - `mintAccessToken`/`mintIdToken` sign tokens directly with the IdP's keys for attack tests;
 *   `rotateKeys`, `setFault`, `setGraphFault` and `stats` drive resilience tests;
 * - a Graph-shaped server at `graphUrl` (see graph.ts) answers group look-ups for the overage path.
 *
 * @example
 * const idp = await startDevIdp({ clients: [{ clientId: DEMO_CLIENT_ID, clientSecret, redirectUris: ['http://127.0.0.1:8080/-/iap/callback'] }] })
 * const token = idp.mintAccessToken({ user: 'alice', audience: 'api://gitlab-iap', version: 1 })
 * await idp.close()
 */
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type Provider from 'oidc-provider'
import { v1IssuerOf, v2IssuerOf, type Tenant } from './claims.ts'
import {
  createDirectory, DEMO_API_AUDIENCE, DEMO_API_RESOURCE, DEMO_CLIENT_ID, DEMO_GROUP_LIST, DEMO_TENANT_ID, DEMO_USERS,
  GRAPH_RESOURCE, GROUP_OVERAGE_LIMIT, type DevClient, type DevGroup, type DevResource, type DevUser,
} from './directory.ts'
import { sendJson, serveWithFault, withoutIdToken, type EndpointFault, type FaultTarget } from './faults.ts'
import { browseIdp, signIn, type BrowseOptions, type NextHop } from './fetch-browser.ts'
import { createGraphHandler, type GraphFault } from './graph.ts'
import { handleInteraction } from './interaction.ts'
import { createKeyring, generateSigningKey, publicJwks, type PublicJwk } from './keys.ts'
import { createMemoryAdapter } from './memory-adapter.ts'
import { mintAccessToken, mintIdToken, type MintAccessTokenOptions, type MintIdTokenOptions } from './mint.ts'
import { createProvider, ROUTES, type DevIdpTtl } from './provider.ts'

export * from './directory.ts'
export { createCookieJar, signIn, signOut, browseIdp, parseForm, type CookieJar, type NextHop, type BrowseOptions } from './fetch-browser.ts'
export type { EndpointFault, FaultTarget } from './faults.ts'
export type { GraphFault } from './graph.ts'
export type { MintAccessTokenOptions, MintIdTokenOptions, MintCommonOptions } from './mint.ts'
export type { PublicJwk } from './keys.ts'
export { loginHintOf, pairwiseSub, servicePrincipalOidOf, v1IssuerOf, v2IssuerOf } from './claims.ts'

export interface DevIdpOptions {
  /** Port of the IdP; 0 (default) picks a free one. Always bound to 127.0.0.1. */
  readonly port?: number
  /** Port of the Graph-shaped server; 0 (default) picks a free one. */
  readonly graphPort?: number
  /** Default `DEMO_TENANT_ID`. */
  readonly tenantId?: string
  /** Default: the demo users (alice, bob, carol, dave, erin). */
  readonly users?: readonly DevUser[]
  /** Group names for Graph answers; default the demo groups. */
  readonly groups?: readonly DevGroup[]
  /** App registrations (more with `registerClient`). */
  readonly clients?: readonly DevClient[]
  /**
   * APIs tokens can be issued for; default `api://gitlab-iap` (v2, aud = DEMO_CLIENT_ID). Graph (v1 tokens) is
   * always added, and every registered client is an API too (`{clientId}/.default` → v2 token, aud = clientId).
   */
  readonly resources?: readonly DevResource[]
  /** `aud` of minted access tokens when none is given; default `api://gitlab-iap`. */
  readonly defaultAudience?: string
  /** `azp` of minted user tokens and `aud` of minted ID tokens; default `DEMO_CLIENT_ID`. */
  readonly defaultClientId?: string
  readonly ttl?: Partial<DevIdpTtl>
  /** Delay of the `slow` faults; default 6000 ms (longer than typical 5 s client timeouts). */
  readonly faultDelayMs?: number
  /** Groups above this count become an overage; default 200 (Entra's JWT limit). */
  readonly overageLimit?: number
  /** List the directory's users on the login page; default true. */
  readonly showUsersOnLoginPage?: boolean
}

export interface DevIdpStats {
  /** v1 and v2 discovery documents served (including faulted answers). */
  readonly discoveryRequests: number
  /** v1 and v2 keys documents served (including faulted answers). */
  readonly jwksRequests: number
  readonly tokenRequests: number
  readonly authorizeRequests: number
  readonly logoutRequests: number
  /** Requests to the Graph-shaped server. */
  readonly graphRequests: number
  /** Calls to the `_claim_sources` endpoint of overage tokens, which nobody should follow. */
  readonly claimSourceRequests: number
}

/** What the last end_session request (GET query) carried; no token values are kept. */
export interface LogoutRecord {
  readonly hasIdTokenHint: boolean
  readonly logoutHint?: string
  readonly postLogoutRedirectUri?: string
  readonly clientId?: string
  readonly state?: string
}

export interface DevIdp {
  /** `http://127.0.0.1:PORT`: the `entra.authority` to configure (the tenant is appended). */
  readonly authority: string
  readonly tenantId: string
  /** v2 issuer `${authority}/${tenantId}/v2.0`. */
  readonly issuer: string
  /** v1 issuer `${authority}/${tenantId}/`. */
  readonly v1Issuer: string
  readonly discoveryUrl: string
  readonly v1DiscoveryUrl: string
  readonly jwksUri: string
  readonly v1JwksUri: string
  readonly authorizationEndpoint: string
  readonly tokenEndpoint: string
  readonly endSessionEndpoint: string
  /** Base URL of the Graph-shaped server (`entra.graphUrl`). */
  readonly graphUrl: string
  readonly defaultAudience: string
  readonly defaultClientId: string
  /** Adds or replaces an app registration. */
  registerClient(client: DevClient): void
  upsertUser(user: DevUser): DevUser
  /** Changes a user (e.g. `{ groups: [...] }`, `{ disabled: true }`); takes effect at the next sign-in or refresh. */
  updateUser(oid: string, patch: Partial<Omit<DevUser, 'oid'>>): DevUser
  /** Finds a user by oid, UPN, email or UPN local part. */
  getUser(idOrLogin: string): DevUser | undefined
  listUsers(): DevUser[]
  mintAccessToken(options: MintAccessTokenOptions): string
  mintIdToken(options: MintIdTokenOptions): string
  /** Adds a new current signing key; the JWKS then serves it (and the old ones only with `keepOld`). */
  rotateKeys(options?: { keepOld?: boolean }): Promise<{ kid: string; previousKid: string }>
  currentKid(): string
  /** The public keys now served. */
  jwks(): { keys: PublicJwk[] }
  /** Makes discovery and/or JWKS (or the token endpoint) misbehave; `null` heals. */
  setFault(fault: EndpointFault, target?: FaultTarget): void
  setGraphFault(fault: GraphFault): void
  stats(): DevIdpStats
  resetStats(): void
  lastLogout(): LogoutRecord | undefined
  /** Gets an app-only token through the real token endpoint (client credentials). */
  clientCredentialsToken(input: { clientId: string; clientSecret: string; scope: string }): Promise<string>
  /** Fetch-driven sign-in from an authorization URL; returns the redirect back to the client (not followed). */
  signIn(authorizeUrl: string, login: string, options?: Omit<BrowseOptions, 'login'>): Promise<NextHop>
  /** Fetch-driven RP-initiated logout from an end_session URL; returns the post-logout redirect or final page. */
  signOut(endSessionUrl: string, options?: Omit<BrowseOptions, 'login'>): Promise<NextHop | { url: string; status: number; html: string }>
  /** Unexpected provider errors seen so far (bugs, not OAuth errors). */
  serverErrors(): readonly unknown[]
  close(): Promise<void>
}

const HOST = '127.0.0.1'

/** Entra spellings (`/oauth2/authorize`...) mapped to the provider's v2 routes. */
const V1_ALIASES: Readonly<Record<string, string>> = {
  '/oauth2/authorize': ROUTES.authorization,
  '/oauth2/token': ROUTES.token,
  '/oauth2/logout': ROUTES.end_session,
}

/**
 * Authorize parameters adjusted to what Entra does with them: `offline_access` yields a refresh token
 * without `prompt=consent` (oidc-provider drops it otherwise; consent is automatic here), and
 * `select_account` acts as `login`.
 */
export function entraAuthorizeQuery(params: URLSearchParams): URLSearchParams {
  const out = new URLSearchParams(params)
  const prompts = new Set((out.get('prompt') ?? '').split(' ').filter(Boolean))
  if (prompts.delete('select_account')) prompts.add('login')
  const scopes = (out.get('scope') ?? '').split(' ')
  if (scopes.includes('offline_access') && !prompts.has('none')) prompts.add('consent')
  if (prompts.size) out.set('prompt', [...prompts].join(' '))
  return out
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, HOST, () => {
      server.off('error', reject)
      resolve((server.address() as AddressInfo).port)
    })
  })
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

/** Starts the dev IdP and its Graph-shaped server on loopback. */
export async function startDevIdp(options: DevIdpOptions = {}): Promise<DevIdp> {
  const tenantId = options.tenantId ?? DEMO_TENANT_ID
  const directory = createDirectory(options.users ?? Object.values(DEMO_USERS), options.groups ?? DEMO_GROUP_LIST)
  const resources = [...(options.resources ?? [DEMO_API_RESOURCE])]
  if (!resources.some((r) => r.identifier === GRAPH_RESOURCE.identifier)) resources.push(GRAPH_RESOURCE)
  const ttl: DevIdpTtl = { accessTokenSeconds: 3900, idTokenSeconds: 3600, refreshTokenSeconds: 86400, clientCredentialsSeconds: 3599, ...options.ttl }
  const overageLimit = options.overageLimit ?? GROUP_OVERAGE_LIMIT
  const faultDelayMs = options.faultDelayMs ?? 6000
  const clients = new Map<string, DevClient>((options.clients ?? []).map((c) => [c.clientId, c]))
  const adapter = createMemoryAdapter()
  const cookieKeys = [randomBytes(32).toString('base64url')]
  // Lets the IdP read its own provider-made discovery document without counting or faulting it.
  const bypassToken = randomBytes(24).toString('base64url')
  const closing = new AbortController()
  const errors: unknown[] = []

  const counters = { discoveryRequests: 0, jwksRequests: 0, tokenRequests: 0, authorizeRequests: 0, logoutRequests: 0, graphRequests: 0, claimSourceRequests: 0 }
  const faults: { discovery: EndpointFault; jwks: EndpointFault; token: EndpointFault; graph: GraphFault } = { discovery: null, jwks: null, token: null, graph: null }
  let lastLogout: LogoutRecord | undefined
  const delay = () => sleep(faultDelayMs, undefined, { signal: closing.signal }).catch(() => undefined)

  const server = createServer()
  const graphServer = createServer()
  const [firstKey, port, graphPort] = await Promise.all([generateSigningKey(), listen(server, options.port ?? 0), listen(graphServer, options.graphPort ?? 0)])
  const keyring = createKeyring(firstKey)
  const authority = `http://${HOST}:${port}`
  const tenant: Tenant = { authority, tenantId, graphUrl: `http://${HOST}:${graphPort}` }
  const issuer = v2IssuerOf(tenant)
  const v1Issuer = v1IssuerOf(tenant)
  const prefix = `/${tenantId}`

  let provider: Provider
  let callback: (req: IncomingMessage, res: ServerResponse) => void
  const rebuild = () => {
    provider = createProvider({
      tenant, keyring, directory, resources, adapter, cookieKeys, ttl, overageLimit,
      clients: [...clients.values()],
      onServerError: (err) => {
        errors.push(err)
        process.stderr.write(`devidp: provider error: ${err instanceof Error ? err.message : String(err)}\n`)
      },
    })
    callback = provider.callback()
  }
  rebuild()

  const toProvider = (req: IncomingMessage, res: ServerResponse, route: string, search: string) => {
    // oidc-provider derives its mount path from originalUrl minus url: mounting it at /{tenant}.
    Object.assign(req, { originalUrl: `${prefix}${route}${search}`, url: `${route}${search}` })
    callback(req, res)
  }

  const interactionDeps = { tenantId, directory, provider: () => provider, showUsers: options.showUsersOnLoginPage ?? true }
  let v2Document: Record<string, unknown> = {}
  let v1Document: Record<string, unknown> = {}

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', authority)
    if (!url.pathname.startsWith(`${prefix}/`)) {
      return sendJson(res, 400, { error: 'invalid_tenant', error_description: `AADSTS90002: Tenant '${url.pathname.split('/')[1] ?? ''}' not found.` })
    }
    let route = url.pathname.slice(prefix.length)
    switch (route) {
      case '/v2.0/.well-known/openid-configuration':
        if (req.headers['x-devidp-bypass'] === bypassToken) return toProvider(req, res, '/.well-known/openid-configuration', '')
        counters.discoveryRequests++
        return serveWithFault(faults.discovery, req, res, () => v2Document, delay)
      case '/.well-known/openid-configuration':
        counters.discoveryRequests++
        return serveWithFault(faults.discovery, req, res, () => v1Document, delay)
      case ROUTES.jwks:
        counters.jwksRequests++
        return serveWithFault(faults.jwks, req, res, () => publicJwks(keyring.active(), issuer), delay)
      case '/discovery/keys':
        counters.jwksRequests++
        return serveWithFault(faults.jwks, req, res, () => publicJwks(keyring.active()), delay)
    }
    if (route.startsWith('/login/')) return handleInteraction(interactionDeps, req, res, route.slice('/login/'.length))
    route = V1_ALIASES[route] ?? route
    let search = url.search
    if (route === ROUTES.token) {
      counters.tokenRequests++
      if (faults.token === 'down' || faults.token === 'busy' || faults.token === 'reset') return serveWithFault(faults.token, req, res, () => ({}), delay)
      if (faults.token === 'no-id-token') withoutIdToken(res)
    }
    if (route === ROUTES.authorization) {
      counters.authorizeRequests++
      if (req.method === 'GET') search = `?${entraAuthorizeQuery(url.searchParams)}`
    }
    if (route === ROUTES.end_session) {
      counters.logoutRequests++
      const q = url.searchParams
      const opt = (name: string) => q.get(name) ?? undefined
      lastLogout = {
        hasIdTokenHint: q.has('id_token_hint'),
        logoutHint: opt('logout_hint'),
        postLogoutRedirectUri: opt('post_logout_redirect_uri'),
        clientId: opt('client_id'),
        state: opt('state'),
      }
    }
    return toProvider(req, res, route, search)
  }
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err: unknown) => {
      errors.push(err)
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error' })
      else res.destroy()
    })
  })

  graphServer.on('request', createGraphHandler({
    tenant,
    directory,
    jwks: () => publicJwks(keyring.active()),
    fault: () => faults.graph,
    delay,
    count: (what) => (what === 'graph' ? counters.graphRequests++ : counters.claimSourceRequests++),
  }))

  const own = await fetch(`${issuer}/.well-known/openid-configuration`, { headers: { 'x-devidp-bypass': bypassToken } })
  if (!own.ok) throw new Error(`devidp: discovery self-check failed with HTTP ${own.status}`)
  v2Document = (await own.json()) as Record<string, unknown>
  v1Document = {
    ...v2Document,
    issuer: v1Issuer,
    jwks_uri: `${authority}${prefix}/discovery/keys`,
    authorization_endpoint: `${authority}${prefix}/oauth2/authorize`,
    token_endpoint: `${authority}${prefix}/oauth2/token`,
    end_session_endpoint: `${authority}${prefix}/oauth2/logout`,
  }

  const mintDeps = () => ({
    tenant, keyring, directory, overageLimit,
    defaultAudience: options.defaultAudience ?? DEMO_API_AUDIENCE,
    defaultClientId: options.defaultClientId ?? DEMO_CLIENT_ID,
  })

  return {
    authority,
    tenantId,
    issuer,
    v1Issuer,
    discoveryUrl: `${issuer}/.well-known/openid-configuration`,
    v1DiscoveryUrl: `${authority}${prefix}/.well-known/openid-configuration`,
    jwksUri: `${authority}${prefix}${ROUTES.jwks}`,
    v1JwksUri: `${authority}${prefix}/discovery/keys`,
    authorizationEndpoint: `${authority}${prefix}${ROUTES.authorization}`,
    tokenEndpoint: `${authority}${prefix}${ROUTES.token}`,
    endSessionEndpoint: `${authority}${prefix}${ROUTES.end_session}`,
    graphUrl: tenant.graphUrl,
    defaultAudience: options.defaultAudience ?? DEMO_API_AUDIENCE,
    defaultClientId: options.defaultClientId ?? DEMO_CLIENT_ID,
    registerClient(client) {
      clients.set(client.clientId, client)
      rebuild()
    },
    upsertUser: (user) => directory.upsertUser(user),
    updateUser: (oid, patch) => directory.updateUser(oid, patch),
    getUser: (idOrLogin) => directory.getUser(idOrLogin),
    listUsers: () => directory.listUsers(),
    mintAccessToken: (o) => mintAccessToken(mintDeps(), o),
    mintIdToken: (o) => mintIdToken(mintDeps(), o),
    async rotateKeys(o = {}) {
      const previousKid = keyring.current().kid
      const key = await generateSigningKey()
      keyring.rotate(key, o.keepOld ?? false)
      rebuild()
      return { kid: key.kid, previousKid }
    },
    currentKid: () => keyring.current().kid,
    jwks: () => publicJwks(keyring.active(), issuer),
    setFault(fault, target = 'all') {
      if (target === 'token') {
        faults.token = fault
        return
      }
      if (target !== 'jwks') faults.discovery = fault
      if (target !== 'discovery') faults.jwks = fault
    },
    setGraphFault(fault) {
      faults.graph = fault
    },
    stats: () => ({ ...counters }),
    resetStats() {
      for (const key of Object.keys(counters) as (keyof typeof counters)[]) counters[key] = 0
    },
    lastLogout: () => lastLogout,
    async clientCredentialsToken(input) {
      const res = await fetch(`${authority}${prefix}${ROUTES.token}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: input.clientId, client_secret: input.clientSecret, scope: input.scope }),
      })
      const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string }
      if (!res.ok || !body.access_token) throw new Error(`devidp: client credentials failed: ${body.error ?? res.status} ${body.error_description ?? ''}`.trim())
      return body.access_token
    },
    signIn: (authorizeUrl, login, o) => signIn(authorizeUrl, login, o),
    signOut: (endSessionUrl, o) => browseIdp(endSessionUrl, o),
    serverErrors: () => errors,
    async close() {
      closing.abort()
      await Promise.all([closeServer(server), closeServer(graphServer)])
    },
  }
}
