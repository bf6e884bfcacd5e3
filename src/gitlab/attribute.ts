/**
 * GitLab attribution: which kind of GitLab traffic a request is and which namespace/project it
 * touches, from the path alone (DOMAIN.md B1, Workhorse's routing table). Pure; numeric REST ids
 * are returned as `projectId` for `project-ids.ts` to resolve.
 */
import type { RouteClass } from './route.ts'

export interface Attribution {
  readonly route: RouteClass
  /** `namespace/.../project` (or a group path) as written, when the path names one. */
  readonly project?: string
  /** Numeric project id from a REST path, not yet resolved to a path. */
  readonly projectId?: string
}

/** First path segments that are GitLab's own routes, never a namespace. */
const RESERVED_TOP = new Set([
  '-', 'api', 'admin', 'users', 'dashboard', 'explore', 'help', 'assets', 'search', 'oauth', 'uploads', 'import',
  'jwt', 'health_check', '.well-known', 'profile', 'public', 'projects', 'snippets', 'abuse_reports', 'sitemap',
  'favicon.ico', 'favicon.png', 'robots.txt', 'manifest.json', 'ide', 'v2', 'groups', 'login', 'unsubscribes',
])

const GIT_SUFFIX = /^\/(.+?)\.git(\/.*)?$/
const API_RESOURCE = /^\/api\/v4\/(projects|groups|namespaces)\/([^/]+)(?:\/|$)/

/** Decodes `%2F` and other percent-encodings of a REST id; invalid encodings stay as they are. */
function decodeId(id: string): string {
  try {
    return decodeURIComponent(id)
  } catch {
    return id
  }
}

export function attribute(_method: string, path: string): Attribution {
  if (path.startsWith('/-/')) {
    if (path.startsWith('/-/iap/') || path === '/-/iap') return { route: 'iap' }
    if (path === '/-/cable') return { route: 'cable' }
    return { route: 'web' }
  }
  if (path.startsWith('/api/')) {
    if (path === '/api/graphql' || path.startsWith('/api/graphql/')) return { route: 'graphql' }
    const resource = API_RESOURCE.exec(path)
    if (resource) {
      const id = decodeId(resource[2]!)
      if (resource[1] === 'projects' && /^\d+$/.test(id)) return { route: 'api', projectId: id }
      if (!/^\d+$/.test(id)) return { route: 'api', project: id }
      // Numeric group or namespace ids are not resolved: only `projects` ids are (see docs/policy.md).
    }
    return { route: 'api' }
  }
  const git = GIT_SUFFIX.exec(path)
  if (git) {
    const rest = git[2] ?? ''
    const lfs = rest.startsWith('/info/lfs/') || rest.startsWith('/gitlab-lfs/')
    return { route: lfs ? 'lfs' : 'git', project: git[1]! }
  }
  // `git clone https://host/group/project` (no .git) asks for /group/project/info/refs?service=...
  const bareGit = /^\/(.+?)\/(info\/refs|git-upload-pack|git-receive-pack)$/.exec(path)
  if (bareGit && !RESERVED_TOP.has(bareGit[1]!.split('/')[0]!)) return { route: 'git', project: bareGit[1]! }

  const first = path.slice(1).split('/', 1)[0] ?? ''
  if (first === 'groups') {
    // /groups/group/sub/-/... : the group path up to /-/
    const rest = path.slice('/groups/'.length)
    const dash = rest.indexOf('/-/')
    const group = dash === -1 ? rest : rest.slice(0, dash)
    return group ? { route: 'web', project: group.replace(/\/$/, '') } : { route: 'web' }
  }
  if (first === '' || RESERVED_TOP.has(first.toLowerCase())) return { route: 'web' }
  // /namespace/.../project/-/feature ... : everything before /-/; without /-/ the whole path is a
  // namespace candidate (a group page, a project page or a legacy route below one).
  const dash = path.indexOf('/-/')
  const project = (dash === -1 ? path.slice(1) : path.slice(1, dash)).replace(/\/$/, '')
  return { route: 'web', project }
}
