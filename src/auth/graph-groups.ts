/**
 * Groups overage (https://learn.microsoft.com/en-us/entra/identity/hybrid/connect/how-to-connect-fed-group-claims):
 * when a token has too many groups to carry them,
 * read the user's transitive group ids from Microsoft Graph with an app-only token:
 *   1. client credentials at the tenant's token endpoint (scope `{graph}/.default`), cached until expiry;
 *   2. `GET {graphUrl}/v1.0/users/{oid}/transitiveMemberOf/microsoft.graph.group?$select=id&$top=999`,
 *      following `@odata.nextLink` (only on the Graph origin) to the end.
 * The URL inside the token's `_claim_sources` is never called. Results are cached per `tid:oid`,
 * concurrent lookups share one request, and a failure is remembered briefly so an outage does not turn
 * every bearer request or session refresh into a Graph call (an interactive sign-in asks anyway).
 * Failures throw `IAP_ERR_GRAPH_UNAVAILABLE`: callers fail closed. Each failure is also logged, at most
 * once per `logIntervalMs` per cause, with the HTTP status and error code: a missing permission must not
 * look like a blip. Shared by bearer verification and browser sign-in. Needs `GroupMember.Read.All` (application).
 */
import { LRUCache } from 'lru-cache'
import { IapError } from '../errors.ts'
import { readLimited } from '../net/read-limited.ts'

export interface GraphGroups {
  /**
   * Transitive group object ids of the user `oid` in tenant `tenantId`. Bearer tokens take a cached
   * answer; `fresh` (a sign-in, a session refresh) asks Graph again, so a removal takes effect then,
   * and the cache keeps the new answer. A failure is remembered briefly, except for an `interactive`
   * sign-in, which always asks.
   */
  groupsOf(tenantId: string, oid: string, options?: { readonly fresh?: boolean; readonly interactive?: boolean }): Promise<string[]>
}

/** Where failed lookups are reported (the operator log); never given a token or a secret. */
export interface GraphGroupsLog {
  warn(obj: object, msg?: string): void
}

export interface GraphGroupsOptions {
  readonly tenantId: string
  readonly clientId: string
  readonly clientSecret: string
  /** Entra authority, e.g. https://login.microsoftonline.com (discovery gives the token endpoint). */
  readonly authority: string
  readonly graphUrl: string
  /** Skip discovery and use this token endpoint. */
  readonly tokenEndpoint?: string
  /** OAuth scope of the Graph token; default `{graph origin}/.default` for Microsoft's clouds, else Graph's. */
  readonly scope?: string
  readonly fetch?: typeof fetch
  /** How long a user's groups are reused (default 10 min). */
  readonly cacheTtlMs?: number
  /** How long a failed lookup is remembered for lookups that are not `fresh` (default 30 s). */
  readonly failureTtlMs?: number
  /**
   * The same for a transient failure: 5xx, 429, 408, a timeout, no answer (default 5 s, at most
   * `failureTtlMs`). A longer `Retry-After` from Graph or Entra wins, up to 5 minutes.
   */
  readonly transientFailureTtlMs?: number
  readonly maxEntries?: number
  /** Each request to Entra or Graph (default 5 s). */
  readonly timeoutMs?: number
  /** A whole lookup, every page included (default 15 s): a slow Graph fails closed in bounded time. */
  readonly lookupTimeoutMs?: number
  /** Most pages followed (999 groups each). */
  readonly maxPages?: number
  readonly log?: GraphGroupsLog
  /** Least time between two log lines for the same cause (default 10 s): an outage is not a line per request. */
  readonly logIntervalMs?: number
}

/** A page of 999 group ids with `$select=id` is about 60 KiB; a token or discovery answer a few KiB. */
const MAX_REPLY_BYTES = 1024 * 1024

/** A longer `Retry-After` is not believed: it would keep the bearer path closed for that long. */
const MAX_RETRY_AFTER_MS = 5 * 60_000

const MICROSOFT_GRAPH_ORIGINS = new Set(['https://graph.microsoft.com', 'https://graph.microsoft.us', 'https://dod-graph.microsoft.us', 'https://microsoftgraph.chinacloudapi.cn'])

const OBJECT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The scope for an app-only Graph token: the cloud's own Graph, or public Graph for a stand-in server. */
export function graphScope(graphUrl: string): string {
  const origin = new URL(graphUrl).origin
  return `${MICROSOFT_GRAPH_ORIGINS.has(origin) ? origin : 'https://graph.microsoft.com'}/.default`
}

/** What failed, as the log names it: fixed words and codes only, never a message from the other side. */
interface Failure {
  readonly stage: 'discovery' | 'token' | 'groups'
  /** The HTTP status; absent when no answer came (`network`). */
  readonly status?: number
  /** Graph's `error.code` or the token endpoint's OAuth `error`, when it has a code's shape. */
  readonly errorCode?: string
  /** Why no usable answer came: the socket error's code or the error's name (`ECONNREFUSED`, `TimeoutError`), or `answer-too-large`. */
  readonly network?: string
  /** An answer that is no group list (`no-value-array`, `too-many-pages`, `next-link-off-origin`). */
  readonly problem?: string
  readonly retryAfterMs?: number
}

/** Still `IAP_ERR_GRAPH_UNAVAILABLE` to callers (they fail closed alike); the details are for the log. */
class GraphFailure extends IapError {
  readonly failure: Failure
  constructor(message: string, failure: Failure, cause?: unknown) {
    super('IAP_ERR_GRAPH_UNAVAILABLE', message, cause === undefined ? undefined : { cause })
    this.failure = failure
  }
}

/** Only something shaped like a code leaves an error body: its text may name the tenant, the client, a trace id. */
const codeOf = (value: unknown): string | undefined => (typeof value === 'string' && /^[A-Za-z0-9_.-]{1,80}$/.test(value) ? value : undefined)

/** Seconds (what Graph and Entra send) or an HTTP date. */
function retryAfterOf(header: string | null): number | undefined {
  if (header === null) return undefined
  const text = header.trim()
  const ms = /^\d{1,9}$/.test(text) ? Number(text) * 1000 : Date.parse(text) - Date.now()
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, MAX_RETRY_AFTER_MS) : undefined
}

/** Likely over soon: a 5xx, 429, 408, or no answer at all. A 400, 401 or 403 is configuration and stays. */
const isTransient = (f: Failure) => f.status === undefined || f.status >= 500 || f.status === 429 || f.status === 408

const CLIENT_AUTH_ERRORS = new Set(['invalid_client', 'unauthorized_client'])

/** The log line's code, message and what to check. */
function explain(f: Failure): { code: string; msg: string; hint: string } {
  if (f.stage === 'token' && f.errorCode !== undefined && CLIENT_AUTH_ERRORS.has(f.errorCode)) {
    return {
      code: 'IAP_ERR_ENTRA_CLIENT_AUTH',
      msg: "Entra refused the proxy's client credentials for a Microsoft Graph token; users with a groups overage are refused",
      hint: 'check entra.clientSecret (expired?) and entra.clientId against the app registration',
    }
  }
  if (f.stage === 'groups' && (f.status === 401 || f.status === 403)) {
    return {
      code: 'IAP_ERR_GRAPH_FORBIDDEN',
      msg: 'Microsoft Graph refused the group lookup; users with a groups overage are refused',
      hint:
        f.status === 403
          ? 'grant the app registration the Microsoft Graph application permission GroupMember.Read.All, with admin consent'
          : 'check that entra.graphUrl is the Graph of the cloud entra.authority issues tokens for',
    }
  }
  return {
    code: 'IAP_ERR_GRAPH_UNAVAILABLE',
    msg: 'Microsoft Graph group lookup failed; users with a groups overage are refused',
    hint: 'check entra.graphUrl and that Entra and Microsoft Graph answer from the proxy',
  }
}

/** A thrown fetch or read error by its code or name only: its message may hold a URL. */
function networkErrorOf(err: unknown): string {
  const e = err as { cause?: { code?: unknown }; code?: unknown; name?: unknown } | undefined
  return codeOf(e?.cause?.code) ?? codeOf(e?.code) ?? codeOf(e?.name) ?? 'error'
}

/** The lookups for `entra` (its `clientSecret` set), reporting failures to `log`. */
export function graphGroupsFor(
  entra: { readonly tenantId: string; readonly clientId: string; readonly clientSecret: string; readonly authority: string; readonly graphUrl: string },
  extra: { readonly log?: GraphGroupsLog; readonly fetch?: typeof fetch } = {},
): GraphGroups {
  const { tenantId, clientId, clientSecret, authority, graphUrl } = entra
  return createGraphGroups({ tenantId, clientId, clientSecret, authority, graphUrl, ...extra })
}

export function createGraphGroups(options: GraphGroupsOptions): GraphGroups {
  const doFetch = options.fetch ?? globalThis.fetch
  const timeoutMs = options.timeoutMs ?? 5000
  const maxPages = options.maxPages ?? 50
  const lookupTimeoutMs = options.lookupTimeoutMs ?? 15_000
  const graphBase = options.graphUrl.replace(/\/+$/, '')
  const graphOrigin = new URL(graphBase).origin
  const scope = options.scope ?? graphScope(graphBase)
  const cache = new LRUCache<string, readonly string[]>({ max: options.maxEntries ?? 50_000, ttl: options.cacheTtlMs ?? 10 * 60_000, ttlResolution: 0 })
  const failureTtlMs = options.failureTtlMs ?? 30_000
  const transientTtlMs = Math.min(options.transientFailureTtlMs ?? 5000, failureTtlMs)
  const failures = new LRUCache<string, IapError>({ max: 10_000, ttl: failureTtlMs, ttlResolution: 0 })
  const pending = new Map<string, Promise<string[]>>()
  const logIntervalMs = options.logIntervalMs ?? 10_000
  /** Per cause: when it was last logged and how many failures were not since. */
  const logged = new Map<string, { at: number; suppressed: number }>()

  let tokenEndpoint = options.tokenEndpoint
  let appToken: { value: string; expiresAt: number } | undefined
  let tokenPending: Promise<string> | undefined

  function report(f: Failure): void {
    const log = options.log
    if (!log) return
    const { code, msg, hint } = explain(f)
    const cause = `${code} ${f.stage} ${f.status ?? ''} ${f.errorCode ?? ''} ${f.network ?? ''} ${f.problem ?? ''}`
    const now = Date.now()
    const last = logged.get(cause)
    if (last && now - last.at < logIntervalMs) {
      last.suppressed++
      return
    }
    // Causes are few; a server inventing error codes still cannot grow this without bound.
    if (!last && logged.size >= 100) logged.clear()
    logged.set(cause, { at: now, suppressed: 0 })
    log.warn(
      {
        code,
        stage: f.stage,
        ...(f.status !== undefined && { status: f.status }),
        ...(f.errorCode !== undefined && { graphError: f.errorCode }),
        ...(f.network !== undefined && { networkError: f.network }),
        ...(f.problem !== undefined && { problem: f.problem }),
        ...(f.retryAfterMs !== undefined && { retryAfterSeconds: Math.ceil(f.retryAfterMs / 1000) }),
        ...(last !== undefined && last.suppressed > 0 && { suppressed: last.suppressed }),
        hint,
      },
      msg,
    )
  }

  /** A refused answer: its status, error code and `Retry-After` go with the failure. */
  function refused(stage: Failure['stage'], what: string, answer: { status: number; body: unknown; retryAfterMs?: number | undefined }, errorCode: unknown): GraphFailure {
    const code = codeOf(errorCode)
    return new GraphFailure(`${what} failed (HTTP ${answer.status}${code ? `, ${code}` : ''})`, {
      stage,
      status: answer.status,
      ...(code !== undefined && { errorCode: code }),
      ...(answer.retryAfterMs !== undefined && { retryAfterMs: answer.retryAfterMs }),
    })
  }

  async function getJson(stage: Failure['stage'], url: string, init: RequestInit, deadline?: AbortSignal): Promise<{ status: number; body: unknown; retryAfterMs?: number }> {
    const timeout = AbortSignal.timeout(timeoutMs)
    let res: Response
    let text: string
    try {
      res = await doFetch(url, { ...init, redirect: 'manual', signal: deadline ? AbortSignal.any([timeout, deadline]) : timeout })
      text = await readLimited(res, MAX_REPLY_BYTES)
    } catch (err) {
      const tooLarge = err instanceof Error && err.message.startsWith('response larger than')
      throw new GraphFailure(`${stage} request to ${stage === 'groups' ? 'Graph' : 'Entra'} failed: ${tooLarge ? 'answer too large' : networkErrorOf(err)}`, { stage, network: tooLarge ? 'answer-too-large' : networkErrorOf(err) }, err)
    }
    let body: unknown
    try {
      body = text === '' ? undefined : JSON.parse(text)
    } catch {
      body = undefined
    }
    const retryAfterMs = res.status === 200 ? undefined : retryAfterOf(res.headers.get('retry-after'))
    return { status: res.status, body, ...(retryAfterMs !== undefined && { retryAfterMs }) }
  }

  async function discoverTokenEndpoint(): Promise<string> {
    const url = `${options.authority.replace(/\/+$/, '')}/${options.tenantId}/v2.0/.well-known/openid-configuration`
    const answer = await getJson('discovery', url, { headers: { accept: 'application/json' } })
    const endpoint = (answer.body as { token_endpoint?: unknown } | undefined)?.token_endpoint
    if (answer.status !== 200 || typeof endpoint !== 'string') throw refused('discovery', 'discovery for the Graph token', answer, undefined)
    return endpoint
  }

  async function fetchAppToken(): Promise<string> {
    tokenEndpoint ??= await discoverTokenEndpoint()
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: options.clientId, client_secret: options.clientSecret, scope })
    const answer = await getJson('token', tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form.toString(),
    })
    const { access_token: token, expires_in: expiresIn, error } = (answer.body ?? {}) as { access_token?: unknown; expires_in?: unknown; error?: unknown }
    // The error body may name the client; never the secret. Only the status and OAuth error code are kept.
    if (answer.status !== 200 || typeof token !== 'string') throw refused('token', 'Graph token request', answer, error)
    const lifetime = typeof expiresIn === 'number' ? expiresIn : Number(expiresIn) || 300
    appToken = { value: token, expiresAt: Date.now() + Math.max(lifetime - 60, 30) * 1000 }
    return token
  }

  function getAppToken(): Promise<string> {
    if (appToken && appToken.expiresAt > Date.now()) return Promise.resolve(appToken.value)
    tokenPending ??= fetchAppToken().finally(() => (tokenPending = undefined))
    return tokenPending
  }

  const malformed = (message: string, problem: string) => new GraphFailure(message, { stage: 'groups', status: 200, problem })

  async function readGroups(oid: string, deadline: AbortSignal, retried = false): Promise<string[]> {
    const token = await getAppToken()
    const groups: string[] = []
    let url: string | undefined = `${graphBase}/v1.0/users/${encodeURIComponent(oid)}/transitiveMemberOf/microsoft.graph.group?$select=id&$top=999`
    for (let page = 0; url; page++) {
      if (page >= maxPages) throw malformed(`Graph returned more than ${maxPages} pages of groups`, 'too-many-pages')
      const answer = await getJson('groups', url, { headers: { authorization: `Bearer ${token}`, consistencylevel: 'eventual', accept: 'application/json' } }, deadline)
      if (answer.status === 401 && !retried) {
        appToken = undefined
        return readGroups(oid, deadline, true)
      }
      // A token from before the admin consent lacks the permission: the next lookup asks for a new one.
      if (answer.status === 403) appToken = undefined
      if (answer.status !== 200) throw refused('groups', 'Graph group lookup', answer, (answer.body as { error?: { code?: unknown } } | undefined)?.error?.code)
      const { value, '@odata.nextLink': next } = (answer.body ?? {}) as { value?: unknown; '@odata.nextLink'?: unknown }
      if (!Array.isArray(value)) throw malformed('Graph group lookup returned no "value" array', 'no-value-array')
      for (const item of value) {
        const id = (item as { id?: unknown })?.id
        // Group object ids only: anything else from Graph (or whatever answers at graphUrl) is not a group id.
        if (typeof id === 'string' && OBJECT_ID.test(id)) groups.push(id.toLowerCase())
      }
      if (next === undefined || next === null) url = undefined
      else if (typeof next === 'string' && URL.canParse(next) && new URL(next).origin === graphOrigin) url = next
      else throw malformed('Graph paging link points outside the Graph origin', 'next-link-off-origin')
    }
    return [...new Set(groups)]
  }

  return {
    groupsOf(tenantId, oid, options) {
      if (!OBJECT_ID.test(oid)) return Promise.reject(new IapError('IAP_ERR_GRAPH_UNAVAILABLE', 'the user object id is not a GUID'))
      const key = `${tenantId}:${oid}`
      // Fresh (a sign-in, a session refresh) reads the groups again, never the cached ones. Only an
      // interactive sign-in also asks right after a failure, so the first sign-in after Graph recovers
      // works; refreshes, which a browser past its grace would repeat on every request, and bearer
      // lookups keep to the remembered failure, sparing Graph the flood during an outage.
      if (!options?.fresh) {
        const hit = cache.get(key)
        if (hit) return Promise.resolve([...hit])
      }
      if (!options?.interactive) {
        const failed = failures.get(key)
        if (failed) return Promise.reject(failed)
      }
      let lookup = pending.get(key)
      if (!lookup) {
        lookup = readGroups(oid, AbortSignal.timeout(lookupTimeoutMs)).then(
          (groups) => {
            cache.set(key, Object.freeze(groups))
            failures.delete(key)
            return groups
          },
          (err: unknown) => {
            const failure = err instanceof GraphFailure ? err.failure : undefined
            const error = err instanceof IapError ? err : new IapError('IAP_ERR_GRAPH_UNAVAILABLE', `Graph group lookup failed: ${networkErrorOf(err)}`, { cause: err })
            if (failure) report(failure)
            // Transient: retried soon (or when Graph says); configuration (401, 403, 400): the full while.
            const ttl = failure && !isTransient(failure) ? failureTtlMs : Math.max(transientTtlMs, failure?.retryAfterMs ?? 0)
            failures.set(key, error, { ttl })
            throw error
          },
        )
        lookup.finally(() => pending.delete(key)).catch(() => {})
        pending.set(key, lookup)
      }
      return lookup.then((groups) => [...groups])
    },
  }
}
