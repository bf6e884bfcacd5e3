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
  expansion.throwInvalid()
  if (options.missingEnv !== 'placeholder') expansion.throwMissing()
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
  checkAliasedShape(value, source)
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new IapError('IAP_ERR_CONFIG_INVALID', `${source}: a config is a YAML mapping of keys (server:, upstream:, ...), not ${Array.isArray(value) ? 'a list' : `a ${typeof value}`}`)
  }
  return value
}

/** Most values a config may hold once its aliases are expanded: far above any real policy, far below what exhausts memory. */
export const MAX_CONFIG_VALUES = 250_000

/**
 * `toJS` shares one object for every alias of an anchor, so an anchor that contains its own alias
 * (`rules: &r [*r]`) comes back circular, and a large anchor aliased often (within the parser's alias
 * limit) is small here but huge once copied by the expansion below. Refuse both before anything walks
 * the value: the cycle with its key path, the size without building it.
 */
function checkAliasedShape(root: unknown, source: string): void {
  let count = 0
  const ancestors = new Set<object>()
  const path: (string | number)[] = []
  const walk = (node: unknown): void => {
    if (++count > MAX_CONFIG_VALUES) {
      throw new IapError('IAP_ERR_CONFIG_INVALID', `${source}: invalid YAML: more than ${MAX_CONFIG_VALUES} values once aliases are expanded`)
    }
    if (node === null || typeof node !== 'object') return
    if (ancestors.has(node)) throw new IapError('IAP_ERR_CONFIG_INVALID', `${formatPath(path) || source}: invalid YAML: an alias refers to an anchor that contains it (a cycle)`)
    ancestors.add(node)
    const entries: [string | number, unknown][] = Array.isArray(node) ? node.map((item, i) => [i, item]) : Object.entries(node)
    for (const [key, child] of entries) {
      path.push(key)
      walk(child)
      path.pop()
    }
    ancestors.delete(node)
  }
  walk(root)
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
  expansion.throwInvalid()
  expansion.throwMissing()
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
    if (typeof id === 'string' && expansion.missing.length === 0 && expansion.invalid.length === 0) aliases[alias] = id
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
    const missing = new Map(expansion?.missing.map(({ path, problem }) => [path, problem]))
    const issues = result.error.issues.map((issue) => {
      const problem = missing.get(formatPath(issue.path))
      return problem ? { ...issue, code: 'custom' as const, message: problem } : issue
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

/**
 * The body of a `${...}` reference: a name, optionally with a POSIX operator and its word:
 * `:-` / `-` default when unset or empty / unset; `:?` / `?` error when unset or empty / unset.
 */
const REFERENCE = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])(.*))?$/s

/** A value that was exactly one `${VAR}` whose variable is empty: the key is left out, as if unset. */
const UNSET = Symbol('unset')

/** Shapes an unset `${VAR}` may stand in as for `explain`, tried in turn until its key's check passes. */
const STAND_INS = ['https://unset.invalid', '00000000-0000-0000-0000-000000000000', '127.0.0.1:0']

/**
 * Expands `${VAR}` inside string values (not keys; after YAML parsing, so a variable's text can never
 * add keys or change the structure). A missing variable is collected with its key path; a value that is
 * only `${VAR}` with VAR empty leaves its key out (an optional key such as `upstream.apiToken` is then
 * unset, a required one is reported as required). `$$` is a literal `$`; any other `${...}` is an error,
 * never kept as text (an admin token of `${VAR:+x}` would be a guessable secret).
 */
class Expansion {
  readonly missing: { path: string; name: string; problem: string }[] = []
  /** Unsupported `${...}` references, one message each. */
  readonly invalid: string[] = []
  /** Key paths whose whole value was one `${VAR}`: the only values that may be read as a number or boolean. */
  private readonly whole = new Set<string>()
  private readonly env: NodeJS.ProcessEnv

  constructor(env: NodeJS.ProcessEnv) {
    this.env = env
  }

  throwInvalid(): void {
    if (this.invalid.length > 0) throw new IapError('IAP_ERR_CONFIG_INVALID', this.invalid.join('; '))
  }

  throwMissing(): void {
    if (this.missing.length > 0) throw new IapError('IAP_ERR_CONFIG_ENV_MISSING', this.missing.map(({ path, problem }) => `${path}: ${problem}`).join('; '))
  }

  expand(value: unknown, path: (string | number)[]): unknown {
    if (typeof value === 'string') {
      const expanded = this.expandText(value, formatPath(path) || 'config')
      if (expanded === undefined) return value
      if (expanded.whole) this.whole.add(formatPath(path))
      return expanded.text === '' && expanded.whole ? UNSET : expanded.text
    }
    if (Array.isArray(value)) return value.map((item, i) => this.expand(item, [...path, i])).filter((item) => item !== UNSET)
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.expand(v, [...path, k])]).filter(([, v]) => v !== UNSET))
    }
    return value
  }

  /** The text with its references expanded; `whole` when it was exactly one reference. Undefined after an unsupported one. */
  private expandText(value: string, key: string): { text: string; whole: boolean } | undefined {
    let text = ''
    let at = 0
    let whole = false
    while (at < value.length) {
      const dollar = value.indexOf('$', at)
      if (dollar === -1) {
        text += value.slice(at)
        break
      }
      text += value.slice(at, dollar)
      if (value[dollar + 1] === '$') {
        text += '$'
        at = dollar + 2
        continue
      }
      if (value[dollar + 1] !== '{') {
        text += '$'
        at = dollar + 1
        continue
      }
      const close = value.indexOf('}', dollar + 2)
      const reference = close === -1 ? value.slice(dollar) : value.slice(dollar, close + 1)
      const parts = close === -1 ? null : REFERENCE.exec(value.slice(dollar + 2, close))
      // A nested reference (`${A:-${B}}`) is cut at its first `}`: refused rather than half-expanded.
      if (!parts || parts[3]?.includes('${')) {
        // Placed by its offset, never quoted: the text may be a literal secret that happens to hold `${`.
        this.invalid.push(`${key}: unsupported variable syntax at character ${dollar + 1}${close === -1 ? ', no closing "}"' : ''} (supported: \${VAR}, \${VAR:-default}, \${VAR-default}, \${VAR:?message}, \${VAR?message}; $$ is a literal $)`)
        return undefined
      }
      whole = dollar === 0 && close === value.length - 1
      text += this.resolve(parts[1]!, parts[2], parts[3] ?? '', key)
      at = close + 1
    }
    return { text, whole }
  }

  private resolve(name: string, operator: string | undefined, word: string, key: string): string {
    const found = this.env[name]
    // With a colon (`:-`, `:?`) an empty variable counts as unset, as in a POSIX shell.
    if (found !== undefined && !(found === '' && operator?.startsWith(':'))) return found
    // The word of a default is text like any other: `$$` in it is a `$`.
    if (operator === '-' || operator === ':-') return word.replaceAll('$$', '$')
    const state = found === undefined ? 'is not set' : 'is empty'
    // The message is the config's own text, never a variable's value.
    const problem = `environment variable ${name} ${state}${operator !== undefined && word !== '' ? `: ${word}` : ''}`
    this.missing.push({ path: key, name, problem })
    return `unset-${name}-${'x'.repeat(32)}`
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
