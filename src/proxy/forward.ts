/**
 * Forwarding to GitLab with http-proxy-3: bodies stream both ways, the request-target goes out
 * byte-for-byte (`toProxy`: no WHATWG re-normalisation, SECURITY.md §4.1), `Host` is kept,
 * connections are reused through a keep-alive agent, and every error is answered (502/504).
 */
import { Agent, type IncomingMessage, type ServerResponse } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import type { Duplex } from 'node:stream'
import type { Socket } from 'node:net'
import { createProxyServer } from 'http-proxy-3'
import type { Config } from '../config/schema.ts'
import { forwardableResponseHeaders } from './headers.ts'

export type ForwardFailure = 'upstream-unreachable' | 'upstream-timeout' | 'upstream-reset'

export interface ForwardHooks {
  /** Upstream response headers arrived. */
  onResponse(req: IncomingMessage, proxyRes: IncomingMessage): void
  /**
   * Forwarding failed; `res` may already have headers sent. `upgraded`: GitLab had already accepted
   * the websocket (the client has its 101), so nothing but closing the socket is left to do.
   */
  onError(req: IncomingMessage, res: ServerResponse | Duplex, failure: ForwardFailure, upgraded: boolean): void
  /** Names the proxy's own cookies: GitLab's `Set-Cookie` for them is dropped. */
  ownCookie?(name: string): boolean
}

export interface Forwarder {
  web(req: IncomingMessage, res: ServerResponse): void
  ws(req: IncomingMessage, socket: Duplex, head: Buffer): void
  close(): void
}

const TIMEOUT_CODE = 'IAP_UPSTREAM_IDLE_TIMEOUT'

/**
 * GitLab's response, kept on the request once its head has arrived, so a failure after that point can
 * stop copying it. A property, not a WeakMap: a WeakMap entry per request costs the garbage collector
 * several µs per request (measured: GC time per bearer request went from 1.6 to 8.7 µs).
 */
const kUpstreamResponse = Symbol('gitlab-iap.upstreamResponse')
type WithUpstreamResponse = IncomingMessage & { [kUpstreamResponse]?: IncomingMessage }

/**
 * A keep-alive agent whose sockets fail with a recognisable error after `idleMs` without traffic,
 * so a stalled upstream becomes a 504 rather than a hang, and is told apart from a reset (502).
 */
function createUpstreamAgent(https: boolean, idleMs: number): Agent {
  const agent = https
    ? new HttpsAgent({ keepAlive: true, timeout: idleMs, maxFreeSockets: 256, scheduling: 'lifo' })
    : new Agent({ keepAlive: true, timeout: idleMs, maxFreeSockets: 256, scheduling: 'lifo' })
  const create = agent.createConnection.bind(agent) as (...args: unknown[]) => Socket
  ;(agent as unknown as { createConnection: (...args: unknown[]) => Socket }).createConnection = (...args: unknown[]) => {
    const socket = create(...args)
    socket.on('timeout', () => socket.destroy(Object.assign(new Error('upstream idle timeout'), { code: TIMEOUT_CODE })))
    return socket
  }
  return agent
}

function classify(err: NodeJS.ErrnoException): ForwardFailure {
  switch (err.code) {
    case TIMEOUT_CODE:
    case 'ETIMEDOUT':
    case 'ECONNECTTIMEOUT':
      return 'upstream-timeout'
    case 'ECONNRESET':
    case 'EPIPE':
      return 'upstream-reset'
    default:
      return 'upstream-unreachable'
  }
}

/**
 * GitLab's response broke after its head arrived (bad chunk framing, a bad trailer): stop copying it
 * before the failure is answered. Otherwise its buffered rest is written after our answer has ended,
 * and a write after end is an 'error' on the response that nothing handles: the process would exit.
 * The head GitLab sent is dropped too, unless it already went out (then the response is cut).
 */
function abandonResponse(proxyRes: IncomingMessage, res: ServerResponse): void {
  proxyRes.unpipe(res)
  proxyRes.destroy()
  res.on('error', () => {})
  if (res.headersSent) return
  for (const name of res.getHeaderNames()) if (name !== 'x-request-id') res.removeHeader(name)
}

export function createForwarder(upstream: Config['upstream'], hooks: ForwardHooks): Forwarder {
  const target = new URL(upstream.url)
  const idleMs = upstream.timeoutSeconds * 1000
  const agent = createUpstreamAgent(target.protocol === 'https:', idleMs)
  const proxy = createProxyServer({
    target: upstream.url,
    xfwd: false,
    changeOrigin: false,
    toProxy: true,
    followRedirects: false,
    agent,
    connectTimeout: upstream.connectTimeoutSeconds * 1000,
  })
  const wsOptions = { target: upstream.url, xfwd: false, changeOrigin: false, toProxy: true, agent: false as const }

  proxy.on('proxyRes', (proxyRes, req, res) => {
    ;(req as WithUpstreamResponse)[kUpstreamResponse] = proxyRes
    // Runs before http-proxy-3 copies the headers: GitLab's hop-by-hop headers stay on the GitLab hop,
    // and keep-alive towards the client follows the client's own request (a `Connection: close` is honoured).
    proxyRes.headers = forwardableResponseHeaders(proxyRes.headers, (res as ServerResponse).shouldKeepAlive === false ? 'close' : 'keep-alive', hooks.ownCookie)
    // GitLab cut its response short (reset or half-close): cut ours too rather than leave the client waiting.
    proxyRes.once('close', () => {
      if (!proxyRes.complete) (res as ServerResponse).destroy()
    })
    hooks.onResponse(req, proxyRes)
  })
  // Websocket handshakes GitLab accepted: after the 101 an error must not be answered with an HTTP
  // response, which the client would read as a corrupt frame. The 101 carries the request id too.
  const upgraded = new WeakSet<IncomingMessage>()
  proxy.on('proxyReqWs', (proxyReq, req) =>
    proxyReq.once('upgrade', (proxyRes: IncomingMessage) => {
      upgraded.add(req)
      proxyRes.headers['x-request-id'] ??= req.headers['x-request-id']
    }),
  )
  const failed = (req: IncomingMessage, res: ServerResponse | Duplex, err: unknown) => {
    const proxyRes = (req as WithUpstreamResponse)[kUpstreamResponse]
    if (proxyRes && 'writeHead' in res) abandonResponse(proxyRes, res as ServerResponse)
    hooks.onError(req, res, classify(err as NodeJS.ErrnoException), upgraded.has(req))
  }
  // Without an 'error' listener http-proxy-3 re-throws and the process dies (SECURITY.md §4 item 5).
  proxy.on('error', (err, req, res) => failed(req, res as ServerResponse | Duplex, err))
  // The client went away: http-proxy-3 already destroyed the upstream request; nothing to answer.
  proxy.on('econnreset', () => {})

  return {
    web(req, res) {
      proxy.web(req, res, (err) => failed(req, res, err))
    },
    ws(req, socket, head) {
      proxy.ws(req, socket, head, wsOptions, (err) => failed(req, socket, err))
    },
    close() {
      agent.destroy()
      proxy.close()
    },
  }
}
