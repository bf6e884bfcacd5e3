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

/** Answers with more actions back at this proxy are passed on unchanged (git-lfs asks for 100 objects at a time). */
export const MAX_GRANTS_PER_BATCH = 1000

/** What objects a batch call may hand out grants for: `/{project}.git/` of the batch path. */
export function lfsPathPrefix(batchPath: string): string {
  return batchPath.slice(0, batchPath.length - 'info/lfs/objects/batch'.length)
}

/** The header value for an action (`download`, `upload`, `verify`) on a path of this proxy; undefined: none. */
export type GrantFor = (action: string, path: string) => string | undefined

interface BatchAction {
  href?: unknown
  header?: Record<string, unknown>
}

/** The path of an href on one of `origins` when it is plain: no user info, query or fragment, nothing URL parsing would normalise. */
function plainPath(href: string, origins: ReadonlySet<string>): string | undefined {
  let url: URL
  try {
    url = new URL(href)
  } catch {
    return undefined
  }
  if (!origins.has(url.origin) || url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') return undefined
  // `href` as written must be exactly origin + path: dot segments, backslashes or odd encodings that
  // parsing would fold away never name what the grant is for.
  return href === url.origin + url.pathname ? url.pathname : undefined
}

/**
 * `body` with `X-IAP-Authorization` in the header map of each action whose `href` is a plain URL on
 * one of `origins` (this proxy, as the client reaches it) under `pathPrefix` (the batch's project,
 * any case); the same bytes when nothing applies, when there would be more than
 * MAX_GRANTS_PER_BATCH grants, or when the body is not a batch answer.
 */
export function addLfsGrants(body: Buffer, origins: ReadonlySet<string>, pathPrefix: string, grantFor: GrantFor): Buffer {
  let doc: { objects?: unknown }
  try {
    doc = JSON.parse(body.toString('utf8')) as { objects?: unknown }
  } catch {
    return body
  }
  if (doc === null || typeof doc !== 'object' || !Array.isArray(doc.objects)) return body
  const prefix = pathPrefix.toLowerCase()
  let grants = 0
  for (const object of doc.objects as { actions?: Record<string, BatchAction> }[]) {
    const actions = object?.actions
    if (actions === null || typeof actions !== 'object') continue
    for (const [name, action] of Object.entries(actions)) {
      if (action === null || typeof action !== 'object' || typeof action.href !== 'string') continue
      const path = plainPath(action.href, origins)
      if (path === undefined || !path.toLowerCase().startsWith(prefix)) continue
      const value = grantFor(name, path)
      if (value === undefined) continue
      if (++grants > MAX_GRANTS_PER_BATCH) return body
      action.header = { ...(typeof action.header === 'object' && action.header !== null ? action.header : {}), 'X-IAP-Authorization': value }
    }
  }
  return grants > 0 ? Buffer.from(JSON.stringify(doc)) : body
}
