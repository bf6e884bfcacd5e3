/**
 * Valid but weak settings: the proxy runs with them and says so (serve logs each at start, `check`
 * prints them), rather than refusing a config the schema allows.
 */
import { accessSync, constants } from 'node:fs'
import { compileBelow } from '../policy/glob.ts'
import { isGroupId, type Config } from './schema.ts'

/** A top-level group name no pattern names: a `projects` pattern below it lies below every top-level group. */
const ANY_GROUP = 'gitlab-iap-any-group'

export interface ConfigWarning {
  readonly code: string
  readonly key: string
  readonly message: string
}

export function configWarnings(config: Config): ConfigWarning[] {
  const warnings: ConfigWarning[] = []
  const token = config.admin.token
  if (token !== undefined && Buffer.byteLength(token) < 16) {
    warnings.push({ code: 'IAP_WARN_ADMIN_TOKEN_SHORT', key: 'admin.token', message: 'shorter than 16 bytes: easy to guess; generate one with `openssl rand -base64 32`' })
  }
  const key = config.accessLog.integrity?.key
  if (key !== undefined && Buffer.byteLength(key) < 32) {
    warnings.push({ code: 'IAP_WARN_LOG_KEY_SHORT', key: 'accessLog.integrity.key', message: 'shorter than 32 bytes: a weak HMAC key lets a forger rebuild the chain; generate one with `openssl rand -base64 48`' })
  }
  // An empty `${ENTRA_CLIENT_SECRET}` leaves the key unset, and the config stays valid: say that this
  // turns browser sign-in off, or a forgotten Secret looks like a bare 401 page to every user.
  if (config.entra !== undefined && !config.entra.clientSecret) {
    warnings.push({
      code: 'IAP_WARN_SIGN_IN_OFF',
      key: 'entra.clientSecret',
      message: 'not set: browser sign-in is off, so browsers get a 401 page and /-/iap/login answers 503 sign-in-not-configured; set it (with session.secret) for web users, or ignore this for API/git-only deployments',
    })
  }
  const issuers = config.issuers.map((i) => i.name)
  for (const [alias, value] of Object.entries(config.groups)) {
    if (!isGroupId(value, issuers)) {
      warnings.push({ code: 'IAP_WARN_GROUP_NOT_AN_ID', key: `groups.${alias}`, message: `"${value}" is neither an Entra group object id nor "<issuer>:<group>": it matches only if the token's groups claim carries exactly this value` })
    }
  }
  config.policy.rules.forEach((rule, index) => {
    if (rule.public === true) return
    rule.projects?.forEach((pattern, at) => {
      if (!compileBelow([pattern])?.test(ANY_GROUP)) return
      warnings.push({
        code: 'IAP_WARN_PROJECTS_EVERY_GROUP',
        key: `policy.rules[${index}].projects[${at}]`,
        message: `"${pattern}" lies below every top-level group: every group's search, issues, merge requests, activity and package registries are refused to whoever rule "${rule.name}" refuses; name the groups it is meant for ("parent/**/secret/**")`,
      })
    })
  })
  return warnings
}

/**
 * Files `serve` reads at start-up that cannot be read on this machine, for `check`: it may run
 * elsewhere (a CI job without the Secrets mounted in the pod), so their absence is a warning there;
 * `serve` refuses to start without them. A file that is there but unusable stays an error.
 */
export function unreadableFileWarnings(config: Config): ConfigWarning[] {
  const warnings: ConfigWarning[] = []
  for (const name of ['cert', 'key'] as const) {
    const path = config.server.tls?.[name]
    const reason = path === undefined ? undefined : unreadable(path)
    if (reason) {
      warnings.push({ code: 'IAP_WARN_FILE_UNREADABLE', key: `server.tls.${name}`, message: `cannot read ${path}: ${reason} on this machine (serve refuses to start without it)` })
    }
  }
  return warnings
}

/** Why `path` cannot be read here, if it is missing or forbidden; other failures are left to the reader, which names them. */
function unreadable(path: string): string | undefined {
  try {
    accessSync(path, constants.R_OK)
    return undefined
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'no such file'
    if (code === 'EACCES' || code === 'EPERM') return 'permission denied'
    return undefined
  }
}

/** Sections a reload applies in place (policy, groups, trusted proxies: docs/deploy.md); every other change needs a restart. */
const RELOADED = new Set(['policy', 'groups'])

/**
 * Top-level keys (and `server.*` keys other than `trustedProxies`) whose value differs between the
 * running config and a reloaded one, which only take effect after a restart: say so rather than
 * leave an operator believing a removed issuer or a changed upstream is already gone.
 */
export function restartRequiredKeys(running: Config, next: Config): string[] {
  const changed: string[] = []
  const differs = (a: unknown, b: unknown) => JSON.stringify(a) !== JSON.stringify(b)
  for (const key of Object.keys({ ...running, ...next }) as (keyof Config)[]) {
    if (RELOADED.has(key)) continue
    if (key === 'server') {
      const { trustedProxies: _a, ...a } = running.server
      const { trustedProxies: _b, ...b } = next.server
      for (const name of Object.keys({ ...a, ...b })) if (differs(a[name as keyof typeof a], b[name as keyof typeof b])) changed.push(`server.${name}`)
      continue
    }
    if (differs(running[key], next[key])) changed.push(key)
  }
  return changed
}
