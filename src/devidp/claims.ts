/**
 * Entra-shaped claim sets (pure): ID tokens, v1/v2 user access tokens, app-only tokens, groups overage.
 * Shapes follow Entra's claims references (https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference).
 * Used both by the oidc-provider hooks
 * and by `mintAccessToken`/`mintIdToken`, so minted and issued tokens look the same.
 */
import { createHash, randomBytes } from 'node:crypto'
import { GROUP_OVERAGE_LIMIT, type DevUser } from './directory.ts'

/** Where a tenant lives: the authority (`http://127.0.0.1:PORT`), the tenant id and the Graph-shaped server. */
export interface Tenant {
  readonly authority: string
  readonly tenantId: string
  readonly graphUrl: string
}

export type Claims = Record<string, unknown>

/** v2 issuer, as `https://login.microsoftonline.com/{tid}/v2.0`. */
export function v2IssuerOf(tenant: Pick<Tenant, 'authority' | 'tenantId'>): string {
  return `${tenant.authority}/${tenant.tenantId}/v2.0`
}

/** v1 issuer, the stand-in for `https://sts.windows.net/{tid}/` (trailing slash included). */
export function v1IssuerOf(tenant: Pick<Tenant, 'authority' | 'tenantId'>): string {
  return `${tenant.authority}/${tenant.tenantId}/`
}

/** Pairwise `sub`: unique per (tenant, user, client), like Entra's; never equal to the oid. */
export function pairwiseSub(tenantId: string, oid: string, clientId: string): string {
  return createHash('sha256').update(`${tenantId}:${oid.toLowerCase()}:${clientId}`).digest('base64url')
}

/** A GUID-shaped value derived from a seed (stable service principal ids, session ids). */
export function guidFrom(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`
}

/** Object id of a client's service principal (stable per tenant and client id). */
export function servicePrincipalOidOf(tenantId: string, clientId: string): string {
  return guidFrom(`sp:${tenantId}:${clientId}`)
}

/** The `login_hint` optional claim: an opaque base64 value, usable as `logout_hint`. */
export function loginHintOf(tenantId: string, oid: string): string {
  return `O.${Buffer.from(JSON.stringify({ oid, tid: tenantId })).toString('base64url')}`
}

/** Parses a `login_hint`/`logout_hint` made by `loginHintOf`; undefined for anything else. */
export function parseLoginHint(hint: string): { oid: string; tid: string } | undefined {
  if (!hint.startsWith('O.')) return undefined
  try {
    const value = JSON.parse(Buffer.from(hint.slice(2), 'base64url').toString('utf8')) as unknown
    if (value && typeof value === 'object' && 'oid' in value && 'tid' in value && typeof value.oid === 'string' && typeof value.tid === 'string') {
      return { oid: value.oid, tid: value.tid }
    }
  } catch {
    // not ours: an opaque hint we do not understand
  }
  return undefined
}

/** Entra's `uti` (token id; Entra tokens carry no `jti`). */
export function newUti(): string {
  return randomBytes(16).toString('base64url').slice(0, 22)
}

/** The distributed-claim endpoint Entra puts in overage tokens (an AAD-Graph-like URL; clients must not call it). */
export function claimSourceEndpoint(tenant: Tenant, oid: string): string {
  return `${tenant.graphUrl}/${tenant.tenantId}/users/${oid}/getMemberObjects`
}

/** `groups`, or the overage markers when the user has more groups than a JWT may carry; nothing when no groups. */
export function groupClaims(tenant: Tenant, user: DevUser, limit = GROUP_OVERAGE_LIMIT): Claims {
  if (user.groups.length > limit) {
    return {
      _claim_names: { groups: 'src1' },
      _claim_sources: { src1: { endpoint: claimSourceEndpoint(tenant, user.oid) } },
    }
  }
  return user.groups.length ? { groups: [...user.groups] } : {}
}

function rolesClaim(roles: readonly string[] | undefined): Claims {
  return roles && roles.length ? { roles: [...roles] } : {}
}

/** Identity claims of a user as the provider releases them (ID token / userinfo); `sub` is the oid, made pairwise by the provider. */
export function userProfileClaims(tenant: Tenant, user: DevUser, limit = GROUP_OVERAGE_LIMIT): Claims {
  return {
    sub: user.oid,
    oid: user.oid,
    tid: tenant.tenantId,
    ver: '2.0',
    name: user.name,
    preferred_username: user.upn,
    upn: user.upn,
    ...(user.email ? { email: user.email } : {}),
    ...groupClaims(tenant, user, limit),
    ...rolesClaim(user.roles),
    login_hint: loginHintOf(tenant.tenantId, user.oid),
  }
}

/** Times of a token, seconds since epoch. */
export interface TokenTimes {
  readonly iat: number
  readonly nbf: number
  readonly exp: number
}

/** A complete v2 ID token payload (what `mintIdToken` signs). */
export function idTokenClaims(tenant: Tenant, user: DevUser, input: TokenTimes & { clientId: string; nonce?: string; sid?: string; limit?: number }): Claims {
  const { sub: _oid, ...profile } = userProfileClaims(tenant, user, input.limit)
  return {
    aud: input.clientId,
    iss: v2IssuerOf(tenant),
    iat: input.iat,
    nbf: input.nbf,
    exp: input.exp,
    ...profile,
    ...(input.nonce !== undefined ? { nonce: input.nonce } : {}),
    sid: input.sid ?? guidFrom(`sid:${user.oid}:${input.iat}`),
    sub: pairwiseSub(tenant.tenantId, user.oid, input.clientId),
    uti: newUti(),
  }
}

/** Who an access token is for: a user through a client (delegated), or an app on its own (client credentials). */
export type AccessSubject =
  | {
      readonly kind: 'user'
      readonly user: DevUser
      /** The client that obtained it (`azp` / `appid`). */
      readonly clientId: string
      /** Delegated scopes, space-separated (`scp`). */
      readonly scp: string
      /** `0` public client, `1` client secret. */
      readonly clientAuth?: '0' | '1' | '2'
    }
  | {
      readonly kind: 'app'
      readonly appId: string
      /** Service principal object id (`oid` and `sub`). */
      readonly oid: string
      readonly roles: readonly string[]
      readonly clientAuth?: '0' | '1' | '2'
    }

/** A complete Entra access token payload, v1 or v2, user or app-only. */
export function accessTokenClaims(
  tenant: Tenant,
  subject: AccessSubject,
  input: TokenTimes & { version: 1 | 2; audience: string | readonly string[]; limit?: number },
): Claims {
  const v1 = input.version === 1
  const base: Claims = {
    aud: typeof input.audience === 'string' ? input.audience : [...input.audience],
    iss: v1 ? v1IssuerOf(tenant) : v2IssuerOf(tenant),
    iat: input.iat,
    nbf: input.nbf,
    exp: input.exp,
  }
  const clientAuth = subject.clientAuth ?? '1'
  if (subject.kind === 'app') {
    return {
      ...base,
      ...(v1 ? { appid: subject.appId, appidacr: clientAuth } : { azp: subject.appId, azpacr: clientAuth }),
      idtyp: 'app',
      oid: subject.oid,
      ...rolesClaim(subject.roles),
      sub: subject.oid,
      tid: tenant.tenantId,
      uti: newUti(),
      ver: v1 ? '1.0' : '2.0',
    }
  }
  const { user } = subject
  const common: Claims = {
    name: user.name,
    oid: user.oid,
    scp: subject.scp,
    sub: pairwiseSub(tenant.tenantId, user.oid, subject.clientId),
    tid: tenant.tenantId,
    uti: newUti(),
    ...groupClaims(tenant, user, input.limit),
    ...rolesClaim(user.roles),
  }
  if (v1) {
    return {
      ...base,
      acr: '1',
      amr: ['pwd'],
      appid: subject.clientId,
      appidacr: clientAuth,
      ...common,
      ...(user.email ? { email: user.email } : {}),
      unique_name: user.upn,
      upn: user.upn,
      ver: '1.0',
    }
  }
  return {
    ...base,
    azp: subject.clientId,
    azpacr: clientAuth,
    ...common,
    preferred_username: user.upn,
    ver: '2.0',
  }
}
