/**
 * Authentication: find the first credential present (docs/bearer.md) and turn it into an Identity.
 * Bearer JWTs (X-IAP-Authorization, Authorization: Bearer, Basic username/password) are verified
 * against their issuer's keys; when no credential is present, the optional session step decides,
 * else the request is anonymous. A presented credential that fails is final: no fallback.
 */
import type { IncomingMessage } from 'node:http'
import type { Config } from '../config/schema.ts'
import { IapError } from '../errors.ts'
import type { RequestContext, AuthMethod } from '../server/context.ts'
import { createIssuerKeys, type IssuerKeys, type KeySetOptions } from './bearer/key-set.ts'
import { trustedIssuers } from './bearer/issuers.ts'
import { bearerFailure, type BearerFailure } from './bearer/reasons.ts'
import { createTokenCache, type TokenCacheOptions } from './bearer/token-cache.ts'
import { createBearerVerifier, type VerifyResult } from './bearer/verify.ts'
import { extractCredential, type Credential, type CredentialSource } from './credentials.ts'
import { graphGroupsFor, type GraphGroups } from './graph-groups.ts'
import { ANONYMOUS, type Identity } from './identity.ts'
import type { LfsGrants } from './lfs-grant.ts'
import { createRevocations, type Revocations } from './revocations.ts'

export type AuthOutcome =
  | {
      readonly ok: true
      readonly method: AuthMethod
      readonly identity: Identity
      /** Replacement for the `Authorization` header sent to GitLab: a string replaces it, `null` removes it, `undefined` leaves it. */
      readonly forwardAuthorization?: string | null
      /** Where the credential came from (token credentials only): an LFS batch answer gets grants unless it was X-IAP-Authorization. */
      readonly source?: CredentialSource
    }
  | {
      readonly ok: false
      readonly method: AuthMethod
      /** Stable kebab-case reason (logs, metrics). */
      readonly reason: string
      /** Safe, human-readable description for the client; never echoes the credential. */
      readonly description: string
      /** 401 for a bad credential, 503 when a dependency (session store, Graph) is down. */
      readonly status: 401 | 503
    }

export interface Authenticator {
  /** Synchronous for cached credentials: the hot path awaits nothing. */
  authenticate(req: IncomingMessage, ctx: RequestContext): AuthOutcome | Promise<AuthOutcome>
  /** Keys fetched, stores reachable. */
  isReady(): boolean
  /** Details for /readyz. */
  readiness(): Record<string, unknown>
  close(): Promise<void>
}

/** The browser-session step (last, after every JWT form): `undefined` when the request carries no session cookie. */
export interface SessionStep {
  authenticate(req: IncomingMessage, ctx: RequestContext): AuthOutcome | Promise<AuthOutcome> | undefined
}

export interface AuthenticatorOptions {
  readonly config: Pick<Config, 'entra' | 'issuers'>
  readonly metrics: {
    jwksFetch(issuer: string, result: 'success' | 'failure'): void
    tokenCache(result: 'hit' | 'miss'): void
  }
  /** Shared with /admin/revoke and the session store; a fresh one when absent. */
  readonly revocations?: Revocations
  readonly session?: SessionStep
  /** Checks the LFS grants this proxy hands out (src/auth/lfs-grant.ts); without it they are refused. */
  readonly lfsGrants?: LfsGrants
  readonly log?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void }
  /** Used for discovery, JWKS and Graph requests. */
  readonly fetch?: typeof fetch
  /** Groups overage lookups; by default built from `entra` when `entra.clientSecret` is set. */
  readonly graph?: GraphGroups
  /** Key-set timings (refresh, cooldown, retry, timeout). */
  readonly keySet?: Omit<KeySetOptions, 'metrics' | 'log' | 'fetch'>
  readonly tokenCache?: TokenCacheOptions
  readonly now?: () => number
}

/** The authenticator plus what the composition root wires elsewhere. */
export interface BearerAuthenticator extends Authenticator {
  readonly revocations: Revocations
  /** Resolves when every issuer's first key fetch has ended (successfully or not). */
  started(): Promise<void>
}

const ANONYMOUS_OUTCOME: AuthOutcome = Object.freeze({ ok: true, method: 'none', identity: ANONYMOUS })

const isPromise = <T>(value: T | Promise<T>): value is Promise<T> => typeof (value as Promise<T>)?.then === 'function'

const methodOf = (source: CredentialSource): AuthMethod => (source === 'basic-username' || source === 'basic-password' ? 'basic' : 'bearer')

function failed(method: AuthMethod, failure: BearerFailure): AuthOutcome {
  return { ok: false, method, reason: failure.reason, description: failure.description, status: failure.status }
}

function toOutcome(result: VerifyResult, credential: Extract<Credential, { kind: 'token' }>): AuthOutcome {
  const method = methodOf(credential.source)
  if (!result.ok) return failed(method, result.failure)
  return { ok: true, method, identity: result.identity, forwardAuthorization: credential.forwardAuthorization, source: credential.source }
}

/** The path an LFS grant names: the request target up to its query, as the batch answer's href had it. */
const targetPath = (url: string | undefined) => {
  const target = url ?? '/'
  const q = target.indexOf('?')
  return q === -1 ? target : target.slice(0, q)
}

/** Builds the authenticator: starts fetching every trusted issuer's keys at once (readiness waits for them). */
export function createAuthenticator(options?: AuthenticatorOptions): BearerAuthenticator {
  const issuers = options ? trustedIssuers(options.config) : []
  const seen = new Set<string>()
  for (const spec of issuers) {
    if (seen.has(spec.iss)) throw new IapError('IAP_ERR_CONFIG_INVALID', `issuers: two trusted issuers have the same iss "${spec.iss}"`)
    seen.add(spec.iss)
  }
  const metrics = options?.metrics ?? { jwksFetch() {}, tokenCache() {} }
  const revocations = options?.revocations ?? createRevocations()
  const keys = new Map<string, IssuerKeys>(
    issuers.map((spec) => [
      spec.label,
      createIssuerKeys(spec, { ...options?.keySet, metrics, ...(options?.log ? { log: options.log } : {}), ...(options?.fetch ? { fetch: options.fetch } : {}) }),
    ]),
  )
  const entra = options?.config.entra
  const graph =
    options?.graph ??
    (entra?.clientSecret
      ? graphGroupsFor({ ...entra, clientSecret: entra.clientSecret }, { ...(options?.log && { log: options.log }), ...(options?.fetch && { fetch: options.fetch }) })
      : undefined)
  const verifier = createBearerVerifier({
    issuers,
    keys,
    cache: createTokenCache(options?.tokenCache),
    revocations,
    metrics,
    ...(graph ? { graph } : {}),
    ...(options?.log ? { log: options.log } : {}),
    ...(options?.now ? { now: options.now } : {}),
  })
  const starting = Promise.all([...keys.values()].map((k) => k.start())).then(() => {})
  const session = options?.session

  return {
    revocations,
    started: () => starting,
    authenticate(req, ctx) {
      const credential = extractCredential(req.headers, verifier.lookup)
      if (credential.kind === 'none') return session?.authenticate(req, ctx) ?? ANONYMOUS_OUTCOME
      if (credential.kind === 'invalid') return failed(methodOf(credential.source), bearerFailure(credential.reason))
      if (credential.kind === 'lfs-grant') {
        const grant = options?.lfsGrants?.verify(credential.token, req.method ?? 'GET', targetPath(req.url)) ?? { ok: false, reason: 'lfs-grant-invalid' }
        if (!grant.ok) return failed('bearer', bearerFailure(grant.reason))
        // Minted from a credential issued before a revocation of the user: ends with it.
        if (revocations.isRevoked(grant.identity)) return failed('bearer', bearerFailure('token-revoked'))
        return { ok: true, method: 'bearer', identity: grant.identity, forwardAuthorization: credential.forwardAuthorization }
      }
      const result = verifier.verify(credential.token)
      return isPromise(result) ? result.then((r) => toOutcome(r, credential)) : toOutcome(result, credential)
    },
    isReady: () => issuers.every((spec) => spec.optional || keys.get(spec.label)!.isReady()),
    readiness: () => Object.fromEntries([...keys.values()].map((k) => [k.label, k.status()])),
    async close() {
      for (const k of keys.values()) k.close()
    },
  }
}
