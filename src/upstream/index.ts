/**
 * A GitLab-shaped upstream for tests, the demo and benchmarks (never used by `serve`):
 * - HTML pages for web routes; `/api/v4/...` and `/api/graphql` echo what reached "GitLab"
 *   (method, raw path, query, headers, body size) so tests can prove what the proxy forwarded;
 * - `GET /api/v4/projects/:id` with a numeric id answers `path_with_namespace` (for numeric-id policies);
 * - an echo websocket at `/-/cable` and `*.ws`;
 * - git smart HTTP served by the real `git http-backend` (CGI) over bare repositories it creates,
 *   with GitLab-like Basic-auth checks when `gitCredentials` is set; Git LFS as GitLab serves it (lfs.ts);
 * - `/-/test/download?bytes=N` (streamed), `/-/test/upload` (byte-counting sink), `/-/test/slow?ms=N`,
 *   `/-/test/reset` (destroys the connection), `/-/test/reset.ws` and `/-/test/end.ws` (reset or end an open websocket), `/-/test/half-close`,
 *   `/-/test/malformed/{chunk-size,trailer,chunk-overrun,header}` (broken HTTP framing written raw), `/-/test/set-cookie?name=N`,
 *   `/-/test/not-modified` (a 304 with the Content-Length of what it stands for);
 * - `/-/health`, `/-/readiness`, `/-/liveness`.
 * Every request is recorded in `requests` (newest last, bounded).
 */
import { spawn, execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WebSocketServer } from 'ws'
import { createLfsServer } from './lfs.ts'

const CHUNKED_HEAD = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n'
const MALFORMED_RESPONSES: Record<string, string> = {
  '/-/test/malformed/chunk-size': `${CHUNKED_HEAD}2\r\nok\r\nZZ\r\n`,
  '/-/test/malformed/trailer': `${CHUNKED_HEAD}2\r\nok\r\n0\r\nbad trailer\r\n\r\n`,
  '/-/test/malformed/chunk-overrun': `${CHUNKED_HEAD}2\r\nokXXXXXXXX\r\n0\r\n\r\n`,
  '/-/test/malformed/header': 'HTTP/1.1 200 OK\r\nbad header\x01: x\r\ncontent-length: 2\r\n\r\nok',
  // A reason phrase with a control character: the HTTP parser takes it, Node refuses to write it on.
  '/-/test/malformed/reason': 'HTTP/1.1 200 OK\x0bX\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok',
}

export interface RecordedRequest {
  readonly method: string
  /** Request-target exactly as received. */
  readonly url: string
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly rawHeaders: readonly string[]
}

export interface GitCredential {
  /** Expected Basic username; any username when absent (GitLab accepts any name with a PAT). */
  readonly username?: string
  readonly password: string
}

export interface UpstreamOptions {
  readonly port?: number
  readonly host?: string
  /** Bare repositories to create, e.g. ["group/project", "secret-group/vault"]. */
  readonly repos?: readonly string[]
  /** When set, git routes need HTTP Basic with one of these (as GitLab checks a PAT / job token). */
  readonly gitCredentials?: readonly GitCredential[]
  /** Numeric project ids: id → path_with_namespace, answered at /api/v4/projects/:id. */
  readonly projects?: Readonly<Record<string, string>>
  /** Numeric group (and namespace) ids: id → full_path, answered at /api/v4/groups/:id and /api/v4/namespaces/:id. */
  readonly groups?: Readonly<Record<string, string>>
  /** Token required (PRIVATE-TOKEN) for numeric project lookups; any when absent. */
  readonly apiToken?: string
  /**
   * Former project paths GitLab still redirects: old path → numeric id (in `projects`). With `apiToken`,
   * `/api/v4/projects/<url-encoded path>` answers a known path, 301 to the id for a former one, else 404.
   */
  readonly redirects?: Readonly<Record<string, string>>
  /** Most requests kept in `requests`. */
  readonly maxRecorded?: number
  /** LFS downloads are redirected to this object store (GitLab with object storage, no proxy_download). */
  readonly lfsObjectStore?: string
}

export interface Upstream {
  readonly url: string
  readonly port: number
  readonly requests: RecordedRequest[]
  /** Bytes received by the last upload(s) to `/-/test/upload`. */
  readonly uploads: number[]
  /** Targets whose response was cut off because the proxy (client) went away first. */
  readonly abandoned: string[]
  /** Bytes `/-/test/download` has handed to its sockets so far (all downloads). */
  readonly downloaded: number
  /** Directory holding the bare repositories. */
  readonly repoRoot: string
  /** Git LFS objects stored through the batch API (`{project}.git/{oid}` → bytes). */
  readonly lfsObjects: ReadonlyMap<string, Buffer>
  /** Requests whose raw target path starts with `prefix` (or equals it). */
  reached(prefix: string): RecordedRequest[]
  clear(): void
  close(): Promise<void>
}

const GIT_ROUTE = /^\/(.+\.git)(\/(?:info\/refs|git-upload-pack|git-receive-pack|HEAD|objects\/.*))$/

export async function startUpstream(options: UpstreamOptions = {}): Promise<Upstream> {
  const repoRoot = mkdtempSync(join(tmpdir(), 'gitlab-iap-upstream-'))
  for (const repo of options.repos ?? []) createBareRepo(repoRoot, repo)
  const lfs = createLfsServer(options.lfsObjectStore ? { objectStoreUrl: options.lfsObjectStore } : {})
  const requests: RecordedRequest[] = []
  const uploads: number[] = []
  const abandoned: string[] = []
  let downloaded = 0
  const maxRecorded = options.maxRecorded ?? 10_000

  // Workhorse (Go net/http) accepts 1 MiB of headers; overage users' X-Forwarded-Groups + X-IAP-Assertion exceed Node's 16 KiB default.
  const server: Server = createServer({ maxHeaderSize: 1024 * 1024 }, (req, res) => {
    requests.push({ method: req.method ?? 'GET', url: req.url ?? '/', headers: { ...req.headers }, rawHeaders: [...req.rawHeaders] })
    if (requests.length > maxRecorded) requests.splice(0, requests.length - maxRecorded)
    route(req, res).catch((err: Error) => {
      if (!res.headersSent) sendJson(res, 500, { error: err.message })
      else res.destroy()
    })
  })
  server.keepAliveTimeout = 30_000
  server.headersTimeout = 0
  server.requestTimeout = 0

  const wss = new WebSocketServer({ noServer: true })
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    requests.push({ method: req.method ?? 'GET', url: req.url ?? '/', headers: { ...req.headers }, rawHeaders: [...req.rawHeaders] })
    const path = (req.url ?? '/').split('?')[0]!
    // A GitLab that never answers the handshake.
    // The raw sockets below end when the proxy ends its side (nothing else would close them).
    if (path === '/-/test/silent.ws' || path === '/-/test/cookie.ws') socket.once('end', () => socket.destroy())
    if (path === '/-/test/silent.ws') return
    // Handshake answers that try to set the proxy's cookies (and a header nominated hop-by-hop).
    if (path === '/-/test/refuse-cookie.ws') {
      return void socket.end('HTTP/1.1 403 Forbidden\r\nset-cookie: __Host-gitlab-iap=evil403; Path=/\r\nset-cookie: gl=kept; Path=/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n')
    }
    if (path === '/-/test/cookie.ws') {
      const key = req.headers['sec-websocket-key']
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
      return void socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade, X-Hop\r\nx-hop: 1\r\nsec-websocket-accept: ${accept}\r\n` +
          'set-cookie: __Host-gitlab-iap=evil101; Path=/\r\nset-cookie: =__Host-gitlab-iap=nameless\r\nset-cookie: gl=kept; Path=/\r\n\r\n',
      )
    }
    if (path !== '/-/cable' && !path.endsWith('.ws')) {
      // Workhorse refuses upgrades on other routes.
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 33\r\nconnection: close\r\n\r\nwebsocket upgrade not allowed\r\n\r\n')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(JSON.stringify({ type: 'welcome', headers: req.headers, url: req.url }))
      // GitLab dying under an open websocket: the connection is reset right after the welcome.
      if (path === '/-/test/reset.ws') return void setTimeout(() => socket.resetAndDestroy(), 50)
      // GitLab going away cleanly under an open websocket: its connection closes (FIN, no close frame).
      if (path === '/-/test/end.ws') return void setTimeout(() => socket.destroy(), 50)
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
    })
  })

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1))

    const git = GIT_ROUTE.exec(path)
    if (git) return serveGit(req, res, git[1]!, git[2]!, q === -1 ? '' : url.slice(q + 1))
    if (lfs.handle(req, res, path)) return

    if (path === '/-/health' || path === '/-/liveness' || path === '/-/readiness') return sendText(res, 200, 'GitLab OK')
    if (path === '/-/test/download') {
      res.on('close', () => {
        if (!res.writableFinished) abandoned.push(url)
      })
      return streamBytes(res, Number(query.get('bytes') ?? 1024), (bytes) => (downloaded += bytes))
    }
    if (path === '/-/test/upload') return countUpload(req, res)
    // An event stream: the head at once, the first event `ms` later.
    if (path === '/-/test/late-body') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
      res.flushHeaders()
      const timer = setTimeout(() => res.end('data: late\n\n'), Number(query.get('ms') ?? 1000))
      res.on('close', () => clearTimeout(timer))
      return
    }
    if (path === '/-/test/slow') {
      const ms = Number(query.get('ms') ?? 1000)
      const timer = setTimeout(() => sendJson(res, 200, { slept: ms }), ms)
      res.on('close', () => {
        clearTimeout(timer)
        if (!res.writableFinished) abandoned.push(url)
      })
      return
    }
    if (path === '/-/test/reset') {
      req.socket.destroy()
      return
    }
    const malformed = MALFORMED_RESPONSES[path]
    if (malformed !== undefined) {
      // Raw bytes past Node's own framing: what a broken or hostile GitLab (or something in between) could send.
      req.socket.write(malformed)
      setTimeout(() => req.socket.destroy(), 50)
      return
    }
    if (path === '/-/test/set-cookie') {
      // GitLab trying to set (or clear) a cookie of the given name, beside one of its own.
      const name = query.get('name') ?? 'x'
      res.writeHead(200, { 'content-type': 'text/plain', 'set-cookie': [`${name}=from-gitlab; Path=/; Secure; HttpOnly`, '_gitlab_session=gl; path=/'] })
      return void res.end('ok')
    }
    if (path === '/-/test/not-modified') {
      res.writeHead(304, { etag: '"v1"', 'content-length': 1234 })
      return void res.end()
    }
    if (path === '/-/test/half-close') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 100 })
      res.write('partial')
      setTimeout(() => req.socket.destroy(), 20)
      return
    }
    const numeric = /^\/api\/v4\/projects\/(\d+)$/.exec(path)
    if (numeric && req.method === 'GET') {
      const token = req.headers['private-token']
      if (options.apiToken && token !== options.apiToken) return sendJson(res, 401, { message: '401 Unauthorized' })
      const found = options.projects?.[numeric[1]!]
      if (!found) return sendJson(res, 404, { message: '404 Project Not Found' })
      return sendJson(res, 200, { id: Number(numeric[1]), path_with_namespace: found })
    }
    // A project looked up by its path, with the API token (a client's own PAT through the proxy gets the echo).
    const byPath = /^\/api\/v4\/projects\/([^/]+%2F[^/]+)$/i.exec(path)
    if (byPath && req.method === 'GET' && options.apiToken && req.headers['private-token'] === options.apiToken) {
      const wanted = decodeURIComponent(byPath[1]!).toLowerCase()
      const known = Object.entries(options.projects ?? {}).find(([, p]) => p.toLowerCase() === wanted) ?? (options.repos?.some((r) => r.toLowerCase() === wanted) ? ['0', wanted] : undefined)
      if (known) return sendJson(res, 200, { id: Number(known[0]), path_with_namespace: known[1] })
      const moved = Object.entries(options.redirects ?? {}).find(([old]) => old.toLowerCase() === wanted)
      if (moved) {
        res.writeHead(301, { location: `/api/v4/projects/${moved[1]}`, 'content-length': 0 })
        return void res.end()
      }
      return sendJson(res, 404, { message: '404 Project Not Found' })
    }
    const numericGroup = /^\/api\/v4\/(?:groups|namespaces)\/(\d+)$/.exec(path)
    if (numericGroup && req.method === 'GET' && req.headers['private-token'] !== undefined) {
      if (options.apiToken && req.headers['private-token'] !== options.apiToken) return sendJson(res, 401, { message: '401 Unauthorized' })
      const found = options.groups?.[numericGroup[1]!]
      if (!found) return sendJson(res, 404, { message: '404 Group Not Found' })
      return sendJson(res, 200, { id: Number(numericGroup[1]), full_path: found })
    }
    if (path.startsWith('/api/')) {
      const bytes = await drain(req)
      return sendJson(res, 200, { method: req.method, path, query: q === -1 ? '' : url.slice(q + 1), headers: req.headers, bodyBytes: bytes })
    }
    await drain(req)
    const body = `<!doctype html><html><head><title>GitLab</title></head><body><h1>GitLab-shaped upstream</h1><p id="path">${escape(path)}</p><p id="user">${escape(String(req.headers['x-forwarded-user'] ?? ''))}</p></body></html>\n`
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'set-cookie': '_gitlab_session=upstream-session; path=/; httponly' })
    res.end(req.method === 'HEAD' ? undefined : body)
  }

  function serveGit(req: IncomingMessage, res: ServerResponse, repo: string, rest: string, queryString: string): void {
    if (options.gitCredentials) {
      const presented = parseBasic(req.headers.authorization)
      const ok = presented && options.gitCredentials.some((c) => c.password === presented.password && (c.username === undefined || c.username === presented.username))
      if (!ok) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="GitLab"', 'content-type': 'text/plain' })
        res.end('HTTP Basic: Access denied\n')
        return
      }
    }
    if (!existsSync(join(repoRoot, repo))) return sendText(res, 404, 'repository not found')
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: repoRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: `/${repo}${rest}`,
      REQUEST_METHOD: req.method,
      QUERY_STRING: queryString,
      CONTENT_TYPE: String(req.headers['content-type'] ?? ''),
      REMOTE_USER: 'gitlab-user',
      REMOTE_ADDR: req.socket.remoteAddress ?? '',
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.receivepack',
      GIT_CONFIG_VALUE_0: 'true',
    }
    if (req.headers['content-length']) env.CONTENT_LENGTH = String(req.headers['content-length'])
    if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = String(req.headers['content-encoding'])
    if (req.headers['git-protocol']) env.GIT_PROTOCOL = String(req.headers['git-protocol'])
    const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] })
    req.pipe(child.stdin)
    child.stdin.on('error', () => {})
    let head = Buffer.alloc(0)
    let headersDone = false
    child.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk)
        return
      }
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end === -1) return
      headersDone = true
      let status = 200
      const headers: Record<string, string> = {}
      for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
        const colon = line.indexOf(':')
        const name = line.slice(0, colon).trim().toLowerCase()
        const value = line.slice(colon + 1).trim()
        if (name === 'status') status = Number(value.split(' ')[0])
        else headers[name] = value
      }
      res.writeHead(status, headers)
      res.write(head.subarray(end + 4))
    })
    child.stdout.on('end', () => {
      if (!headersDone) sendText(res, 502, 'git http-backend produced no headers')
      else res.end()
    })
    res.on('close', () => child.kill())
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const host = options.host ?? '127.0.0.1'
  return {
    url: `http://${host}:${port}`,
    port,
    requests,
    uploads,
    abandoned,
    get downloaded() {
      return downloaded
    },
    repoRoot,
    lfsObjects: lfs.objects,
    reached: (prefix) => requests.filter((r) => r.url.split('?')[0] === prefix || r.url.startsWith(prefix)),
    clear: () => {
      requests.length = 0
      uploads.length = 0
      abandoned.length = 0
      downloaded = 0
    },
    close: async () => {
      for (const client of wss.clients) client.terminate()
      wss.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      rmSync(repoRoot, { recursive: true, force: true })
    },
  }

  function countUpload(req: IncomingMessage, res: ServerResponse): void {
    let bytes = 0
    req.on('close', () => {
      if (!req.complete) abandoned.push(req.url ?? '/')
    })
    req.on('data', (chunk: Buffer) => (bytes += chunk.length))
    req.on('end', () => {
      uploads.push(bytes)
      sendJson(res, 200, { bytes })
    })
  }
}

/** Creates `<root>/<name>.git` as a bare repository with one commit on `main`. */
export function createBareRepo(root: string, name: string): string {
  const bare = join(root, `${name}.git`)
  mkdirSync(bare, { recursive: true })
  const git = (args: string[], cwd: string) =>
    execFileSync('git', args, {
      cwd,
      stdio: 'pipe',
      env: { ...process.env, GIT_AUTHOR_NAME: 'Upstream', GIT_AUTHOR_EMAIL: 'upstream@example.test', GIT_COMMITTER_NAME: 'Upstream', GIT_COMMITTER_EMAIL: 'upstream@example.test', GIT_CONFIG_NOSYSTEM: '1', HOME: root },
    })
  git(['init', '--bare', '--initial-branch=main', '--quiet'], bare)
  const work = mkdtempSync(join(tmpdir(), 'gitlab-iap-seed-'))
  try {
    git(['init', '--initial-branch=main', '--quiet'], work)
    execFileSync('sh', ['-c', `printf '# ${name}\\n' > README.md`], { cwd: work })
    git(['add', 'README.md'], work)
    git(['commit', '--quiet', '-m', 'initial commit'], work)
    git(['push', '--quiet', bare, 'main'], work)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  return bare
}

function parseBasic(header: string | string[] | undefined): { username: string; password: string } | undefined {
  if (typeof header !== 'string' || !/^Basic /i.test(header)) return undefined
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon === -1) return undefined
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

function drain(req: IncomingMessage): Promise<number> {
  return new Promise((resolve, reject) => {
    let bytes = 0
    req.on('data', (chunk: Buffer) => (bytes += chunk.length))
    req.on('end', () => resolve(bytes))
    req.on('error', reject)
  })
}

const CHUNK = Buffer.alloc(64 * 1024, 0x61)

/** Streams `total` bytes with backpressure, never holding more than one chunk. */
function streamBytes(res: ServerResponse, total: number, onWrite: (bytes: number) => void): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total })
  let sent = 0
  const pump = () => {
    while (sent < total) {
      const size = Math.min(CHUNK.length, total - sent)
      sent += size
      onWrite(size)
      if (!res.write(size === CHUNK.length ? CHUNK : CHUNK.subarray(0, size))) {
        res.once('drain', pump)
        return
      }
    }
    res.end()
  }
  res.on('close', () => (sent = total))
  pump()
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
