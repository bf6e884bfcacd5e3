/**
 * Git LFS with the two-credential URL (`https://$IAP_TOKEN:$GITLAB_PAT@host/group/project.git`):
 * GitLab's batch answer hands git-lfs its own `Authorization` for the object transfers, which carries
 * no IAP credential, so the downloads and uploads that follow would be refused. The proxy adds an
 * `X-IAP-Authorization` of its own to each action that comes back to this proxy: an LFS grant
 * (src/auth/lfs-grant.ts) for that one action and path, never the client's token. GitLab with object
 * storage may redirect a download elsewhere, and git-lfs carries every action header but
 * `Authorization` across the redirect: what travels there opens only the object it names. Pure.
 */

/** The LFS batch call: the only response whose body the proxy reads. */
export function isLfsBatch(route: string, method: string, path: string): boolean {
  return route === 'lfs' && method === 'POST' && path.endsWith('/info/lfs/objects/batch')
}

/** Batch answers beyond this are passed on unchanged (a batch names at most a few hundred objects). */
export const MAX_BATCH_BYTES = 4 * 1024 * 1024

/** The header value for an action (`download`, `upload`, `verify`) on a path of this proxy; undefined: none. */
export type GrantFor = (action: string, path: string) => string | undefined

interface BatchAction {
  href?: unknown
  header?: Record<string, unknown>
}

/**
 * `body` with `X-IAP-Authorization` in the header map of each action whose `href` is on one of
 * `origins` (this proxy, as the client reaches it); the same bytes when nothing applies or the body
 * is not a batch answer.
 */
export function addLfsGrants(body: Buffer, origins: ReadonlySet<string>, grantFor: GrantFor): Buffer {
  let doc: { objects?: unknown }
  try {
    doc = JSON.parse(body.toString('utf8')) as { objects?: unknown }
  } catch {
    return body
  }
  if (doc === null || typeof doc !== 'object' || !Array.isArray(doc.objects)) return body
  let changed = false
  for (const object of doc.objects as { actions?: Record<string, BatchAction> }[]) {
    const actions = object?.actions
    if (actions === null || typeof actions !== 'object') continue
    for (const [name, action] of Object.entries(actions)) {
      if (action === null || typeof action !== 'object' || typeof action.href !== 'string') continue
      let url: URL
      try {
        url = new URL(action.href)
      } catch {
        continue
      }
      if (!origins.has(url.origin)) continue
      const value = grantFor(name, url.pathname)
      if (value === undefined) continue
      action.header = { ...(typeof action.header === 'object' && action.header !== null ? action.header : {}), 'X-IAP-Authorization': value }
      changed = true
    }
  }
  return changed ? Buffer.from(JSON.stringify(doc)) : body
}
