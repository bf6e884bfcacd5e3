/**
 * Verified ID-token claims → the session's user (pure). The tenant is pinned (`tid` must equal
 * `entra.tenantId`: Entra signs every tenant's tokens with the same keys) and the
 * stable id is `oid` (immutable, unlike names and email). Groups come from the token, or — on overage — from Graph.
 */
import { hasGroupsOverage, isGuest } from '../bearer/claims.ts'
import { identityValuesClean } from '../identity.ts'
import type { SessionUser } from './record.ts'

export type IdTokenUserResult =
  | { readonly ok: true; readonly user: SessionUser; readonly overage: boolean; readonly loginHint?: string; readonly sid?: string }
  | { readonly ok: false; readonly reason: 'login-tenant-invalid' | 'login-claims-invalid' }

const str = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined)
const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string' && v !== '') : [])

/**
 * Maps ID-token claims to a session user; `login-claims-invalid` without an `oid`, or when the id,
 * name, email or a group carries a control character. On overage `groups` is empty and `groupsSource` is
 * `overage-unresolved` until Graph answers.
 */
export function userFromIdToken(claims: Readonly<Record<string, unknown>>, tenantId: string): IdTokenUserResult {
  if (claims.tid !== tenantId) return { ok: false, reason: 'login-tenant-invalid' }
  const oid = str(claims.oid)
  if (!oid) return { ok: false, reason: 'login-claims-invalid' }
  const overage = hasGroupsOverage(claims)
  const groups = overage ? [] : strings(claims.groups)
  const name = str(claims.upn) ?? str(claims.preferred_username)
  const email = str(claims.email)
  const displayName = str(claims.name)
  const loginHint = str(claims.login_hint)
  const sid = str(claims.sid)
  const user: SessionUser = {
    id: oid,
    ...(name !== undefined && { name }),
    ...(isGuest(claims, tenantId) && { guest: true }),
    ...(email !== undefined && { email }),
    ...(displayName !== undefined && { displayName }),
    tenantId,
    groups,
    roles: strings(claims.roles),
    groupsSource: overage ? 'overage-unresolved' : claims.groups === undefined ? 'none' : 'token',
  }
  // The same rule as for bearer tokens: GitLab gets these values in headers, which cannot carry controls.
  if (!identityValuesClean(user)) return { ok: false, reason: 'login-claims-invalid' }
  return { ok: true, user, overage, ...(loginHint !== undefined && { loginHint }), ...(sid !== undefined && { sid }) }
}

/** The user with groups read from Graph after an overage. */
export function withGraphGroups(user: SessionUser, groups: readonly string[]): SessionUser {
  return { ...user, groups: [...groups], groupsSource: 'graph' }
}
