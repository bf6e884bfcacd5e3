/**
 * Test-time token minting with the IdP's own keys: Entra v1/v2 access tokens (user or app-only) and
 * ID tokens, with every knob an attack test needs (times, claims added or removed, header fields such
 * as kid/alg/jku/x5u/jwk/x5c/crit/typ, a retired key, a foreign key, `alg: none`, HMAC with the public key).
 */
import { KeyObject, type webcrypto } from 'node:crypto'
import { accessTokenClaims, idTokenClaims, servicePrincipalOidOf, type AccessSubject, type Claims, type Tenant } from './claims.ts'
import type { DevUser, Directory } from './directory.ts'
import { signCompact, type Keyring, type SignWith, type SigningKey } from './keys.ts'

/** Overrides shared by `mintAccessToken` and `mintIdToken`. */
export interface MintCommonOptions {
  /** Lifetime from `iat` when `exp` is not given; default 3600. */
  readonly lifetimeSeconds?: number
  /** Absolute times in seconds since epoch (default: now, now, now + lifetime). */
  readonly iat?: number
  readonly nbf?: number
  readonly exp?: number
  /** Extra or replacing claims; a value of `undefined` removes the claim. */
  readonly claims?: Readonly<Record<string, unknown>>
  /** Claims to remove (e.g. `['exp']`, `['tid']`). */
  readonly omitClaims?: readonly string[]
  /** Header fields merged over `{ typ: 'JWT', alg: 'RS256', kid }`; a value of `undefined` removes the field. */
  readonly header?: Readonly<Record<string, unknown>>
  /** Sign with this key of the IdP (current, older or already rotated out), by kid. */
  readonly keyId?: string
  /** Sign with a foreign private key instead (e.g. an attacker's); `header.alg` must suit it. */
  readonly signingKey?: KeyObject | webcrypto.CryptoKey
  /** Secret for `alg: HS*`; default: the IdP's current public key as PEM (the key-confusion attack). */
  readonly hmacSecret?: string | Buffer
}

/** What `mintAccessToken` signs. Give `user` (oid, UPN or login) or `app`. */
export interface MintAccessTokenOptions extends MintCommonOptions {
  readonly user?: string | DevUser
  readonly app?: { readonly appId: string; readonly roles?: readonly string[]; readonly oid?: string }
  /** `aud`; default: the IdP's default API audience. */
  readonly audience?: string | readonly string[]
  /** 1 → iss `${authority}/${tid}/`, `appid`, `upn`, `unique_name`, `ver: "1.0"`; default 2. */
  readonly version?: 1 | 2
  /** The client that obtained a user token (`azp`/`appid`); default the IdP's default client id. */
  readonly clientId?: string
  /** Delegated scopes of a user token; default `access_as_user`. */
  readonly scp?: string
}

/** What `mintIdToken` signs (an ID token for `clientId`, which attack tests present as a bearer token). */
export interface MintIdTokenOptions extends MintCommonOptions {
  readonly user: string | DevUser
  /** `aud`; default the IdP's default client id. */
  readonly clientId?: string
  /** Default: a random nonce, as in a real sign-in. Pass `null` for none. */
  readonly nonce?: string | null
  readonly sid?: string
}

export interface MintDeps {
  readonly tenant: Tenant
  readonly keyring: Keyring
  readonly directory: Directory
  readonly defaultAudience: string
  readonly defaultClientId: string
  readonly overageLimit: number
}

const nowSeconds = () => Math.floor(Date.now() / 1000)

function resolveUser(deps: MintDeps, user: string | DevUser): DevUser {
  if (typeof user !== 'string') return user
  const found = deps.directory.getUser(user)
  if (!found) throw new Error(`devidp: no user "${user}" in the directory`)
  return found
}

function times(o: MintCommonOptions) {
  const iat = o.iat ?? nowSeconds()
  return { iat, nbf: o.nbf ?? iat, exp: o.exp ?? iat + (o.lifetimeSeconds ?? 3600) }
}

/** Applies `claims` (undefined removes) and `omitClaims`. */
function adjust(base: Claims, extra: Readonly<Record<string, unknown>> | undefined, omit: readonly string[] | undefined): Claims {
  const out: Claims = { ...base }
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v === undefined) delete out[k]
    else out[k] = v
  }
  for (const k of omit ?? []) delete out[k]
  return out
}

function signingKeyOf(deps: MintDeps, keyId: string | undefined): SigningKey {
  if (keyId === undefined) return deps.keyring.current()
  const key = deps.keyring.byKid(keyId)
  if (!key) throw new Error(`devidp: no key with kid ${keyId}`)
  return key
}

function sign(deps: MintDeps, o: MintCommonOptions, payload: Claims, version: 1 | 2): string {
  const key = signingKeyOf(deps, o.keyId)
  const header = adjust({ typ: 'JWT', alg: 'RS256', kid: key.kid, ...(version === 1 ? { x5t: key.kid } : {}) }, o.header, undefined)
  const alg = typeof header.alg === 'string' ? header.alg : ''
  let how: SignWith
  if (alg.toLowerCase() === 'none') how = { none: true }
  else if (alg.startsWith('HS')) how = { secret: o.hmacSecret ?? key.publicKey.export({ type: 'spki', format: 'pem' }) }
  else if (o.signingKey) how = { key: o.signingKey instanceof KeyObject ? o.signingKey : KeyObject.from(o.signingKey) }
  else how = { key: key.privateKey }
  return signCompact(header, payload, how)
}

/** Signs an Entra-shaped access token (user or app-only, v1 or v2). */
export function mintAccessToken(deps: MintDeps, o: MintAccessTokenOptions): string {
  const version = o.version ?? 2
  let subject: AccessSubject
  if (o.app) {
    subject = { kind: 'app', appId: o.app.appId, oid: o.app.oid ?? servicePrincipalOidOf(deps.tenant.tenantId, o.app.appId), roles: o.app.roles ?? [] }
  } else if (o.user !== undefined) {
    subject = { kind: 'user', user: resolveUser(deps, o.user), clientId: o.clientId ?? deps.defaultClientId, scp: o.scp ?? 'access_as_user' }
  } else {
    throw new Error('devidp: mintAccessToken needs `user` or `app`')
  }
  const claims = accessTokenClaims(deps.tenant, subject, { version, audience: o.audience ?? deps.defaultAudience, limit: deps.overageLimit, ...times(o) })
  return sign(deps, o, adjust(claims, o.claims, o.omitClaims), version)
}

/** Signs an Entra v2 ID token. */
export function mintIdToken(deps: MintDeps, o: MintIdTokenOptions): string {
  const nonce = o.nonce === null ? undefined : o.nonce ?? crypto.randomUUID()
  const claims = idTokenClaims(deps.tenant, resolveUser(deps, o.user), {
    clientId: o.clientId ?? deps.defaultClientId,
    nonce,
    sid: o.sid,
    limit: deps.overageLimit,
    ...times(o),
  })
  return sign(deps, o, adjust(claims, o.claims, o.omitClaims), 2)
}
