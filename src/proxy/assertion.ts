/**
 * `X-IAP-Assertion`: a short-lived ES256 JWT the proxy signs with the identity of an allowed request,
 * so GitLab (or anything behind the proxy) can check who the proxy let through without trusting
 * plain headers. Public keys: `GET /-/iap/jwks.json` (`jwks()`).
 *
 * The key pair is derived from `session.secret` when one is configured (HKDF, a label of its own), so
 * every replica signs with the same key and any replica's jwks.json verifies any replica's
 * assertions; without a secret it is generated at start (single replica).
 * Signing is synchronous (node:crypto) and each identity's assertion is reused for most of
 * its lifetime (three quarters), so the hot path does no crypto for a repeated identity.
 */
import { createECDH, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, hkdfSync, randomUUID, sign, type KeyObject } from 'node:crypto'
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import { LRUCache } from 'lru-cache'
import { qualifiedValue, type Identity } from '../auth/identity.ts'

export const ASSERTION_HEADER = 'x-iap-assertion'

export interface AssertionJwk {
  readonly kty: 'EC'
  readonly crv: 'P-256'
  readonly x: string
  readonly y: string
  readonly kid: string
  readonly alg: 'ES256'
  readonly use: 'sig'
}

export interface AssertionSigner {
  /** The assertion for an identity (undefined for anonymous); reused while more than a quarter of its lifetime remains. */
  assertionFor(identity: Identity): string | undefined
  /** Sets `X-IAP-Assertion` on headers bound for GitLab (nothing for anonymous requests). */
  setHeader(headers: IncomingHttpHeaders, identity: Identity): void
  /** The public key set for `/-/iap/jwks.json`. */
  jwks(): { readonly keys: readonly AssertionJwk[] }
  readonly kid: string
  readonly issuer: string
  readonly audience: string
}

export interface AssertionOptions {
  /** `server.publicUrl`: the assertion's `aud` is its origin, `iss` is `{origin}/-/iap`. */
  readonly publicUrl: string
  /** Derive the key from this secret (e.g. `session.secret`) instead of generating one. */
  readonly secret?: string
  /** Lifetime of one assertion (default 120 s). */
  readonly ttlSeconds?: number
  /** Most identities whose assertion is kept. */
  readonly maxCached?: number
  readonly now?: () => number
}

// Order of the P-256 group: a derived private scalar must lie in [1, n-1].
const P256_ORDER = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551')

/** A P-256 private key derived deterministically from a secret (HKDF-SHA256, own label). */
export function deriveP256Key(secret: string): KeyObject {
  for (let counter = 0; ; counter++) {
    const d = Buffer.from(hkdfSync('sha256', secret, 'gitlab-iap', `x-iap-assertion es256 ${counter}`, 32))
    const scalar = BigInt(`0x${d.toString('hex')}`)
    if (scalar === 0n || scalar >= P256_ORDER) continue
    const ecdh = createECDH('prime256v1')
    ecdh.setPrivateKey(d)
    const point = ecdh.getPublicKey()
    return createPrivateKey({
      key: { kty: 'EC', crv: 'P-256', d: d.toString('base64url'), x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33, 65).toString('base64url') },
      format: 'jwk',
    })
  }
}

/** RFC 7638 thumbprint of an EC public key. */
function thumbprint(jwk: { crv: string; kty: string; x: string; y: string }): string {
  return createHash('sha256').update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })).digest('base64url')
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

/**
 * The claims carried for an identity (no secrets: ids, names, groups, roles, CI facts). `sub` and
 * `preferred_username` are qualified for extra issuers (`gitlab-ci:alice`) as in `X-Forwarded-User-Id`
 * and `X-Forwarded-User`: a consumer that reads `sub` without `idp` still cannot take one for an Entra user.
 */
export function assertionClaims(identity: Identity): Record<string, unknown> {
  return {
    sub: qualifiedValue(identity, identity.id),
    kind: identity.kind,
    idp: identity.issuer,
    ...(identity.name ? { preferred_username: qualifiedValue(identity, identity.name) } : {}),
    ...(identity.email ? { email: identity.email } : {}),
    ...(identity.displayName ? { name: identity.displayName } : {}),
    groups: identity.groups,
    ...(identity.roles.length > 0 ? { roles: identity.roles } : {}),
    ...(identity.appId ? { azp: identity.appId } : {}),
    ...(identity.tenantId ? { tid: identity.tenantId } : {}),
    ...(identity.ci ? { ci: identity.ci } : {}),
    // A guest's name was chosen in its home tenant: whoever maps names to accounts must know.
    ...(identity.guest ? { guest: true } : {}),
  }
}

function cacheKey(identity: Identity): string {
  return [identity.issuer, identity.kind, identity.id, identity.name ?? '', identity.email ?? '', identity.appId ?? '', identity.groups.join(','), identity.roles.join(','), identity.ci ? JSON.stringify(identity.ci) : '', identity.guest ? 'guest' : ''].join('\u0000')
}

export function createAssertionSigner(options: AssertionOptions): AssertionSigner {
  const now = options.now ?? Date.now
  const ttl = options.ttlSeconds ?? 120
  const origin = new URL(options.publicUrl).origin
  const issuer = `${origin}/-/iap`
  const privateKey = options.secret ? deriveP256Key(options.secret) : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
  const pub = createPublicKey(privateKey).export({ format: 'jwk' }) as { kty: 'EC'; crv: 'P-256'; x: string; y: string }
  const kid = thumbprint(pub)
  const jwk: AssertionJwk = Object.freeze({ kty: 'EC', crv: 'P-256', x: pub.x, y: pub.y, kid, alg: 'ES256', use: 'sig' })
  const header = b64url({ alg: 'ES256', typ: 'JWT', kid })

  interface Entry {
    readonly jwt: string
    readonly renewAt: number
  }
  // Bearer identities are shared objects from the token cache: a WeakMap hit costs nothing.
  const byObject = new WeakMap<Identity, Entry>()
  const byValue = new LRUCache<string, Entry>({ max: options.maxCached ?? 20_000 })

  function signFor(identity: Identity, at: number): Entry {
    const iat = Math.floor(at / 1000)
    const payload = b64url({ iss: issuer, aud: origin, ...assertionClaims(identity), iat, nbf: iat - 5, exp: iat + ttl, jti: randomUUID() })
    const input = `${header}.${payload}`
    const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')
    // Reused for three quarters of its life: what GitLab receives is always valid for at least ttl/4 more.
    return { jwt: `${input}.${signature}`, renewAt: at + (ttl * 1000 * 3) / 4 }
  }

  function assertionFor(identity: Identity): string | undefined {
    if (identity.kind === 'anonymous') return undefined
    const at = now()
    const direct = byObject.get(identity)
    if (direct && direct.renewAt > at) return direct.jwt
    const key = cacheKey(identity)
    let entry = byValue.get(key)
    if (!entry || entry.renewAt <= at) {
      entry = signFor(identity, at)
      byValue.set(key, entry)
    }
    byObject.set(identity, entry)
    return entry.jwt
  }

  return {
    assertionFor,
    setHeader(headers, identity) {
      const jwt = assertionFor(identity)
      if (jwt) headers[ASSERTION_HEADER] = jwt
    },
    jwks: () => ({ keys: [jwk] }),
    kid,
    issuer,
    audience: origin,
  }
}

/**
 * Answers `GET|HEAD /-/iap/jwks.json` with the signer's public keys; returns false for any other
 * request so it composes with the other `/-/iap/` endpoints.
 */
export function serveAssertionJwks(signer: Pick<AssertionSigner, 'jwks'>, req: { method?: string | undefined; url?: string | undefined }, res: ServerResponse): boolean {
  const path = (req.url ?? '').split('?')[0]
  if (path !== '/-/iap/jwks.json' || (req.method !== 'GET' && req.method !== 'HEAD')) return false
  const body = JSON.stringify(signer.jwks())
  res.writeHead(200, { 'content-type': 'application/jwk-set+json', 'content-length': Buffer.byteLength(body), 'cache-control': 'public, max-age=300', 'x-content-type-options': 'nosniff' })
  res.end(req.method === 'HEAD' ? undefined : body)
  return true
}
