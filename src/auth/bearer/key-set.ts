/**
 * One issuer's signing keys: OpenID discovery (when no `jwksUri` is configured), then jose's
 * `createRemoteJWKSet`, fetched at start and reloaded in the background. Requests never wait for the
 * network except while the very first fetch is in flight, and never cause a fetch storm:
 * - jose is told never to refetch on its own (`cacheMaxAge` and `cooldownDuration` Infinity);
 * - an unknown `kid` triggers at most one refetch per `cooldownMs`, shared by concurrent requests;
 * - a failed fetch also starts the cooldown, so a dead IdP is not hammered;
 * - a failed reload keeps the last good keys (stale-if-error) and shows in metrics and readiness; a
 *   document without a single usable key counts as failed (it would otherwise replace good keys);
 * - `keyVersion` tells the verified-token cache, synchronously, whether the key that verified a token
 *   is still published: a withdrawn key (a rotation after a leak) stops counting for cached tokens too.
 * A `kid` is only ever looked up in this issuer's own set: one issuer's key never verifies another's tokens.
 */
import { createRemoteJWKSet, customFetch, type FlattenedJWSInput, type JWSHeaderParameters, type JWTVerifyGetKey } from 'jose'
import { IapError } from '../../errors.ts'
import { oneLine } from '../../http/one-line.ts'
import { displayUrl, redactUrlsIn } from '../../net/display-url.ts'
import { readLimited } from '../../net/read-limited.ts'
import type { IssuerSpec } from './issuers.ts'

type KeyResult = Awaited<ReturnType<JWTVerifyGetKey>>

export interface KeySetStatus {
  readonly ready: boolean
  readonly keys: number
  readonly jwksUri?: string
  /** ISO time of the last successful key fetch. */
  readonly lastSuccess?: string
  /** ISO time and cause of the last failed discovery/key fetch (kept until the next success). */
  readonly lastFailure?: string
  readonly lastError?: string
}

/** Opaque: the same object while the keys it stands for are unchanged; compared with `===`. */
export type KeyVersion = object

export interface IssuerKeys {
  readonly label: string
  /** Key resolver for `jwtVerify`; throws `IAP_ERR_JWKS_UNAVAILABLE` when no keys were ever fetched. */
  readonly getKey: (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<KeyResult>
  /**
   * The version of the published keys a token with this `kid` is verified with (without `kid`: the
   * whole set), or undefined when there are none. A new object once they change or go. Synchronous.
   */
  keyVersion(kid: string | undefined): KeyVersion | undefined
  /** Discovery + first fetch; resolves when that attempt ends (retries continue in the background). */
  start(): Promise<void>
  isReady(): boolean
  status(): KeySetStatus
  close(): void
}

export interface KeySetMetrics {
  jwksFetch(issuer: string, result: 'success' | 'failure'): void
}

export interface KeySetLogger {
  warn(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
}

export interface KeySetOptions {
  readonly metrics: KeySetMetrics
  readonly log?: KeySetLogger
  readonly fetch?: typeof fetch
  /** Background reload interval (Entra's guidance is hourly: https://learn.microsoft.com/en-us/entra/identity-platform/signing-key-rollover). */
  readonly refreshMs?: number
  /** Minimum time between refetches caused by unknown `kid`s or after a failure. */
  readonly cooldownMs?: number
  /** Retry delay after a failed start or reload (doubles up to `refreshMs`, at most 5 min). */
  readonly retryMs?: number
  /** Timeout of one discovery or JWKS request. */
  readonly timeoutMs?: number
  readonly now?: () => number
}

/** Discovery documents and key sets are small (Entra's is ~10 KiB); refuse anything absurd. */
const MAX_DOCUMENT_BYTES = 512 * 1024

/** Most of an error answer read to say what the IdP said (Entra: `{"error":"invalid_tenant","error_description":"AADSTS90002: …"}`). */
const MAX_ERROR_BODY_BYTES = 4096

/** ` invalid_tenant: AADSTS90002: Tenant '…' not found…` from an OAuth-style error body; '' for anything else. */
async function idpErrorOf(res: Response): Promise<string> {
  try {
    const body = JSON.parse(await readLimited(res, MAX_ERROR_BODY_BYTES)) as { error?: unknown; error_description?: unknown }
    const said = [body.error, body.error_description].filter((v): v is string => typeof v === 'string').join(': ')
    // The IdP's own words, one line and bounded: it may echo what it was asked, never anything secret of ours.
    return said === '' ? '' : ` ${oneLine(said).slice(0, 300)}`
  } catch {
    await res.body?.cancel().catch(() => {})
    return ''
  }
}

async function fetchJson(doFetch: typeof fetch, url: string, init: RequestInit): Promise<unknown> {
  const res = await doFetch(url, { ...init, redirect: 'manual' })
  if (res.status !== 200) throw new Error(`GET ${displayUrl(url)}: HTTP ${res.status}${await idpErrorOf(res)}`)
  const text = await readLimited(res, MAX_DOCUMENT_BYTES)
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw new Error('response is not JSON')
  }
}

/**
 * Keeps only usable keys: no symmetric keys; for Entra, no key whose `issuer` names another tenant/issuer.
 * Throws when none is left: `{"keys": []}` from a sick IdP is no reason to forget the last good keys.
 */
export function filterKeys(spec: Pick<IssuerSpec, 'keyIssuers' | 'tenantId'>, jwks: unknown): { keys: Record<string, unknown>[] } {
  const keys = (jwks as { keys?: unknown })?.keys
  if (!Array.isArray(keys)) throw new Error('not a JSON Web Key Set')
  const allowed = spec.keyIssuers
  const usable = keys.filter((key): key is Record<string, unknown> => {
    if (typeof key !== 'object' || key === null) return false
    // A symmetric key has no place in a public key set (RS→HS confusion material): never load one.
    if ((key as { kty?: unknown }).kty === 'oct') return false
    const issuer = (key as { issuer?: unknown }).issuer
    if (!allowed || typeof issuer !== 'string') return true
    return allowed.includes(issuer.replaceAll('{tenantid}', spec.tenantId ?? ''))
  })
  if (usable.length === 0) throw new Error(`no usable key in the key set (${keys.length} listed)`)
  return { keys: usable }
}

/** Versions of a key set: per `kid`, and of the whole set (tokens without `kid`). */
export interface KeyVersions {
  readonly byKid: ReadonlyMap<string, { readonly fingerprint: string }>
  readonly all: { readonly fingerprint: string } | undefined
}

export const NO_KEY_VERSIONS: KeyVersions = Object.freeze({ byKid: new Map(), all: undefined })

/**
 * The versions of `keys`, reusing `previous`'s object wherever the keys are unchanged: a routine
 * refetch of the same document keeps every cached token, a withdrawn or replaced key drops its own.
 */
export function nextKeyVersions(keys: readonly unknown[], previous: KeyVersions): KeyVersions {
  const prints = new Map<string, string>()
  for (const key of keys) {
    const kid = (key as { kid?: unknown })?.kid
    if (typeof kid === 'string') prints.set(kid, `${prints.get(kid) ?? ''}${JSON.stringify(key)}\n`)
  }
  const keep = (before: { fingerprint: string } | undefined, fingerprint: string) => (before?.fingerprint === fingerprint ? before : { fingerprint })
  const byKid = new Map<string, { fingerprint: string }>()
  for (const [kid, fingerprint] of prints) byKid.set(kid, keep(previous.byKid.get(kid), fingerprint))
  return { byKid, all: keys.length === 0 ? undefined : keep(previous.all, keys.map((k) => JSON.stringify(k)).join('\n')) }
}

/** The cause of a failed fetch for logs and `/readyz`: fetch errors can quote the URL, query and all. */
const describe = (err: unknown) => {
  const e = err as { code?: string; message?: string; cause?: { code?: string } }
  return redactUrlsIn([e?.code, e?.message, e?.cause?.code].filter(Boolean).join(': ') || 'unknown error')
}

/** Creates the key holder for one issuer. Call `start()` once; `close()` stops its timers. */
export function createIssuerKeys(spec: IssuerSpec, options: KeySetOptions): IssuerKeys {
  const doFetch = options.fetch ?? globalThis.fetch
  const now = options.now ?? Date.now
  const refreshMs = options.refreshMs ?? 60 * 60_000
  const cooldownMs = options.cooldownMs ?? 30_000
  const retryBaseMs = options.retryMs ?? 1000
  const timeoutMs = options.timeoutMs ?? 5000
  const label = spec.label

  let jwksUri = spec.jwksUri
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined
  let keyCount = 0
  let versions = NO_KEY_VERSIONS
  let loaded = false
  let lastSuccess: number | undefined
  let lastFailure: number | undefined
  let lastError: string | undefined
  let lastRefetch = Number.NEGATIVE_INFINITY
  let inflight: Promise<void> | undefined
  let startPromise: Promise<void> | undefined
  let timer: NodeJS.Timeout | undefined
  let retryMs = retryBaseMs
  let closed = false

  // Every key fetch goes through here: counted, size-limited, filtered, re-served to jose as JSON.
  const countingFetch = async (url: string, init: RequestInit): Promise<Response> => {
    try {
      const filtered = filterKeys(spec, await fetchJson(doFetch, url, init))
      keyCount = filtered.keys.length
      options.metrics.jwksFetch(label, 'success')
      return new Response(JSON.stringify(filtered), { status: 200, headers: { 'content-type': 'application/json' } })
    } catch (err) {
      options.metrics.jwksFetch(label, 'failure')
      throw err
    }
  }

  async function discover(): Promise<string> {
    let doc: { issuer?: unknown; jwks_uri?: unknown }
    try {
      doc = (await fetchJson(doFetch, spec.discoveryUrl, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } })) as typeof doc
    } catch (err) {
      options.metrics.jwksFetch(label, 'failure')
      throw new Error(`discovery failed: ${describe(err)}${spec.label.startsWith('entra') ? ' (check entra.tenantId and entra.authority)' : ` (check issuers: ${spec.label})`}`)
    }
    if (doc?.issuer !== spec.iss) {
      options.metrics.jwksFetch(label, 'failure')
      throw new Error(`discovery names issuer ${JSON.stringify(doc?.issuer)}, expected ${JSON.stringify(spec.iss)}`)
    }
    if (typeof doc.jwks_uri !== 'string' || !/^https?:\/\//.test(doc.jwks_uri)) {
      options.metrics.jwksFetch(label, 'failure')
      throw new Error('discovery has no http(s) jwks_uri')
    }
    return doc.jwks_uri
  }

  async function loadOnce(): Promise<void> {
    try {
      jwksUri ??= await discover()
      jwks ??= createRemoteJWKSet(new URL(jwksUri), {
        cacheMaxAge: Number.POSITIVE_INFINITY,
        cooldownDuration: Number.POSITIVE_INFINITY,
        timeoutDuration: timeoutMs,
        [customFetch]: countingFetch as never,
      })
      await jwks.reload()
      // From the set jose now holds, once it holds it: a token verified meanwhile is stamped with the
      // older version and simply verified again.
      versions = nextKeyVersions(jwks.jwks()?.keys ?? [], versions)
      loaded = true
      lastSuccess = now()
      lastError = undefined
      retryMs = retryBaseMs
    } catch (err) {
      // A discovered jwks_uri that could not be used is discovered again next time.
      if (!jwks && !spec.jwksUri) jwksUri = undefined
      lastFailure = now()
      lastRefetch = lastFailure
      lastError = describe(err)
      options.log?.warn({ issuer: label, code: 'IAP_ERR_JWKS_UNAVAILABLE', error: lastError, keptKeys: loaded }, 'signing keys could not be fetched')
      throw new IapError('IAP_ERR_JWKS_UNAVAILABLE', `signing keys of ${label} could not be fetched: ${lastError}`, { cause: err })
    }
  }

  /** One fetch of discovery (if still needed) and keys; shared by everyone who asks meanwhile. */
  function load(): Promise<void> {
    if (inflight) return inflight
    const attempt = loadOnce()
    inflight = attempt
    attempt.finally(() => {
      if (inflight === attempt) inflight = undefined
    }).catch(() => {})
    return attempt
  }

  function schedule(ms: number): void {
    if (closed) return
    clearTimeout(timer)
    timer = setTimeout(() => {
      load().then(
        () => schedule(refreshMs),
        () => {
          retryMs = Math.min(retryMs * 2, refreshMs, 5 * 60_000)
          schedule(retryMs)
        },
      )
    }, ms)
    timer.unref()
  }

  async function getKey(header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<KeyResult> {
    if (!loaded || !jwks) {
      // Only the start-up fetch may make a request wait; otherwise fail at once (background retries recover).
      if (inflight) await inflight.catch(() => {})
      if (!loaded || !jwks) throw new IapError('IAP_ERR_JWKS_UNAVAILABLE', `no signing keys for ${label} yet`)
    }
    const set = jwks
    try {
      return await set(header, token)
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_JWKS_NO_MATCHING_KEY') throw err
      if (!inflight) {
        if (now() - lastRefetch < cooldownMs) throw err
        lastRefetch = now()
        load().catch(() => {})
      }
      // A reload in flight (ours or someone else's) answers every request that is waiting for it.
      await inflight?.catch(() => {})
      return set(header, token)
    }
  }

  return {
    label,
    getKey,
    keyVersion: (kid) => (kid === undefined ? versions.all : versions.byKid.get(kid)),
    start() {
      startPromise ??= load().then(
        () => schedule(refreshMs),
        () => schedule(retryMs),
      )
      return startPromise
    },
    isReady: () => loaded,
    status: () => ({
      ready: loaded,
      keys: keyCount,
      // /readyz is unauthenticated: where the keys come from, not a token in the query string.
      ...(jwksUri ? { jwksUri: displayUrl(jwksUri) } : {}),
      ...(lastSuccess !== undefined ? { lastSuccess: new Date(lastSuccess).toISOString() } : {}),
      ...(lastFailure !== undefined && lastError !== undefined ? { lastFailure: new Date(lastFailure).toISOString(), lastError } : {}),
    }),
    close() {
      closed = true
      clearTimeout(timer)
    },
  }
}
