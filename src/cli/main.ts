/** argv → command. Every command prints --help; bad input is one line on stderr and a non-zero exit. */
import { z } from 'zod'
import { configSchema } from '../config/schema.ts'
import { IapError, isIapError } from '../errors.ts'
import { parseCommandArgs } from './args.ts'
import { runCheck } from './check.ts'
import { processIo, fail, type CliIo } from './io.ts'
import { runServe } from './serve.ts'

type Command = (argv: string[], io: CliIo) => Promise<number>

const HELP = `Usage: gitlab-iap <command> [options]

Commands:
  serve     run the proxy
  check     validate the config and print a summary
  explain   print the policy decision for a hypothetical request
  logs      query access logs (and \`logs verify\` the integrity chain)
  demo      start a self-contained demo on loopback
  schema    print the JSON Schema of config.yaml

Run \`gitlab-iap <command> --help\` (or \`gitlab-iap help <command>\`) for a command's options.
`

/** JSON Schema of config.yaml, for editors (`# yaml-language-server: $schema=...`). */
/** A whole value that is one `${VAR}` (or `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`): the loader expands it before checking. */
const ENV_REFERENCE = '^\\$\\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\\}$'
/** zod writes a regex without its flags: the case-insensitive GUID comes out lower-case only. */
const GUID_LOWER = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
const GUID_ANY_CASE = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'

/**
 * Every value check of the schema also takes a `${VAR}` reference (`secret: "${IAP_SESSION_SECRET}"`,
 * `timeoutSeconds: ${TIMEOUT}`), as the loader does, so an editor accepts what `check` accepts.
 */
function allowEnvReferences(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(allowEnvReferences)
  if (node === null || typeof node !== 'object') return node
  const n = Object.fromEntries(Object.entries(node).map(([key, value]) => [key, allowEnvReferences(value)])) as Record<string, unknown>
  const checksValue =
    n.type === 'integer' || n.type === 'number' || n.type === 'boolean' || n.enum !== undefined || n.const !== undefined ||
    (n.type === 'string' && (n.pattern !== undefined || n.minLength !== undefined || n.maxLength !== undefined || n.format !== undefined))
  if (!checksValue) return n
  const { description, default: fallback, ...check } = n
  return { ...(description !== undefined && { description }), ...(fallback !== undefined && { default: fallback }), anyOf: [check, { type: 'string', pattern: ENV_REFERENCE }] }
}

export function configJsonSchema(): object {
  const generated = JSON.stringify(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }))
  return {
    $id: 'https://gitlab-iap.dev/config.schema.json',
    title: 'gitlab-iap config.yaml',
    ...(allowEnvReferences(JSON.parse(generated.replaceAll(JSON.stringify(GUID_LOWER), JSON.stringify(GUID_ANY_CASE)))) as object),
  }
}

const commands: Record<string, Command> = {
  serve: runServe,
  check: runCheck,
  schema: async (argv, io) => {
    if (parseCommandArgs(argv, {}).values.help) {
      io.stdout.write('Usage: gitlab-iap schema\n\nPrint the JSON Schema of config.yaml.\n')
      return 0
    }
    io.stdout.write(JSON.stringify(configJsonSchema(), null, 2) + '\n')
    return 0
  },
}

/** Commands in their own modules, loaded only when asked for (the demo pulls in a whole OpenID provider). */
const LAZY: Record<string, [string, string]> = {
  explain: ['./explain.ts', 'runExplain'],
  logs: ['./logs.ts', 'runLogs'],
  demo: ['./demo.ts', 'runDemo'],
}

async function loadCommand(name: string): Promise<Command | undefined> {
  // Own keys only: `toString` or `constructor` is no command.
  if (Object.hasOwn(commands, name)) return commands[name]
  const lazy = Object.hasOwn(LAZY, name) ? LAZY[name] : undefined
  if (!lazy) return undefined
  let mod: Record<string, Command>
  try {
    mod = (await import(lazy[0])) as Record<string, Command>
  } catch (err) {
    // The demo's OpenID provider is a development dependency: an installed package (or the image) lacks it.
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && name === 'demo') {
      throw new IapError('IAP_ERR_DEMO_UNAVAILABLE', 'the demo needs the development dependencies (oidc-provider, ws): run it from a checkout with `npm ci && npm run demo`')
    }
    throw err
  }
  return mod[lazy[1]]
}

export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [name, ...rest] = argv
  // No command is a usage error: the help goes to stderr, like every other one.
  if (name === undefined) {
    io.stderr.write(HELP)
    return 2
  }
  const target = rest[0]
  if (name === '--help' || name === '-h' || (name === 'help' && (target === undefined || target === 'help' || target === '--help' || target === '-h'))) {
    io.stdout.write(HELP)
    return 0
  }
  if (name === '--version' || name === 'version') {
    const pkg = (await import('../../package.json', { with: { type: 'json' } })).default as { version: string }
    io.stdout.write(`gitlab-iap ${pkg.version}\n`)
    return 0
  }
  try {
    // `help <command> [sub]` is `<command> [sub] --help`.
    const [commandName, args] = name === 'help' ? [target!, [...rest.slice(1), '--help']] : [name, rest]
    const command = await loadCommand(commandName)
    if (!command) return fail(io, `unknown command "${commandName}" (see gitlab-iap --help)`, 2)
    return await command(args, io)
  } catch (err) {
    if (isIapError(err)) return fail(io, err.message, err.code === 'IAP_ERR_CLI_USAGE' ? 2 : 1)
    return fail(io, `unexpected error: ${(err as Error).message ?? String(err)}`, 1)
  }
}
