/**
 * Resolves numeric REST project ids (`/api/v4/projects/42/...`) to `path_with_namespace` through the
 * GitLab API with `upstream.apiToken`, so `projects` rules see them. Cached with a TTL; concurrent
 * lookups for one id share one request; any failure resolves to `undefined`, which the policy denies.
 */
import { LRUCache } from 'lru-cache'

export interface ProjectResolverOptions {
  readonly upstreamUrl: string
  readonly apiToken?: string
  /** How long a resolved (or missing) id is remembered. */
  readonly ttlMs?: number
  readonly timeoutMs?: number
  readonly fetch?: typeof fetch
  readonly onLookup?: (result: 'found' | 'missing' | 'error') => void
}

export interface ProjectResolver {
  resolve(id: string): Promise<string | undefined>
}

const MISSING = '\u0000missing'

export function createProjectResolver(options: ProjectResolverOptions): ProjectResolver {
  const doFetch = options.fetch ?? fetch
  const base = options.upstreamUrl.replace(/\/$/, '')
  const cache = new LRUCache<string, string>({
    max: 10_000,
    ttl: options.ttlMs ?? 5 * 60_000,
    // Concurrent lookups for one id share this fetch (lru-cache coalesces in-flight fetches).
    fetchMethod: async (id, _stale, { signal }) => {
      if (!options.apiToken) return MISSING
      try {
        const res = await doFetch(`${base}/api/v4/projects/${id}`, {
          headers: { 'private-token': options.apiToken, accept: 'application/json' },
          signal: AbortSignal.any([signal, AbortSignal.timeout(options.timeoutMs ?? 5000)]),
        })
        if (res.status === 404) {
          await res.body?.cancel()
          options.onLookup?.('missing')
          return MISSING
        }
        if (!res.ok) throw new Error(`GitLab answered ${res.status}`)
        const body = (await res.json()) as { path_with_namespace?: unknown }
        if (typeof body.path_with_namespace !== 'string') throw new Error('no path_with_namespace')
        options.onLookup?.('found')
        return body.path_with_namespace
      } catch {
        options.onLookup?.('error')
        // Not cached: the next request tries again (and is denied meanwhile).
        return undefined
      }
    },
  })
  return {
    async resolve(id) {
      const found = await cache.fetch(id)
      return found === undefined || found === MISSING ? undefined : found
    },
  }
}
