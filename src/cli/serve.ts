/** `gitlab-iap serve`: run the proxy until SIGTERM/SIGINT, then drain and exit 0. */
import pino from 'pino'
import { loadConfigFile, resolveConfigPath } from '../config/load.ts'
import { configWarnings, restartRequiredKeys } from '../config/warnings.ts'
import { createPolicyReloader } from '../policy/reload.ts'
import { startServer } from '../server/start.ts'
import { readTlsFiles } from '../server/tls-files.ts'
import { parseCommandArgs } from './args.ts'
import type { CliIo } from './io.ts'

export const SERVE_HELP = `Usage: gitlab-iap serve [--config FILE]

Run the proxy. The config file is --config, else $GITLAB_IAP_CONFIG, else ./config.yaml.
Access-log records go to accessLog.output (stdout by default); the proxy's own messages go to stderr.
SIGTERM/SIGINT: stop accepting, finish in-flight requests (server.shutdownGraceSeconds), exit 0.
SIGHUP, or a change to the config file: reload policy, groups and trusted proxies in place; an invalid
file is logged and the running policy stays; other changed keys are named and need a restart.
`

export async function runServe(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' } })
  if (values.help) {
    io.stdout.write(SERVE_HELP)
    return 0
  }
  const configPath = resolveConfigPath(values.config, io.env)
  const { config } = loadConfigFile(configPath, io.env)
  // Before anything starts (IdP discovery, the access-log file): a missing certificate ends start-up at once.
  if (config.server.tls) readTlsFiles(config.server.tls)
  // Operational messages go to stderr so stdout stays pure access-log NDJSON.
  const log = pino({ base: { service: 'gitlab-iap' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 2, sync: true }))
  const warn = (c: typeof config) => {
    for (const warning of configWarnings(c)) log.warn({ code: warning.code, key: warning.key }, `${warning.key}: ${warning.message}`)
  }
  warn(config)
  // SIGHUP's default action ends the process. Before the reloader listens and once it has stopped (the
  // drain), a HUP from a config-reloader sidecar must not cut in-flight requests: it is logged and ignored.
  const ignoreHangup = () => log.info({}, 'SIGHUP ignored: the proxy is starting or shutting down')
  process.on('SIGHUP', ignoreHangup)
  let server: Awaited<ReturnType<typeof startServer>>
  try {
    server = await startServer(config, { log })
  } catch (err) {
    process.off('SIGHUP', ignoreHangup)
    // What could not be closed (a request to an IdP that never answers) must not hold the exit: the
    // supervisor has to see the failure at once. The error is printed first (the caller reports it).
    setTimeout(() => process.exit(1), 200).unref()
    throw err
  }
  process.off('SIGHUP', ignoreHangup)
  // Policy, groups and trusted proxies reload in place; listeners, issuers and stores need a restart.
  const reloader = createPolicyReloader({
    configPath,
    env: io.env,
    onConfig: (next, trigger) => {
      // Compared with the config the process started with: that is what listeners, issuers and stores still run on.
      const restartNeeded = restartRequiredKeys(config, next)
      server.app.reload(next)
      server.metrics.configReload('success')
      log.info({ trigger, rules: next.policy.rules.length }, 'policy reloaded')
      // A reloaded policy can bring its own weak settings (a `projects` pattern below every group).
      warn(next)
      if (restartNeeded.length > 0) log.warn({ code: 'IAP_WARN_RESTART_REQUIRED', keys: restartNeeded }, `changed but applied only after a restart: ${restartNeeded.join(', ')}`)
    },
    onError: (err, trigger) => {
      server.metrics.configReload('failure')
      log.error({ trigger, code: (err as { code?: string }).code, reason: err.message }, 'config reload rejected; the running policy stays')
    },
  })

  return new Promise<number>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      log.info({ signal }, 'shutting down')
      process.on('SIGHUP', ignoreHangup)
      reloader.close()
      server.shutdown().then(
        () => {
          log.info({}, 'stopped')
          resolve(0)
          // Everything is drained and closed; do not let a stray handle (a client library's timer) hold the exit.
          setTimeout(() => process.exit(0), 200).unref()
        },
        (err: unknown) => {
          log.error({ err }, 'shutdown failed')
          resolve(1)
        },
      )
    }
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
  })
}
