/**
 * Git LFS with the two-credential URL (`https://$IAP_TOKEN:$GITLAB_PAT@host/group/project.git`):
 * GitLab's batch answer hands git-lfs its own `Authorization` for the object transfers, which carries
 * no IAP credential, so the downloads and uploads that follow would be refused. The proxy adds the
 * IAP token the client itself presented, as `X-IAP-Authorization`, to the actions that come back to
 * this proxy; actions elsewhere (object storage, a CDN) never see it. Pure.
 */

/** The LFS batch call: the only response whose body the proxy reads. */
export function isLfsBatch(route: string, method: string, path: string): boolean {
  return route === 'lfs' && method === 'POST' && path.endsWith('/info/lfs/objects/batch')
}

/** Batch answers beyond this are passed on unchanged (a batch names at most a few hundred objects). */
export const MAX_BATCH_BYTES = 4 * 1024 * 1024

interface BatchAction {
  href?: unknown
  header?: Record<string, unknown>
}

/**
 * `body` with `X-IAP-Authorization: Bearer <token>` in the header map of each action whose `href` is on
 * one of `origins` (this proxy, as the client reaches it); the same bytes when nothing applies or the
 * body is not a batch answer.
 */
export function addIapCredential(body: Buffer, token: string, origins: ReadonlySet<string>): Buffer {
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
    for (const action of Object.values(actions)) {
      if (action === null || typeof action !== 'object' || typeof action.href !== 'string') continue
      let origin: string
      try {
        origin = new URL(action.href).origin
      } catch {
        continue
      }
      if (!origins.has(origin)) continue
      action.header = { ...(typeof action.header === 'object' && action.header !== null ? action.header : {}), 'X-IAP-Authorization': `Bearer ${token}` }
      changed = true
    }
  }
  return changed ? Buffer.from(JSON.stringify(doc)) : body
}
