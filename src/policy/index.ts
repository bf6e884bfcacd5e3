/**
 * Policy: compile the rules once, decide per request with a pure function.
 * STUB until the policy issue lands: only `public: true` rules with exact paths or `/**`-style prefixes allow.
 */
import type { Identity } from '../auth/identity.ts'
import type { Config } from '../config/schema.ts'
import type { RouteClass } from '../gitlab/route.ts'
import type { Decision } from './decision.ts'

export interface RequestFacts {
  readonly method: string
  /** Canonical path (raw, as forwarded), without query. */
  readonly path: string
  readonly route: RouteClass
  readonly project?: string
  /** True when the request names a numeric project id that could not be resolved. */
  readonly projectUnresolved?: boolean
  readonly clientIp: string
}

export interface CompiledPolicy {
  /** True when any rule has `projects`: numeric project ids must then be resolved. */
  readonly needsProjects: boolean
  readonly ruleNames: readonly string[]
  readonly rules: readonly { name: string; paths: readonly string[]; public: boolean }[]
  readonly defaultResult: 'allow' | 'deny'
}

export function compilePolicy(config: Config): CompiledPolicy {
  const rules = config.policy.rules.map((r) => ({ name: r.name, paths: r.paths ?? [], public: r.public === true }))
  return { needsProjects: false, ruleNames: rules.map((r) => r.name), rules, defaultResult: config.policy.default }
}

export function decide(policy: CompiledPolicy, facts: RequestFacts, _identity: Identity): Decision {
  for (const rule of policy.rules) {
    const hit = rule.paths.some((p) => (p.endsWith('/**') ? facts.path.startsWith(p.slice(0, -2)) || p === '/**' : p === facts.path))
    if (!hit) continue
    return rule.public ? { result: 'allow', rule: rule.name, reason: 'public' } : { result: 'deny', rule: rule.name, reason: 'no-group-match' }
  }
  return policy.defaultResult === 'allow'
    ? { result: 'allow', rule: null, reason: 'default-allow' }
    : { result: 'deny', rule: null, reason: 'no-rule-matched' }
}
