/**
 * Policy: the rules are compiled once at load; `decide` is a pure, synchronous function of
 * (policy, request facts, identity) → { result, rule, reason }. The first rule whose conditions all
 * match decides (no fall-through); `policy.default` decides when none does.
 */
import { qualifiedValue, type Identity } from '../auth/identity.ts'
import type { Config, RuleConfig } from '../config/schema.ts'
import { IapError } from '../errors.ts'
import type { RouteClass } from '../gitlab/route.ts'
import { foldCase, matchPath } from '../http/canonical-path.ts'
import { createCidrSet, type CidrSet } from '../net/cidr.ts'
import type { Decision } from './decision.ts'
import { compileBelow, compileGlobs, GlobError, type GlobForm } from './glob.ts'

export interface RequestFacts {
  readonly method: string
  /** Canonical path (raw, as forwarded), without query. */
  readonly path: string
  readonly route: RouteClass
  readonly project?: string
  /** True when the request names a numeric project id that could not be resolved. */
  readonly projectUnresolved?: boolean
  /** A group's own endpoint that reaches the projects below it (`groupWide` in src/gitlab/attribute.ts). */
  readonly groupWide?: boolean
  readonly clientIp: string
}

export type RuleOutcome = 'public' | 'deny' | 'grant'

export interface CompiledRule {
  readonly name: string
  readonly index: number
  readonly paths?: RegExp
  readonly projects?: RegExp
  /** Matches a (case-folded) group below which one of the `projects` patterns lies (`compileBelow`). */
  readonly below?: RegExp
  readonly methods?: ReadonlySet<string>
  readonly sourceIps?: CidrSet
  readonly outcome: RuleOutcome
  /** Group ids (aliases resolved), lower-cased. */
  readonly groups: ReadonlySet<string>
  /**
   * The extra issuer (lower-cased name) a `<issuer>:<group>` value belongs to: only that issuer's identities
   * carry it. Any other group is an Entra group. An Entra groups claim holding `gitlab-ci:platform` (a
   * group named so, where the claim carries names) must not pass for the CI group.
   */
  readonly groupIssuers: ReadonlyMap<string, string>
  readonly users: ReadonlySet<string>
  readonly roles: ReadonlySet<string>
  readonly apps: ReadonlySet<string>
}

export interface CompiledPolicy {
  /** True when any rule has `projects`: numeric project ids must then be resolved. */
  readonly needsProjects: boolean
  /** True when a `public` rule names `projects`: only then can a request without a credential be allowed by the project it names. */
  readonly publicProjects: boolean
  readonly ruleNames: readonly string[]
  readonly rules: readonly CompiledRule[]
  readonly defaultResult: 'allow' | 'deny'
  /** Every group id some rule names (lower-cased): the only groups a decision can turn on. */
  readonly referencedGroups: ReadonlySet<string>
}

const lowerSet = (values: readonly string[] | undefined) => new Set((values ?? []).map((v) => v.toLowerCase()))

/** Globs of one rule key; a pattern that cannot be compiled is reported by its key path, as schema issues are. */
function compileKey(patterns: readonly string[], form: GlobForm, at: string, problems: string[]): RegExp | undefined {
  try {
    return compileGlobs(patterns, form)
  } catch (err) {
    if (!(err instanceof GlobError)) throw err
    problems.push(`${at}[${err.index}]: ${err.message}`)
    return undefined
  }
}

/** Rails answers HEAD with the GET action (the body dropped): a rule about GET is a rule about HEAD too. */
function compileMethods(methods: readonly string[]): ReadonlySet<string> {
  const set = new Set(methods.map((m) => m.toUpperCase()))
  if (set.has('GET')) set.add('HEAD')
  return set
}

/** The extra issuer (lower-cased name, one of `extraIssuers`) a `<issuer>:<group>` value belongs to; undefined for an Entra group. */
export function issuerOfGroup(group: string, extraIssuers: ReadonlySet<string>): string | undefined {
  const colon = group.indexOf(':')
  const prefix = colon > 0 ? group.slice(0, colon).toLowerCase() : undefined
  return prefix !== undefined && extraIssuers.has(prefix) ? prefix : undefined
}

/** `<issuer>:<group>` values of the rule's groups, mapped to their (configured) extra issuer. */
function issuersOfGroups(groups: ReadonlySet<string>, extraIssuers: ReadonlySet<string>): ReadonlyMap<string, string> {
  const map = new Map<string, string>()
  for (const group of groups) {
    const issuer = issuerOfGroup(group, extraIssuers)
    if (issuer !== undefined) map.set(group, issuer)
  }
  return map
}

function compileRule(rule: RuleConfig, index: number, aliases: Readonly<Record<string, string>>, extraIssuers: ReadonlySet<string>, problems: string[]): CompiledRule {
  const outcome: RuleOutcome = rule.public ? 'public' : rule.deny ? 'deny' : 'grant'
  const at = `policy.rules[${index}]`
  const paths = rule.paths && compileKey(rule.paths, 'path', `${at}.paths`, problems)
  const projectPatterns = rule.projects?.map((p) => p.replace(/^\/+|\/+$/g, ''))
  const projects = projectPatterns && compileKey(projectPatterns, 'project', `${at}.projects`, problems)
  const below = projects && compileBelow(projectPatterns)
  const groups = lowerSet(rule.groups?.map((g) => aliases[g] ?? g))
  return {
    name: rule.name,
    index,
    ...(paths && { paths }),
    ...(projects && { projects }),
    ...(below && { below }),
    ...(rule.methods && { methods: compileMethods(rule.methods) }),
    ...(rule.sourceIps && { sourceIps: createCidrSet(rule.sourceIps) }),
    outcome,
    groups,
    groupIssuers: issuersOfGroups(groups, extraIssuers),
    users: lowerSet(rule.users),
    roles: new Set(rule.roles ?? []),
    apps: lowerSet(rule.apps),
  }
}

/** Throws `IAP_ERR_CONFIG_INVALID` naming every pattern that cannot be compiled (`policy.rules[2].paths[0]: ...`). */
export function compilePolicy(config: Config): CompiledPolicy {
  const problems: string[] = []
  const extraIssuers = lowerSet(config.issuers.map((i) => i.name))
  const rules = config.policy.rules.map((rule, i) => compileRule(rule, i, config.groups, extraIssuers, problems))
  if (problems.length > 0) throw new IapError('IAP_ERR_CONFIG_INVALID', problems.join('; '))
  return Object.freeze({
    needsProjects: rules.some((r) => r.projects !== undefined),
    publicProjects: rules.some((r) => r.projects !== undefined && r.outcome === 'public'),
    ruleNames: rules.map((r) => r.name),
    rules,
    defaultResult: config.policy.default,
    referencedGroups: new Set(rules.flatMap((r) => [...r.groups])),
  })
}

/**
 * The forms of the path a rule may match: the match form itself, without a trailing slash, and
 * without a Rails format suffix on the last segment (`/admin.json` routes like `/admin`).
 */
export function pathCandidates(path: string): string[] {
  const base = matchPath(path)
  const out = [base]
  const trimmed = base.length > 1 && base.endsWith('/') ? base.slice(0, -1) : base
  if (trimmed !== base) out.push(trimmed)
  const lastSlash = trimmed.lastIndexOf('/')
  const dot = trimmed.lastIndexOf('.')
  if (dot > lastSlash + 1) out.push(trimmed.slice(0, dot))
  return out
}

/** A project path as rules read it: decoded, case-folded, split into its segments. */
function projectSegments(project: string): string[] {
  let decoded = project
  if (project.includes('%')) {
    try {
      decoded = decodeURIComponent(project)
    } catch {
      // keep as is
    }
  }
  return foldCase(decoded).split('/').filter(Boolean)
}

/** A project path and each namespace above it (`a/b/c` → `a`, `a/b`, `a/b/c`), lower-cased and decoded. */
export function projectCandidates(project: string): string[] {
  const parts = projectSegments(project)
  const out: string[] = []
  for (let i = 1; i <= parts.length; i++) out.push(parts.slice(0, i).join('/'))
  // A Rails format suffix on a project page (`group/project.json`) names the same project.
  const last = out.at(-1)
  if (last) {
    const dot = last.lastIndexOf('.')
    if (dot > last.lastIndexOf('/') + 1) out.push(last.slice(0, dot))
  }
  return out
}

/** The rule's conditions (paths or projects, methods, source IPs) all match the request. */
/**
 * The POSTs with which git and git-lfs read: a fetch or clone is `POST …/git-upload-pack`, an LFS
 * download starts with `POST …/info/lfs/objects/batch` (an upload's batch only hands out URLs: the
 * objects then go up with `PUT`, which stays a write). A rule whose `methods` list GET covers them,
 * so "who may read" in a GET/HEAD rule includes cloning.
 */
export function isGitRead(facts: Pick<RequestFacts, 'method' | 'route' | 'path'>): boolean {
  if (facts.method !== 'POST') return false
  if (facts.route === 'git') return facts.path.endsWith('/git-upload-pack')
  return facts.route === 'lfs' && facts.path.endsWith('/info/lfs/objects/batch')
}

function methodMatches(rule: CompiledRule, facts: RequestFacts): boolean {
  return !rule.methods || rule.methods.has(facts.method) || (rule.methods.has('GET') && isGitRead(facts))
}

/** The rule's `methods` and `sourceIps` (when given) match the request. */
function conditionsMatch(rule: CompiledRule, facts: RequestFacts): boolean {
  return methodMatches(rule, facts) && (!rule.sourceIps || rule.sourceIps.has(facts.clientIp))
}

export function ruleMatches(rule: CompiledRule, facts: RequestFacts, paths: readonly string[], projects: () => readonly string[]): boolean {
  if (!methodMatches(rule, facts)) return false
  let hit = false
  if (rule.paths) for (const p of paths) if (rule.paths.test(p)) hit = true
  if (!hit && rule.projects) for (const p of projects()) if (rule.projects.test(p)) hit = true
  if (!hit) return false
  return !rule.sourceIps || rule.sourceIps.has(facts.clientIp)
}

const groupSets = new WeakMap<Identity, ReadonlySet<string>>()

/** Lower-cased groups of an identity, computed once per identity object (identities are cached). */
function groupsOf(identity: Identity): ReadonlySet<string> {
  let set = groupSets.get(identity)
  if (!set) {
    set = new Set(identity.groups.map((g) => g.toLowerCase()))
    groupSets.set(identity, set)
  }
  return set
}

/**
 * Why this identity is granted by the rule, or `undefined`. App-only identities are granted only
 * by `apps` or `roles` (other service principals in the tenant can get app-only tokens too);
 * `users` names Entra users by object id or UPN, never email,
 * and identities of extra issuers by their qualified name ("gitlab-ci:alice").
 */
export function grantReason(rule: CompiledRule, identity: Identity): string | undefined {
  if (identity.kind === 'app') {
    // An extra issuer's app is named qualified (`gitlab-ci:deploy-bot`), as its users are: it cannot pose as an Entra client id.
    if (rule.apps.size > 0 && ((identity.appId && rule.apps.has(identity.appId.toLowerCase())) || rule.apps.has(qualifiedValue(identity, identity.id).toLowerCase()))) return 'app-match'
    for (const role of identity.roles) if (rule.roles.has(role)) return 'role-match'
    return undefined
  }
  if (rule.groups.size > 0) {
    const mine = groupsOf(identity)
    const issuer = identity.issuer.toLowerCase()
    for (const group of rule.groups) if (mine.has(group) && (rule.groupIssuers.get(group) ?? 'entra') === issuer) return 'group-match'
  }
  if (rule.users.size > 0) {
    const id = qualifiedValue(identity, identity.id)
    // A guest's name is chosen in its home tenant: it could be anyone's UPN here.
    const name = identity.name && !identity.guest && qualifiedValue(identity, identity.name)
    if (rule.users.has(id.toLowerCase()) || (name && rule.users.has(name.toLowerCase()))) return 'user-match'
  }
  if (rule.roles.size > 0) for (const role of identity.roles) if (rule.roles.has(role)) return 'role-match'
  return undefined
}

/**
 * The decision for this request. A request without any credential that an identity might get through
 * (a rule that needs one, no rule with `policy.default: deny`, an unresolved project) is challenged:
 * sent to sign-in (browsers) or answered 401 (docs/policy.md). A `deny` rule refuses it outright, as
 * it refuses everyone: signing in cannot help there.
 */
export function decide(policy: CompiledPolicy, facts: RequestFacts, identity: Identity): Decision {
  const decision = decideForIdentity(policy, facts, identity)
  if (identity.kind !== 'anonymous' || decision.result !== 'deny' || decision.reason === 'deny-rule') return decision
  return { result: 'challenge', rule: decision.rule, reason: 'login-required' }
}

/**
 * The decision for a request the policy also reads as another method: a push's ref advertisement is the
 * GET it is and the POST it announces, a terminal's websocket handshake a GET and a write
 * (`Attribution.policyMethod`). What either refuses is refused: a read-only rule opens neither, and a
 * rule that denies GETs still stops them.
 */
export function decideAlsoAs(policy: CompiledPolicy, facts: RequestFacts, identity: Identity, alsoAs: string | undefined): Decision {
  const own = decide(policy, facts, identity)
  if (alsoAs === undefined || own.result === 'deny') return own
  const also = decide(policy, { ...facts, method: alsoAs }, identity)
  // A challenge stands unless the other reading is refused outright (a `deny` rule): then signing in cannot help.
  return own.result === 'allow' || also.result === 'deny' ? also : own
}

/**
 * What the identity lacks for a grant rule it does not satisfy: its groups when the rule lists any,
 * else the first of users, roles, apps the rule lists (docs/errors.md).
 */
function missingReason(rule: CompiledRule, identity: Identity): string {
  if (rule.groups.size > 0) return identity.groupsSource === 'overage-unresolved' ? 'groups-unresolved' : 'no-group-match'
  if (rule.users.size > 0) return 'no-user-match'
  if (rule.roles.size > 0) return 'no-role-match'
  return 'no-app-match'
}

/** How a matching `deny` or grant rule refuses this identity, or `undefined` when it grants it. */
function refusalOf(rule: CompiledRule, identity: Identity): Decision | undefined {
  if (rule.outcome === 'deny') return { result: 'deny', rule: rule.name, reason: 'deny-rule' }
  if (identity.kind === 'anonymous') return { result: 'challenge', rule: rule.name, reason: 'login-required' }
  if (grantReason(rule, identity)) return undefined
  return { result: 'deny', rule: rule.name, reason: missingReason(rule, identity) }
}

function decideForIdentity(policy: CompiledPolicy, facts: RequestFacts, identity: Identity): Decision {
  if (facts.projectUnresolved && policy.needsProjects) return { result: 'deny', rule: null, reason: 'project-unresolved' }
  const paths = pathCandidates(facts.path)
  // Project candidates only when a `projects` rule asks for them: most requests never need them.
  let projectList: readonly string[] | undefined
  const projects = () => (projectList ??= facts.project ? projectCandidates(facts.project) : [])
  // A group-wide endpoint (group search, issues, merge requests, packages: `groupWide` in src/gitlab/attribute.ts)
  // reaches the projects below its group: the group path, when the request is one, else null.
  let groupPath: string | null | undefined
  const wideGroup = () => (groupPath ??= facts.project !== undefined && facts.groupWide ? projectSegments(facts.project).join('/') : null)
  for (const rule of policy.rules) {
    if (!ruleMatches(rule, facts, paths, projects)) {
      // A `projects` rule below that group refuses the request as it would refuse those projects, and never
      // allows it: whoever may not reach `parent/secret/**` may not search or list it through `parent`.
      if (rule.below && rule.outcome !== 'public' && conditionsMatch(rule, facts)) {
        const group = wideGroup()
        if (group !== null && rule.below.test(group)) {
          const refusal = refusalOf(rule, identity)
          if (refusal) return refusal
        }
      }
      continue
    }
    if (rule.outcome === 'public') return { result: 'allow', rule: rule.name, reason: 'public' }
    const refusal = refusalOf(rule, identity)
    if (refusal) return refusal
    return { result: 'allow', rule: rule.name, reason: grantReason(rule, identity)! }
  }
  return policy.defaultResult === 'allow'
    ? { result: 'allow', rule: null, reason: 'default-allow' }
    : { result: 'deny', rule: null, reason: 'no-rule-matched' }
}
