/** `gitlab-iap check`: validate the config and print a readable summary. Exit 0 valid, 1 invalid. */
import { accessSync, constants, readFileSync, statSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import { dirname } from 'node:path'
import { loadConfigFile, resolveConfigPath } from '../config/load.ts'
import { configWarnings, unreadableFileWarnings, type ConfigWarning } from '../config/warnings.ts'
import { IapError } from '../errors.ts'
import { redactRedisUrl } from '../auth/session/redis-url.ts'
import { displayUrl } from '../net/display-url.ts'
import { readTlsFiles } from '../server/tls-files.ts'
import type { Config } from '../config/schema.ts'
import { formatDurationMs } from '../config/units.ts'
import { compilePolicy } from '../policy/index.ts'
import { parseCommandArgs } from './args.ts'
import type { CliIo } from './io.ts'

export const CHECK_HELP = `Usage: gitlab-iap check [--config FILE]

Validate the configuration and print a summary (listeners, issuers, rules in order).
The config file is --config, else $GITLAB_IAP_CONFIG, else ./config.yaml.
Valid but weak settings are warnings on stderr, one a line: warning: <key>: <message> (<code>).
Exit status: 0 valid (warnings included), 1 invalid.
`

export function summarizeConfig(config: Config, path: string): string {
  const lines: string[] = []
  const out = (line = '') => lines.push(line)
  out(`config ${path}: valid`)
  out()
  out('listeners')
  out(`  main   ${config.server.listen} (${config.server.tls ? 'https' : 'http'}), public URL ${displayUrl(config.server.publicUrl)}`)
  out(`  admin  ${config.admin.listen}${config.admin.token ? '' : ' (admin API disabled: no admin.token)'}`)
  out(`  trusted proxies: ${config.server.trustedProxies.length ? config.server.trustedProxies.join(', ') : 'none'}`)
  out(`upstream ${displayUrl(config.upstream.url)} (timeout ${config.upstream.timeoutSeconds}s${config.upstream.apiToken ? ', numeric project ids resolved with apiToken' : ''})`)
  out()
  out('issuers')
  if (config.entra) {
    const e = config.entra
    out(`  entra      tenant ${e.tenantId}, client ${e.clientId}, authority ${displayUrl(e.authority)}`)
    out(`             audiences ${[e.clientId, ...e.audiences].join(', ')}; algorithms ${e.algorithms.join(', ')}; browser sign-in ${e.clientSecret ? 'on' : 'off'}`)
  } else out('  entra      not configured (no Entra tokens or browser sign-in)')
  for (const issuer of config.issuers) {
    out(`  ${issuer.name.padEnd(10)} ${displayUrl(issuer.issuer)} (kind ${issuer.kind}), audiences ${issuer.audiences.join(', ')}`)
  }
  out()
  out(`sessions ${config.session.store}${config.session.store === 'redis' && config.session.redis ? ` (${redactRedisUrl(config.session.redis.url)})` : ''}, absolute ${formatDurationMs(config.session.absoluteTimeout)}, idle ${formatDurationMs(config.session.idleTimeout)}, refresh every ${formatDurationMs(config.session.refreshInterval)}`)
  out(`access log ${config.accessLog.output}${config.accessLog.integrity ? ', integrity chain on' : ''}`)
  out()
  const policy = compilePolicy(config)
  out(`policy (first match decides; default ${config.policy.default}; ${policy.ruleNames.length} rules)`)
  config.policy.rules.forEach((rule, i) => {
    const where = [rule.paths ? `paths ${rule.paths.join(' ')}` : '', rule.projects ? `projects ${rule.projects.join(' ')}` : '', rule.methods ? `methods ${rule.methods.join(',')}` : '', rule.sourceIps ? `from ${rule.sourceIps.join(',')}` : '']
      .filter(Boolean)
      .join('; ')
    const outcome = rule.public
      ? 'public'
      : rule.deny
        ? 'deny'
        : `allow ${[rule.groups && `groups ${rule.groups.join(',')}`, rule.users && `users ${rule.users.join(',')}`, rule.roles && `roles ${rule.roles.join(',')}`, rule.apps && `apps ${rule.apps.join(',')}`].filter(Boolean).join('; ')}`
    out(`  ${String(i + 1).padStart(2)}. ${rule.name}: ${where} → ${outcome}`)
  })
  return lines.join('\n') + '\n'
}

/** One warning line: `warning: <key>: <message> (<code>)`; the code is the one docs/errors.md lists and `serve` logs. */
export function formatWarning(warning: ConfigWarning): string {
  return `warning: ${warning.key}: ${warning.message} (${warning.code})\n`
}

export async function runCheck(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' } })
  if (values.help) {
    io.stdout.write(CHECK_HELP)
    return 0
  }
  const { config, path } = loadConfigFile(resolveConfigPath(values.config, io.env), io.env)
  const fileWarnings = unreadableFileWarnings(config)
  if (config.server.tls) checkTlsFiles(config.server.tls, new Set(fileWarnings.map((w) => w.key)))
  io.stdout.write(summarizeConfig(config, path))
  const warnings: ConfigWarning[] = [...configWarnings(config), ...fileWarnings]
  const logProblem = config.accessLog.output === 'stdout' ? undefined : logDirectoryProblem(config.accessLog.output)
  if (logProblem) warnings.push({ code: 'IAP_WARN_LOG_OUTPUT_UNWRITABLE', key: 'accessLog.output', message: `${logProblem} on this machine (serve would run without its access log)` })
  for (const warning of warnings) io.stderr.write(formatWarning(warning))
  return 0
}

/**
 * The TLS files as serve would use them: the pair when both are here; when one is not (a warning),
 * the other alone, so a file that is here is still refused if it is no PEM certificate or key.
 */
function checkTlsFiles(tls: NonNullable<Config['server']['tls']>, unreadable: Set<string>): void {
  const certHere = !unreadable.has('server.tls.cert')
  const keyHere = !unreadable.has('server.tls.key')
  if (certHere && keyHere) {
    readTlsFiles(tls)
    return
  }
  const alone = (name: 'cert' | 'key', what: string) => {
    let pem: Buffer
    try {
      pem = readFileSync(tls[name])
    } catch (err) {
      throw new IapError('IAP_ERR_CONFIG_INVALID', `server.tls.${name}: cannot read ${tls[name]}: ${(err as Error).message}`, { cause: err })
    }
    try {
      createSecureContext({ [name]: pem })
    } catch (err) {
      throw new IapError('IAP_ERR_CONFIG_INVALID', `server.tls.${name}: ${tls[name]} is not a PEM ${what}: ${(err as Error).message}`, { cause: err })
    }
  }
  if (certHere) alone('cert', 'certificate')
  if (keyHere) alone('key', 'private key')
}

/**
 * Why the access-log file could not be written here, if it could not (serve creates missing
 * directories, so the nearest existing one must be a writable directory). A warning: check may run
 * on another machine than serve.
 */
function logDirectoryProblem(output: string): string | undefined {
  let dir = dirname(output)
  for (;;) {
    try {
      if (!statSync(dir).isDirectory()) return `${dir} is not a directory`
      accessSync(dir, constants.W_OK)
      return undefined
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || dirname(dir) === dir) return `directory ${dir} is not writable`
      dir = dirname(dir)
    }
  }
}
