/**
 * Header hygiene between the client and GitLab. Runs on `req.headers` before `proxy.web()`:
 * http-proxy-3 copies `req.headers` wholesale and skips its `proxyReq` event for `Expect` requests,
 * so nothing here may be left to a `proxyReq` listener (SECURITY.md §4).
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { Identity } from '../auth/identity.ts'

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus ones a proxy must not pass on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'upgrade', 'expect', 'http2-settings'])

/**
 * Headers that carry identity or request provenance to GitLab: only the proxy sets them.
 * Compared after folding `_` to `-`, so `X_Forwarded_User` (read as `X-Forwarded-User` by Rack/Puma) goes too.
 */
const PROXY_OWNED = new Set([
  'x-forwarded-user', 'x-forwarded-email', 'x-forwarded-user-id', 'x-forwarded-groups', 'x-forwarded-preferred-username',
  'x-forwarded-access-token', 'x-iap-assertion', 'x-iap-authorization', 'x-auth-request-user', 'x-auth-request-email',
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-ssl', 'x-forwarded-prefix',
  'x-forwarded-uri', 'x-original-url', 'x-rewrite-url', 'x-real-ip', 'forwarded', 'x-request-id', 'x-client-ip',
])

/** Provenance headers a trusted proxy (ingress) may hand us; we extend rather than replace them. */
type TrustedProvenance = 'x-forwarded-for' | 'x-forwarded-proto' | 'x-forwarded-host'

/** Removes hop-by-hop headers (and those nominated in `Connection`) from a header object, in place. */
export function stripHopByHop(headers: IncomingHttpHeaders): void {
  const nominated = headers.connection
  if (typeof nominated === 'string') {
    for (const token of nominated.split(',')) {
      const name = token.trim().toLowerCase()
      if (name !== '' && name !== 'transfer-encoding') delete headers[name]
    }
  }
  // Only names that are present are deleted: a `delete` of an absent key is not free, and every
  // delete can turn the object into a slow dictionary that http-proxy-3 then copies.
  for (const name in headers) if (HOP_BY_HOP.has(name)) delete headers[name]
}

function normalizeName(name: string): string {
  return name.includes('_') ? name.replaceAll('_', '-') : name
}

export interface ForwardHeaderOptions {
  readonly requestId: string
  /** The socket peer is in `server.trustedProxies`. */
  readonly peerTrusted: boolean
  /** `https` when the main listener terminates TLS. */
  readonly scheme: 'http' | 'https'
  /** Keep `Connection: upgrade` + `Upgrade: websocket` (websocket handshakes only). */
  readonly websocket: boolean
}

/**
 * Strips hop-by-hop headers (and every header nominated in `Connection`), every proxy-owned header
 * (and its underscore variants), then sets X-Forwarded-For/-Proto/-Host and X-Request-Id.
 * Replaces `req.headers` with a fresh object holding only what may go on (copying is cheaper than
 * deleting in place, and leaves http-proxy-3 a fast object to copy again); returns it.
 */
export function sanitizeRequestHeaders(req: IncomingMessage, options: ForwardHeaderOptions): IncomingHttpHeaders {
  const given = req.headers
  let nominated: Set<string> | undefined
  const connection = given.connection
  if (typeof connection === 'string') {
    for (const token of connection.split(',')) {
      const name = token.trim().toLowerCase()
      if (name !== '') (nominated ??= new Set()).add(name)
    }
  }
  const headers: IncomingHttpHeaders = {}
  for (const name in given) {
    const normalized = normalizeName(name)
    if (HOP_BY_HOP.has(normalized) || PROXY_OWNED.has(normalized) || nominated?.has(name)) continue
    headers[name] = given[name]
  }
  const trusted = (name: TrustedProvenance): string | undefined => {
    const value = options.peerTrusted ? given[name] : undefined
    return typeof value === 'string' && value !== '' ? value : undefined
  }
  const peer = req.socket.remoteAddress ?? ''
  const peerAddress = peer.startsWith('::ffff:') ? peer.slice(7) : peer
  const forwardedFor = trusted('x-forwarded-for')
  headers['x-forwarded-for'] = forwardedFor ? `${forwardedFor}, ${peerAddress}` : peerAddress
  headers['x-forwarded-proto'] = trusted('x-forwarded-proto')?.split(',')[0]?.trim() || options.scheme
  const host = trusted('x-forwarded-host') ?? headers.host
  if (host) headers['x-forwarded-host'] = host
  headers['x-request-id'] = options.requestId
  if (options.websocket) {
    headers.connection = 'Upgrade'
    if (typeof given.upgrade === 'string') headers.upgrade = given.upgrade
  }
  req.headers = headers
  return headers
}

/** The SPEC's identity headers for GitLab; nothing for anonymous requests or app/CI identities without a user. */
export function setIdentityHeaders(headers: IncomingHttpHeaders, identity: Identity): void {
  if (identity.kind === 'anonymous') return
  if (identity.id) headers['x-forwarded-user-id'] = identity.id
  if (identity.kind === 'user' || identity.kind === 'ci') {
    if (identity.name) headers['x-forwarded-user'] = identity.name
    if (identity.email) headers['x-forwarded-email'] = identity.email
  }
  if (identity.groups.length > 0) headers['x-forwarded-groups'] = identity.groups.join(',')
}

/** Removes one cookie (the IAP's own session cookie) from the Cookie header, keeping GitLab's cookies. */
export function removeCookie(headers: IncomingHttpHeaders, cookieName: string): void {
  const cookie = headers.cookie
  if (typeof cookie !== 'string' || !cookie.includes(cookieName)) return
  const kept = cookie
    .split(';')
    .filter((pair) => pair.slice(0, pair.indexOf('=') === -1 ? undefined : pair.indexOf('=')).trim() !== cookieName)
    .join(';')
    .trim()
  if (kept === '') delete headers.cookie
  else headers.cookie = kept
}
