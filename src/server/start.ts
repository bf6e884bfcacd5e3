/**
 * Builds every dependency once from the config, opens the main and admin listeners, and owns
 * graceful shutdown: stop accepting, fail readiness, let in-flight requests finish (bounded), close.
 */
import { createServer as createHttpServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { randomUUID } from 'node:crypto'
import { createAdminHandler, type ReadinessCheck } from '../admin/routes.ts'
import { createApp, type App, type AppDeps, type OpsLogger } from '../app.ts'
import { createAuthenticator } from '../auth/authenticate.ts'
import { graphGroupsFor } from '../auth/graph-groups.ts'
import { createLfsGrants } from '../auth/lfs-grant.ts'
import { createRevocations, shareRevocations } from '../auth/revocations.ts'
import { systemClock } from '../auth/session/clock.ts'
import { createConfiguredStore, needsSessionStore } from '../auth/session/configured-store.ts'
import { browserSignInConfigured, createBrowserSignIn } from '../iap/index.ts'
import { IAP_ENDPOINT_METHODS, routeIapEndpoints } from '../iap/routes.ts'
import { createWhoami } from '../iap/whoami.ts'
import { readTlsFiles } from './tls-files.ts'
import { createAssertionSigner, serveAssertionJwks } from '../proxy/assertion.ts'
import type { Config } from '../config/schema.ts'
import { IapError } from '../errors.ts'
import { ANONYMOUS } from '../auth/identity.ts'
import { unmapIPv4 } from '../net/cidr.ts'
import { displayUrl } from '../net/display-url.ts'
import type { RequestContext } from './context.ts'
import { createProjectResolver } from '../gitlab/project-ids.ts'
import { createAccessLog } from '../logs/index.ts'
import { createMetrics, type Metrics } from '../metrics/registry.ts'

export interface RunningServer {
  readonly app: App
  readonly metrics: Metrics
  readonly instanceId: string
  /** Bound address of the main listener (useful with port 0). */
  readonly mainAddress: AddressInfo
  readonly adminAddress: AddressInfo
  /** Stops accepting, drains in-flight requests up to the grace period, then closes everything. */
  shutdown(graceMs?: number): Promise<void>
}

export interface StartOptions {
  readonly log: OpsLogger
}

type ParserError = NodeJS.ErrnoException & { rawPacket?: Buffer; bytesParsed?: number }

const REQUEST_LINE = /(?:^|\r?\n)([A-Z]{1,16} [^\r\n ]{1,2048} HTTP\/\d\.\d)\r?\n/g

/**
 * The request line of the refused request: the last one that starts before the byte the parser
 * stopped at (a packet can carry pipelined requests before it), else the packet's first line.
 */
function refusedRequestLine(err: ParserError): string {
  const packet = err.rawPacket
  if (!packet) return ''
  const end = Math.min(packet.length, (err.bytesParsed ?? 0) + 1, 64 * 1024)
  let line: string | undefined
  for (const match of packet.subarray(0, end).toString('latin1').matchAll(REQUEST_LINE)) line = match[1]
  return line ?? packet.subarray(0, 2048).toString('latin1').split(/\r?\n/, 1)[0]!
}

/**
 * The `error.code` of a request Node's parser refused: a stable name for the parser's code (docs/access-log.md).
 * Framing the body's end cannot be found by (the smuggling class), headers too large or too slow, and any
 * other syntax error.
 */
function parserErrorCode(code: string | undefined): string {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return 'request-headers-too-large'
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 'request-headers-timeout'
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_INVALID_CHUNK_SIZE':
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return 'request-framing-invalid'
    default:
      return 'request-syntax-invalid'
  }
}

/**
 * The context of a request Node's parser refused: method and path from the request line when it is
 * legible (never headers, which may hold credentials), the reason from the parser's error code.
 */
function rejectedRequestContext(err: ParserError, socket: Socket, status: number): RequestContext {
  const [method = '', target = ''] = refusedRequestLine(err).split(' ')
  const path = /^\/[\x21-\x7e]{0,2000}$/.test(target) ? target.split('?')[0]! : ''
  const reason = status === 431 ? 'headers-too-large' : status === 408 ? 'headers-timeout' : 'malformed-request'
  return {
    id: randomUUID(), startNs: process.hrtime.bigint(), startMs: Date.now(), clientIp: unmapIPv4(socket.remoteAddress ?? ''),
    method: /^[A-Z]{1,16}$/.test(method) ? method : '-', target: path, path, query: '', userAgent: '', websocket: false,
    route: 'other', authMethod: 'none', identity: ANONYMOUS, decision: { result: 'deny', rule: null, reason }, status, bytesIn: 0, bytesOut: 0,
    error: parserErrorCode(err.code),
  }
}

/** How long a refused connection may stay open once its answer is written: a client that never reads nor hangs up is let go. */
const REFUSED_LINGER_MS = 5000

function parseListen(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':')
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1')
  return { host, port: Number(listen.slice(colon + 1)) }
}

function listen(server: Server, address: string, name: string): Promise<AddressInfo> {
  const { host, port } = parseListen(address)
  return new Promise((resolve, reject) => {
    const key = name === 'main' ? 'server.listen' : 'admin.listen'
    const hint = (err: NodeJS.ErrnoException) =>
      err.code === 'EADDRINUSE' ? `: another process holds the port; stop it or change ${key}` : err.code === 'EACCES' ? `: ports below 1024 need privileges; use a higher one in ${key}` : ''
    const onError = (err: NodeJS.ErrnoException) => reject(new IapError('IAP_ERR_LISTEN_FAILED', `${name} listener cannot listen on ${address}: ${err.message}${hint(err)}`, { cause: err }))
    server.once('error', onError)
    server.listen(port, host, () => {
      server.off('error', onError)
      resolve(server.address() as AddressInfo)
    })
  })
}

export async function startServer(config: Config, options: StartOptions): Promise<RunningServer> {
  const instanceId = randomUUID()
  const log = options.log
  const metrics = createMetrics()
  let lastLogErrorAt = 0
  const accessLog = createAccessLog(config.accessLog, {
    instanceId,
    onWriteError: (err) => {
      metrics.logWriteFailure()
      // One message per 10 s at most: a full disk must not flood stderr with one line per request.
      const now = Date.now()
      if (now - lastLogErrorAt < 10_000) return
      lastLogErrorAt = now
      log.error({ code: 'IAP_ERR_LOG_WRITE_FAILED', err: { message: err.message, code: (err as NodeJS.ErrnoException).code } }, 'access log write failed')
    },
  })
  // The session store: sessions for browser sign-in, and with `session.store: redis` the channel that
  // persists revocations and carries them to every replica (bearer-only deployments too).
  const revocations = createRevocations()
  const withSignIn = browserSignInConfigured(config)
  const store = needsSessionStore(config, withSignIn) ? createConfiguredStore(config, { log, clock: systemClock, localCache: withSignIn }) : undefined
  const revoke = shareRevocations({ revocations, ...(store && { store }), log })
  // Browser sign-in (issue 5): sessions, /-/iap/ endpoints; only with entra.clientSecret + session.secret.
  // Groups overage lookups, shared by sign-in and bearer tokens; their failures reach the log.
  const graph = config.entra?.clientSecret ? graphGroupsFor({ ...config.entra, clientSecret: config.entra.clientSecret }, { log }) : undefined
  const signIn = withSignIn && store ? createBrowserSignIn(config, { log, revocations, store, ...(graph && { graph }) }) : undefined
  // LFS grants (two-credential git URLs): key derived from session.secret when set, so any replica accepts them.
  const lfsGrants = createLfsGrants({ audience: new URL(config.server.publicUrl).origin, ...(config.session.secret ? { secret: config.session.secret } : {}) })
  const authenticator = createAuthenticator({ config, metrics, log, revocations, lfsGrants, ...(graph && { graph }), ...(signIn && { session: signIn.sessionStep }) })
  // For the proxy's own endpoints (whoami): a credential rejected there is counted like anywhere else.
  const authenticate = async (req: IncomingMessage, ctx: RequestContext) => {
    const outcome = await authenticator.authenticate(req, ctx)
    if (!outcome.ok) metrics.authFailure(outcome.reason)
    return outcome
  }
  // Without browser sign-in, whoami still answers for bearer and Basic credentials.
  const signInEndpoints = signIn?.endpoints({ authenticate }) ?? routeIapEndpoints({ '/-/iap/whoami': { methods: IAP_ENDPOINT_METHODS['/-/iap/whoami']!, handler: createWhoami({ authenticate }) } })
  // X-IAP-Assertion: key derived from session.secret when set, so every replica signs alike.
  const assertion = createAssertionSigner({ publicUrl: config.server.publicUrl, ...(config.session.secret ? { secret: config.session.secret } : {}) })
  const projects = createProjectResolver({
    upstreamUrl: config.upstream.url,
    apiToken: config.upstream.apiToken,
    onLookup: (result) => {
      if (result === 'error') log.warn({ code: 'IAP_ERR_UPSTREAM_PROJECT_LOOKUP' }, 'a project could not be looked up through the GitLab API; requests naming it are denied')
    },
  })
  const deps: AppDeps = {
    metrics, accessLog, authenticator, log, resolveProject: (ref) => projects.resolve(ref),
    ...(config.upstream.apiToken && { currentProjectPath: (project: string) => projects.currentPath(project) }),
    upstreamHeaders: (req, ctx) => assertion.setHeader(req.headers, ctx.identity),
    ...(signIn && { upstreamCookie: (header: string) => signIn.forwardedCookie(header), ownCookie: (name: string) => signIn.isOwnCookie(name) }),
    iapEndpoints: (req, res, ctx) => {
      if (!serveAssertionJwks(assertion, req, res)) return signInEndpoints(req, res, ctx)
      ctx.decision = { result: 'allow', rule: null, reason: 'jwks' }
      return true
    },
    browserLogin: signIn !== undefined,
    lfsGrants,
  }
  const app = createApp(config, deps)
  // A revoked user's open websockets (a web terminal, ActionCable) end with the revocation, on every replica.
  revocations.onRevoke(() => {
    const ended = app.endWebsockets((ctx) => revocations.isRevoked(ctx.identity, ctx.startMs))
    if (ended > 0) log.info({ websockets: ended }, 'websockets of a revoked user closed')
  })
  let accepting = true

  // Per connection: how many of its responses are still open, the last request the parser handed
  // over and its response, and what waits for those responses to end (the answer to a malformed request after them).
  const connections = new WeakMap<Socket, { open: number; last: IncomingMessage; response: ServerResponse; whenIdle?: () => void }>()
  // Responses not closed yet, in all: each writes its request's record when it closes.
  let inFlight = 0
  let noneInFlight: (() => void) | undefined
  const mainHandler = (req: IncomingMessage, res: ServerResponse) => {
    inFlight++
    res.once('close', () => {
      if (--inFlight === 0) noneInFlight?.()
    })
    const socket = req.socket
    const connection = connections.get(socket)
    if (connection) {
      connection.open++
      connection.last = req
      connection.response = res
    } else connections.set(socket, { open: 1, last: req, response: res })
    res.once('close', () => {
      const c = connections.get(socket)
      if (c && --c.open === 0 && c.whenIdle) c.whenIdle()
    })
    app.handleRequest(req, res)
  }
  const serverOptions = {
    // Slowloris guard: the whole header block within this time; no cap on body time (git, LFS, artifacts).
    headersTimeout: config.server.headersTimeoutSeconds * 1000,
    requestTimeout: 0,
    // Node checks header deadlines on this interval (default 30 s, which would let slowloris linger).
    connectionsCheckingInterval: 1000,
    keepAliveTimeout: 65_000,
    maxHeaderSize: config.server.maxHeaderBytes,
  }
  const main = config.server.tls
    ? createHttpsServer({ ...serverOptions, ...readTlsFiles(config.server.tls) }, mainHandler)
    : createHttpServer(serverOptions, mainHandler)
  main.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => app.handleUpgrade(req, socket, head))
  // `Expect: 100-continue`: Node would answer 100 at once, inviting the body before the request is
  // authorized; handled as a request instead, the 100 goes out only once the policy allows it (app.ts).
  main.on('checkContinue', mainHandler)
  // CONNECT (a tunnel request) never reaches GitLab; without a listener Node would drop it unanswered and unlogged.
  main.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => app.handleUpgrade(req, socket, head))
  // Connections already answered for a malformed request: what the parser reports after that is the same request.
  const refused = new WeakSet<Socket>()
  main.on('clientError', (err: ParserError, socket: Socket) => {
    // Malformed requests (smuggling attempts, oversized headers, headers too slow) never reach the
    // pipeline: answer, close, and still leave one access-log record for each.
    if (refused.has(socket)) return
    refused.add(socket)
    const connection = connections.get(socket)
    // A parse error in the body of the last request is that request's, as long as its body is not complete:
    // the pipeline logs and answers it. Already answered (the answer did not wait for the upload: GitLab's
    // early 413, a 408 for a stalled upload), the request has its record and answer; the client hanging up
    // mid-body (or more broken framing) just ends the connection.
    const inBody = connection !== undefined && !connection.last.complete
    if (inBody && connection.open === 0) return void socket.destroy()
    // A connection that carried no request bytes at all is not a request: a client resetting an idle
    // keep-alive, or one that sent nothing before the header deadline (a browser's preconnect). It is
    // closed without an answer or a record. (A parser error at the client's end has no packet, but bytes.)
    const parserError = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code?.startsWith('HPE_') === true
    const sawRequest = (err.rawPacket?.length ?? 0) > 0 || (parserError && socket.bytesRead > 0)
    if (!sawRequest && !inBody) return void socket.destroy()
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
    const ctx = inBody ? undefined : rejectedRequestContext(err, socket, status)
    // The answer names the request it answers, as every other answer does: this one's record, or the record
    // of the request whose body broke.
    const id = ctx?.id ?? connection?.response.getHeader('x-request-id')
    const answer = `HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\nconnection: close\r\ncontent-length: 0\r\n${typeof id === 'string' ? `x-request-id: ${id}\r\n` : ''}\r\n`
    if (ctx) {
      if (socket.writable) ctx.bytesOut = answer.length
      const endNs = process.hrtime.bigint()
      // Counted like every request: smuggling attempts and header floods show in Prometheus too.
      metrics.observeRequest(ctx, endNs)
      accessLog.write(ctx, endNs)
    }
    const reply = () => {
      if (!socket.writable) return void socket.destroy()
      socket.end(answer)
      // Our side is done; the socket still waits for the client's: one that never reads (never sees our
      // end) nor hangs up would hold it, and its file descriptor, forever. Let go after a linger that
      // leaves a client that does read the time to read its answer.
      const linger = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref()
      socket.once('close', () => clearTimeout(linger))
    }
    // Requests before it on the connection (pipelined) get their answers first, then this one.
    if (connection !== undefined && connection.open > 0 && !inBody) connection.whenIdle = reply
    else reply()
  })
  const upgraded = new Set<Socket>()
  main.on('upgrade', (_req: IncomingMessage, socket: Socket) => {
    upgraded.add(socket)
    socket.once('close', () => upgraded.delete(socket))
  })

  const checks: ReadinessCheck[] = [
    { name: 'config', check: () => ({ ready: true }) },
    { name: 'auth', check: () => ({ ready: authenticator.isReady(), detail: authenticator.readiness() }) },
    { name: 'accessLog', check: () => ({ ready: accessLog.healthy || config.accessLog.onError === 'serve' }) },
    // Redis reachable, and the revocations recorded there loaded, before this replica takes traffic.
    ...(store ? [{ name: 'sessions', check: () => ({ ready: store.isReady(), detail: { ...store.readiness(), ...signIn?.readiness() } }) }] : []),
  ]
  // Every refused admin call is counted; at most one a second is logged (a scan must not flood stderr).
  let lastAdminFailureLog = 0
  const onAuthFailure = (reason: 'admin-token-missing' | 'admin-token-invalid', req: IncomingMessage) => {
    metrics.adminAuthFailure(reason)
    const now = Date.now()
    if (now - lastAdminFailureLog < 1000) return
    lastAdminFailureLog = now
    log.warn({ code: 'IAP_WARN_ADMIN_AUTH_FAILED', reason, peer: unmapIPv4(req.socket.remoteAddress ?? '') }, 'admin API call refused')
  }
  const admin = createHttpServer(createAdminHandler({ metrics, token: config.admin.token, checks, accepting: () => accepting, revoke, onAuthFailure }))

  let mainAddress: AddressInfo
  let adminAddress: AddressInfo
  try {
    mainAddress = await listen(main, config.server.listen, 'main')
    adminAddress = await listen(admin, config.admin.listen, 'admin')
  } catch (err) {
    // What was opened must close, or its handles (the Redis client, key refresh timers) keep the
    // process alive after the error: `serve` must exit at once so the supervisor sees the failure.
    main.close()
    await Promise.allSettled([app.close(), authenticator.close(), store?.close(), accessLog.close()])
    throw err
  }
  log.info({ main: `${mainAddress.address}:${mainAddress.port}`, admin: `${adminAddress.address}:${adminAddress.port}`, upstream: displayUrl(config.upstream.url), instanceId }, 'gitlab-iap listening')

  /** Closes every open websocket and waits (bounded) for each to close, so each is logged before the log closes. */
  async function endWebsockets(): Promise<void> {
    const sockets = [...upgraded]
    if (sockets.length > 0) log.info({ websockets: sockets.length }, 'closing open websockets')
    const allClosed = Promise.all(sockets.map((socket) => new Promise<void>((resolve) => (socket.closed ? resolve() : socket.once('close', () => resolve())))))
    for (const socket of sockets) socket.destroy()
    await Promise.race([allClosed, new Promise((resolve) => setTimeout(resolve, 2000).unref())])
  }

  let shuttingDown: Promise<void> | undefined
  async function shutdown(graceMs = config.server.shutdownGraceSeconds * 1000): Promise<void> {
    shuttingDown ??= (async () => {
      accepting = false
      const closed = new Promise<void>((resolve) => main.close(() => resolve()))
      // Websockets end first: Node counts them as connections of the server, so left open they would hold
      // the drain for the whole grace period (an ActionCable client reconnects to another replica at once).
      await endWebsockets()
      // Keep-alive connections become idle as their last response ends; close them as they do.
      const sweeper = setInterval(() => main.closeIdleConnections(), 50)
      main.closeIdleConnections()
      const deadline = new Promise<'timeout'>((resolve) => setTimeout(resolve, graceMs, 'timeout').unref())
      const result = await Promise.race([closed, deadline])
      clearInterval(sweeper)
      if (result === 'timeout') {
        log.warn({ graceMs }, 'shutdown grace period over; closing remaining connections')
        app.cuttingInFlight()
        main.closeAllConnections()
      }
      // Responses cut just now close a tick later: their records are written before the log closes.
      if (inFlight > 0) await new Promise<void>((resolve) => ((noneInFlight = resolve), setTimeout(resolve, 1000).unref()))
      await endWebsockets() // any upgraded during the drain
      await app.close()
      await authenticator.close()
      await store?.close()
      await new Promise<void>((resolve) => admin.close(() => resolve()))
      admin.closeAllConnections()
      await accessLog.close()
    })()
    return shuttingDown
  }

  return { app, metrics, instanceId, mainAddress, adminAddress, shutdown }
}
