/**
 * Signing keys of the dev IdP: RSA key generation, Entra-like key ids, the keyring with rotation,
 * the public JWKS documents (v2 keys carry an `issuer` member, as Entra's do) and compact JWS signing
 * with any algorithm (including the broken ones attack tests need: `none`, HMAC with the public key).
 */
import { createHash, createHmac, constants, generateKeyPair, KeyObject, sign, type JsonWebKey } from 'node:crypto'
import { promisify } from 'node:util'

const generateKeyPairAsync = promisify(generateKeyPair)

/** One RSA signing key; `kid` is a SHA-1 thumbprint (27 base64url chars, like Entra's). */
export interface SigningKey {
  readonly kid: string
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
}

/** A public JWK as served in the keys documents. */
export interface PublicJwk {
  readonly kty: string
  readonly use: 'sig'
  readonly kid: string
  readonly x5t: string
  readonly n: string
  readonly e: string
  readonly issuer?: string
}

/** Generates a fresh RSA-2048 signing key (tens of milliseconds). */
export async function generateSigningKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', { modulusLength: 2048 })
  const kid = createHash('sha1').update(publicKey.export({ type: 'spki', format: 'der' })).digest('base64url')
  return Object.freeze({ kid, privateKey, publicKey })
}

/** Keys in service (current first) plus every key ever made, so tests can still sign with a retired one. */
export interface Keyring {
  current(): SigningKey
  /** Keys published in the JWKS and usable by the provider, current first. */
  active(): readonly SigningKey[]
  /** Any key this IdP ever generated (retired ones included). */
  byKid(kid: string): SigningKey | undefined
  /** Makes `key` current; keeps the previously active keys published only when `keepOld`. */
  rotate(key: SigningKey, keepOld: boolean): void
}

export function createKeyring(first: SigningKey): Keyring {
  let active: SigningKey[] = [first]
  const history = new Map<string, SigningKey>([[first.kid, first]])
  return {
    current: () => active[0] as SigningKey,
    active: () => active,
    byKid: (kid) => history.get(kid),
    rotate(key, keepOld) {
      history.set(key.kid, key)
      active = keepOld ? [key, ...active] : [key]
    },
  }
}

/** The public keys document (`{ keys: [...] }`); v2 documents put the issuer on every key. */
export function publicJwks(keys: readonly SigningKey[], issuer?: string): { keys: PublicJwk[] } {
  return {
    keys: keys.map((k) => {
      const jwk = k.publicKey.export({ format: 'jwk' })
      return { kty: String(jwk.kty), use: 'sig' as const, kid: k.kid, x5t: k.kid, n: String(jwk.n), e: String(jwk.e), ...(issuer ? { issuer } : {}) }
    }),
  }
}

/** Private JWKs for oidc-provider's `jwks` option, current first (it signs with the first match). */
export function privateJwks(keys: readonly SigningKey[]): { keys: JsonWebKey[] } {
  return { keys: keys.map((k) => ({ ...k.privateKey.export({ format: 'jwk' }), kid: k.kid, use: 'sig', alg: 'RS256' })) }
}

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')

/** Key material for `signCompact`: an asymmetric private key, an HMAC secret, or nothing (`alg: none`). */
export type SignWith = { readonly key: KeyObject } | { readonly secret: string | Buffer } | { readonly none: true }

/**
 * Signs a compact JWS exactly as given: the header is not normalised, so it may carry any `alg`,
 * `kid`, `jku`, `jwk`, `crit`... The signature follows `header.alg` (RS*, PS*, ES*, EdDSA, HS*, none).
 */
export function signCompact(header: Record<string, unknown>, payload: Record<string, unknown>, how: SignWith): string {
  const input = `${b64url(header)}.${b64url(payload)}`
  const alg = typeof header.alg === 'string' ? header.alg : ''
  return `${input}.${signature(Buffer.from(input), alg, how).toString('base64url')}`
}

function signature(data: Buffer, alg: string, how: SignWith): Buffer {
  if ('none' in how) return Buffer.alloc(0)
  const bits = alg.slice(2) === '384' ? '384' : alg.slice(2) === '512' ? '512' : '256'
  if ('secret' in how) return createHmac(`sha${bits}`, how.secret).update(data).digest()
  if (alg.startsWith('PS')) {
    return sign(`sha${bits}`, data, { key: how.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(bits) / 8 })
  }
  if (alg.startsWith('ES')) return sign(`sha${bits}`, data, { key: how.key, dsaEncoding: 'ieee-p1363' })
  if (alg === 'EdDSA' || alg === 'Ed25519') return sign(null, data, how.key)
  // RS* and anything unknown: PKCS#1 v1.5 with the key (an unknown alg then fails verification, as it should)
  return sign(`sha${bits}`, data, how.key)
}
