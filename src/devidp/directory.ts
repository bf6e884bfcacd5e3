/**
 * The development directory: users, groups, app registrations and the demo data set.
 * Pure values and lookups; the dev IdP and the Graph-shaped server read from one mutable `Directory`.
 */
import { randomBytes } from 'node:crypto'

/** A user in the development tenant, shaped like an Entra user object. */
export interface DevUser {
  /** Object id (GUID): the stable key, Graph's `id`, the `oid` claim. */
  readonly oid: string
  /** User principal name, also the `preferred_username`. */
  readonly upn: string
  readonly name: string
  readonly email?: string
  /** Group object ids (transitive memberships). More than the overage limit (200) triggers overage. */
  readonly groups: readonly string[]
  /** App roles assigned to the user (`roles` claim). */
  readonly roles?: readonly string[]
  /** A disabled user cannot sign in, and refresh fails with `invalid_grant`. */
  readonly disabled?: boolean
}

/** A group in the development tenant (only `id` matters to tokens; the name shows in Graph answers). */
export interface DevGroup {
  readonly id: string
  readonly displayName: string
  /** The alias used in the demo policy (`groups:` in the config), when there is one. */
  readonly alias?: string
}

/** A confidential or public client (app registration) of the dev IdP. */
export interface DevClient {
  readonly clientId: string
  /** Without a secret the client is public (`token_endpoint_auth_method: none`, PKCE required). */
  readonly clientSecret?: string
  readonly redirectUris?: readonly string[]
  readonly postLogoutRedirectUris?: readonly string[]
  /** How the client authenticates at the token endpoint; default `client_secret_post` (what openid-client uses). */
  readonly tokenEndpointAuthMethod?: 'client_secret_post' | 'client_secret_basic'
  /** Application permissions in app-only tokens for every resource except Graph (e.g. `GitLab.Api.ReadWrite`). */
  readonly appRoles?: readonly string[]
  /** Application permissions in app-only tokens for Microsoft Graph; default `GroupMember.Read.All`, `User.Read.All`. */
  readonly graphRoles?: readonly string[]
  /** Object id of the app's service principal (`oid`/`sub` of app-only tokens); derived from clientId when absent. */
  readonly servicePrincipalOid?: string
  /** The `login_hint` optional claim is configured (user tokens carry it); default true. */
  readonly loginHintClaim?: boolean
}

/** An API (resource app) that access tokens are issued for. */
export interface DevResource {
  /** Application ID URI, e.g. `api://gitlab-iap`; also the resource part of scopes (`api://gitlab-iap/access_as_user`). */
  readonly identifier: string
  /** The resource app's GUID: the `aud` of v2 tokens (Entra puts the GUID there); `identifier` when absent. */
  readonly appId?: string
  /** Delegated scopes it exposes (the `scp` values), e.g. `access_as_user`. */
  readonly scopes?: readonly string[]
  /** Access token version the resource accepts (Entra's `accessTokenAcceptedVersion`); default 2. */
  readonly accessTokenVersion?: 1 | 2
}

/** Entra's JWT group limit: above it the `groups` claim is replaced by `_claim_names`/`_claim_sources`. */
export const GROUP_OVERAGE_LIMIT = 200

/** Microsoft Graph as a resource: v1 tokens, audience `https://graph.microsoft.com`. */
export const GRAPH_RESOURCE: DevResource = Object.freeze({
  identifier: 'https://graph.microsoft.com',
  appId: '00000003-0000-0000-c000-000000000000',
  scopes: Object.freeze(['User.Read', 'GroupMember.Read.All', 'Directory.Read.All']),
  accessTokenVersion: 1,
})

/** Tenant id of the demo directory. */
export const DEMO_TENANT_ID = 'd0e0d0e0-1a2b-4c3d-8e4f-00000000da7a'
/** Client id of the proxy's demo app registration (a GUID, as in Entra). */
export const DEMO_CLIENT_ID = 'c11e0000-9a7e-4a1b-8c2d-0000000001a9'
/** The proxy's API as a resource: `api://gitlab-iap`, v2 tokens whose `aud` is the demo client id. */
export const DEMO_API_AUDIENCE = 'api://gitlab-iap'
/** The delegated scope the proxy's API exposes. */
export const DEMO_API_SCOPE = 'access_as_user'

/** The proxy's API resource as registered in the demo tenant. */
export const DEMO_API_RESOURCE: DevResource = Object.freeze({
  identifier: DEMO_API_AUDIENCE,
  appId: DEMO_CLIENT_ID,
  scopes: Object.freeze([DEMO_API_SCOPE]),
  accessTokenVersion: 2,
})

/** Demo groups by alias; the ids match config.example.yaml. */
export const DEMO_GROUPS = Object.freeze({
  admins: Object.freeze({ id: '6c0bd1d2-0000-4000-8000-000000000001', displayName: 'GitLab Admins', alias: 'admins' }),
  engineering: Object.freeze({ id: '6c0bd1d2-0000-4000-8000-000000000002', displayName: 'Engineering', alias: 'engineering' }),
  contractors: Object.freeze({ id: '6c0bd1d2-0000-4000-8000-000000000003', displayName: 'Contractors', alias: 'contractors' }),
}) satisfies Record<string, DevGroup>

/** How many groups erin is in (over the overage limit on purpose). */
export const DEMO_OVERAGE_GROUP_COUNT = 250

/** The filler groups that put erin over the limit: stable ids `6c0bd1d2-0000-4000-9000-000000000001`... */
export const DEMO_FILLER_GROUPS: readonly DevGroup[] = Object.freeze(
  Array.from({ length: DEMO_OVERAGE_GROUP_COUNT - 1 }, (_, i) =>
    Object.freeze({ id: `6c0bd1d2-0000-4000-9000-${String(i + 1).padStart(12, '0')}`, displayName: `Team ${i + 1}` }),
  ),
)

/** Demo users: alice = admins+engineering, bob = engineering, carol = contractors, dave = none, erin = 250 groups incl. engineering. */
export const DEMO_USERS = Object.freeze({
  alice: Object.freeze({
    oid: 'a11ce000-0000-4000-8000-00000000a11c',
    upn: 'alice@contoso.test',
    name: 'Alice Admin',
    email: 'alice@contoso.test',
    groups: Object.freeze([DEMO_GROUPS.admins.id, DEMO_GROUPS.engineering.id]),
    roles: Object.freeze(['GitLab.Admin']),
  }),
  bob: Object.freeze({
    oid: 'b0b00000-0000-4000-8000-000000000b0b',
    upn: 'bob@contoso.test',
    name: 'Bob Engineer',
    email: 'bob@contoso.test',
    groups: Object.freeze([DEMO_GROUPS.engineering.id]),
  }),
  carol: Object.freeze({
    oid: 'ca201000-0000-4000-8000-0000000ca201',
    upn: 'carol@contoso.test',
    name: 'Carol Contractor',
    email: 'carol@contoso.test',
    groups: Object.freeze([DEMO_GROUPS.contractors.id]),
  }),
  dave: Object.freeze({
    oid: 'da7e0000-0000-4000-8000-000000000da7',
    upn: 'dave@contoso.test',
    name: 'Dave Nogroups',
    email: 'dave@contoso.test',
    groups: Object.freeze([]),
  }),
  erin: Object.freeze({
    oid: 'e2140000-0000-4000-8000-000000000e21',
    upn: 'erin@contoso.test',
    name: 'Erin Overage',
    email: 'erin@contoso.test',
    groups: Object.freeze([DEMO_GROUPS.engineering.id, ...DEMO_FILLER_GROUPS.map((g) => g.id)]),
  }),
}) satisfies Record<string, DevUser>

/** All demo groups, named ones first. */
export const DEMO_GROUP_LIST: readonly DevGroup[] = Object.freeze([...Object.values(DEMO_GROUPS), ...DEMO_FILLER_GROUPS])

/** A fresh random client secret for the demo app registration (never committed, never reused across runs). */
export function createDemoClientSecret(): string {
  return randomBytes(32).toString('base64url')
}

/** The mutable directory behind one dev IdP. */
export interface Directory {
  getUser(idOrLogin: string): DevUser | undefined
  listUsers(): DevUser[]
  upsertUser(user: DevUser): DevUser
  updateUser(oid: string, patch: Partial<Omit<DevUser, 'oid'>>): DevUser
  groupName(id: string): string
}

/** Builds a directory from users and groups; users are found by oid, UPN, email or UPN local part (case-insensitive). */
export function createDirectory(users: readonly DevUser[], groups: readonly DevGroup[]): Directory {
  const byOid = new Map<string, DevUser>()
  const groupNames = new Map(groups.map((g) => [g.id.toLowerCase(), g.displayName]))
  const put = (user: DevUser): DevUser => {
    const frozen = Object.freeze({ ...user, groups: Object.freeze([...user.groups]), roles: user.roles && Object.freeze([...user.roles]) })
    byOid.set(user.oid.toLowerCase(), frozen)
    return frozen
  }
  users.forEach(put)
  return {
    getUser(idOrLogin) {
      const key = idOrLogin.trim().toLowerCase()
      if (!key) return undefined
      const direct = byOid.get(key)
      if (direct) return direct
      for (const user of byOid.values()) {
        const upn = user.upn.toLowerCase()
        if (upn === key || user.email?.toLowerCase() === key || upn.split('@')[0] === key) return user
      }
      return undefined
    },
    listUsers: () => [...byOid.values()],
    upsertUser: put,
    updateUser(oid, patch) {
      const current = byOid.get(oid.toLowerCase())
      if (!current) throw new Error(`devidp: no user with oid ${oid}`)
      return put({ ...current, ...patch, oid: current.oid })
    },
    groupName: (id) => groupNames.get(id.toLowerCase()) ?? `Group ${id.slice(0, 8)}`,
  }
}
