/** GitLab attribution: route class and project of a request. STUB until the policy issue lands. */
import type { RouteClass } from './route.ts'

export interface Attribution {
  readonly route: RouteClass
  /** `namespace/.../project` (lower-cased as typed; matching ignores case), when the path names one. */
  readonly project?: string
  /** Numeric project id from a REST path, not yet resolved to a path. */
  readonly projectId?: string
}

export function attribute(_method: string, path: string): Attribution {
  if (path.startsWith('/-/iap/')) return { route: 'iap' }
  if (path === '/api/graphql') return { route: 'graphql' }
  if (path.startsWith('/api/')) return { route: 'api' }
  if (path === '/-/cable') return { route: 'cable' }
  if (/\.git\/(info\/lfs|gitlab-lfs)\//.test(path)) return { route: 'lfs' }
  if (/\.git\//.test(path)) return { route: 'git' }
  return { route: 'web' }
}
