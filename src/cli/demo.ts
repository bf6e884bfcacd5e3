/**
 * `gitlab-iap demo`: a self-contained demo on loopback (never used by `serve`). It starts the
 * development OpenID provider shaped like Entra ID (with its Graph-shaped server), the GitLab-shaped
 * upstream, and the proxy in front of it with a demo policy and memory sessions; prints the URL,
 * the demo users and their groups, and a curl command that mints a bearer token. Secrets are fresh
 * random values each run and never written anywhere.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { validateConfig } from '../config/load.ts'
import type { OpsLogger } from '../app.ts'
import { createDemoClientSecret, DEMO_API_AUDIENCE, DEMO_CLIENT_ID, DEMO_GROUPS, DEMO_USERS, startDevIdp, type DevIdp } from '../devidp/index.ts'
import { IapError } from '../errors.ts'
import { startServer, type RunningServer } from '../server/start.ts'
import { startUpstream, type Upstream } from '../upstream/index.ts'
import { parseCommandArgs } from './args.ts'
import type { CliIo } from './io.ts'

export const DEMO_HELP = `Usage: gitlab-iap demo [--port N]

Start a self-contained demo on 127.0.0.1: a development OpenID provider shaped like Microsoft
Entra ID, a GitLab-shaped upstream, and gitlab-iap in front of it (memory sessions, demo policy).
Open the printed URL and sign in as one of the demo users (any password). Ctrl-C stops everything.

Options:
  --port N   port of the proxy (default 8080; another free port when 8080 is taken; 0 = any)
`

/** The demo policy: the SPEC's example rules over the demo groups. */
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

/** Starts the demo's three parts; `close()` stops them. */
export async function startDemo(options: { port?: number; log: OpsLogger }): Promise<Demo> {
  const port = await choosePort(options.port ?? 8080)
  const publicUrl = `http://127.0.0.1:${port}`
  const clientSecret = createDemoClientSecret()
  const idp = await startDevIdp({
    clients: [{ clientId: DEMO_CLIENT_ID, clientSecret, redirectUris: [`${publicUrl}/-/iap/callback`], postLogoutRedirectUris: [`${publicUrl}/`] }],
  })
  let upstream: Upstream | undefined
  let server: RunningServer | undefined
  let minter: { url: string; server: Server } | undefined
  try {
    upstream = await startUpstream({ repos: ['group/project', 'secret-group/vault'] })
    const adminToken = randomBytes(24).toString('base64url')
    const config = validateConfig({
      server: { listen: `127.0.0.1:${port}`, publicUrl },
      admin: { listen: '127.0.0.1:0', token: adminToken },
      upstream: { url: upstream.url },
      entra: { tenantId: idp.tenantId, clientId: DEMO_CLIENT_ID, clientSecret, authority: idp.authority, graphUrl: idp.graphUrl, audiences: [DEMO_API_AUDIENCE] },
      session: { store: 'memory', secret: randomBytes(48).toString('base64url'), refreshInterval: '2m' },
      groups: { admins: DEMO_GROUPS.admins.id, engineering: DEMO_GROUPS.engineering.id, contractors: DEMO_GROUPS.contractors.id },
      policy: DEMO_POLICY,
    })
    server = await startServer(config, { log: options.log })
    minter = await startTokenMinter(idp)
    const parts = { server, upstream, minter }
    return {
      url: publicUrl,
      adminUrl: `http://127.0.0.1:${server.adminAddress.port}`,
      adminToken,
      tokenUrl: minter.url,
      idp,
      upstream,
      server,
      async close() {
        await new Promise<void>((resolve) => parts.minter.server.close(() => resolve()))
        await parts.server.shutdown(1000)
        await parts.upstream.close()
        await idp.close()
      },
    }
  } catch (err) {
    minter?.server.close()
    await server?.shutdown(0)
    await upstream?.close()
    await idp.close()
    throw err
  }
}

/** The banner: URL, users and groups, and the bearer-token curl commands. */
export function demoBanner(demo: Pick<Demo, 'url' | 'adminUrl' | 'adminToken' | 'tokenUrl'>): string {
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
    '  Policy: /admin and secret-group/* need admins; reads need engineering or contractors; writes need engineering.',
    `  Who am I: ${demo.url}/-/iap/whoami    Sign out: ${demo.url}/-/iap/logout`,
    '',
    '  A bearer token for curl (API, git):',
    `    TOKEN=$(curl -s '${demo.tokenUrl}?user=bob')`,
    `    curl -H "Authorization: Bearer $TOKEN" ${demo.url}/api/v4/projects`,
    `    git clone http://oauth2:$TOKEN@${demo.url.replace(/^http:\/\//, '')}/group/project.git`,
    '',
    '  End a user\'s sessions and older tokens:',
    `    curl -X POST -H 'Authorization: Bearer ${demo.adminToken}' -d '{"user":"bob@contoso.test"}' ${demo.adminUrl}/admin/revoke`,
    '',
    '  Access-log records (one JSON line per request) follow below.',
    '',
  ].join('\n')
}

export async function runDemo(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, { port: { type: 'string', short: 'p' } })
  if (values.help) {
    io.stdout.write(DEMO_HELP)
    return 0
  }
  const port = values.port === undefined ? 8080 : Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new IapError('IAP_ERR_CLI_USAGE', `--port: "${values.port}" is not a port number`)
  // Operational messages (warnings only) go to stderr; stdout carries the banner and the access log.
  const write = (level: string) => (obj: object, msg?: string) => io.stderr.write(`${JSON.stringify({ level, msg, ...obj })}\n`)
  const log: OpsLogger = { info: () => {}, warn: write('warn'), error: write('error') }
  const demo = await startDemo({ port, log })
  io.stdout.write(demoBanner(demo) + '\n')
  return new Promise<number>((resolve) => {
    const stop = () => {
      demo.close().then(
        () => {
          resolve(0)
          setTimeout(() => process.exit(0), 200).unref()
        },
        () => resolve(1),
      )
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
}
