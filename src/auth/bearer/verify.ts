/**
 * Bearer JWT verification with jose (docs/bearer.md, "What a JWT must satisfy"):
 * size and shape before parsing; `crit` refused; `alg` from the issuer's allow-list only (never
 * `none`, never HMAC); the key only from that issuer's own JWKS (header `jku`/`x5u`/`jwk`/`x5c` are
 * never looked at); exact `iss`; `aud` accepted; `exp` required; `exp`/`nbf`/`iat` within 60 s skew;
 * then the issuer's own claim rules (Entra: tenant, access-token shape). A verified token is cached
 * until `exp`: a cache hit answers synchronously, and revocation and whether the issuer still
 * publishes the key that verified it are checked on every use.
 */
import { jwtVerify } from 'jose'
import type { GraphGroups } from '../graph-groups.ts'
import type { Identity } from '../identity.ts'
import type { Revocations } from '../revocations.ts'
import { entraIdentity, issuerIdentity, type ClaimsResult } from './claims.ts'
import type { IssuerSpec } from './issuers.ts'
import type { IssuerKeys } from './key-set.ts'
import { bearerFailure, reasonForJoseError, type BearerFailure, type BearerFailureReason } from './reasons.ts'
import { tokenKey, type CachedToken, type TokenCache } from './token-cache.ts'
import { inspectToken, peekIssuer } from './token-shape.ts'

/** Largest clock difference tolerated for `exp`, `nbf` and `iat`. */
export const CLOCK_SKEW_SECONDS = 60

/** How long an identity whose overage groups could not be read is reused before Graph is asked again. */
const UNRESOLVED_OVERAGE_TTL_MS = 30_000

export type VerifyResult =
  | { readonly ok: true; readonly identity: Identity; readonly spec: IssuerSpec }
  | { readonly ok: false; readonly failure: BearerFailure }

export interface BearerVerifier {
  /** The trusted issuer a JWT claims to come from (cache, else an unverified peek at `iss`), or undefined. */
  lookup(token: string): IssuerSpec | undefined
  /** Synchronous on a cache hit; a Promise when the token must be verified. Never rejects. */
  verify(token: string): VerifyResult | Promise<VerifyResult>
}

export interface BearerVerifierDeps {
  readonly issuers: readonly IssuerSpec[]
  /**
   * Key holders by issuer label. Without `keyVersion` (a fixed key set), cached tokens are not tied
   * to their key.
   */
  readonly keys: ReadonlyMap<string, Pick<IssuerKeys, 'getKey'> & Partial<Pick<IssuerKeys, 'keyVersion'>>>
  readonly cache: TokenCache
  readonly revocations: Revocations
  readonly metrics: { tokenCache(result: 'hit' | 'miss'): void }
  /** Entra groups overage lookups; without it, overage means "no groups". */
  readonly graph?: GraphGroups
  readonly log?: { warn(obj: object, msg?: string): void }
  readonly now?: () => number
}

const fail = (reason: BearerFailureReason): VerifyResult => ({ ok: false, failure: bearerFailure(reason) })

export function createBearerVerifier(deps: BearerVerifierDeps): BearerVerifier {
  const now = deps.now ?? Date.now
  const byIss = new Map<string, IssuerSpec>()
  for (const spec of deps.issuers) if (!byIss.has(spec.iss)) byIss.set(spec.iss, spec)
  const pending = new Map<string, Promise<VerifyResult>>()

  // lookup() and verify() run back to back on the same token: hash it once.
  let memoToken = ''
  let memoKey = ''
  const keyOf = (token: string) => {
    if (token !== memoToken) {
      memoKey = tokenKey(token)
      memoToken = token
    }
    return memoKey
  }

  /** A cache entry still stands while the key that verified its token is published unchanged. */
  const keyCurrent = (entry: CachedToken) => entry.keyVersion === undefined || deps.keys.get(entry.spec.label)?.keyVersion?.(entry.kid) === entry.keyVersion

  function lookup(token: string): IssuerSpec | undefined {
    const hit = deps.cache.get(keyOf(token))
    if (hit) return hit.spec
    const iss = peekIssuer(token)
    return iss === undefined ? undefined : byIss.get(iss)
  }

  async function withGroups(result: Extract<ClaimsResult, { ok: true }>, spec: IssuerSpec): Promise<{ identity: Identity; ttlCapMs?: number }> {
    const { identity } = result
    if (!result.overage || !deps.graph || !identity.tenantId) return { identity }
    try {
      const groups = await deps.graph.groupsOf(identity.tenantId, identity.id)
      return { identity: { ...identity, groups, groupsSource: 'graph' } }
    } catch (err) {
      deps.log?.warn({ issuer: spec.label, code: (err as { code?: string }).code ?? 'IAP_ERR_GRAPH_UNAVAILABLE', userId: identity.id }, 'groups overage could not be resolved; continuing without groups')
      return { identity, ttlCapMs: UNRESOLVED_OVERAGE_TTL_MS }
    }
  }

  /** `firstSeenMs`: when an earlier, now stale, cache entry says the token was first accepted (revocations). */
  async function verifySlow(token: string, key: string, spec: IssuerSpec, kid: string | undefined, firstSeenMs?: number): Promise<VerifyResult> {
    const keys = deps.keys.get(spec.label)
    if (!keys) return fail('jwks-unavailable')
    const keyVersion = keys.keyVersion?.(kid)
    let claims: Record<string, unknown>
    try {
      const verified = await jwtVerify(token, keys.getKey, {
        issuer: spec.iss,
        audience: [...spec.audiences],
        algorithms: [...spec.algorithms],
        requiredClaims: ['exp'],
        clockTolerance: CLOCK_SKEW_SECONDS,
        currentDate: new Date(now()),
      })
      claims = verified.payload as Record<string, unknown>
    } catch (err) {
      return fail(reasonForJoseError(err))
    }
    const nowSec = now() / 1000
    // jose checks `iat` only with maxTokenAge, so it accepts a token from the future; it is refused here.
    if (typeof claims.iat === 'number' && claims.iat > nowSec + CLOCK_SKEW_SECONDS) return fail('token-issued-in-future')
    const mapped = spec.flavor === 'entra' ? entraIdentity(claims, spec, spec.tenantId ?? '') : issuerIdentity(claims, spec)
    if (!mapped.ok) return fail(mapped.reason)
    const { identity, ttlCapMs } = await withGroups(mapped, spec)
    const untilExp = (claims.exp as number) * 1000 - now()
    const ttlMs = ttlCapMs === undefined ? untilExp : Math.min(untilExp, ttlCapMs)
    const verifiedAt = firstSeenMs ?? now()
    if (!keys.keyVersion) deps.cache.set(key, { identity, spec, verifiedAt }, ttlMs)
    // Cached only when the keys under `kid` were the same before and after: the version that verified it is then certain.
    else if (keyVersion !== undefined && keys.keyVersion(kid) === keyVersion) deps.cache.set(key, { identity, spec, verifiedAt, ...(kid !== undefined && { kid }), keyVersion }, ttlMs)
    if (deps.revocations.isRevoked(identity, verifiedAt)) return fail('token-revoked')
    return { ok: true, identity, spec }
  }

  function verify(token: string): VerifyResult | Promise<VerifyResult> {
    const key = keyOf(token)
    const hit = deps.cache.get(key)
    if (hit && keyCurrent(hit)) {
      deps.metrics.tokenCache('hit')
      return deps.revocations.isRevoked(hit.identity, hit.verifiedAt) ? fail('token-revoked') : { ok: true, identity: hit.identity, spec: hit.spec }
    }
    // Its key was withdrawn or replaced since: verified again against the keys published now.
    if (hit) deps.cache.delete(key)
    const firstSeenMs = hit?.verifiedAt
    deps.metrics.tokenCache('miss')
    const shape = inspectToken(token)
    if (!shape.ok) return fail(shape.reason)
    const { header, payload } = shape
    if (typeof header.alg !== 'string') return fail('token-malformed')
    if (header.crit !== undefined) return fail('token-crit-unsupported')
    const spec = typeof payload.iss === 'string' ? byIss.get(payload.iss) : undefined
    if (!spec) return fail('token-issuer-untrusted')
    if (!spec.algorithms.includes(header.alg)) return fail('token-alg-not-allowed')
    let running = pending.get(key)
    if (!running) {
      running = verifySlow(token, key, spec, typeof header.kid === 'string' ? header.kid : undefined, firstSeenMs).catch(() => fail('token-bad-signature'))
      pending.set(key, running)
      running.finally(() => pending.delete(key)).catch(() => {})
    }
    return running
  }

  return { lookup, verify }
}
