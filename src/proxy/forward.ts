/**
 * Forwarding to GitLab. Ordinary requests go through an undici connection pool: bodies stream both
 * ways with backpressure, the request-target goes out byte-for-byte (no WHATWG re-normalisation,
 * which resolves `..` past the policy), `Host` is kept, connections are reused, and every error is answered (502/504).
 * undici's HTTP/1.1 client costs about half the CPU per request of Node's `http.request`, which was
 * the largest single cost on the hot path (docs/benchmarks.md). Websocket handshakes go through
 * http-proxy-3, which pipes the upgraded sockets.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import { isIP, type Socket } from 'node:net'
import { PassThrough, type Duplex } from 'node:stream'
import { createProxyServer } from 'http-proxy-3'
import { buildConnector, Pool, type Dispatcher } from 'undici'
import type { Config } from '../config/schema.ts'
import { forwardableResponseHeaders } from './headers.ts'

/**
 * Why forwarding failed: GitLab could not be reached, was silent too long, broke the connection, or sent
 * something that is no HTTP response (a head over the limit, bad framing); or the client's upload stalled;
 * or an open websocket carried no byte either way for the idle period.
 */
export type ForwardFailure = 'upstream-unreachable' | 'upstream-timeout' | 'upstream-reset' | 'upstream-invalid-response' | 'client-body-timeout' | 'client-read-timeout' | 'websocket-idle-timeout'

/**
 * The failures that are not GitLab's (no operator warning): the client stopped sending or reading, or a
 * websocket went quiet (a peer gone without a FIN, either side's).
 */
export const CLIENT_FAILURES: ReadonlySet<ForwardFailure> = new Set(['client-body-timeout', 'client-read-timeout', 'websocket-idle-timeout'])

/** The status a failure is answered with: the client's own stall 408, GitLab's silence 504, else 502. */
export function failureStatus(failure: ForwardFailure): 408 | 502 | 504 {
  return CLIENT_FAILURES.has(failure) ? 408 : failure === 'upstream-timeout' ? 504 : 502
}

export interface ForwardHooks {
  /** GitLab's response head arrived (before it is copied to the client). */
  onResponse(req: IncomingMessage, statusCode: number): void
  /**
   * Forwarding failed; `res` may already have headers sent. `upgraded`: GitLab had already accepted
   * the websocket (the client has its 101), so nothing but closing the socket is left to do.
   */
  onError(req: IncomingMessage, res: ServerResponse | Duplex, failure: ForwardFailure, upgraded: boolean): void
  /** Names the proxy's own cookies: GitLab's `Set-Cookie` for them is dropped. */
  ownCookie?(name: string): boolean
}

export interface Forwarder {
  /**
   * Forwards a request whose `req.headers` are already what GitLab may see (`sanitizeRequestHeaders`).
   * `rewrite`: GitLab's successful, uncompressed answer is read whole (up to `rewrite.maxBytes`, and while
   * all answers held at once stay under `MAX_REWRITE_BUFFER_BYTES`) and passed through `rewrite.apply`.
   */
  web(req: IncomingMessage, res: ServerResponse, rewrite?: BodyRewrite): void
  ws(req: IncomingMessage, socket: Duplex, head: Buffer): void
  close(): Promise<void>
}

/** A rewrite of GitLab's whole answer (the LFS batch answer's grants, src/app.ts). */
export interface BodyRewrite {
  /** Answers larger than this are relayed unread. */
  readonly maxBytes: number
  apply(body: Buffer): Buffer
}

/** Bytes of answers held for a rewrite, shared by a forwarder's copiers. */
interface RewriteBudget {
  bytes: number
}

/** Most bytes held for rewrites at once, all requests together; beyond it answers are relayed unread. */
const MAX_REWRITE_BUFFER_BYTES = 64 * 1024 * 1024

/** The code `watchStalledUpload` gives up with (undici's own `UND_ERR_BODY_TIMEOUT` is GitLab's body). */
const CLIENT_BODY_TIMEOUT = 'IAP_CLIENT_BODY_TIMEOUT'
/** The code a response gives up with when the client took none of it for a whole idle period. */
const CLIENT_READ_TIMEOUT = 'IAP_CLIENT_READ_TIMEOUT'

function classify(err: NodeJS.ErrnoException): ForwardFailure {
  switch (err.code) {
    case CLIENT_BODY_TIMEOUT:
      return 'client-body-timeout'
    case CLIENT_READ_TIMEOUT:
      return 'client-read-timeout'
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'ETIMEDOUT':
    case 'ECONNECTTIMEOUT':
      return 'upstream-timeout'
    case 'UND_ERR_SOCKET':
      // undici's names for a head that cannot be one (a second 100, an upgrade nobody asked for).
      return err.message === 'bad response' || err.message === 'bad upgrade' ? 'upstream-invalid-response' : 'upstream-reset'
    case 'ECONNRESET':
    case 'EPIPE':
      return 'upstream-reset'
    // A head over the limit, a body that does not match its length, a header value Node refuses to send.
    case 'UND_ERR_HEADERS_OVERFLOW':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
    case 'ERR_INVALID_CHAR':
    case 'ERR_INVALID_HTTP_TOKEN':
    case 'ERR_HTTP_INVALID_HEADER_VALUE':
    case 'ERR_HTTP_INVALID_STATUS_CODE':
      return 'upstream-invalid-response'
    default:
      // llhttp's parse errors (undici's and Node's, websocket handshakes): GitLab's bytes are no HTTP response.
      return err.code?.startsWith('HPE_') ? 'upstream-invalid-response' : 'upstream-unreachable'
  }
}

/**
 * A request body follows the head: a non-zero `Content-Length`, or chunked framing (`Transfer-Encoding`).
 * Read from the raw headers, as Node's parser framed the request: `req.headers` are by now what GitLab
 * may see (`sanitizeRequestHeaders`), which never decides whether the client's body is read and sent on.
 */
export function hasBody(req: Pick<IncomingMessage, 'rawHeaders'>): boolean {
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length === 14 && name.toLowerCase() === 'content-length') return raw[i + 1] !== '0'
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') return true
  }
  return false
}

/** The socket to GitLab whose bytes undici is parsing at this moment (see `trackingConnector`). */
let parsing: Socket | undefined

/**
 * The name TLS asks GitLab for and checks its certificate against: `upstream.url`'s host, none for an
 * IP literal (checked against the address). Never the client's `Host` (the public name), which undici
 * and Node's agents take by default.
 */
export function upstreamServername(url: URL): string | undefined {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  return isIP(host) === 0 ? host : undefined
}

/**
 * undici's connector, noting which socket is being read before undici parses from it: a response
 * handler then knows the socket its first bytes came on, and whether it broke in that same read.
 * Connections to GitLab are made for `servername` (see `upstreamServername`), whatever a request says.
 */
function trackingConnector(timeoutMs: number, servername: string | undefined): buildConnector.connector {
  const connect = buildConnector({ timeout: timeoutMs })
  return (options, callback) =>
    connect({ ...options, servername }, (...result) => {
      const socket = result[1]
      if (socket) socket.on('readable', () => (parsing = socket))
      callback(...result)
    })
}

/**
 * One forwarded request: copies GitLab's response to the client as it arrives (pausing GitLab while the
 * client is slow) and turns every failure into one `onError` call. undici calls its methods; the
 * callbacks handed to Node (client close, drain, flush) are bound arrow properties.
 */
class ResponseCopier implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined
  private done = false
  /** GitLab's head, held until the packet it came in is parsed (see `flushHead`, `flush`). */
  private headers: IncomingHttpHeaders | undefined
  private statusCode = 0
  private statusMessage: string | undefined
  /** Body bytes that arrived with the head, not yet written (see `flush`). */
  private pending: Buffer[] | undefined
  /** GitLab's response ended while `pending` waited. */
  private ended = false
  private draining = false
  /**
   * Runs while the client takes nothing (`draining`): undici's body timeout does not run while GitLab is
   * paused for it, so a client that stops reading would hold its GitLab connection (a Gitaly stream) forever.
   */
  private drainTimer: NodeJS.Timeout | undefined
  /** The socket GitLab's head (and first body bytes) came on. */
  private socket: Socket | undefined

  private readonly req: IncomingMessage
  private readonly res: ServerResponse
  private readonly hooks: ForwardHooks
  /** The client's upload as undici reads it, when the request has a body. */
  private readonly upload: PassThrough | null

  /** Rewrites a 2xx body read whole (see `Forwarder.web`); `collected` holds it meanwhile. */
  private rewrite: BodyRewrite | undefined
  private collected: Buffer[] = []
  private collectedBytes = 0
  /** Bytes all copiers of this forwarder hold for rewrites, shared: many answers at once cannot pile up. */
  private readonly budget: RewriteBudget

  /** How long the client may take none of the response before it is cut (`upstream.timeoutSeconds`). */
  private readonly idleMs: number

  constructor(req: IncomingMessage, res: ServerResponse, hooks: ForwardHooks, budget: RewriteBudget, upload: PassThrough | null, idleMs: number, rewrite?: BodyRewrite) {
    this.idleMs = idleMs
    this.req = req
    this.res = res
    this.hooks = hooks
    this.upload = upload
    this.budget = budget
    this.rewrite = rewrite
  }

  /** Gives the collected bytes back to the shared budget (the body was sent, relayed or dropped). */
  private releaseCollected(): void {
    this.budget.bytes -= this.collectedBytes
    this.collectedBytes = 0
    this.collected = []
  }

  /** The client went away (or its response was destroyed): stop GitLab's side too. */
  readonly onClientClose = (): void => {
    clearTimeout(this.drainTimer)
    if (!this.done) {
      this.done = true
      this.releaseCollected()
      this.controller?.abort(new Error('client closed'))
    }
  }

  /** The client can take more: let GitLab's bytes flow again. */
  private readonly onDrain = (): void => {
    this.draining = false
    clearTimeout(this.drainTimer)
    this.controller?.resume()
  }

  /** The client took nothing for a whole idle period: both sides are cut, as for a stalled upload. */
  private readonly onDrainTimeout = (): void => {
    if (this.done || !this.draining) return
    this.res.off('drain', this.onDrain)
    this.fail(Object.assign(new Error('client stopped reading'), { code: CLIENT_READ_TIMEOUT }))
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.done) controller.abort(new Error('client closed'))
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    // 1xx informational heads (103 Early Hints) are GitLab's hop only; the final head follows.
    if (statusCode < 200 || this.done) return
    const cookies = headers['set-cookie']
    if (typeof cookies === 'string') headers['set-cookie'] = [cookies]
    this.statusCode = statusCode
    this.statusMessage = statusMessage
    // GitLab answers before the upload ended (Workhorse's early 413 or 401): the answer closes the connection.
    if (this.upload && !this.req.complete) closeAfterAnswer(this.req, this.res, this.upload)
    this.headers = forwardableResponseHeaders(headers, this.res.shouldKeepAlive === false ? 'close' : 'keep-alive', this.hooks.ownCookie)
    this.hooks.onResponse(this.req, statusCode)
    // Only a successful, uncompressed answer is rewritten; anything else is relayed as it comes.
    if (this.rewrite && (statusCode >= 300 || (headers['content-encoding'] !== undefined && headers['content-encoding'] !== 'identity'))) this.rewrite = undefined
    if (this.rewrite) return
    this.socket = parsing
    queueMicrotask(this.flushHead)
  }

  /**
   * A head whose packet brought no body bytes goes out as soon as that packet is parsed: a response
   * that sends its head first and its body much later (event streams, long polls) reaches the client
   * at once. With body bytes in the same packet, `flush` sends both together.
   */
  private readonly flushHead = (): void => {
    if (this.done || this.headers === undefined || this.pending !== undefined || this.socket?.destroyed) return
    // writeHead only stores the head; Node sends it with the first body bytes unless flushed.
    if (this.sendHead()) this.res.flushHeaders()
  }

  /**
   * GitLab's head goes out with the body bytes of its packet, once that packet is fully parsed
   * (a microtask later): a response whose framing breaks in that packet is then still answered with a
   * clean 502, none of GitLab's head or bytes in it. A small response (head, body and end in one packet)
   * goes out in one `res.end(body)`.
   */
  private readonly flush = (): void => {
    // The read that brought these bytes also broke the response (its socket is gone, the end not
    // seen): leave everything unsent; undici reports the error next and `fail` answers a clean 502.
    if (this.done || (!this.ended && this.socket?.destroyed)) return
    const chunks = this.pending!
    this.pending = undefined
    if (!this.sendHead()) return
    if (this.ended) {
      this.done = true
      for (let i = 0; i < chunks.length - 1; i++) this.res.write(chunks[i])
      this.res.end(chunks[chunks.length - 1])
      return
    }
    for (const chunk of chunks) this.write(chunk)
  }

  private sendHead(): boolean {
    const headers = this.headers
    if (headers === undefined) return true
    this.headers = undefined
    try {
      this.res.writeHead(this.statusCode, this.statusMessage || undefined, headers as Record<string, string | string[]>)
      return true
    } catch (err) {
      // A header value Node refuses to send (a control character): GitLab's answer cannot be relayed.
      this.fail(err as Error)
      return false
    }
  }

  private write(chunk: Buffer): void {
    if (!this.res.write(chunk) && !this.draining) {
      this.draining = true
      this.controller!.pause()
      this.res.once('drain', this.onDrain)
      this.drainTimer = setTimeout(this.onDrainTimeout, this.idleMs).unref()
    }
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.done) return
    if (this.rewrite) {
      this.collected.push(chunk)
      this.collectedBytes += chunk.length
      this.budget.bytes += chunk.length
      if (this.collectedBytes <= this.rewrite.maxBytes && this.budget.bytes <= MAX_REWRITE_BUFFER_BYTES) return
      // Too large to be a batch answer worth rewriting, or too many held at once: relayed as it came,
      // and streamed from here on.
      this.rewrite = undefined
      const pieces = this.collected
      this.releaseCollected()
      if (!this.sendHead()) return
      for (const piece of pieces) this.write(piece)
      return
    }
    if (this.pending !== undefined) this.pending.push(chunk)
    else if (this.headers !== undefined) {
      this.pending = [chunk]
      this.socket = parsing
      queueMicrotask(this.flush)
    } else this.write(chunk)
  }

  onResponseEnd(): void {
    if (this.done) return
    if (this.rewrite) {
      const original = Buffer.concat(this.collected, this.collectedBytes)
      let body: Buffer = original
      try {
        body = this.rewrite.apply(original)
      } catch {
        // A rewrite that fails relays GitLab's answer as it came.
      }
      this.releaseCollected()
      this.headers!['content-length'] = String(body.length)
      if (!this.sendHead()) return
      this.done = true
      this.res.end(body)
      return
    }
    if (this.pending !== undefined) {
      this.ended = true
      return
    }
    if (!this.sendHead()) return
    this.done = true
    this.res.end()
  }

  /** Gives up on GitLab's side (an upload that stalled): answered like GitLab failing with `err`. */
  abandon(err: Error): void {
    if (!this.done) this.fail(err)
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.done) return
    // A 304 may carry the Content-Length of the representation it stands for (RFC 9110 §8.6) and
    // never has a body: undici counts that as a length mismatch, but the answer is complete.
    if (this.statusCode === 304 && (err as NodeJS.ErrnoException).code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') return this.onResponseEnd()
    this.fail(err)
  }

  private fail(err: Error): void {
    this.done = true
    clearTimeout(this.drainTimer)
    this.releaseCollected()
    this.controller?.abort(err)
    // The client left mid-request (its upload broke off): nothing to answer, and not GitLab's failure.
    if (this.req.socket.destroyed) return
    const res = this.res
    if (res.headersSent) {
      // GitLab's response broke after its head went out (reset, bad chunk framing, idle timeout):
      // cut ours too rather than leave the client waiting for bytes that will not come.
      res.destroy()
    } else {
      // Nothing of GitLab's answer went out: drop the head it sent (its reason phrase too: writeHead keeps
      // one it then refused, and would refuse our 502 for it), keep our request id.
      res.statusMessage = ''
      for (const name of res.getHeaderNames()) if (name !== 'x-request-id') res.removeHeader(name)
      // Our 502/504/408 while the client is still uploading: it closes the connection.
      if (this.upload && !this.req.complete) closeAfterAnswer(this.req, res, this.upload)
    }
    this.hooks.onError(this.req, res, classify(err as NodeJS.ErrnoException), false)
  }
}

/**
 * undici's timeouts do not run while the request body is still being sent: a client whose upload
 * stalls would hold its GitLab connection forever. The same idle timeout applies to the upload (no
 * bytes from the client for a whole `idleMs` period, so it fires after idleMs to 2 × idleMs): GitLab's
 * side is abandoned and the client, whose fault it is, gets a 408 (`client-body-timeout`).
 */
function watchStalledUpload(req: IncomingMessage, upload: PassThrough, idleMs: number, copier: ResponseCopier): void {
  // Reads the socket's byte count rather than listening for 'data', which would start the body flowing before undici reads it.
  const socket = req.socket
  let seen = socket.bytesRead
  const timer = setInterval(() => {
    if (req.complete) return clearInterval(timer)
    if (socket.bytesRead !== seen) return void (seen = socket.bytesRead)
    clearInterval(timer)
    // Bytes the client sent wait for GitLab to take them: GitLab stopped reading (backpressure stalled
    // the client), and the silence is GitLab's. Nothing waiting: the client stopped sending.
    const waitingForGitLab = upload.readableLength > 0 || upload.writableLength > 0 || req.readableLength > 0
    copier.abandon(Object.assign(new Error('upload idle timeout'), { code: waitingForGitLab ? 'UND_ERR_BODY_TIMEOUT' : CLIENT_BODY_TIMEOUT }))
  }, idleMs)
  req.once('close', () => clearInterval(timer))
}

/**
 * How long the rest of an upload is read and dropped after an answer that did not wait for it, before
 * the connection is cut (nginx's lingering close, `lingering_time`).
 */
export const LINGER_MS = 5000

/**
 * An answer that goes out before the client's upload ended (GitLab's early 413 or 401, our 502, 504 or
 * 408) closes the connection: `Connection: close`, since what is left of the body would otherwise be read
 * as the next request. Once the answer is out, the client gets our end (FIN) at once, and the rest of
 * its upload is read and dropped until it hangs up, for `LINGER_MS` at most: closing with unread bytes
 * would send an RST, which can reach the client before it has read the answer. Node ends such a
 * connection with `socket.destroySoon()` (end, then close at once): that one socket's gets this instead.
 */
function closeAfterAnswer(req: IncomingMessage, res: ServerResponse, upload: PassThrough): void {
  res.shouldKeepAlive = false
  const socket = req.socket
  socket.destroySoon = () => {
    // undici may still hold the body (GitLab answered without reading it): it gets no more of it.
    req.unpipe(upload)
    upload.destroy()
    req.resume()
    socket.end()
    const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref()
    socket.once('close', () => clearTimeout(timer))
    // The client hung up its side: all it sent is read; nothing to wait for.
    socket.once('end', () => socket.destroy())
  }
}

const kUpgraded = Symbol('gitlab-iap.upgraded')
type Upgraded = IncomingMessage & { [kUpgraded]?: boolean }

/** The request and client socket of a websocket, on its GitLab socket from the 101 until http-proxy-3's `open`. */
const kTunnel = Symbol('gitlab-iap.tunnel')
type TunnelSocket = Socket & { [kTunnel]?: { req: IncomingMessage; client: Socket } }

/**
 * TCP keep-alive of a websocket's sockets: after a minute without a byte the kernel probes the peer,
 * every 10 s, and gives up after 6 unanswered probes (a peer gone without a FIN is found in 2 minutes,
 * not the kernel default's 2 hours 11; the probes also keep NAT state alive).
 */
const KEEPALIVE_DELAY_MS = 60_000
const KEEPALIVE_INTERVAL_MS = 10_000
const KEEPALIVE_PROBES = 6

/**
 * Watches an open websocket (the 101 sent, both sockets piped): keep-alive on both sockets, and an idle
 * timeout: when no byte moved either way for `idleMs`, both are closed and the record says so
 * (`websocket-idle-timeout`, keeping 101). Node's socket timeout re-arms on each read and write, and every
 * byte is read on one socket and written on the other, so each socket's timer sees both directions at no
 * cost beyond Node's own. Armed after http-proxy-3's `setupSocket`, which clears both settings.
 */
function watchWebsocket(req: IncomingMessage, client: Socket, upstream: Socket, idleMs: number, hooks: ForwardHooks): void {
  const idle = () => {
    // Half-closed (the client's FIN, or GitLab's end and app.ts's linger): a close under way, not idle.
    if (!client.destroyed && !client.writableEnded) {
      hooks.onError(req, client, 'websocket-idle-timeout', true)
      client.destroy()
    }
    // Also after the client's side has closed: GitLab's may not have answered our FIN.
    upstream.destroy()
  }
  for (const socket of [client, upstream]) {
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS, KEEPALIVE_INTERVAL_MS, KEEPALIVE_PROBES)
    socket.setTimeout(idleMs, idle)
  }
  // GitLab's side is gone: what is left of the client's is app.ts's to end (its linger).
  upstream.once('close', () => client.setTimeout(0))
}

export function createForwarder(upstream: Config['upstream'], hooks: ForwardHooks): Forwarder {
  const target = new URL(upstream.url)
  const idleMs = upstream.timeoutSeconds * 1000
  const rewriteBudget: RewriteBudget = { bytes: 0 }
  const servername = upstreamServername(target)
  // Named on every request, always the same: undici would otherwise take each request's `Host` and open a
  // new connection whenever it differs from the last (the connector uses `servername` either way).
  const requestServername = servername ?? target.hostname
  const pool = new Pool(target.origin, {
    connect: trackingConnector(upstream.connectTimeoutSeconds * 1000, servername),
    // Both are idle timeouts: until GitLab's head once the request is sent, and between body chunks.
    headersTimeout: idleMs,
    bodyTimeout: idleMs,
    // GitLab's response heads (CSP, Link) can be larger than Node's 16 KiB default.
    maxHeaderSize: 64 * 1024,
  })
  const proxy = createProxyServer({ target: upstream.url, xfwd: false, changeOrigin: false, toProxy: true, followRedirects: false, connectTimeout: upstream.connectTimeoutSeconds * 1000 })
  // Handshakes to an https GitLab go through an agent that names `servername` (Node's agents would take
  // the client's `Host`); its options override the request's. Without keep-alive: one connection each.
  const wsAgent = target.protocol === 'https:' ? new HttpsAgent({ servername: servername ?? '' }) : false
  const wsOptions = { target: upstream.url, xfwd: false, changeOrigin: false, toProxy: true, agent: wsAgent }

  // http-proxy-3 writes GitLab's answer to a handshake (the 101, or any other status) with its headers
  // as they are: they get the same cleaning as ordinary responses (hop-by-hop, the proxy's own cookies),
  // keeping what a 101 needs, and the request id. These listeners run before http-proxy-3's own.
  const cleanHandshakeAnswer = (req: IncomingMessage, proxyRes: IncomingMessage, upgrade: boolean) => {
    const headers = forwardableResponseHeaders(proxyRes.headers, 'close', hooks.ownCookie)
    if (upgrade) {
      headers.connection = 'Upgrade'
      headers.upgrade = proxyRes.headers.upgrade ?? 'websocket'
    }
    headers['x-request-id'] ??= req.headers['x-request-id']
    proxyRes.headers = headers
  }
  proxy.on('proxyReqWs', (proxyReq, req, client) => {
    // GitLab's answer to the handshake is awaited no longer than any other answer (undici's headersTimeout).
    proxyReq.setTimeout(idleMs, () => proxyReq.destroy(Object.assign(new Error('websocket handshake timed out'), { code: 'ETIMEDOUT' })))
    proxyReq.once('upgrade', (proxyRes: IncomingMessage, upstreamSocket: Socket) => {
      // After the 101 an error must not be answered with an HTTP response, which the client would read
      // as a corrupt frame. Marked on the request (a symbol property), not in a WeakSet: see docs/architecture.md.
      ;(req as Upgraded)[kUpgraded] = true
      cleanHandshakeAnswer(req, proxyRes, true)
      // Watched once http-proxy-3 has set the socket up (`open`, below).
      ;(upstreamSocket as TunnelSocket)[kTunnel] = { req, client }
    })
    // GitLab refused the upgrade (400, 401, 404): its answer goes to the client and into the record.
    proxyReq.once('response', (proxyRes: IncomingMessage) => {
      cleanHandshakeAnswer(req, proxyRes, false)
      hooks.onResponse(req, proxyRes.statusCode ?? 502)
    })
  })
  const upgraded = (req: IncomingMessage) => (req as Upgraded)[kUpgraded] === true
  // Without an 'error' listener http-proxy-3 re-throws and the process dies.
  proxy.on('error', (err, req, socket) => hooks.onError(req, socket as Duplex, classify(err as NodeJS.ErrnoException), upgraded(req)))
  // The client went away: http-proxy-3 already destroyed the upstream request; nothing to answer.
  proxy.on('econnreset', () => {})
  proxy.on('open', (upstreamSocket: TunnelSocket) => {
    const tunnel = upstreamSocket[kTunnel]
    if (!tunnel) return
    upstreamSocket[kTunnel] = undefined
    watchWebsocket(tunnel.req, tunnel.client, upstreamSocket, idleMs, hooks)
  })

  return {
    web(req, res, rewrite) {
      // Through a PassThrough, not `req` itself: undici destroys the body it was given when the request
      // fails, and destroying `req` would drop the client's connection before it gets its 502/504.
      const body = hasBody(req) ? req.pipe(new PassThrough()) : null
      const copier = new ResponseCopier(req, res, hooks, rewriteBudget, body, idleMs, rewrite)
      res.once('close', copier.onClientClose)
      if (body) watchStalledUpload(req, body, idleMs, copier)
      try {
        // `servername` is an option undici's Request takes, missing from its DispatchOptions type.
        const options: Dispatcher.DispatchOptions & { servername: string } = { method: req.method!, path: req.url!, headers: req.headers as Record<string, string | string[]>, body, servername: requestServername }
        pool.dispatch(options, copier)
      } catch (err) {
        // A request undici refuses before sending (a header value it cannot write): answered like GitLab failing.
        copier.abandon(err as Error)
      }
    },
    ws(req, socket, head) {
      const failed = (err: unknown) => hooks.onError(req, socket, classify(err as NodeJS.ErrnoException), upgraded(req))
      try {
        proxy.ws(req, socket, head, wsOptions, failed)
      } catch (err) {
        // http-proxy-3 writes the handshake with http.request, which throws on a header value it refuses
        // (ERR_INVALID_CHAR): uncaught, that would end the process.
        failed(err)
      }
    },
    async close() {
      proxy.close()
      if (wsAgent) wsAgent.destroy()
      await pool.destroy()
    },
  }
}
