/**
 * GitLab attribution: which kind of GitLab traffic a request is and which namespace/project it
 * touches, from the path alone (Workhorse's routing table: gitlabhq/gitlabhq
 * workhorse/internal/upstream/routes.go). Pure; numeric project,
 * group and namespace ids are returned as `numericId` for `project-ids.ts` to resolve.
 */
import type { RouteClass } from './route.ts'

export interface Attribution {
  readonly route: RouteClass
  /** `namespace/.../project` (or a group path) as written, when the path names one. */
  readonly project?: string
  /** A numeric project, group or namespace id, not yet resolved to a path. */
  readonly numericId?: NumericId
  /**
   * GitLab looks the project up with `follow_redirects`: a former path (a renamed or moved project or group)
   * names the project it moved to, and the client is never redirected. Git and LFS (`Gitlab::RepoPath`, also
   * for wiki, design and snippet repositories) and REST references by path (`find_project`) do.
   */
  readonly followsRedirects?: true
  /**
   * `project` is a group, and the endpoint reaches the projects below it: group search, issues, merge requests,
   * package registries of the whole group. `projects` rules below the group refuse it (src/policy).
   */
  readonly groupWide?: true
  /**
   * A method the policy also decides the request as: `POST` for the ref advertisement that starts a push
   * (`GET|HEAD …/info/refs?service=git-receive-pack`, `isPushAdvertisement`) and for the websocket
   * handshakes that open a shell or a job's services (`INTERACTIVE_WEBSOCKET`). The access log keeps the
   * real method.
   */
  readonly policyMethod?: 'POST'
}

/** `/api/v4/groups/99` → `{ resource: 'groups', id: '99' }`; resolved through GitLab's API of the same name. */
export interface NumericId {
  readonly resource: 'projects' | 'groups' | 'namespaces'
  readonly id: string
}

/**
 * First path segments that are GitLab's own routes, never a namespace: exactly GitLab's
 * `Gitlab::PathRegex::TOP_LEVEL_ROUTES` (lib/gitlab/path_regex.rb), the names no user or top-level group can
 * take. Nothing more: a name GitLab once reserved and has since freed (`ide`, `manifest.json`,
 * `abuse_reports`, `sent_notifications`, ...) can be a group today, and a request under it would name no
 * project, past every `projects` rule. (A name listed here that some GitLab still lets a group take is
 * the same hole; one missing here only attributes a GitLab route to a project no group can have.)
 */
const RESERVED_TOP = new Set([
  '-', '.well-known', '404.html', '422.html', '500.html', '502.html', '503.html', 'admin', 'api', 'apple-touch-icon.png',
  'assets', 'dashboard', 'deploy.html', 'explore', 'favicon.ico', 'favicon.png', 'files', 'groups', 'health_check',
  'help', 'import', 'jwt', 'login', 'oauth', 'profile', 'projects', 'public', 'robots.txt', 's', 'search', 'sitemap',
  'sitemap.xml', 'sitemap.xml.gz', 'slash-command-logo.png', 'snippets', 'unsubscribes', 'uploads', 'users', 'v2',
])

/**
 * A reserved top-level route, also asked for in another format (`/search.json`, `/admin.json`): Rails
 * reads a format suffix on the last segment (`search(.:format)`), so the whole path is then that route.
 * Below it (`/search.json/x`) the suffix is part of a name: no route of GitLab's, a namespace's path.
 */
function isReservedTop(first: string, path: string): boolean {
  const name = first.toLowerCase()
  if (RESERVED_TOP.has(name)) return true
  if (path.length > first.length + 2) return false
  const dot = name.lastIndexOf('.')
  return dot > 0 && RESERVED_TOP.has(name.slice(0, dot))
}

const GIT_SUFFIX = /^\/(.+?)\.git(\/.*)?$/
/** What Workhorse serves after `<project>.git`: only these make a request git or LFS traffic (a file named `x.git` in a blob URL is not). */
const GIT_ENDPOINT = /^\/(?:info\/refs$|git-upload-pack$|git-receive-pack$|ssh-upload-pack$|ssh-receive-pack$|info\/lfs\/|gitlab-lfs\/)/
const API_RESOURCE = /^\/api\/v4\/(projects|groups|namespaces)\/([^/]+)(?:\/|$)/
/** A numeric id, also with a format suffix (`42.json`): Grape may read that as id 42, so it is resolved as one. */
const NUMERIC_ID = /^(\d+)(?:\.[A-Za-z]+)?$/
/** The Web IDE names its project after `/-/ide/project/`, up to the IDE's own action. */
const IDE_PROJECT = /^\/-\/ide\/project\/(.+?)(?:\/(?:edit|tree|blob|merge_requests)(?:\/|$)|\/?$)/
/**
 * Instance routes under `/-/` that name a project or group by numeric id: the redirects
 * `/-/p/42` and `/-/g/7` (they answer with the path, so a hidden project's name), and the
 * attachments `/-/project/42/uploads/<secret>/<file>` and `/-/group/7/uploads/...`.
 */
const DASH_NUMERIC = /^\/-\/(p|g|project|group)\/([^/]+)(?:\/|$)/
/** Organization pages of a project or group: `/-/organizations/<org>/projects/<ns>/<project>/edit`, `.../groups/<group>/edit`. */
const ORGANIZATION_ITEM = /^\/-\/organizations\/[^/]+\/(?:projects|groups)\/(.+?)(?:\/edit)?\/?$/
/** GitLab Geo's git routes: `/-/push_from_secondary/<node>/<ns>/<project>.git/...` (`/-/from_secondary/` since 17.10). */
const GEO_PREFIX = /^\/-\/(?:push_)?from_secondary\/[^/]+(?=\/)/
/**
 * Workhorse's websocket routes that give a shell or interactive access, from the project's first `/-/` on:
 * a job's web terminal and service proxy, an environment's terminal (`-/jobs/[0-9]+/terminal.ws`,
 * `-/jobs/[0-9]+/proxy.ws`, `-/environments/[0-9]+/terminal.ws`). Their handshake is a GET, so the
 * policy decides it as a POST too. A later `/-/` is a file in a blob or tree path (Rails routes it so),
 * and any case counts: deciding more of them as a write only ever refuses more.
 */
const INTERACTIVE_WEBSOCKET = /^\/-\/(?:jobs\/\d+\/(?:terminal|proxy)|environments\/\d+\/terminal)\.ws$/i
/**
 * What Rails finds for `/projects/<id>`: ActiveRecord casts the id to an integer, so `42.json`,
 * `42-anything` and `+42` all name project 42.
 */
const LEADING_INTEGER = /^[ \t]*\+?(\d+)/
/**
 * REST routes outside `/api/v4/projects/:id` and `/api/v4/groups/:id` that still take a project or
 * group (id or url-encoded path) in the path (GitLab's lib/api): Composer's group endpoints, the
 * security exports, the error-tracking collector (no membership check in GitLab) and Unleash.
 */
const API_ELSEWHERE: readonly (readonly [RegExp, NumericId['resource']])[] = [
  [/^\/api\/v4\/group\/([^/]+)\/-\//, 'groups'],
  [/^\/api\/v4\/security\/projects\/([^/]+)(?:\/|$)/, 'projects'],
  [/^\/api\/v4\/security\/groups\/([^/]+)(?:\/|$)/, 'groups'],
  [/^\/api\/v4\/error_tracking\/collector\/api\/([^/]+)(?:\/|$)/, 'projects'],
  [/^\/api\/v4\/feature_flags\/unleash\/([^/]+)(?:\/|$)/, 'projects'],
]
/**
 * GitLab's GitHub-shaped API for Jira DVCS: `/api/v3/repos/:namespace/:project/...` and
 * `/api/v3/users/:namespace/repos`; `@` stands for `/` in a namespace, and a project segment with
 * an `@` is the whole path (GitLab ignores the namespace segment then).
 */
const JIRA_REPO = /^\/api\/v3\/repos\/([^/]+)\/([^/]+)(?:\/|$)/
const JIRA_USER = /^\/api\/v3\/users\/([^/]+)\/repos(?:\/|$)/
/** The dependency proxy for containers: `/v2/<group path>/dependency_proxy/containers/...`. */
const DEPENDENCY_PROXY = /^\/v2\/(.+?)\/dependency_proxy\//
/** The admin area's project and group pages: `/admin/projects/<ns>/<project>[/transfer|...]`, `/admin/groups/<group>[/edit]`. */
const ADMIN_ITEM = /^\/admin\/(?:projects|groups)\/(.+?)(?:\/(?:edit|transfer|repository_check|members_update))?\/?$/
/** Legacy uploads by model id: `/uploads/-/system/project/avatar/42/a.png`, `/uploads/-/system/group/avatar/7/...`. */
const SYSTEM_UPLOAD = /^\/uploads\/-\/system\/(project|group)\/[^/]+\/(\d+)\//
/**
 * The instance-level npm registry: `/api/v4/packages/npm/@scope/pkg` (also `@scope%2Fpkg`) and
 * `/api/v4/packages/npm/-/package/@scope/pkg/dist-tags`. GitLab finds the package below the top-level
 * namespace named like the scope (GitLab's npm naming convention), in any project there.
 */
const NPM_INSTANCE = /^\/api\/v4\/packages\/npm\/(?:-\/package\/)?(.+)$/
/**
 * The instance-level Conan registry: `/api/v4/packages/conan/v1/{conans,files}/<name>/<version>/<user>/<channel>/...`,
 * where the user is the project's path with `+` for `/` (`my-group+my-project`), found with `find_project!`.
 */
const CONAN_INSTANCE = /^\/api\/v4\/packages\/conan\/v1\/(?:conans|files)\/[^/]+\/[^/]+\/([^/]+)\/[^/]+(?:\/|$)/
/** The Terraform module registry: `/api/v4/packages/terraform/modules/v1/<namespace id or path>/<name>/<system>/...`, every project below the namespace. */
const TERRAFORM_MODULES = /^\/api\/v4\/packages\/terraform\/modules\/v1\/([^/]+)\/[^/]+\/[^/]+(?:\/|$)/

/** A query name or value as a server reads it: `+` is a space, percent-encodings decoded (invalid ones kept). */
function decodeQueryPart(part: string): string {
  const spaced = part.replaceAll('+', ' ')
  try {
    return decodeURIComponent(spaced)
  } catch {
    return spaced
  }
}

/**
 * `…/info/refs?service=git-receive-pack` read with GET or HEAD: the ref advertisement with which every
 * push starts. GitLab asks for push access there, and git uploads its whole pack before the
 * `POST …/git-receive-pack` that follows could be refused, so the policy decides it as that POST too
 * (`decideAlsoAs`: what either refuses is refused). Any `service` parameter counts (names and values
 * decoded, `&` or `;` between them, any case): Workhorse serves the first, Rails reads the last, and
 * deciding more of them as a push only ever refuses more.
 */
function isPushAdvertisement(method: string, rest: string, query: string): boolean {
  if ((method !== 'GET' && method !== 'HEAD') || rest !== '/info/refs' || query === '') return false
  for (const pair of query.split(/[&;]/)) {
    const eq = pair.indexOf('=')
    if (eq === -1) continue
    if (decodeQueryPart(pair.slice(0, eq)) === 'service' && decodeQueryPart(pair.slice(eq + 1)).toLowerCase() === 'git-receive-pack') return true
  }
  return false
}

/** A git request of `project`, read as a push when it is the receive-pack advertisement (a file `info/refs` below `/-/` is no repository). */
function gitRequest(method: string, project: string, rest: string, query: string): Attribution {
  const attribution: Attribution = { route: 'git', project, followsRedirects: true }
  return !project.includes('/-/') && isPushAdvertisement(method, rest, query) ? { ...attribution, policyMethod: 'POST' } : attribution
}

/** Decodes `%2F` and other percent-encodings of a REST id; invalid encodings stay as they are. */
function decodeId(id: string): string {
  try {
    return decodeURIComponent(id)
  } catch {
    return id
  }
}

/**
 * The proxy's own prefix in any spelling: `/-/IAP/whoami` must never reach GitLab (GitLab has no route
 * there, so nothing is lost). Unknown spellings get the 404 of unknown iap endpoints.
 */
export function isIapPath(path: string): boolean {
  const head = path.slice(0, 7).toLowerCase()
  return head === '/-/iap/' || (head === '/-/iap' && path.length === 6)
}

/**
 * A REST reference to a project or group: a numeric id to resolve, or its url-encoded path. GitLab's
 * `find_project` follows a project's former paths (only paths with a `/`: a project always has a namespace);
 * a group's endpoints reach the projects below it.
 */
function apiReference(resource: NumericId['resource'], raw: string, groupWide = resource === 'groups'): Attribution {
  const id = decodeId(raw)
  const numeric = NUMERIC_ID.exec(id)
  const reference: Attribution = numeric ? { route: 'api', numericId: { resource, id: numeric[1]! } } : { route: 'api', project: id }
  if (groupWide) return { ...reference, groupWide: true }
  return !numeric && resource === 'projects' && id.includes('/') ? { ...reference, followsRedirects: true } : reference
}

/** Instance-level package registries that name a namespace or project in their own way (npm scopes, Conan users, Terraform namespaces). */
function attributePackages(path: string): Attribution | undefined {
  const npm = NPM_INSTANCE.exec(path)
  if (npm) {
    const name = decodeId(npm[1]!)
    const slash = name.indexOf('/')
    const scope = name.startsWith('@') ? name.slice(1, slash === -1 ? undefined : slash) : ''
    return scope ? { route: 'api', project: scope, groupWide: true } : { route: 'api' }
  }
  const conan = CONAN_INSTANCE.exec(path)
  if (conan) {
    const user = decodeId(conan[1]!)
    return user.includes('+') ? { route: 'api', project: user.replaceAll('+', '/'), followsRedirects: true } : { route: 'api' }
  }
  const terraform = TERRAFORM_MODULES.exec(path)
  return terraform ? apiReference('namespaces', terraform[1]!, true) : undefined
}

/** A numeric id as ActiveRecord reads it (leading integer), or undefined when the value names none. */
function leadingInteger(raw: string): string | undefined {
  const match = LEADING_INTEGER.exec(decodeId(raw))
  return match ? String(Number(match[1])) : undefined
}

/** Routes under `/-/`: the proxy's own, the cable, and the few instance routes that name a project or group. */
function attributeDash(method: string, path: string, query: string): Attribution {
  if (isIapPath(path)) return { route: 'iap' }
  if (path === '/-/cable') return { route: 'cable' }
  const ide = path.startsWith('/-/ide/project/') ? IDE_PROJECT.exec(path) : null
  if (ide) return { route: 'web', project: ide[1]! }
  const numeric = DASH_NUMERIC.exec(path)
  if (numeric) {
    const id = leadingInteger(numeric[2]!)
    const resource = numeric[1] === 'p' || numeric[1] === 'project' ? 'projects' : 'groups'
    return id === undefined ? { route: 'web' } : { route: 'web', numericId: { resource, id } }
  }
  const organization = path.startsWith('/-/organizations/') ? ORGANIZATION_ITEM.exec(path) : null
  if (organization) return { route: 'web', project: organization[1]! }
  const geo = GEO_PREFIX.exec(path)
  if (geo) {
    // What follows the node is a repository path as Workhorse routes it: git traffic of that project.
    const inner = attribute(method, path.slice(geo[0].length), query)
    return { ...inner, route: inner.route === 'lfs' ? 'lfs' : 'git' }
  }
  return { route: 'web' }
}

/**
 * A namespace page asked for in another format: `/corp.atom` (the activity feed) or `?format=atom|json`
 * (Rails reads the format from the query too). A group's feed carries the events of every project below
 * it, so it counts as group-wide; for a project's own page that changes nothing.
 */
const FEED_SUFFIX = /\.(?:atom|json)$/i
const FORMAT_QUERY = /(?:^|&)format=(?!html(?:&|$))/i

/** A web namespace page: group-wide when asked for as a feed (`FEED_SUFFIX`, `FORMAT_QUERY`), the suffix taken off. */
function namespacePage(project: string, query: string): Attribution {
  if (FEED_SUFFIX.test(project)) return { route: 'web', project: project.replace(FEED_SUFFIX, ''), groupWide: true }
  if (query !== '' && FORMAT_QUERY.test(query)) return { route: 'web', project, groupWide: true }
  return { route: 'web', project }
}

export function attribute(method: string, path: string, query = ''): Attribution {
  if (path.startsWith('/-/')) return attributeDash(method, path, query)
  if (path.startsWith('/api/')) {
    // `/api/graphql.json` is the GraphQL endpoint too (Rails' format suffix).
    if (path === '/api/graphql' || path === '/api/graphql.json' || path.startsWith('/api/graphql/')) return { route: 'graphql' }
    const resource = API_RESOURCE.exec(path)
    if (resource) return apiReference(resource[1] as NumericId['resource'], resource[2]!)
    for (const [pattern, kind] of API_ELSEWHERE) {
      const match = pattern.exec(path)
      if (match) return apiReference(kind, match[1]!)
    }
    const jira = path.startsWith('/api/v3/') ? (JIRA_REPO.exec(path) ?? JIRA_USER.exec(path)) : null
    if (jira) {
      const [namespace, project] = [decodeId(jira[1]!), jira[2] === undefined ? undefined : decodeId(jira[2])]
      const full = (project === undefined ? namespace : project.includes('@') ? project : `${namespace}/${project}`).replaceAll('@', '/')
      // A repository is found with `find_project!` (former paths followed); a namespace's repositories are all below it.
      return project === undefined ? { route: 'api', project: full, groupWide: true } : { route: 'api', project: full, followsRedirects: true }
    }
    return (path.startsWith('/api/v4/packages/') && attributePackages(path)) || { route: 'api' }
  }
  const elsewhere = path.startsWith('/v2/') ? DEPENDENCY_PROXY.exec(path) : path.startsWith('/admin/') ? ADMIN_ITEM.exec(path) : null
  if (elsewhere) return { route: 'web', project: elsewhere[1]! }
  const upload = path.startsWith('/uploads/-/system/') ? SYSTEM_UPLOAD.exec(path) : null
  if (upload) return { route: 'web', numericId: { resource: upload[1] === 'project' ? 'projects' : 'groups', id: upload[2]! } }
  // /projects/42 is GitLab's redirect to the project's page: resolved like the REST id, or the redirect names a hidden project.
  const webNumeric = path.startsWith('/projects/') ? /^\/projects\/([^/]+)\/?$/.exec(path) : null
  const webId = webNumeric ? leadingInteger(webNumeric[1]!) : undefined
  if (webId !== undefined) return { route: 'web', numericId: { resource: 'projects', id: webId } }
  const git = GIT_SUFFIX.exec(path)
  if (git && !git[1]!.includes('/-/') && GIT_ENDPOINT.test(git[2] ?? '')) {
    const rest = git[2] ?? ''
    const lfs = rest.startsWith('/info/lfs/') || rest.startsWith('/gitlab-lfs/')
    // Wiki, design and snippet repositories (`ns/p.wiki`, `ns/p.design`, `ns/p/snippets/7`) keep their suffix here;
    // project-ids.ts strips it to ask GitLab which project or group a former path names now.
    return lfs ? { route: 'lfs', project: git[1]!, followsRedirects: true } : gitRequest(method, git[1]!, rest, query)
  }
  // Anything else below `<project>.git/` (dumb HTTP's `HEAD`, `objects/...`) still names that project:
  // GitLab refuses names ending in `.git`, so no group or project is called `project.git`. Not below a
  // reserved top-level route (`/groups/...` names a group path, handled below).
  if (git?.[2] && !git[1]!.includes('/-/') && !RESERVED_TOP.has(git[1]!.split('/')[0]!)) return { route: 'web', project: git[1]! }
  // `git clone https://host/group/project` (no .git) asks for /group/project/info/refs?service=...
  const bareGit = /^\/(.+?)\/(info\/refs|git-upload-pack|git-receive-pack)$/.exec(path)
  if (bareGit && !RESERVED_TOP.has(bareGit[1]!.split('/')[0]!)) return gitRequest(method, bareGit[1]!, `/${bareGit[2]!}`, query)

  const first = path.slice(1).split('/', 1)[0] ?? ''
  if (first === 'groups') {
    // /groups/group/sub/-/... : the group path up to /-/
    const rest = path.slice('/groups/'.length)
    const dash = rest.indexOf('/-/')
    const group = dash === -1 ? rest : rest.slice(0, dash)
    // The group's feature pages (issues, merge requests, epics, packages, activity) list what lies below it.
    if (group && dash !== -1) return { route: 'web', project: group.replace(/\/$/, ''), groupWide: true }
    return group ? namespacePage(group.replace(/\/$/, ''), query) : { route: 'web' }
  }
  if (first === '' || isReservedTop(first, path)) return { route: 'web' }
  // /namespace/.../project/-/feature ... : everything before /-/; without /-/ the whole path is a
  // namespace candidate (a group page, a project page or a legacy route below one).
  const dash = path.indexOf('/-/')
  const project = (dash === -1 ? path.slice(1) : path.slice(1, dash)).replace(/\/$/, '')
  if (dash === -1) return namespacePage(project, query)
  const interactive = (method === 'GET' || method === 'HEAD') && INTERACTIVE_WEBSOCKET.test(path.slice(dash))
  return interactive ? { route: 'web', project, policyMethod: 'POST' } : { route: 'web', project }
}
