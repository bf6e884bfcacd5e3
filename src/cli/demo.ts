/**
 * `gitlab-iap demo`: a self-contained demo on loopback (never used by `serve`). It starts the
 * development OpenID provider shaped like Entra ID (with its Graph-shaped server), the GitLab-shaped
 * upstream, and the proxy in front of it with a demo policy and memory sessions; prints the URL,
 * the demo users and their groups, curl and git commands with a bearer token, and ready-to-run
 * `explain`, `check` and `logs` commands. Secrets are fresh random values each run.
 *
 * The proxy runs from a config file the demo writes, so the CLI can be tried on the same file: a fresh
 * private directory (mkdtemp, 0700) under the OS temp dir holds `config.yaml` (secrets only as
 * `${VAR}`), `demo.env` (0600: the secrets, for `check`) and `access.log` (the access log goes there,
 * not to stdout, so the banner stays readable and `logs` reads every line as a record). The directory
 * is removed when the demo stops, unless `--keep`.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Document } from 'yaml'
import { loadConfigFile } from '../config/load.ts'
import type { OpsLogger } from '../app.ts'
import { createDemoClientSecret, DEMO_API_AUDIENCE, DEMO_CLIENT_ID, DEMO_GROUPS, DEMO_USERS, startDevIdp, type DevIdp } from '../devidp/index.ts'
import { IapError } from '../errors.ts'
import { startServer, type RunningServer } from '../server/start.ts'
import { startUpstream, type Upstream } from '../upstream/index.ts'
import { parseCommandArgs } from './args.ts'
import type { CliIo } from './io.ts'

export const DEMO_HELP = `Usage: gitlab-iap demo [--port N] [--keep]

Start a self-contained demo on 127.0.0.1: a development OpenID provider shaped like Microsoft
Entra ID, a GitLab-shaped upstream, and gitlab-iap in front of it (memory sessions, demo policy).
Open the printed URL and sign in as one of the demo users (any password). Ctrl-C stops everything.

The demo writes its config (config.yaml, secrets as \${VAR}; the secrets in demo.env) and its
access log (access.log) to a new directory under the OS temp dir and prints commands that run
\`check\`, \`explain\` and \`logs\` on them. The directory is removed when the demo stops.

Options:
  --port N   port of the proxy (default 8080; another free port when 8080 is taken; 0 = any)
  --keep     keep the directory when the demo stops (its path is printed)
`

/** The demo's secrets, by the environment variable its config.yaml reads each from (config.example.yaml's names). */
const SECRET_VARS = { adminToken: 'IAP_ADMIN_TOKEN', clientSecret: 'ENTRA_CLIENT_SECRET', sessionSecret: 'IAP_SESSION_SECRET' } as const

/** The demo policy: a subset of config.example.yaml's rules, over the demo groups. */
export const DEMO_POLICY = Object.freeze({
  default: 'deny',
  rules: [
    { name: 'gitlab-health', paths: ['/-/health', '/-/readiness', '/-/liveness'], public: true },
    { name: 'admin-area', paths: ['/admin', '/admin/**', '/api/v4/admin/**'], groups: ['admins'] },
    { name: 'secret-projects', projects: ['secret-group/**'], groups: ['admins'] },
    { name: 'read-everything', paths: ['/**'], methods: ['GET', 'HEAD'], groups: ['engineering', 'contractors'] },
    { name: 'engineering', paths: ['/**'], groups: ['engineering'] },
  ],
})

export interface Demo {
  readonly url: string
  /** The directory holding config.yaml, demo.env and access.log. */
  readonly dir: string
  readonly configPath: string
  readonly envPath: string
  readonly accessLogPath: string
  readonly adminUrl: string
  readonly adminToken: string
  /** `GET {tokenUrl}?user=alice` answers a bearer token for that demo user. */
  readonly tokenUrl: string
  readonly idp: DevIdp
  readonly upstream: Upstream
  readonly server: RunningServer
  close(): Promise<void>
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer()
    probe.once('error', () => resolve(false))
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
  })
}

async function choosePort(wanted: number): Promise<number> {
  if (wanted !== 0 && (await portIsFree(wanted))) return wanted
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()))
  const { port } = probe.address() as AddressInfo
  await new Promise<void>((resolve) => probe.close(() => resolve()))
  return port
}

/** Serves `GET /token?user=NAME`: a v2 access token for the proxy's API, signed by the dev IdP (loopback only). */
function startTokenMinter(idp: DevIdp): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const user = url.searchParams.get('user') ?? ''
    if (url.pathname !== '/token' || !idp.getUser(user)) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
      res.end(`unknown user; try ?user=${Object.keys(DEMO_USERS).join('|')}\n`)
      return
    }
    const token = idp.mintAccessToken({ user, audience: DEMO_API_AUDIENCE, lifetimeSeconds: 3600 })
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' })
    res.end(token)
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`, server })))
}

/**
 * Waits (bounded) until /readyz answers 200, i.e. the signing keys are fetched: the banner then means a
 * printed token works at once, and a Ctrl-C right after it does not cut the first key fetch short.
 */
async function waitUntilReady(readyzUrl: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const status = await fetch(readyzUrl, { headers: { connection: 'close' } }).then((res) => (void res.body?.cancel(), res.status), () => 0)
    if (status === 200) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  // Not ready in time: the demo still starts; the warnings on stderr say what is missing.
}

/** config.yaml as the demo writes it: what `serve` would read, with every secret a `${VAR}`. */
function demoConfigYaml(raw: object): string {
  const doc = new Document(raw)
  doc.commentBefore = [
    ' Written by `gitlab-iap demo`: the config its proxy runs from (loopback only, this run only).',
    ` Secrets are \${VAR}s; their values are in demo.env next to this file:`,
    '   env $(cat demo.env) gitlab-iap check --config config.yaml',
  ].join('\n')
  return doc.toString({ lineWidth: 0 })
}

/** Starts the demo's three parts from a config file it writes to a new temporary directory; `close()` stops them (and removes it unless `keep`). */
export async function startDemo(options: { port?: number; keep?: boolean; log: OpsLogger }): Promise<Demo> {
  const port = await choosePort(options.port ?? 8080)
  const publicUrl = `http://127.0.0.1:${port}`
  // realpath: on macOS the temp dir is a symlink; print the path the files really have.
  const dir = mkdtempSync(join(realpathSync(tmpdir()), 'gitlab-iap-demo-'))
  const removeDir = () => {
    if (!options.keep) rmSync(dir, { recursive: true, force: true })
  }
  const configPath = join(dir, 'config.yaml')
  const envPath = join(dir, 'demo.env')
  const accessLogPath = join(dir, 'access.log')
  const secrets = {
    [SECRET_VARS.adminToken]: randomBytes(24).toString('base64url'),
    [SECRET_VARS.clientSecret]: createDemoClientSecret(),
    [SECRET_VARS.sessionSecret]: randomBytes(48).toString('base64url'),
  }
  let idp: DevIdp | undefined
  let upstream: Upstream | undefined
  let server: RunningServer | undefined
  let minter: { url: string; server: Server } | undefined
  try {
    idp = await startDevIdp({
      clients: [{ clientId: DEMO_CLIENT_ID, clientSecret: secrets[SECRET_VARS.clientSecret], redirectUris: [`${publicUrl}/-/iap/callback`], postLogoutRedirectUris: [`${publicUrl}/`] }],
    })
    upstream = await startUpstream({ repos: ['group/project', 'secret-group/vault'] })
    const ref = (name: string) => `\${${name}}`
    writeFileSync(envPath, Object.entries(secrets).map(([name, value]) => `${name}=${value}\n`).join(''), { mode: 0o600 })
    writeFileSync(configPath, demoConfigYaml({
      server: { listen: `127.0.0.1:${port}`, publicUrl },
      admin: { listen: '127.0.0.1:0', token: ref(SECRET_VARS.adminToken) },
      upstream: { url: upstream.url },
      entra: { tenantId: idp.tenantId, clientId: DEMO_CLIENT_ID, clientSecret: ref(SECRET_VARS.clientSecret), authority: idp.authority, graphUrl: idp.graphUrl, audiences: [DEMO_API_AUDIENCE] },
      session: { store: 'memory', secret: ref(SECRET_VARS.sessionSecret), refreshInterval: '2m' },
      groups: { admins: DEMO_GROUPS.admins.id, engineering: DEMO_GROUPS.engineering.id, contractors: DEMO_GROUPS.contractors.id },
      policy: DEMO_POLICY,
      accessLog: { output: accessLogPath },
    }))
    // Read back through the loader, as `serve` and `check` read it: what runs is what the file says.
    // Only the demo's own secrets expand (a variable of the same name in the caller's environment does not count).
    const { config } = loadConfigFile(configPath, secrets)
    server = await startServer(config, { log: options.log })
    minter = await startTokenMinter(idp)
    await waitUntilReady(`http://127.0.0.1:${server.adminAddress.port}/readyz`)
    const parts = { server, upstream, minter, idp }
    return {
      url: publicUrl,
      dir,
      configPath,
      envPath,
      accessLogPath,
      adminUrl: `http://127.0.0.1:${server.adminAddress.port}`,
      adminToken: secrets[SECRET_VARS.adminToken],
      tokenUrl: minter.url,
      idp,
      upstream,
      server,
      async close() {
        try {
          await new Promise<void>((resolve) => parts.minter.server.close(() => resolve()))
          await parts.server.shutdown(1000)
          await parts.upstream.close()
          await parts.idp.close()
        } finally {
          removeDir()
        }
      },
    }
  } catch (err) {
    minter?.server.close()
    await server?.shutdown(0)
    await upstream?.close()
    await idp?.close()
    removeDir()
    throw err
  }
}

/**
 * How to run this CLI from another terminal: `npx gitlab-iap` in the checkout or package the demo
 * runs from (`npm run demo` runs there; npx then takes the project's own bin and Node), else the bin script by its path.
 */
function cliCommand(): string {
  const root = resolve(import.meta.dirname, '../..')
  return resolve(process.cwd()) === root ? 'npx gitlab-iap' : `node ${join(root, 'bin', 'gitlab-iap.js')}`
}

/** How to start the demo again with --keep: `npm run demo` needs `--` before it. */
function keepCommand(): string {
  return process.env.npm_lifecycle_event === 'demo' ? 'npm run demo -- --keep' : 'gitlab-iap demo --keep'
}

/** The banner: URL, users and groups, the bearer-token curl and git commands, and CLI commands on the demo's files. */
export function demoBanner(demo: Pick<Demo, 'url' | 'adminUrl' | 'adminToken' | 'tokenUrl' | 'dir' | 'configPath' | 'envPath' | 'accessLogPath'>, options: { keep?: boolean; cli?: string } = {}): string {
  const cli = options.cli ?? cliCommand()
  const aliasOf = new Map<string, string>(Object.values(DEMO_GROUPS).map((g) => [g.id, g.alias]))
  const users = Object.entries(DEMO_USERS).map(([login, u]) => {
    const named = (u.groups as readonly string[]).map((id) => aliasOf.get(id)).filter((a): a is string => a !== undefined)
    const others = u.groups.length - named.length
    const groups = named.length === 0 && others === 0 ? '(no groups)' : [...named, ...(others > 0 ? [`+${others} more (groups overage, read from Graph)`] : [])].join(', ')
    return `  ${login.padEnd(6)} ${u.upn.padEnd(22)} ${groups}`
  })
  return [
    '',
    'gitlab-iap demo is running (loopback only; Ctrl-C stops it)',
    '',
    `  Open ${demo.url}/ and sign in as one of these users (any password):`,
    '',
    ...users,
    '',
    '  Policy: /admin and secret-group/** need admins; reads need engineering or contractors; writes need engineering.',
    `  Who am I: ${demo.url}/-/iap/whoami    Sign out: ${demo.url}/-/iap/logout`,
    '',
    '  A bearer token (one hour) for curl and git:',
    `    TOKEN=$(curl -s '${demo.tokenUrl}?user=bob')`,
    `    curl -H "Authorization: Bearer $TOKEN" ${demo.url}/api/v4/projects`,
    `    git -c http.extraHeader="X-IAP-Authorization: Bearer $TOKEN" clone ${demo.url}/group/project.git`,
    '  The header keeps the token out of the remote URL and .git/config. A real GitLab also wants its own',
    '  credential: git clone https://$TOKEN:$GITLAB_PAT@gitlab.example.com/group/project.git (docs/bearer.md)',
    '',
    '  End a user\'s sessions and older tokens:',
    `    curl -X POST -H 'Authorization: Bearer ${demo.adminToken}' -d '{"user":"bob@contoso.test"}' ${demo.adminUrl}/admin/revoke`,
    '',
    `  Config and access log: ${demo.dir}/ (${options.keep ? 'kept when the demo stops' : `removed when the demo stops; \`${keepCommand()}\` keeps it`})`,
    '  Try the CLI on them from another terminal:',
    `    ${cli} explain --config ${demo.configPath} --path /admin --group engineering`,
    `    ${cli} logs ${demo.accessLogPath} --decision deny --stats rule`,
    `    env $(cat ${demo.envPath}) ${cli} check --config ${demo.configPath}`,
    '',
  ].join('\n')
}

export async function runDemo(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, { port: { type: 'string', short: 'p' }, keep: { type: 'boolean' } })
  if (values.help) {
    io.stdout.write(DEMO_HELP)
    return 0
  }
  const port = values.port === undefined ? 8080 : Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new IapError('IAP_ERR_CLI_USAGE', `--port: "${values.port}" is not a port number`)
  const keep = values.keep === true
  // Operational messages (warnings only) go to stderr; stdout carries the banner (the access log goes to its file).
  const write = (level: string) => (obj: object, msg?: string) => io.stderr.write(`${JSON.stringify({ level, msg, ...obj })}\n`)
  const log: OpsLogger = { info: () => {}, warn: write('warn'), error: write('error') }
  // Listen for Ctrl-C from the start: one during startup stops the demo once it is up, so its directory is still removed.
  let stopRequested: () => void = () => {}
  const stopping = new Promise<void>((resolve) => (stopRequested = resolve))
  process.once('SIGINT', () => stopRequested())
  process.once('SIGTERM', () => stopRequested())
  // Closing the terminal sends SIGHUP: the demo stops the same way and removes its directory (it holds secrets).
  process.once('SIGHUP', () => stopRequested())
  const demo = await startDemo({ port, keep, log })
  io.stdout.write(demoBanner(demo, { keep }) + '\n')
  await stopping
  try {
    await demo.close()
  } catch (err) {
    io.stderr.write(`gitlab-iap: demo did not stop cleanly: ${(err as Error).message}\n`)
    return 1
  }
  if (keep) io.stdout.write(`\ngitlab-iap demo stopped; kept ${demo.dir} (config.yaml, demo.env, access.log)\n`)
  // Whatever the demo's parts left referenced (keep-alive sockets, timers) must not hold the process open.
  setTimeout(() => process.exit(0), 200).unref()
  return 0
}
