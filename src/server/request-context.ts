/** Builds the RequestContext: request id and client address, trusting forwarded values only from `server.trustedProxies`. */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { isIP } from 'node:net'
import { ANONYMOUS } from '../auth/identity.ts'
import { unmapIPv4, type CidrSet } from '../net/cidr.ts'
import type { RequestContext } from './context.ts'

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** The peer is one of our trusted proxies (ingress, load balancer). */
export function isTrustedPeer(req: IncomingMessage, trusted: CidrSet): boolean {
  return trusted.size > 0 && trusted.has(req.socket.remoteAddress ?? '')
}

/**
 * The client address: the socket peer, or — when the peer is trusted — the right-most
 * X-Forwarded-For entry that is not itself a trusted proxy (nginx `real_ip_recursive`).
 */
export function clientAddress(req: IncomingMessage, trusted: CidrSet, peerTrusted: boolean): string {
  const peer = unmapIPv4(req.socket.remoteAddress ?? '')
  if (!peerTrusted) return peer
  const xff = req.headers['x-forwarded-for']
  if (typeof xff !== 'string' || xff === '') return peer
  const hops = xff.split(',')
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = forwardedAddress(hops[i]!)
    if (hop === '') continue
    if (!trusted.has(hop)) return hop
  }
  return forwardedAddress(hops[0]!) || peer
}

/** `a.b.c.d:port` (Azure Application Gateway v2 appends this form), and `[v6]` with or without a port. */
const WITH_PORT = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}|\[([0-9A-Fa-f:.]+)\](?::\d{1,5})?)$/

/**
 * An X-Forwarded-For entry as an address: the IP without a port a proxy appended. Anything else that is
 * no IP stays as it is, so it is never taken for a trusted proxy (and matches no `sourceIps`).
 */
function forwardedAddress(entry: string): string {
  const hop = entry.trim()
  const match = WITH_PORT.exec(hop)
  const address = match?.[1] ?? match?.[2]
  return unmapIPv4(address !== undefined && isIP(address) !== 0 ? address : hop)
}

export function requestIdFor(req: IncomingMessage, peerTrusted: boolean): string {
  const given = req.headers['x-request-id']
  if (peerTrusted && typeof given === 'string' && REQUEST_ID.test(given)) return given
  return randomUUID()
}

export function createRequestContext(req: IncomingMessage, trusted: CidrSet, websocket: boolean): RequestContext {
  const peerTrusted = isTrustedPeer(req, trusted)
  const target = req.url ?? '/'
  const q = target.indexOf('?')
  const ua = req.headers['user-agent']
  return {
    id: requestIdFor(req, peerTrusted),
    startNs: process.hrtime.bigint(),
    startMs: Date.now(),
    clientIp: clientAddress(req, trusted, peerTrusted),
    method: req.method ?? 'GET',
    target,
    path: q === -1 ? target : target.slice(0, q),
    query: q === -1 ? '' : target.slice(q + 1),
    userAgent: typeof ua === 'string' ? ua : '',
    websocket,
    route: 'other',
    authMethod: 'none',
    identity: ANONYMOUS,
    bytesIn: 0,
    bytesOut: 0,
  }
}
