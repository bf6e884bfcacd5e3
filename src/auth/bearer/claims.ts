/**
 * Verified token claims → Identity (pure). Entra user and app-only access tokens
 * (https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference) and extra issuers with claim
 * mapping (config `issuers:`; GitLab CI id_tokens: https://docs.gitlab.com/ci/secrets/id_token_authentication/).
 * Runs only after the signature, `iss`, `aud`, `exp`/`nbf` checks passed. An identity whose id, name,
 * email or a group carries a control character is refused (`token-claim-invalid`): GitLab gets those
 * values in headers, which cannot carry them.
 */
import { identityValuesClean, type Identity } from '../identity.ts'
import type { IssuerSpec } from './issuers.ts'
import type { BearerFailureReason } from './reasons.ts'

export type Claims = Readonly<Record<string, unknown>>

export type ClaimsResult =
  | { readonly ok: true; readonly identity: Identity; readonly overage: boolean }
  | { readonly ok: false; readonly reason: BearerFailureReason }

const str = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined)

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string' && v !== '') : [])

const num = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined)

/** Groups overage: `_claim_names.groups` (JWT) or `hasgroups` (implicit flow) replace `groups` above 200 groups. */
export function hasGroupsOverage(claims: Claims): boolean {
  const names = claims._claim_names as { groups?: unknown } | undefined
  return (typeof names === 'object' && names !== null && names.groups !== undefined) || claims.hasgroups === true
}

/**
 * A guest (B2B) user of our tenant: `acct` 1 (optional claim), or an `idp` claim naming another
 * identity provider than our tenant (Entra emits `idp` only when the user is not a member).
 */
export function isGuest(claims: Claims, tenantId: string): boolean {
  if (claims.acct === 1 || claims.acct === '1') return true
  const idp = claims.idp
  return typeof idp === 'string' && idp !== '' && !idp.toLowerCase().includes(tenantId.toLowerCase())
}

/**
 * App-only (client credentials) tokens: `idtyp: app`, or no `scp` with `roles` present (`idtyp` is an
 * optional claim: https://learn.microsoft.com/en-us/entra/identity-platform/optional-claims-reference).
 */
export function isAppOnly(claims: Claims): boolean {
  if (claims.idtyp === 'app') return true
  if (claims.idtyp === 'user') return false
  return claims.scp === undefined && Array.isArray(claims.roles)
}

/** Entra access token → Identity. Checks what jose cannot: tenant, access-token shape, object id. */
export function entraIdentity(claims: Claims, spec: IssuerSpec, tenantId: string): ClaimsResult {
  if (claims.tid !== tenantId) return { ok: false, reason: 'token-tenant-invalid' }
  // An ID token for our client has aud = clientId too (a leaked one must not work): access tokens carry `scp` or
  // `roles` and no `nonce`. An ID token from a refresh has no `nonce` and may carry `roles`, so a token
  // without `scp` must also name the client that obtained it (`azp` v2, `appid` v1), as every Entra
  // access token does and no ID token does.
  const client = str(claims.azp) ?? str(claims.appid)
  if (claims.nonce !== undefined || (claims.scp === undefined && (claims.roles === undefined || client === undefined))) {
    return { ok: false, reason: 'token-not-access-token' }
  }
  const oid = str(claims.oid)
  if (!oid) return { ok: false, reason: 'token-subject-missing' }
  const app = isAppOnly(claims)
  const overageClaim = hasGroupsOverage(claims) && claims.groups === undefined
  const groups = strings(claims.groups)
  const name = app ? undefined : (str(claims.upn) ?? str(claims.preferred_username))
  const email = app ? undefined : str(claims.email)
  const displayName = str(claims.name)
  const exp = num(claims.exp)
  const iat = num(claims.iat)
  const identity: Identity = {
    kind: app ? 'app' : 'user',
    id: oid,
    ...(name ? { name } : {}),
    ...(!app && isGuest(claims, tenantId) ? { guest: true } : {}),
    ...(email ? { email } : {}),
    ...(displayName && !app ? { displayName } : {}),
    groups,
    roles: strings(claims.roles),
    ...(client ? { appId: client } : {}),
    issuer: spec.name,
    tenantId,
    ...(exp !== undefined ? { expiresAt: exp } : {}),
    ...(iat !== undefined ? { issuedAt: iat } : {}),
    groupsSource: overageClaim ? 'overage-unresolved' : claims.groups !== undefined ? 'token' : 'none',
  }
  if (!identityValuesClean(identity)) return { ok: false, reason: 'token-claim-invalid' }
  // Graph lookups are per user (`/users/{oid}`); an app-only token in overage keeps "no groups".
  return { ok: true, identity, overage: overageClaim && !app }
}

/** Claim values as strings: a string, a number/boolean, or an array of strings. */
function claimValues(claims: Claims, name: string): string[] {
  const value = claims[name]
  if (typeof value === 'string') return value === '' ? [] : [value]
  if (typeof value === 'number' || typeof value === 'boolean') return [String(value)]
  return strings(value)
}

const asBool = (value: unknown): boolean | undefined => (value === true || value === 'true' ? true : value === false || value === 'false' ? false : undefined)

const asText = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : typeof value === 'number' ? String(value) : undefined)

/**
 * Extra issuer token → Identity with the configured claim mapping. Groups are qualified by the issuer
 * name ("gitlab-ci:platform/infra"): a GitLab group can be named like an Entra object id and must
 * never be mistaken for one. The id stays the plain claim value, with `issuer`
 * beside it; the policy qualifies it the same way when matching `users`.
 */
export function issuerIdentity(claims: Claims, spec: IssuerSpec): ClaimsResult {
  const mapping = spec.claims ?? { user: 'sub' }
  const user = asText(claims[mapping.user])
  if (!user) return { ok: false, reason: 'token-subject-missing' }
  const email = mapping.email ? str(claims[mapping.email]) : undefined
  const groupClaims = mapping.groups === undefined ? [] : Array.isArray(mapping.groups) ? mapping.groups : [mapping.groups]
  const groups = [...new Set(groupClaims.flatMap((name) => claimValues(claims, name)).map((value) => `${spec.name}:${value}`))]
  const exp = num(claims.exp)
  const iat = num(claims.iat)
  const kind = spec.kind ?? 'ci'
  const refProtected = asBool(claims.ref_protected)
  const ci =
    kind === 'ci'
      ? {
          ...(str(claims.project_path) ? { projectPath: str(claims.project_path) } : {}),
          ...(str(claims.ref) ? { ref: str(claims.ref) } : {}),
          ...(refProtected !== undefined ? { refProtected } : {}),
          ...(asText(claims.pipeline_id) ? { pipelineId: asText(claims.pipeline_id) } : {}),
          ...(asText(claims.job_id) ? { jobId: asText(claims.job_id) } : {}),
        }
      : undefined
  const identity: Identity = {
    kind,
    id: user,
    name: user,
    ...(email ? { email } : {}),
    groups,
    roles: [],
    issuer: spec.name,
    ...(exp !== undefined ? { expiresAt: exp } : {}),
    ...(iat !== undefined ? { issuedAt: iat } : {}),
    groupsSource: groupClaims.length > 0 ? 'token' : 'none',
    ...(ci ? { ci } : {}),
  }
  if (!identityValuesClean(identity)) return { ok: false, reason: 'token-claim-invalid' }
  return { ok: true, identity, overage: false }
}
