/**
 * Resolves numeric ids (`/api/v4/projects/42/...`, `/api/v4/groups/7/...`, `/api/v4/namespaces/7`)
 * to their path (`path_with_namespace`, `full_path`) through the GitLab API with `upstream.apiToken`,
 * so `projects` rules see them. Cached with a TTL; concurrent lookups for one id share one request;
 * any failure resolves to `undefined`, which the policy denies.
 */
import { readLimited } from '../net/read-limited.ts'
import { LRUCache } from 'lru-cache'
import type { NumericId } from './attribute.ts'

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
  resolve(ref: NumericId): Promise<string | undefined>
  /**
   * The path GitLab serves for a project path as written: itself, or the project's current path when
   * it is a former one GitLab still redirects (git, LFS and REST references by path follow those
   * redirects without a word). A wiki, design or snippet repository (`ns/p.wiki`, `ns/p.design`,
   * `ns/p/snippets/7`) is looked up as GitLab's `Gitlab::RepoPath` does: the path as a project first,
   * then the project (or, for a wiki, the group) without the suffix; the answer keeps the suffix
   * (`secret-group/vault.wiki`). Undefined when GitLab knows no such project; rejects when GitLab
   * cannot be asked, and for a wiki of no known project or group: that may be a group's former path,
   * which GitLab follows for git but its API does not tell.
   */
  currentPath(project: string): Promise<string | undefined>
}

/** Repositories beside a project's own (GitLab's `Gitlab::GlRepository` types): the container's path and the suffix. */
const WIKI = /^(.+)(\.wiki)$/i
const DESIGN = /^(.+)(\.design)$/i
const SNIPPET = /^(.+)(\/snippets\/\d+)$/i

const MISSING = '\u0000missing'
/** A project or group answer is a few KiB; more is not GitLab's answer to this lookup. */
const MAX_ANSWER_BYTES = 1024 * 1024
/**
 * Most lookups GitLab is asked at once, and most waiting for their turn: a client naming a new path in
 * every request must not turn the proxy into a flood of API calls. Beyond, a lookup fails (denied).
 */
export const MAX_CONCURRENT_LOOKUPS = 32
const MAX_WAITING_LOOKUPS = 1024

export function createProjectResolver(options: ProjectResolverOptions): ProjectResolver {
  const doFetch = options.fetch ?? fetch
  const base = options.upstreamUrl.replace(/\/$/, '')
  let running = 0
  const waiting: (() => void)[] = []
  /** Runs `ask` when fewer than MAX_CONCURRENT_LOOKUPS run; rejects at once when too many wait already. */
  async function inTurn<T>(ask: () => Promise<T>): Promise<T> {
    if (running >= MAX_CONCURRENT_LOOKUPS) {
      if (waiting.length >= MAX_WAITING_LOOKUPS) throw new Error('too many GitLab lookups waiting')
      await new Promise<void>((resolve) => waiting.push(resolve))
    }
    running++
    try {
      return await ask()
    } finally {
      running--
      waiting.shift()?.()
    }
  }
  const cache = new LRUCache<string, string>({
    max: 10_000,
    ttl: options.ttlMs ?? 5 * 60_000,
    ttlResolution: 0,
    // Concurrent lookups for one id share this fetch (lru-cache coalesces in-flight fetches).
    // Keys are `projects/42`, `groups/7`, `namespaces/7`: the API path of the resource itself.
    fetchMethod: async (key, _stale, { signal }) => {
      if (!options.apiToken) return MISSING
      try {
        const token = options.apiToken
        const res = await inTurn(() =>
          // A group's answer embeds up to 100 of its projects unless told not to.
          doFetch(`${base}/api/v4/${key}${key.startsWith('groups/') ? '?with_projects=false' : ''}`, {
            headers: { 'private-token': token, accept: 'application/json' },
            signal: AbortSignal.any([signal, AbortSignal.timeout(options.timeoutMs ?? 5000)]),
          }),
        )
        if (res.status === 404) {
          await res.body?.cancel()
          options.onLookup?.('missing')
          return MISSING
        }
        if (!res.ok) throw new Error(`GitLab answered ${res.status}`)
        const body = JSON.parse(await readLimited(res, MAX_ANSWER_BYTES)) as { path_with_namespace?: unknown; full_path?: unknown }
        const path = key.startsWith('projects/') ? body.path_with_namespace : body.full_path
        if (typeof path !== 'string' || path === '') throw new Error('no path in the answer')
        options.onLookup?.('found')
        return path
      } catch {
        options.onLookup?.('error')
        // Not cached: the next request tries again (and is denied meanwhile).
        return undefined
      }
    },
  })
  return {
    async resolve(ref) {
      const found = await cache.fetch(`${ref.resource}/${ref.id}`)
      return found === undefined || found === MISSING ? undefined : found
    },
    async currentPath(path) {
      // What GitLab finds under this path as a project, a project's former path included (the API answers a
      // former path with a 301 to the project's id, which fetch follows); a path without `/` is never a project.
      const lookup = async (resource: 'projects' | 'groups', p: string) => {
        if (resource === 'projects' && !p.includes('/')) return undefined
        const found = await cache.fetch(`${resource}/${encodeURIComponent(p.toLowerCase())}`)
        if (found === undefined) throw new Error('GitLab could not be asked')
        return found === MISSING ? undefined : found
      }
      const asProject = await lookup('projects', path)
      if (asProject !== undefined) return asProject
      // Gitlab::RepoPath: a project of that name first (above), then the container without the suffix.
      const wiki = WIKI.exec(path)
      if (wiki) {
        const container = (await lookup('projects', wiki[1]!)) ?? (await lookup('groups', wiki[1]!))
        if (container === undefined) throw new Error(`${path}: no project or group has this wiki, and GitLab may still follow a group's former path to one`)
        return container + wiki[2]!
      }
      const other = DESIGN.exec(path) ?? SNIPPET.exec(path)
      if (!other) return undefined
      const project = await lookup('projects', other[1]!)
      return project === undefined ? undefined : project + other[2]!
    },
  }
}
