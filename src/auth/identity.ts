/** Who is calling. Built by the bearer verifier or the session store; read by policy, headers and logs. */
export type IdentityKind = 'user' | 'app' | 'ci' | 'anonymous'

export interface Identity {
  readonly kind: IdentityKind
  /** Stable id: Entra object id (`oid`), or the mapped user claim of an extra issuer. Empty for anonymous. */
  readonly id: string
  /** upn / preferred_username (Entra), or the mapped user claim (extra issuers). */
  readonly name?: string
  /**
   * Entra only: a guest (B2B) user, signed in by another identity provider. Its preferred_username is
   * chosen in its home tenant (or is any email), so `users` rules match guests by object id only.
   */
  readonly guest?: boolean
  readonly email?: string
  readonly displayName?: string
  /** Entra group object ids, or issuer-qualified values ("gitlab-ci:platform/infra"). */
  readonly groups: readonly string[]
  /** Entra app roles (user tokens) or application permissions (app-only tokens). */
  readonly roles: readonly string[]
  /** Client id that obtained the token (`azp` / `appid`). */
  readonly appId?: string
  /** "entra" or the `name` of an extra issuer. */
  readonly issuer: string
  readonly tenantId?: string
  /** Seconds since epoch when the credential expires (token `exp`, or session end). */
  readonly expiresAt?: number
  /** Seconds since epoch when the credential was issued (token `iat`, or sign-in time); for revocation. */
  readonly issuedAt?: number
  /** Where `groups` came from; `overage-unresolved` means the token had too many groups and they could not be read. */
  readonly groupsSource?: 'token' | 'graph' | 'overage-unresolved' | 'none'
  /** GitLab CI job facts (kind `ci`), for the access log. */
  readonly ci?: {
    readonly projectPath?: string
    readonly ref?: string
    readonly refProtected?: boolean
    readonly pipelineId?: string
    readonly jobId?: string
  }
}

export const ANONYMOUS: Identity = Object.freeze({ kind: 'anonymous', id: '', groups: Object.freeze([]), roles: Object.freeze([]), issuer: '' })

/**
 * C0 controls and DEL anywhere (no HTTP header can carry them), or a space or tab at either end (HTTP
 * trims those from a header value, so GitLab would read another name than the policy matched): no real
 * id, name, email or group has one.
 */
const UNSENDABLE = /[\u0000-\u001f\u007f]|^[ \t]|[ \t]$/

/**
 * The values GitLab reads from identity headers (id, name, email, every group) reach it exactly as the
 * policy saw them. A credential whose identity fails this is refused: the alternative is a header that
 * cannot be sent (a 502 blamed on GitLab) or one that is silently altered.
 */
export function identityValuesClean(identity: Pick<Identity, 'id' | 'name' | 'email' | 'groups'>): boolean {
  if (UNSENDABLE.test(identity.id)) return false
  if (identity.name !== undefined && UNSENDABLE.test(identity.name)) return false
  if (identity.email !== undefined && UNSENDABLE.test(identity.email)) return false
  for (const group of identity.groups) if (UNSENDABLE.test(group)) return false
  return true
}

/**
 * An identity value (id or name) as it leaves the proxy: plain for Entra, `<issuer name>:<value>` for
 * an extra issuer, so a GitLab username shaped like an Entra object id never reads as that Entra user.
 * The policy's `users` rules qualify the same way.
 */
export function qualifiedValue(identity: Pick<Identity, 'issuer'>, value: string): string {
  return identity.issuer === 'entra' ? value : `${identity.issuer}:${value}`
}
