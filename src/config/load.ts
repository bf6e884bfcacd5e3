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

/** `--config`, else `$GITLAB_IAP_CONFIG`, else `./config.yaml` (SPEC "Command line"). */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.GITLAB_IAP_CONFIG ?? 'config.yaml'
}

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  return { config: parseConfig(readConfigText(path), env, path), path }
}

export function parseConfig(text: string, env: NodeJS.ProcessEnv = process.env, source = 'config'): Config {
  const expanded = expandEnv(parseYaml(text, source), env, [])
  return validateConfig(expanded)
}

function readConfigText(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message
    throw new IapError('IAP_ERR_CONFIG_UNREADABLE', `cannot read config ${path}: ${reason}`, { cause: err })
  }
}

function parseYaml(text: string, source: string): unknown {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true })
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!
    const line = first.linePos?.[0]
    throw new IapError('IAP_ERR_CONFIG_INVALID', `${source}${line ? `:${line.line}:${line.col}` : ''}: invalid YAML: ${first.message.split('\n')[0]}`)
  }
  return doc.toJS() ?? {}
}

/**
 * Only the `accessLog` section of a config file, its `${VAR}`s expanded and validated: what
 * `logs verify` needs, so a security team can verify with the log key alone, without the
 * client secret, the admin token or the rest of what `serve` needs in its environment.
 */
export function loadAccessLogConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config['accessLog'] {
  const raw = parseYaml(readConfigText(path), path) as { accessLog?: unknown }
  const section = expandEnv(raw.accessLog ?? {}, env, ['accessLog'])
  const result = accessLogSchema.safeParse(section)
  if (!result.success) {
    throw new IapError('IAP_ERR_CONFIG_INVALID', formatIssues(result.error.issues.map((issue) => ({ ...issue, path: ['accessLog', ...issue.path] }))).join('; '))
  }
  return deepFreeze(result.data)
}

export function validateConfig(raw: unknown): Config {
  const result = configSchema.safeParse(raw)
  if (!result.success) {
    throw new IapError('IAP_ERR_CONFIG_INVALID', formatIssues(result.error.issues).join('; '))
  }
  return deepFreeze(result.data)
}

/** `policy.rules[2].groups[0]: unknown group alias "admns"` */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const path = formatPath(issue.path)
    let message = issue.message
    if (issue.code === 'unrecognized_keys') {
      message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`
    } else if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) {
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

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\$/g

/** A value that was exactly one `${VAR}` whose variable is empty: the key is left out, as if unset. */
const UNSET = Symbol('unset')

/**
 * Expands `${VAR}` inside string values (not keys); `$$` is a literal `$`. A missing variable is an
 * error naming it; a value that is only `${VAR}` with VAR empty leaves its key out (an optional key
 * such as `upstream.apiToken` is then unset, a required one is reported as required).
 */
function expandEnv(value: unknown, env: NodeJS.ProcessEnv, path: (string | number)[]): unknown {
  if (typeof value === 'string') {
    let only = true
    const expanded = value.replace(VAR, (whole, name: string | undefined, offset: number) => {
      if (name === undefined) return '$'
      if (offset !== 0 || whole.length !== value.length) only = false
      const found = env[name]
      if (found === undefined) {
        throw new IapError('IAP_ERR_CONFIG_ENV_MISSING', `${formatPath(path) || 'config'}: environment variable ${name} is not set`)
      }
      return found
    })
    return expanded === '' && only && value !== '' ? UNSET : expanded
  }
  if (Array.isArray(value)) return value.map((item, i) => expandEnv(item, env, [...path, i])).filter((item) => item !== UNSET)
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandEnv(v, env, [...path, k])]).filter(([, v]) => v !== UNSET))
  }
  return value
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}
