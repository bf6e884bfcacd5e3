/**
 * Groups overage (https://learn.microsoft.com/en-us/entra/identity/hybrid/connect/how-to-connect-fed-group-claims):
 * when a token has too many groups to carry them,
 * read the user's transitive group ids from Microsoft Graph with an app-only token:
 *   1. client credentials at the tenant's token endpoint (scope `{graph}/.default`), cached until expiry;
 *   2. `GET {graphUrl}/v1.0/users/{oid}/transitiveMemberOf/microsoft.graph.group?$select=id&$top=999`,
 *      following `@odata.nextLink` (only on the Graph origin) to the end.
 * The URL inside the token's `_claim_sources` is never called. Results are cached per `tid:oid`,
 * concurrent lookups share one request, and a failure is remembered briefly so an outage does not
 * turn every request into a Graph call. Failures throw `IAP_ERR_GRAPH_UNAVAILABLE`: callers fail closed.
 * Shared by bearer verification and browser sign-in. Needs `GroupMember.Read.All` (application).
 */
import { LRUCache } from 'lru-cache'
import { IapError } from '../errors.ts'
import { readLimited } from '../net/read-limited.ts'

export interface GraphGroups {
  /**
   * Transitive group object ids of the user `oid` in tenant `tenantId`. Bearer tokens take a cached
   * answer; `fresh` (a sign-in, a session refresh) asks Graph again, so a removal takes effect then,
   * and the cache keeps the new answer.
   */
  groupsOf(tenantId: string, oid: string, options?: { readonly fresh?: boolean }): Promise<string[]>
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
  /** How long a failed lookup is remembered (default 30 s). */
  readonly failureTtlMs?: number
  readonly maxEntries?: number
  /** Each request to Entra or Graph (default 5 s). */
  readonly timeoutMs?: number
  /** A whole lookup, every page included (default 15 s): a slow Graph fails closed in bounded time. */
  readonly lookupTimeoutMs?: number
  /** Most pages followed (999 groups each). */
  readonly maxPages?: number
}

/** A page of 999 group ids with `$select=id` is about 60 KiB; a token or discovery answer a few KiB. */
const MAX_REPLY_BYTES = 1024 * 1024

const MICROSOFT_GRAPH_ORIGINS = new Set(['https://graph.microsoft.com', 'https://graph.microsoft.us', 'https://dod-graph.microsoft.us', 'https://microsoftgraph.chinacloudapi.cn'])

const OBJECT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The scope for an app-only Graph token: the cloud's own Graph, or public Graph for a stand-in server. */
export function graphScope(graphUrl: string): string {
  const origin = new URL(graphUrl).origin
  return `${MICROSOFT_GRAPH_ORIGINS.has(origin) ? origin : 'https://graph.microsoft.com'}/.default`
}

const unavailable = (message: string, cause?: unknown) => new IapError('IAP_ERR_GRAPH_UNAVAILABLE', message, cause === undefined ? undefined : { cause })

export function createGraphGroups(options: GraphGroupsOptions): GraphGroups {
  const doFetch = options.fetch ?? globalThis.fetch
  const timeoutMs = options.timeoutMs ?? 5000
  const maxPages = options.maxPages ?? 50
  const lookupTimeoutMs = options.lookupTimeoutMs ?? 15_000
  const graphBase = options.graphUrl.replace(/\/+$/, '')
  const graphOrigin = new URL(graphBase).origin
  const scope = options.scope ?? graphScope(graphBase)
  const cache = new LRUCache<string, readonly string[]>({ max: options.maxEntries ?? 50_000, ttl: options.cacheTtlMs ?? 10 * 60_000, ttlResolution: 0 })
  const failures = new LRUCache<string, IapError>({ max: 10_000, ttl: options.failureTtlMs ?? 30_000, ttlResolution: 0 })
  const pending = new Map<string, Promise<string[]>>()

  let tokenEndpoint = options.tokenEndpoint
  let appToken: { value: string; expiresAt: number } | undefined
  let tokenPending: Promise<string> | undefined

  async function getJson(url: string, init: RequestInit, deadline?: AbortSignal): Promise<{ status: number; body: unknown }> {
    const timeout = AbortSignal.timeout(timeoutMs)
    const res = await doFetch(url, { ...init, redirect: 'manual', signal: deadline ? AbortSignal.any([timeout, deadline]) : timeout })
    const text = await readLimited(res, MAX_REPLY_BYTES)
    let body: unknown
    try {
      body = text === '' ? undefined : JSON.parse(text)
    } catch {
      body = undefined
    }
    return { status: res.status, body }
  }

  async function discoverTokenEndpoint(): Promise<string> {
    const url = `${options.authority.replace(/\/+$/, '')}/${options.tenantId}/v2.0/.well-known/openid-configuration`
    const { status, body } = await getJson(url, { headers: { accept: 'application/json' } })
    const endpoint = (body as { token_endpoint?: unknown } | undefined)?.token_endpoint
    if (status !== 200 || typeof endpoint !== 'string') throw unavailable(`discovery for the Graph token failed (HTTP ${status})`)
    return endpoint
  }

  async function fetchAppToken(): Promise<string> {
    tokenEndpoint ??= await discoverTokenEndpoint()
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: options.clientId, client_secret: options.clientSecret, scope })
    const { status, body } = await getJson(tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form.toString(),
    })
    const { access_token: token, expires_in: expiresIn } = (body ?? {}) as { access_token?: unknown; expires_in?: unknown }
    // The error body may name the client; never the secret. Only the status and OAuth error code are kept.
    if (status !== 200 || typeof token !== 'string') throw unavailable(`Graph token request failed (HTTP ${status}${(body as { error?: string })?.error ? `, ${(body as { error: string }).error}` : ''})`)
    const lifetime = typeof expiresIn === 'number' ? expiresIn : Number(expiresIn) || 300
    appToken = { value: token, expiresAt: Date.now() + Math.max(lifetime - 60, 30) * 1000 }
    return token
  }

  function getAppToken(): Promise<string> {
    if (appToken && appToken.expiresAt > Date.now()) return Promise.resolve(appToken.value)
    tokenPending ??= fetchAppToken().finally(() => (tokenPending = undefined))
    return tokenPending
  }

  async function readGroups(oid: string, deadline: AbortSignal, retried = false): Promise<string[]> {
    const token = await getAppToken()
    const groups: string[] = []
    let url: string | undefined = `${graphBase}/v1.0/users/${encodeURIComponent(oid)}/transitiveMemberOf/microsoft.graph.group?$select=id&$top=999`
    for (let page = 0; url; page++) {
      if (page >= maxPages) throw unavailable(`Graph returned more than ${maxPages} pages of groups`)
      const { status, body } = await getJson(url, { headers: { authorization: `Bearer ${token}`, consistencylevel: 'eventual', accept: 'application/json' } }, deadline)
      if (status === 401 && !retried) {
        appToken = undefined
        return readGroups(oid, deadline, true)
      }
      if (status !== 200) throw unavailable(`Graph group lookup failed (HTTP ${status})`)
      const { value, '@odata.nextLink': next } = (body ?? {}) as { value?: unknown; '@odata.nextLink'?: unknown }
      if (!Array.isArray(value)) throw unavailable('Graph group lookup returned no "value" array')
      for (const item of value) {
        const id = (item as { id?: unknown })?.id
        // Group object ids only: anything else from Graph (or whatever answers at graphUrl) is not a group id.
        if (typeof id === 'string' && OBJECT_ID.test(id)) groups.push(id.toLowerCase())
      }
      if (next === undefined || next === null) url = undefined
      else if (typeof next === 'string' && new URL(next).origin === graphOrigin) url = next
      else throw unavailable('Graph paging link points outside the Graph origin')
    }
    return [...new Set(groups)]
  }

  return {
    groupsOf(tenantId, oid, options) {
      if (!OBJECT_ID.test(oid)) return Promise.reject(unavailable('the user object id is not a GUID'))
      const key = `${tenantId}:${oid}`
      const hit = options?.fresh ? undefined : cache.get(key)
      if (hit) return Promise.resolve([...hit])
      const failed = failures.get(key)
      if (failed) return Promise.reject(failed)
      let lookup = pending.get(key)
      if (!lookup) {
        lookup = readGroups(oid, AbortSignal.timeout(lookupTimeoutMs)).then(
          (groups) => {
            cache.set(key, Object.freeze(groups))
            return groups
          },
          (err: unknown) => {
            const error = err instanceof IapError ? err : unavailable(`Graph group lookup failed: ${(err as Error)?.name ?? 'error'}`, err)
            failures.set(key, error)
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
