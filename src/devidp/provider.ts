/**
 * Builds the oidc-provider instance behind the dev IdP: Entra-like routes (mounted at `/{tenant}`),
 * Entra claims (pairwise `sub`, `oid`, `tid`, `groups` or overage, `sid`, `login_hint`), JWT access
 * tokens for resources named the Entra way (`api://x/scope`, `https://graph.microsoft.com/.default`),
 * client credentials for app-only tokens, automatic consent and self-contained HTML pages.
 * Rebuilt (cheaply) whenever keys rotate or clients change; state lives in the shared adapter.
 */
import Provider, { errors } from 'oidc-provider'
import {
  accessTokenClaims, guidFrom, pairwiseSub, servicePrincipalOidOf, userProfileClaims, v2IssuerOf,
  type AccessSubject, type Tenant,
} from './claims.ts'
import { GRAPH_RESOURCE, type DevClient, type DevResource, type Directory } from './directory.ts'
import { privateJwks, type Keyring } from './keys.ts'
import type { ProviderAdapter } from './memory-adapter.ts'
import { errorPage, loggedOutPage, logoutPage } from './pages.ts'

/** Token lifetimes in seconds. */
export interface DevIdpTtl {
  readonly accessTokenSeconds: number
  readonly idTokenSeconds: number
  readonly refreshTokenSeconds: number
  readonly clientCredentialsSeconds: number
}

export interface ProviderInput {
  readonly tenant: Tenant
  readonly keyring: Keyring
  readonly directory: Directory
  readonly clients: readonly DevClient[]
  readonly resources: readonly DevResource[]
  readonly adapter: (model: string) => ProviderAdapter
  readonly cookieKeys: readonly string[]
  readonly ttl: DevIdpTtl
  readonly overageLimit: number
  /** Called with unexpected provider errors (bugs, not OAuth errors). */
  readonly onServerError: (err: unknown) => void
}

/** Route names as in Entra, relative to the `/{tenant}` mount. */
export const ROUTES = Object.freeze({
  authorization: '/oauth2/v2.0/authorize',
  token: '/oauth2/v2.0/token',
  end_session: '/oauth2/v2.0/logout',
  jwks: '/discovery/v2.0/keys',
  userinfo: '/oidc/userinfo',
})

const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access']
const GRAPH_DEFAULT_ROLES = ['GroupMember.Read.All', 'User.Read.All']

// The slice of oidc-provider's context the hooks read.
interface Ctx {
  type?: string
  body?: unknown
  host?: string
  oidc: {
    params?: Record<string, unknown>
    client?: { clientId: string; clientAuthMethod?: string }
    session?: { accountId?: string; uid?: string; grantIdFor(clientId: string): string | undefined }
    result?: { consent?: { grantId?: string } }
    requestParamOIDCScopes: Set<string>
    resourceServers: Record<string, { scope: string }>
    provider: Provider
  }
}

interface TokenLike {
  kind?: string
  accountId?: string
  clientId?: string
  scope?: string
  sessionUid?: string
  resourceServer?: { identifier(): string }
  client?: { clientId: string; clientAuthMethod?: string }
}

/** Finds a resource by identifier or app id (case-insensitive, trailing slash ignored). */
export function findResource(resources: readonly DevResource[], name: string): DevResource | undefined {
  const key = name.replace(/\/+$/, '').toLowerCase()
  return resources.find((r) => r.identifier.replace(/\/+$/, '').toLowerCase() === key || r.appId?.toLowerCase() === key)
}

/** Every scope string a resource accepts: `{identifier|appId}/{scope}` and `/.default`, plus bare names for Graph. */
export function resourceScopeStrings(resource: DevResource): string[] {
  const names = [...(resource.scopes ?? []), '.default']
  const prefixes = [resource.identifier.replace(/\/+$/, ''), ...(resource.appId ? [resource.appId] : [])]
  const bare = resource.identifier === GRAPH_RESOURCE.identifier ? resource.scopes ?? [] : []
  return [...prefixes.flatMap((p) => names.map((n) => `${p}/${n}`)), ...bare]
}

/**
 * The resource indicators an Entra-style scope string names (`api://x/y` → `api://x`; bare Graph scopes → Graph).
 * Unknown resources are returned as written, so the request fails with `invalid_target` (Entra: AADSTS500011).
 */
export function resourcesInScope(resources: readonly DevResource[], scope: string): string[] {
  const found = new Set<string>()
  for (const token of scope.split(' ').filter(Boolean)) {
    if (OIDC_SCOPES.includes(token)) continue
    const slash = token.lastIndexOf('/')
    const name = slash > 0 ? token.slice(0, slash) : GRAPH_RESOURCE.identifier
    found.add(findResource(resources, name)?.identifier ?? name)
  }
  return [...found]
}

/** `scp` from granted scope strings: resource prefixes stripped, `.default` expanded to every exposed scope. */
export function scpOf(resource: DevResource, scope: string | undefined): string {
  const names = new Set<string>()
  for (const token of (scope ?? '').split(' ').filter(Boolean)) {
    const name = token.slice(token.lastIndexOf('/') + 1)
    if (name === '.default') (resource.scopes ?? []).forEach((s) => names.add(s))
    else if (!OIDC_SCOPES.includes(name)) names.add(name)
  }
  return [...names].join(' ')
}

/** Creates the provider for the current keys and clients. */
export function createProvider(input: ProviderInput): Provider {
  const { tenant, keyring, directory, ttl } = input
  const resources = [...input.resources, ...input.clients.filter((c) => !findResource(input.resources, c.clientId)).map(clientAsResource)]
  const clientsById = new Map(input.clients.map((c) => [c.clientId, c]))
  const sidOf = (sessionUid: string | undefined) => (sessionUid ? guidFrom(`sid:${sessionUid}`) : undefined)

  const resourceOrThrow = (indicator: string): DevResource => {
    const resource = findResource(resources, indicator)
    if (!resource) throw new errors.InvalidTarget(`resource ${indicator} is not registered in the tenant`)
    return resource
  }

  const customizeJwt = async (_ctx: Ctx, token: TokenLike, jwt: { header?: Record<string, unknown>; payload: Record<string, unknown> }) => {
    const resource = resourceOrThrow(token.resourceServer?.identifier() ?? String(jwt.payload.aud))
    const version = resource.accessTokenVersion ?? 2
    const clientId = token.client?.clientId ?? token.clientId ?? ''
    const clientAuth = token.client?.clientAuthMethod === 'none' ? '0' : '1'
    const iat = Number(jwt.payload.iat)
    let subject: AccessSubject
    if (token.accountId) {
      const user = directory.getUser(token.accountId)
      // The account vanished between grant and token: issue nothing rather than a token without identity.
      if (!user || user.disabled) throw new errors.InvalidGrant('the user is not in the directory or is disabled')
      subject = { kind: 'user', user, clientId, scp: scpOf(resource, token.scope), clientAuth }
    } else {
      const client = clientsById.get(clientId)
      const roles = resource.identifier === GRAPH_RESOURCE.identifier ? client?.graphRoles ?? GRAPH_DEFAULT_ROLES : client?.appRoles ?? []
      subject = { kind: 'app', appId: clientId, oid: client?.servicePrincipalOid ?? servicePrincipalOidOf(tenant.tenantId, clientId), roles, clientAuth }
    }
    jwt.payload = accessTokenClaims(tenant, subject, {
      version,
      audience: version === 2 ? resource.appId ?? resource.identifier : resource.identifier,
      iat,
      nbf: iat,
      exp: Number(jwt.payload.exp),
      limit: input.overageLimit,
    })
    // Entra tokens say typ JWT (not at+jwt); v1 tokens also carry x5t = kid.
    jwt.header = { typ: 'JWT', ...(version === 1 ? { x5t: keyring.current().kid } : {}) }
  }

  const configuration = {
    adapter: input.adapter,
    jwks: privateJwks(keyring.active()),
    cookies: { keys: [...input.cookieKeys] },
    clients: input.clients.map(clientMetadata),
    clientAuthMethods: ['client_secret_post', 'client_secret_basic', 'private_key_jwt', 'none'],
    clientDefaults: {
      grant_types: ['authorization_code'],
      id_token_signed_response_alg: 'RS256',
      response_types: ['code'],
      subject_type: 'pairwise',
      token_endpoint_auth_method: 'client_secret_post',
    },
    subjectTypes: ['pairwise'],
    pairwiseIdentifier: async (_ctx: unknown, accountId: string, client: { clientId: string }) => pairwiseSub(tenant.tenantId, accountId, client.clientId),
    responseTypes: ['code'],
    scopes: OIDC_SCOPES,
    claims: {
      openid: ['sub', 'oid', 'tid', 'ver', 'groups', 'roles', 'sid', 'login_hint'],
      profile: ['name', 'preferred_username', 'upn'],
      email: ['email'],
    },
    // Entra puts every released claim in the ID token (no "claims only at userinfo" split).
    conformIdTokenClaims: false,
    routes: ROUTES,
    discovery: {
      tenant_region_scope: 'NA',
      cloud_instance_name: 'microsoftonline.com',
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: new URL(tenant.graphUrl).host,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
    },
    ttl: {
      AccessToken: ttl.accessTokenSeconds,
      AuthorizationCode: 600,
      ClientCredentials: ttl.clientCredentialsSeconds,
      Grant: ttl.refreshTokenSeconds,
      IdToken: ttl.idTokenSeconds,
      Interaction: 3600,
      RefreshToken: ttl.refreshTokenSeconds,
      Session: ttl.refreshTokenSeconds,
    },
    findAccount: async (ctx: Ctx, id: string, token?: TokenLike) => {
      const user = directory.getUser(id)
      // Disabled or deleted: no account, so login is refused and refresh fails with invalid_grant.
      if (!user || user.disabled || user.oid.toLowerCase() !== id.toLowerCase()) return undefined
      const sid = sidOf(token?.sessionUid ?? ctx.oidc.session?.uid)
      return {
        accountId: user.oid,
        claims: async () => {
          const claims = { ...userProfileClaims(tenant, user, input.overageLimit), ...(sid ? { sid } : {}) }
          // A registration without the `login_hint` optional claim gets none, as in Entra.
          const client = ctx.oidc.client && clientsById.get(ctx.oidc.client.clientId)
          if (client?.loginHintClaim === false) delete (claims as { login_hint?: string }).login_hint
          return claims
        },
      }
    },
    // No consent screen: every scope and resource the client asks for is granted, like an admin-consented app.
    loadExistingGrant: async (ctx: Ctx) => {
      const { oidc } = ctx
      const client = oidc.client
      const accountId = oidc.session?.accountId
      if (!client || !accountId) return undefined
      const grantId = oidc.result?.consent?.grantId ?? oidc.session?.grantIdFor(client.clientId)
      const existing = grantId ? await oidc.provider.Grant.find(grantId) : undefined
      const grant = existing && existing.accountId === accountId ? existing : new oidc.provider.Grant({ accountId, clientId: client.clientId })
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' ') || 'openid')
      for (const [indicator, server] of Object.entries(oidc.resourceServers)) grant.addResourceScope(indicator, server.scope)
      await grant.save()
      return grant
    },
    interactions: {
      url: (_ctx: unknown, interaction: { uid: string }) => `/${tenant.tenantId}/login/${interaction.uid}`,
    },
    renderError: async (ctx: Ctx, out: { error: string; error_description?: string }) => {
      ctx.type = 'html'
      ctx.body = errorPage(out.error, out.error_description)
    },
    features: {
      devInteractions: { enabled: false },
      // Entra has no PAR endpoint; keep discovery to what Entra advertises.
      pushedAuthorizationRequests: { enabled: false },
      clientCredentials: { enabled: true },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx: Ctx, form: string) => {
          ctx.type = 'html'
          ctx.body = logoutPage(form)
        },
        postLogoutSuccessSource: async (ctx: Ctx) => {
          ctx.type = 'html'
          ctx.body = loggedOutPage()
        },
      },
      resourceIndicators: {
        enabled: true,
        // Entra names the resource inside the scope; take it from there when no `resource` parameter is given.
        defaultResource: async (ctx: Ctx, _client: unknown, oneOf?: string | string[]) => {
          if (oneOf) return Array.isArray(oneOf) ? oneOf[0] : oneOf
          const scope = ctx.oidc.params?.scope
          const named = typeof scope === 'string' ? resourcesInScope(resources, scope) : []
          return named.length === 0 ? undefined : named.length === 1 ? named[0] : named
        },
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, indicator: string) => {
          const resource = resourceOrThrow(indicator)
          const version = resource.accessTokenVersion ?? 2
          return {
            scope: resourceScopeStrings(resource).join(' '),
            audience: version === 2 ? resource.appId ?? resource.identifier : resource.identifier,
            accessTokenFormat: 'jwt',
            accessTokenTTL: ttl.accessTokenSeconds,
            jwt: { sign: { alg: 'RS256' } },
          }
        },
      },
    },
    formats: { customizers: { jwt: customizeJwt } },
  }

  const provider = new Provider(v2IssuerOf(tenant), configuration)
  provider.on('server_error', (_ctx, err) => input.onServerError(err))
  return provider
}

/** Every app registration also exposes an API, as in Entra: `{clientId}/.default` gives a v2 token with `aud` = clientId. */
export function clientAsResource(client: DevClient): DevResource {
  return { identifier: `api://${client.clientId}`, appId: client.clientId, scopes: ['access_as_user'], accessTokenVersion: 2 }
}

/** oidc-provider client metadata for a registration. */
function clientMetadata(client: DevClient): Record<string, unknown> {
  const redirectUris = [...(client.redirectUris ?? [])]
  const interactive = redirectUris.length > 0
  const confidential = client.clientSecret !== undefined
  return {
    client_id: client.clientId,
    ...(confidential ? { client_secret: client.clientSecret } : {}),
    redirect_uris: redirectUris,
    post_logout_redirect_uris: [...(client.postLogoutRedirectUris ?? [])],
    response_types: interactive ? ['code'] : [],
    grant_types: [
      ...(interactive ? ['authorization_code', 'refresh_token'] : []),
      ...(confidential ? ['client_credentials'] : []),
    ],
    token_endpoint_auth_method: confidential ? client.tokenEndpointAuthMethod ?? 'client_secret_post' : 'none',
  }
}
