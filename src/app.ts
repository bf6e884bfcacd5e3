/**
 * Composition root and the request pipeline. A request moves one way:
 * context → access-log health and framing → canonical path → GitLab attribution → /-/iap/ endpoints →
 * authentication → policy → respond or forward → one access-log record. The hot path awaits nothing
 * for cached credentials.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { AuthOutcome, Authenticator } from './auth/authenticate.ts'
import type { LfsGrants } from './auth/lfs-grant.ts'
import type { Config } from './config/schema.ts'
import { HTTP_METHODS } from './http/methods.ts'
import { attribute, type Attribution, type NumericId } from './gitlab/attribute.ts'
import { addLfsGrants, isLfsBatch, lfsPathPrefix, MAX_BATCH_BYTES } from './gitlab/lfs-batch.ts'
import { checkCanonicalPath } from './http/canonical-path.ts'
import { checkRequestFraming } from './http/framing.ts'
import { loginReturnTarget } from './http/redirect-target.ts'
import { isBrowserNavigation, sendRedirect, sendStatusPage, statusText, wwwAuthenticate, writeSocketResponse } from './http/respond.ts'
import { clearSessionCookie } from './iap/session-cookie.ts'
import type { AccessLog } from './logs/index.ts'
import type { Metrics } from './metrics/registry.ts'
import { createCidrSet, type CidrSet } from './net/cidr.ts'
import type { Decision } from './policy/decision.ts'
import { compilePolicy, decideAlsoAs, type CompiledPolicy } from './policy/index.ts'
import { CLIENT_FAILURES, createForwarder, failureStatus, hasBody, type BodyRewrite, type ForwardFailure, type Forwarder } from './proxy/forward.ts'
import { sanitizeRequestHeaders, setIdentityHeaders } from './proxy/headers.ts'
import type { RequestContext } from './server/context.ts'
import { createRequestContext, isTrustedPeer } from './server/request-context.ts'

/** Minimal operational logger (pino-compatible), for events that are not access-log records. */
export interface OpsLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

/** Handles the reserved `/-/iap/*` endpoints; returns false when the path is not one of them. */
export type IapEndpoints = (req: IncomingMessage, res: ServerResponse, ctx: RequestContext) => boolean | Promise<boolean>

/** Resolves a numeric GitLab project, group or namespace id to its path (`undefined` when it cannot be resolved). */
export type ProjectResolver = (ref: NumericId) => Promise<string | undefined>

/** Last-moment additions to the headers sent to GitLab for an allowed request (the identity assertion). */
export type UpstreamHeaderHook = (req: IncomingMessage, ctx: RequestContext) => void

/** The Cookie header GitLab gets (the proxy's own cookies removed); `undefined` drops it. */
export type UpstreamCookieFilter = (header: string) => string | undefined

export interface AppDeps {
  readonly metrics: Metrics
  readonly accessLog: AccessLog
  readonly authenticator: Authenticator
  readonly log: OpsLogger
  readonly iapEndpoints?: IapEndpoints
  readonly resolveProject?: ProjectResolver
  /**
   * With `upstream.apiToken`: the path GitLab serves for a request that names its project by path and
   * follows GitLab's redirects (git, LFS, REST by path: `followsRedirects`); a former path GitLab still
   * redirects names the project it moved to. Rejects when GitLab cannot be asked.
   */
  readonly currentProjectPath?: (project: string) => Promise<string | undefined>
  readonly upstreamHeaders?: UpstreamHeaderHook
  readonly upstreamCookie?: UpstreamCookieFilter
  /** Names the proxy's own cookies, which GitLab's responses may not set. */
  readonly ownCookie?: (name: string) => boolean
  /** True when browser sign-in is configured: anonymous navigations are redirected to /-/iap/login. */
  readonly browserLogin?: boolean
  /** Mints the LFS grants added to batch answers (src/gitlab/lfs-batch.ts); without it batch answers pass unread. */
  readonly lfsGrants?: LfsGrants
}

export interface App {
  handleRequest(req: IncomingMessage, res: ServerResponse): void
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void
  /** Swaps config-derived state (policy, trusted proxies) atomically; in-flight requests keep theirs. */
  reload(config: Config): void
  readonly config: Config
  /**
   * Says that the shutdown's grace period is over and the requests still open are about to be cut: their
   * records name the proxy as the cause (`error.code: shutdown-grace-exceeded`), not the client.
   */
  cuttingInFlight(): void
  /**
   * Closes the open websockets whose request `which` picks (a revoked user's: an open web terminal must
   * not outlive the revocation); their records carry `error.code: identity-revoked`. Returns how many.
   */
  endWebsockets(which: (ctx: RequestContext) => boolean): number
  /** Closes the connections to GitLab. */
  close(): Promise<void>
}

/** Everything derived from one config version. A request captures it once and uses it throughout. */
interface ConfigState {
  readonly config: Config
  readonly policy: CompiledPolicy
  readonly trusted: CidrSet
}

const kContext = Symbol('gitlab-iap.context')
type WithContext = IncomingMessage & { [kContext]?: RequestContext }

function buildState(config: Config): ConfigState {
  return { config, policy: compilePolicy(config), trusted: createCidrSet(config.server.trustedProxies) }
}

const isPromise = <T>(value: T | Promise<T>): value is Promise<T> => typeof (value as Promise<T>)?.then === 'function'

const GIT_ROUTES = new Set(['git', 'lfs'])

/** How long a websocket client may keep its side open after ours has ended. */
const HALF_CLOSED_LINGER_MS = 5000
/** An `Expect` that asks for a 100, as Node reads it before calling `checkContinue`. */
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i
/** What a 405 names as allowed: the methods GitLab serves (the list rules may name). */
const ALLOWED_METHODS = [...HTTP_METHODS].join(', ')

export function createApp(initialConfig: Config, deps: AppDeps): App {
  let state = buildState(initialConfig)
  let cutting = false
  /** Websockets GitLab accepted and still open, with their request's context. */
  const openWebsockets = new Map<Duplex, RequestContext>()
  // The scheme the client used: https when we terminate TLS; behind a TLS ingress that is not a trusted
  // proxy (its X-Forwarded-Proto is not believed), the scheme of `server.publicUrl`, which is how
  // clients reach us. GitLab's CSRF check compares Origin with it.
  const scheme = initialConfig.server.tls || initialConfig.server.publicUrl.startsWith('https:') ? 'https' : 'http'
  const { host: publicHost, origin: publicOrigin } = new URL(initialConfig.server.publicUrl)
  // What a lapsed session's answer sets: the session cookie deleted (its name and attributes do not reload).
  const deletedSessionCookie = clearSessionCookie(initialConfig)

  const forwarder: Forwarder = createForwarder(initialConfig.upstream, {
    ...(deps.ownCookie && { ownCookie: deps.ownCookie }),
    onResponse(req, statusCode) {
      const ctx = (req as WithContext)[kContext]
      if (!ctx) return
      ctx.upstreamNs = process.hrtime.bigint() - ctx.startNs
      ctx.status = statusCode
    },
    onError(req, target, failure, upgraded) {
      const ctx = (req as WithContext)[kContext]
      if (!ctx) return
      ctx.error = failure
      // A client that stalled (its upload, or reading the answer) is the client's doing, not GitLab's: no operator warning.
      if (!CLIENT_FAILURES.has(failure)) deps.log.warn({ requestId: ctx.id, code: failure === 'upstream-timeout' ? 'IAP_ERR_UPSTREAM_TIMEOUT' : 'IAP_ERR_UPSTREAM_UNREACHABLE', failure }, 'forwarding failed')
      // An open websocket whose GitLab side failed: the client already has its 101, so the record keeps
      // 101 (with the error code) and the connection just closes.
      if (upgraded) return void target.destroy()
      const status = failureStatus(failure)
      if ('writeHead' in target) {
        sendStatusPage(req, target as ServerResponse, {
          status,
          title: status === 408 ? 'The upload stalled' : status === 504 ? 'GitLab did not answer in time' : 'GitLab is unavailable',
          message: status === 408 ? 'No part of the request body arrived for too long. Try again.' : status === 504 ? 'The request to GitLab timed out. Try again.' : failure === 'upstream-invalid-response' ? 'GitLab sent an answer the proxy cannot relay. Try again shortly.' : 'The proxy could not reach GitLab. Try again shortly.',
          requestId: ctx.id,
          reason: failure,
        })
      } else {
        ctx.status = status
        writeSocketResponse(target, status, ctx.id, [], { reason: failure })
      }
    },
  })

  function finish(ctx: RequestContext, res: ServerResponse | undefined, socketBytes: { read: number; written: number } | undefined, socket: Duplex | undefined): void {
    const endNs = process.hrtime.bigint()
    if (res) {
      if (!res.writableFinished) ctx.aborted = true
      if (ctx.aborted && cutting) {
        // The proxy cut it (the shutdown's grace period is over), not the client: 503 when no response had begun.
        ctx.error ??= 'shutdown-grace-exceeded'
        ctx.status = res.headersSent ? res.statusCode : 503
      } else {
        // What the client got is what we log; 499 (nginx's convention) when it left before any response.
        ctx.status = res.headersSent ? res.statusCode : 499
      }
    }
    const s = socket as (Duplex & { bytesRead?: number; bytesWritten?: number }) | undefined
    if (s && socketBytes) {
      // A request's body is counted as it is read (the socket had read part of it before the request
      // began); a websocket's bytes are its socket's.
      if (!res) ctx.bytesIn = (s.bytesRead ?? 0) - socketBytes.read
      ctx.bytesOut = (s.bytesWritten ?? 0) - socketBytes.written
    }
    try {
      deps.metrics.observeRequest(ctx, endNs)
    } catch (err) {
      deps.log.error({ err, requestId: ctx.id }, 'metrics failed')
    }
    deps.accessLog.write(ctx, endNs)
  }

  /** The shared part of the pipeline for requests and websocket handshakes; returns the decision. */
  function evaluate(
    req: IncomingMessage,
    ctx: RequestContext,
    s: ConfigState,
    attr: Attribution,
    done: (decision: Decision, outcome: AuthOutcome | undefined) => void,
  ): void {
    const afterAuth = (outcome: AuthOutcome) => {
      ctx.authMethod = outcome.method
      if (!outcome.ok) {
        deps.metrics.authFailure(outcome.reason)
        done({ result: 'challenge', rule: null, reason: outcome.reason }, outcome)
        return
      }
      ctx.identity = outcome.identity
      // A push's ref advertisement and a terminal's handshake are also decided as POST (`attr.policyMethod`); the access
      // log keeps the request's own method.
      const decideNow = (projectUnresolved: boolean) =>
        decideAlsoAs(
          s.policy,
          { method: ctx.method, path: ctx.path, route: ctx.route, project: ctx.project, projectUnresolved, ...(attr.groupWide && { groupWide: true }), clientIp: ctx.clientIp },
          ctx.identity,
          attr.policyMethod,
        )
      if (attr.numericId !== undefined && s.policy.needsProjects) {
        const resolve = deps.resolveProject
        if (!resolve) return done(decideNow(true), outcome)
        resolve(attr.numericId).then(
          (path) => {
            if (path !== undefined) ctx.project = path
            done(decideNow(path === undefined), outcome)
          },
          () => done(decideNow(true), outcome),
        )
        return
      }
      // Git and LFS (wiki, design and snippet repositories too) and REST references by path follow GitLab's
      // redirects from a project's former paths without a word: the policy must see the project GitLab will
      // serve, not the old name in the URL (`attr.followsRedirects`, src/gitlab/attribute.ts).
      const current = deps.currentProjectPath
      if (current && attr.followsRedirects && ctx.project !== undefined && s.policy.needsProjects) {
        // Without a credential, and with no `public` rule naming projects, the path as written decides:
        // anonymous clients do not get to make the proxy query GitLab's API with its token (load, and an
        // oracle of which private projects exist: a deny rule's 403 against a challenge's 401).
        if (ctx.identity.kind === 'anonymous' && !s.policy.publicProjects) {
          const anonymous = decideNow(false)
          if (anonymous.result !== 'allow') return done(anonymous, outcome)
        }
        current(ctx.project).then(
          (path) => {
            if (path !== undefined) ctx.project = path
            done(decideNow(false), outcome)
          },
          () => done(decideNow(true), outcome),
        )
        return
      }
      done(decideNow(false), outcome)
    }
    let outcome: AuthOutcome | Promise<AuthOutcome>
    try {
      outcome = deps.authenticator.authenticate(req, ctx)
    } catch (err) {
      deps.log.error({ err, requestId: ctx.id }, 'authentication failed unexpectedly')
      outcome = { ok: false, method: 'none', reason: 'internal-error', description: 'authentication failed', status: 503 }
    }
    if (isPromise(outcome)) {
      outcome.then(afterAuth, (err: unknown) => {
        deps.log.error({ err, requestId: ctx.id }, 'authentication failed unexpectedly')
        afterAuth({ ok: false, method: 'none', reason: 'internal-error', description: 'authentication failed', status: 503 })
      })
    } else {
      afterAuth(outcome)
    }
  }

  /**
   * The rewrite of an LFS batch answer for a client whose IAP credential git-lfs will not send again
   * with the object transfers (it came in the URL or in Authorization, not in X-IAP-Authorization): each action that
   * points back at this proxy gets a grant for that action and path. The grant carries only the groups
   * the policy names, which keeps it small enough for any ingress's header limits.
   */
  function lfsBatchRewrite(req: IncomingMessage, ctx: RequestContext, s: ConfigState, outcome: AuthOutcome | undefined): BodyRewrite | undefined {
    const grants = deps.lfsGrants
    if (!grants || !outcome?.ok || outcome.source === undefined || outcome.source === 'x-iap-authorization' || !isLfsBatch(ctx.route, ctx.method, ctx.path)) return undefined
    const referenced = s.policy.referencedGroups
    const identity = { ...outcome.identity, groups: outcome.identity.groups.filter((g) => referenced.has(g.toLowerCase())) }
    const origins = new Set([publicOrigin])
    try {
      // The origin the client reached this proxy at (validated Host), as URL writes it (default port dropped).
      origins.add(new URL(`${scheme}://${req.headers.host}`).origin)
    } catch {
      // no usable Host: the public origin only
    }
    return {
      maxBytes: MAX_BATCH_BYTES,
      apply: (body) =>
        addLfsGrants(body, origins, lfsPathPrefix(ctx.path), (action, path) => {
          const grant = grants.mint(identity, action, path)
          return grant === undefined ? undefined : `Bearer ${grant}`
        }),
    }
  }

  function prepareUpstream(req: IncomingMessage, ctx: RequestContext, s: ConfigState, outcome: AuthOutcome | undefined, websocket: boolean): void {
    sanitizeRequestHeaders(req, {
      requestId: ctx.id,
      peerTrusted: isTrustedPeer(req, s.trusted),
      scheme,
      websocket,
      ...(outcome?.ok && outcome.forwardAuthorization !== undefined && { authorization: outcome.forwardAuthorization }),
      ...(deps.upstreamCookie && { cookie: deps.upstreamCookie }),
    })
    if (outcome?.ok) setIdentityHeaders(req.headers, ctx.identity)
    deps.upstreamHeaders?.(req, ctx)
  }

  function handleRequest(req: IncomingMessage, res: ServerResponse): void {
    const s = state
    const ctx = createRequestContext(req, s.trusted, false)
    ;(req as WithContext)[kContext] = ctx
    const socket = req.socket
    const socketBytes = { read: socket.bytesRead, written: socket.bytesWritten }
    res.once('close', () => finish(ctx, res, socketBytes, socket))
    res.setHeader('x-request-id', ctx.id)

    if (!deps.accessLog.healthy && s.config.accessLog.onError === 'deny') {
      ctx.decision = { result: 'deny', rule: null, reason: 'access-log-unavailable' }
      return sendStatusPage(req, res, { status: 503, title: 'Temporarily unavailable', message: 'The access log cannot be written; requests are refused until it can.', requestId: ctx.id, reason: 'access-log-unavailable' })
    }

    const framing = checkRequestFraming(req)
    if (framing) {
      ctx.decision = { result: 'deny', rule: null, reason: framing.reason }
      if (framing.status === 405) res.setHeader('allow', ALLOWED_METHODS)
      // What follows on this connection cannot be trusted to start where this request ends.
      res.shouldKeepAlive = false
      return sendStatusPage(req, res, { status: framing.status, title: statusText(framing.status), message: 'The request is not one the proxy forwards.', requestId: ctx.id, reason: framing.reason })
    }
    // HTTP/1.0 may leave Host out (health checks do): GitLab gets the public host, never the upstream's address.
    req.headers.host ??= publicHost
    const problem = checkCanonicalPath(ctx.path)
    if (problem) {
      ctx.decision = { result: 'deny', rule: null, reason: problem }
      return sendStatusPage(req, res, { status: 400, title: 'Bad request', message: 'The request path is not in canonical form.', requestId: ctx.id, reason: problem })
    }
    const attr = attribute(ctx.method, ctx.path, ctx.query)
    ctx.route = attr.route
    if (attr.project !== undefined) ctx.project = attr.project

    if (attr.route === 'iap') {
      const endpoints = deps.iapEndpoints
      const handled = endpoints ? endpoints(req, res, ctx) : false
      const notFound = (ok: boolean) => {
        if (ok) return
        ctx.decision = { result: 'deny', rule: null, reason: 'iap-endpoint-unknown' }
        sendStatusPage(req, res, { status: 404, title: 'Not found', message: 'No such gitlab-iap endpoint.', requestId: ctx.id, reason: 'iap-endpoint-unknown' })
      }
      if (isPromise(handled)) {
        handled.then(notFound, (err: unknown) => {
          deps.log.error({ err, requestId: ctx.id }, 'iap endpoint failed')
          // The record names what the client got; once an answer had begun it is cut, and the endpoint's decision stands.
          if (!res.headersSent) ctx.decision = { result: 'deny', rule: null, reason: 'internal-error' }
          sendStatusPage(req, res, { status: 500, title: 'Internal error', message: 'The sign-in endpoint failed.', requestId: ctx.id, reason: 'internal-error' })
        })
      } else notFound(handled)
      return
    }

    evaluate(req, ctx, s, attr, (decision, outcome) => {
      ctx.decision = decision
      if (res.destroyed) return
      if (decision.result === 'allow') {
        // Read before the hop-by-hop `Expect` is dropped: the client waits for this 100 to send its body.
        const continueExpected = req.httpVersionMinor >= 1 && req.headers.expect !== undefined && CONTINUE.test(req.headers.expect)
        const rewrite = lfsBatchRewrite(req, ctx, s, outcome)
        prepareUpstream(req, ctx, s, outcome, false)
        // The batch answer is read and rewritten: asked for uncompressed (git-lfs, a Go client, asks for gzip).
        if (rewrite) delete req.headers['accept-encoding']
        if (continueExpected) res.writeContinue()
        forwarder.web(req, res, rewrite)
        // Read from here on by the forwarding, which has just started reading it.
        if (hasBody(req)) req.on('data', (chunk: Buffer) => void (ctx.bytesIn += chunk.length))
        return
      }
      if (decision.result === 'challenge') {
        if (outcome && !outcome.ok && outcome.status === 503) {
          return sendStatusPage(req, res, { status: 503, title: 'Sign-in temporarily unavailable', message: outcome.description, requestId: ctx.id, reason: outcome.reason }, { 'retry-after': '5' })
        }
        const failed = outcome && !outcome.ok ? outcome : undefined
        // A lapsed browser session (expired, revoked, ended at refresh) also sends the browser back to sign-in.
        const lapsedSession = failed?.method === 'session' && failed.status === 401
        // Its cookie is deleted with the answer, or every request looks the dead session up again; never on the 503 above (the session may be fine).
        const clearCookie: Record<string, string> = lapsedSession ? { 'set-cookie': deletedSessionCookie } : {}
        if ((!failed || lapsedSession) && deps.browserLogin && isBrowserNavigation(req) && !GIT_ROUTES.has(ctx.route) && ctx.route !== 'api') {
          return sendRedirect(res, `/-/iap/login?rd=${encodeURIComponent(loginReturnTarget(ctx.target, ctx.path))}`, ctx.id, clearCookie)
        }
        return sendStatusPage(
          req,
          res,
          {
            status: 401,
            title: 'Sign-in required',
            message: failed ? failed.description : 'This request needs a valid credential.',
            requestId: ctx.id,
            reason: failed?.reason ?? decision.reason,
          },
          { ...clearCookie, 'www-authenticate': wwwAuthenticate(failed?.reason ?? 'credentials-missing', failed?.description, GIT_ROUTES.has(ctx.route)) },
        )
      }
      const identity = ctx.identity
      sendStatusPage(req, res, {
        status: 403,
        title: 'Access denied',
        message: identity.kind === 'anonymous' ? 'This page cannot be reached through the proxy.' : 'Your identity is not allowed to reach this page.',
        requestId: ctx.id,
        rule: decision.rule,
        reason: decision.reason,
        ...(ctx.authMethod === 'session' && identity.kind !== 'anonymous' && { signedInAs: identity.name ?? identity.email ?? identity.id }),
      })
    })
  }

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const s = state
    const ctx = createRequestContext(req, s.trusted, true)
    ;(req as WithContext)[kContext] = ctx
    const tcp = socket as Duplex & { bytesRead: number; bytesWritten: number }
    const socketBytes = { read: tcp.bytesRead, written: tcp.bytesWritten }
    socket.on('error', () => socket.destroy())
    // Server sockets stay half-open: once the client has finished, finish ours too, or a connection whose
    // GitLab side already died would never close (and never be logged).
    socket.once('end', () => socket.end())
    // Once our side has finished (refused, or GitLab gone), read on to the client's end — nothing reads
    // it any more — so its hang-up closes the socket; a client that never hangs up is let go.
    socket.once('finish', () => {
      socket.resume()
      const linger = setTimeout(() => socket.destroy(), HALF_CLOSED_LINGER_MS).unref()
      socket.once('close', () => clearTimeout(linger))
    })
    let logged = false
    socket.once('close', () => {
      if (logged) return
      logged = true
      ctx.status = ctx.status ?? 499
      finish(ctx, undefined, socketBytes, socket)
    })
    const refuse = (status: number, reason: string, extra: string[] = []) => {
      ctx.decision = ctx.decision ?? { result: 'deny', rule: null, reason }
      ctx.status = status
      writeSocketResponse(socket, status, ctx.id, extra, { reason, rule: status === 403 ? ctx.decision?.rule : null })
    }
    // As for plain requests: a websocket would be a connection nobody can account for.
    if (!deps.accessLog.healthy && s.config.accessLog.onError === 'deny') return refuse(503, 'access-log-unavailable')
    if (req.method === 'CONNECT') return refuse(405, 'method-not-allowed', [`allow: ${ALLOWED_METHODS}`])
    const framing = checkRequestFraming(req)
    if (framing) return refuse(framing.status, framing.reason)
    // A handshake is a GET without a body: bytes after its head would reach GitLab only after a 101.
    if ((req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined) {
      return refuse(400, 'upgrade-with-body')
    }
    // Only websocket upgrades exist in GitLab; `Upgrade: h2c` would make the GitLab connection an unfiltered HTTP/2 tunnel.
    if (typeof req.headers.upgrade !== 'string' || req.headers.upgrade.toLowerCase() !== 'websocket' || req.method !== 'GET') {
      return refuse(400, 'upgrade-not-websocket')
    }
    const problem = checkCanonicalPath(ctx.path)
    if (problem) return refuse(400, problem)
    const attr = attribute(ctx.method, ctx.path, ctx.query)
    ctx.route = attr.route
    if (attr.project !== undefined) ctx.project = attr.project
    if (attr.route === 'iap') return refuse(404, 'iap-endpoint-unknown')

    evaluate(req, ctx, s, attr, (decision, outcome) => {
      ctx.decision = decision
      if (socket.destroyed) return
      if (decision.result === 'allow') {
        prepareUpstream(req, ctx, s, outcome, true)
        ctx.status = 101
        deps.metrics.websocketOpened(ctx)
        openWebsockets.set(socket, ctx)
        socket.once('close', () => openWebsockets.delete(socket))
        forwarder.ws(req, socket, head)
        return
      }
      if (decision.result === 'challenge') {
        const failed = outcome && !outcome.ok ? outcome : undefined
        if (failed?.status === 503) return refuse(503, failed.reason)
        return refuse(401, failed?.reason ?? decision.reason, wwwAuthenticate(failed?.reason ?? 'credentials-missing', failed?.description, false).map((v) => `www-authenticate: ${v}`))
      }
      refuse(403, decision.reason)
    })
  }

  return {
    handleRequest,
    handleUpgrade,
    reload(config: Config) {
      state = buildState(config)
    },
    get config() {
      return state.config
    },
    cuttingInFlight() {
      cutting = true
    },
    endWebsockets(which) {
      let ended = 0
      for (const [socket, ctx] of openWebsockets) {
        if (!which(ctx)) continue
        ctx.error ??= 'identity-revoked'
        socket.destroy()
        ended++
      }
      return ended
    },
    close() {
      return forwarder.close()
    },
  }
}
