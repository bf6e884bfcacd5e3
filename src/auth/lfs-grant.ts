/**
 * LFS grants: short-lived credentials the proxy mints for the object transfers GitLab's LFS batch
 * answer lists, so a client that reached the batch with the two-credential URL can fetch and push
 * the objects too (its IAP token is never handed back: see src/gitlab/lfs-batch.ts).
 *
 * A grant names one action (download: GET/HEAD, upload: PUT, verify: POST) on one path of this proxy,
 * carries the identity it was minted for and ends after `ttlSeconds` or with that identity's own
 * credential, whichever is first. Grants are sealed (AES-256-GCM) with a key derived from
 * `session.secret` (every replica accepts every replica's grants; without a secret, a key made at
 * start) and bound to this deployment's public origin, so another deployment sharing the secret
 * refuses them. Sealed, not only signed: a redirect to object storage carries the grant along, and
 * what reaches the store opens only the object it names and shows nothing of the identity.
 *
 *   iaplfs1.<seal: base64url(iv | tag | ciphertext)>
 */
import { hkdfSync, randomBytes } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Identity } from './identity.ts'
import { open as unseal, seal } from './session/seal.ts'

export const LFS_GRANT_PREFIX = 'iaplfs1.'

/** The LFS batch actions a grant can be minted for, and the methods each allows. */
const ACTION_METHODS: Readonly<Record<string, readonly string[]>> = {
  download: ['GET', 'HEAD'],
  upload: ['PUT'],
  verify: ['POST'],
}

export type LfsGrantFailure = 'lfs-grant-invalid' | 'lfs-grant-expired' | 'lfs-grant-out-of-scope'

export type LfsGrantResult = { readonly ok: true; readonly identity: Identity } | { readonly ok: false; readonly reason: LfsGrantFailure }

export interface LfsGrants {
  /** A grant for `action` on `path`, or undefined for an action no method belongs to. */
  mint(identity: Identity, action: string, path: string): string | undefined
  /** The identity a grant carries, when it is genuine, unexpired and names this method and path. */
  verify(grant: string, method: string, path: string): LfsGrantResult
}

export interface LfsGrantOptions {
  /** This deployment's public origin (`server.publicUrl`): grants of another deployment do not open here. */
  readonly audience: string
  /** Derive the key from this secret (`session.secret`) so every replica shares it. */
  readonly secret?: string
  /** Longest a grant lives (default 3600 s); never longer than the credential it was minted from. */
  readonly ttlSeconds?: number
  /** Most opened grants kept, so a repeated grant costs no decryption. */
  readonly maxCached?: number
  readonly now?: () => number
}

interface Payload {
  readonly act: string
  readonly path: string
  readonly exp: number
  readonly idn: Identity
}

/** The identity fields a grant carries (what policy, identity headers and the access log read). */
function grantIdentity(identity: Identity, exp: number): Identity {
  return {
    kind: identity.kind,
    id: identity.id,
    ...(identity.name !== undefined && { name: identity.name }),
    ...(identity.guest !== undefined && { guest: identity.guest }),
    ...(identity.email !== undefined && { email: identity.email }),
    ...(identity.displayName !== undefined && { displayName: identity.displayName }),
    groups: identity.groups,
    roles: identity.roles,
    ...(identity.appId !== undefined && { appId: identity.appId }),
    issuer: identity.issuer,
    ...(identity.tenantId !== undefined && { tenantId: identity.tenantId }),
    expiresAt: exp,
    // The original credential's issue time: a revocation of the user also ends the grants minted from it.
    ...(identity.issuedAt !== undefined && { issuedAt: identity.issuedAt }),
    ...(identity.groupsSource !== undefined && { groupsSource: identity.groupsSource }),
    ...(identity.ci !== undefined && { ci: identity.ci }),
  }
}

function isPayload(value: unknown): value is Payload {
  if (value === null || typeof value !== 'object') return false
  const p = value as Record<string, unknown>
  const idn = p.idn as Record<string, unknown> | null
  return (
    typeof p.act === 'string' &&
    typeof p.path === 'string' &&
    typeof p.exp === 'number' &&
    idn !== null &&
    typeof idn === 'object' &&
    typeof idn.id === 'string' &&
    typeof idn.kind === 'string' &&
    typeof idn.issuer === 'string' &&
    Array.isArray(idn.groups) &&
    Array.isArray(idn.roles)
  )
}

export function createLfsGrants(options: LfsGrantOptions): LfsGrants {
  const now = options.now ?? Date.now
  const ttl = options.ttlSeconds ?? 3600
  const key = options.secret
    ? Buffer.from(hkdfSync('sha256', Buffer.from(options.secret, 'utf8'), 'gitlab-iap', 'lfs-grant v1', 32))
    : randomBytes(32)
  const associatedData = `lfs-grant ${options.audience}`
  const verified = new LRUCache<string, Payload>({ max: options.maxCached ?? 10_000 })

  function open(grant: string): Payload | undefined {
    const cached = verified.get(grant)
    if (cached) return cached
    if (!grant.startsWith(LFS_GRANT_PREFIX)) return undefined
    const json = unseal(key, grant.slice(LFS_GRANT_PREFIX.length), associatedData)
    if (json === undefined) return undefined
    let payload: unknown
    try {
      payload = JSON.parse(json)
    } catch {
      return undefined
    }
    if (!isPayload(payload)) return undefined
    const frozen = Object.freeze({ ...payload, idn: Object.freeze(payload.idn) })
    verified.set(grant, frozen)
    return frozen
  }

  return {
    mint(identity, action, path) {
      if (!Object.hasOwn(ACTION_METHODS, action) || identity.kind === 'anonymous') return undefined
      const at = Math.floor(now() / 1000)
      const exp = identity.expiresAt !== undefined ? Math.min(at + ttl, identity.expiresAt) : at + ttl
      const payload: Payload = { act: action, path, exp, idn: grantIdentity(identity, exp) }
      return LFS_GRANT_PREFIX + seal(key, JSON.stringify(payload), associatedData)
    },
    verify(grant, method, path) {
      const payload = open(grant)
      if (!payload) return { ok: false, reason: 'lfs-grant-invalid' }
      if (payload.exp * 1000 <= now()) return { ok: false, reason: 'lfs-grant-expired' }
      const methods = Object.hasOwn(ACTION_METHODS, payload.act) ? ACTION_METHODS[payload.act]! : []
      if (payload.path !== path || !methods.includes(method)) return { ok: false, reason: 'lfs-grant-out-of-scope' }
      return { ok: true, identity: payload.idn }
    },
  }
}

/** True for a value shaped like a grant (the prefix; no JWT starts with it). */
export const looksLikeLfsGrant = (value: string): boolean => value.startsWith(LFS_GRANT_PREFIX)
