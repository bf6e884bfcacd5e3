/**
 * Reading config.yaml: file → YAML → `${VAR}` expansion → schema → frozen Config.
 * Every failure is an IapError whose message names the key path, ready to print on one line.
 */
import { readFileSync } from 'node:fs'
import { parseDocument } from 'yaml'
import type { z } from 'zod'
import { IapError } from '../errors.ts'
import { accessLogSchema, configSchema, type Config } from './schema.ts'

export interface LoadedConfig {
  config: Config
  path: string
}

/** `--config`, else `$GITLAB_IAP_CONFIG`, else `./config.yaml`; an empty variable counts as unset, an empty flag is an error. */
/** The config file read when neither `--config` nor `$GITLAB_IAP_CONFIG` names one. */
const DEFAULT_CONFIG_PATH = 'config.yaml'

export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  // `--config "$CFG"` with CFG unset must not quietly read another file.
  if (flag === '') throw new IapError('IAP_ERR_CLI_USAGE', '--config: the path is empty')
  return flag || env.GITLAB_IAP_CONFIG || DEFAULT_CONFIG_PATH
}

export interface LoadOptions {
  /**
   * `error` (serve, check): an unset `${VAR}` is an error naming every missing variable.
   * `placeholder` (explain): it stands in with a placeholder, so a policy question needs no secrets.
   */
  readonly missingEnv?: 'error' | 'placeholder'
}

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env, options: LoadOptions = {}): LoadedConfig {
  return { config: parseConfig(readConfigText(path), env, path, options), path }
}

export function parseConfig(text: string, env: NodeJS.ProcessEnv = process.env, source = 'config', options: LoadOptions = {}): Config {
  const expansion = new Expansion(env)
  const expanded = expansion.expand(parseYaml(text, source), [])
  if (expansion.missing.length > 0 && options.missingEnv !== 'placeholder') {
    throw new IapError('IAP_ERR_CONFIG_ENV_MISSING', expansion.missing.map(({ path, name }) => `${path}: environment variable ${name} is not set`).join('; '))
  }
  return validateConfig(expanded, expansion, options.missingEnv === 'placeholder')
}

function readConfigText(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT'
    // Nobody named a file: say how to, rather than only that ./config.yaml is not there.
    const hint = missing && path === DEFAULT_CONFIG_PATH ? ' (pass --config FILE or set GITLAB_IAP_CONFIG; config.example.yaml lists every key)' : ''
    const reason = missing ? `no such file${hint}` : (err as Error).message
    throw new IapError('IAP_ERR_CONFIG_UNREADABLE', `cannot read config ${path}: ${reason}`, { cause: err })
  }
}

function parseYaml(text: string, source: string): unknown {
  // `merge`: YAML 1.1 merge keys (`<<: *defaults`), which Helm and Compose users write.
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, merge: true })
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!
    const line = first.linePos?.[0]
    const message = first.code === 'MULTIPLE_DOCS' ? 'a config file holds one YAML document; a second one starts here' : first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')
    throw new IapError('IAP_ERR_CONFIG_INVALID', `${source}${line ? `:${line.line}:${line.col}` : ''}: invalid YAML: ${message}`)
  }
  let value: unknown
  try {
    value = doc.toJS() ?? {}
  } catch (err) {
    // Alias expansion beyond the parser's limit ("billion laughs"), and the like.
    throw new IapError('IAP_ERR_CONFIG_INVALID', `${source}: invalid YAML: ${(err as Error).message}`)
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new IapError('IAP_ERR_CONFIG_INVALID', `${source}: a config is a YAML mapping of keys (server:, upstream:, ...), not ${Array.isArray(value) ? 'a list' : `a ${typeof value}`}`)
  }
  return value
}

/**
 * Only the `accessLog` section of a config file, its `${VAR}`s expanded and validated: what
 * `logs verify` needs, so a security team can verify with the log key alone, without the
 * client secret, the admin token or the rest of what `serve` needs in its environment.
 */
export function loadAccessLogConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config['accessLog'] {
  const raw = parseYaml(readConfigText(path), path) as { accessLog?: unknown }
  const expansion = new Expansion(env)
  const section = expansion.expand(raw.accessLog ?? {}, ['accessLog'])
  if (expansion.missing.length > 0) {
    throw new IapError('IAP_ERR_CONFIG_ENV_MISSING', expansion.missing.map(({ path, name }) => `${path}: environment variable ${name} is not set`).join('; '))
  }
  const result = accessLogSchema.safeParse(section)
  if (!result.success) {
    throw new IapError('IAP_ERR_CONFIG_INVALID', formatIssues(result.error.issues.map((issue) => ({ ...issue, path: ['accessLog', ...issue.path] }))).join('; '))
  }
  return deepFreeze(result.data)
}

/**
 * Only the `groups:` aliases of a config file (alias → id), for `logs --group`: read without the
 * rest, so it runs where the secrets `serve` needs are not set. An alias whose `${VAR}` is unset is left out.
 */
export function loadGroupAliases(path: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const section = (parseYaml(readConfigText(path), path) as { groups?: unknown }).groups
  const aliases: Record<string, string> = {}
  if (section === null || typeof section !== 'object' || Array.isArray(section)) return aliases
  for (const [alias, value] of Object.entries(section)) {
    const expansion = new Expansion(env)
    const id = expansion.expand(value, ['groups', alias])
    if (typeof id === 'string' && expansion.missing.length === 0) aliases[alias] = id
  }
  return aliases
}

export function validateConfig(raw: unknown, expansion?: Expansion, standIns = false): Config {
  let result = configSchema.safeParse(raw)
  // A number or boolean can only come from the environment as text: `timeoutSeconds: ${TIMEOUT}`.
  if (!result.success && expansion?.coerce(raw, result.error.issues)) result = configSchema.safeParse(raw)
  // explain: an unset variable in a URL, GUID or address field gets a stand-in of that shape.
  while (standIns && !result.success && expansion?.standIn(raw, result.error.issues)) result = configSchema.safeParse(raw)
  if (!result.success) {
    // A placeholder that stood in for a missing variable failed validation: name the variable, not the placeholder.
    const missing = new Map(expansion?.missing.map(({ path, name }) => [path, name]))
    const issues = result.error.issues.map((issue) => {
      const name = missing.get(formatPath(issue.path))
      return name ? { ...issue, code: 'custom' as const, message: `environment variable ${name} is not set` } : issue
    })
    // One key can fail two checks; once both name the same unset variable, they say the same thing.
    throw new IapError('IAP_ERR_CONFIG_INVALID', [...new Set(formatIssues(issues))].join('; '))
  }
  return deepFreeze(result.data)
}

/** `policy.rules[2].groups[0]: unknown group alias "admns"`; `server.bogus: unknown key` (one per unknown key). */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => `${formatPath([...issue.path, key])}: unknown key`)
    const path = formatPath(issue.path)
    let message = issue.message
    if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) {
      message = 'is required'
    }
    return path ? `${path}: ${message}` : message
  })
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`
    else out += out ? `.${String(part)}` : String(part)
  }
  return out
}

/** `${VAR}`, `${VAR:-default}` (the default when VAR is unset or empty), or `$$` for a literal `$`. */
const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$/g

/** A value that was exactly one `${VAR}` whose variable is empty: the key is left out, as if unset. */
const UNSET = Symbol('unset')

/** Shapes an unset `${VAR}` may stand in as for `explain`, tried in turn until its key's check passes. */
const STAND_INS = ['https://unset.invalid', '00000000-0000-0000-0000-000000000000', '127.0.0.1:0']

/**
 * Expands `${VAR}` inside string values (not keys; after YAML parsing, so a variable's text can never
 * add keys or change the structure). A missing variable is collected with its key path; a value that is
 * only `${VAR}` with VAR empty leaves its key out (an optional key such as `upstream.apiToken` is then
 * unset, a required one is reported as required).
 */
class Expansion {
  readonly missing: { path: string; name: string }[] = []
  /** Key paths whose whole value was one `${VAR}`: the only values that may be read as a number or boolean. */
  private readonly whole = new Set<string>()
  private readonly env: NodeJS.ProcessEnv

  constructor(env: NodeJS.ProcessEnv) {
    this.env = env
  }

  expand(value: unknown, path: (string | number)[]): unknown {
    if (typeof value === 'string') {
      let only = true
      const expanded = value.replace(VAR, (whole, name: string | undefined, fallback: string | undefined, offset: number) => {
        if (name === undefined) return '$'
        if (offset !== 0 || whole.length !== value.length) only = false
        const found = this.env[name]
        if (fallback !== undefined && (found === undefined || found === '')) return fallback
        if (found === undefined) {
          this.missing.push({ path: formatPath(path) || 'config', name })
          return `unset-${name}-${'x'.repeat(32)}`
        }
        return found
      })
      if (only && VAR.test(value)) this.whole.add(formatPath(path))
      VAR.lastIndex = 0
      return expanded === '' && only && value !== '' ? UNSET : expanded
    }
    if (Array.isArray(value)) return value.map((item, i) => this.expand(item, [...path, i])).filter((item) => item !== UNSET)
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.expand(v, [...path, k])]).filter(([, v]) => v !== UNSET))
    }
    return value
  }

  /** Stand-ins tried so far, by key path. */
  private readonly tried = new Map<string, number>()

  /**
   * For `explain`: a key that is exactly one unset `${VAR}` and failed its check gets the next stand-in
   * of `STAND_INS` (a URL, a GUID, an address); true when any changed.
   */
  standIn(raw: unknown, issues: readonly z.core.$ZodIssue[]): boolean {
    const missing = new Set(this.missing.map(({ path }) => path))
    const done = new Set<string>()
    let changed = false
    for (const issue of issues) {
      const path = formatPath(issue.path)
      if (issue.path.length === 0 || done.has(path) || !missing.has(path) || !this.whole.has(path)) continue
      done.add(path)
      const next = this.tried.get(path) ?? 0
      if (next >= STAND_INS.length) continue
      this.tried.set(path, next + 1)
      const parent = issue.path.slice(0, -1).reduce<unknown>((node, key) => (node as Record<PropertyKey, unknown> | undefined)?.[key], raw) as Record<PropertyKey, unknown> | undefined
      if (!parent) continue
      parent[issue.path[issue.path.length - 1]!] = STAND_INS[next]
      changed = true
    }
    return changed
  }

  /** Reads whole-`${VAR}` values the schema wants as numbers or booleans as such; true when any changed. */
  coerce(raw: unknown, issues: readonly z.core.$ZodIssue[]): boolean {
    let changed = false
    for (const issue of issues) {
      if (issue.code !== 'invalid_type' || !this.whole.has(formatPath(issue.path)) || issue.path.length === 0) continue
      const parent = issue.path.slice(0, -1).reduce<unknown>((node, key) => (node as Record<PropertyKey, unknown> | undefined)?.[key], raw) as Record<PropertyKey, unknown> | undefined
      const key = issue.path[issue.path.length - 1]!
      const text = parent?.[key]
      if (typeof text !== 'string') continue
      if (issue.expected === 'number' && /^-?\d+(?:\.\d+)?$/.test(text.trim())) parent![key] = Number(text)
      else if (issue.expected === 'boolean' && /^(?:true|false)$/i.test(text.trim())) parent![key] = text.trim().toLowerCase() === 'true'
      else continue
      changed = true
    }
    return changed
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}
