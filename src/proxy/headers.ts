/**
 * Header hygiene between the client and GitLab. Runs on `req.headers` before they are forwarded:
 * what `sanitizeRequestHeaders` leaves is exactly what GitLab gets (the forwarders copy headers as they are), the websocket
 * path through http-proxy-3 included.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { qualifiedValue, type Identity } from '../auth/identity.ts'

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus ones a proxy must not pass on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'upgrade', 'expect', 'http2-settings'])

/**
 * End-to-end headers no `Connection` header can nominate as hop-by-hop (RFC 9110 §7.6.1: a connection option
 * never names a field meant for every recipient): the `Host` GitLab routes and checks by (dropped, it would
 * get the upstream's own address and no X-Forwarded-Host), the body's framing (dropped, the body would be
 * lost) and its labels. Kept whatever `Connection` says, both ways.
 */
const NEVER_NOMINATED = new Set(['host', 'content-length', 'transfer-encoding', 'content-type', 'content-encoding', 'content-language', 'content-location', 'content-range', 'cache-control'])

/**
 * Headers that carry identity or request provenance to GitLab: only the proxy sets them.
 * Compared after folding `_` to `-`, so `X_Forwarded_User` (read as `X-Forwarded-User` by Rack/Puma) goes too.
 */
const PROXY_OWNED = new Set([
  'x-forwarded-user', 'x-forwarded-email', 'x-forwarded-user-id', 'x-forwarded-groups', 'x-forwarded-preferred-username',
  'x-forwarded-access-token', 'x-iap-assertion', 'x-iap-authorization', 'x-auth-request-user', 'x-auth-request-email',
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-ssl', 'x-forwarded-prefix',
  'x-forwarded-uri', 'x-original-url', 'x-rewrite-url', 'x-real-ip', 'forwarded', 'x-request-id', 'x-client-ip',
  // Read by Rails and Rack behind the proxy: the client address (RemoteIp reads Client-IP), the scheme,
  // the host, and the method (Rack::MethodOverride turns a POST into a DELETE past a `methods:` rule).
  'client-ip', 'true-client-ip', 'x-cluster-client-ip', 'x-original-forwarded-for', 'x-forwarded-scheme',
  'x-forwarded-server', 'x-original-host', 'x-host', 'x-http-method-override', 'x-http-method', 'x-method-override',
  // Identity headers of other identity-aware proxies (oauth2-proxy, Authelia, web servers' REMOTE_USER):
  // something behind GitLab may trust them, and here no one but a client could have set them.
  'x-auth-request-preferred-username', 'x-auth-request-groups', 'x-auth-request-access-token', 'remote-user', 'remote-email',
  'remote-groups', 'remote-name', 'x-remote-user', 'x-webauth-user',
])

/** Provenance headers a trusted proxy (ingress) may hand us; we extend rather than replace them. */
type TrustedProvenance = 'x-forwarded-for' | 'x-forwarded-proto' | 'x-forwarded-host'

/**
 * GitLab's response headers as the client gets them: a copy without hop-by-hop headers (and those
 * nominated in `Connection`) or `Transfer-Encoding` (Node frames the response to the client itself),
 * with `Connection` set for the client's hop. A copy, not deletes in place (see `sanitizeRequestHeaders`).
 */
export function forwardableResponseHeaders(given: IncomingHttpHeaders, connection: 'keep-alive' | 'close', ownCookie?: (name: string) => boolean): IncomingHttpHeaders {
  const nominated = nominatedHeaders(given.connection)
  const headers: IncomingHttpHeaders = {}
  for (const name in given) {
    if (HOP_BY_HOP.has(name) || name === 'transfer-encoding' || nominated?.has(name)) continue
    if (name === 'set-cookie' && ownCookie) {
      // GitLab (or anything behind it) must not set or clear the proxy's own cookies in the browser.
      // A nameless cookie (`=gitlab-iap=x`) is sent back by browsers as its value alone: dropped too.
      const kept = given['set-cookie']!.filter((cookie) => {
        const name = cookieName(cookie)
        return name !== '' && !ownCookie(name)
      })
      if (kept.length > 0) headers['set-cookie'] = kept
      continue
    }
    headers[name] = given[name]
  }
  headers.connection = connection
  return headers
}

/** The name in `name=value` (a Cookie pair, or a `Set-Cookie` value with its attributes after it). */
function cookieName(pair: string): string {
  const eq = pair.indexOf('=')
  return (eq === -1 ? pair : pair.slice(0, eq)).trim()
}

/**
 * Header names `Connection` nominates as hop-by-hop; `undefined` for the usual bare `keep-alive` / `close`.
 * Repeated `Connection` headers (GitLab's response heads keep each one) count together. End-to-end
 * headers (`NEVER_NOMINATED`) are never among them.
 */
function nominatedHeaders(connection: string | string[] | undefined): Set<string> | undefined {
  if (connection === undefined || connection === 'keep-alive' || connection === 'close') return undefined
  let names: Set<string> | undefined
  for (const token of (Array.isArray(connection) ? connection.join(',') : connection).split(',')) {
    const name = token.trim().toLowerCase()
    if (name !== '' && !NEVER_NOMINATED.has(name)) (names ??= new Set()).add(name)
  }
  return names
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
  /** `Authorization` for GitLab: absent keeps the client's, `null` drops it (a credential only the proxy needed). */
  readonly authorization?: string | null
  /** Rewrites the `Cookie` header (removing the proxy's own cookies); `undefined` from it drops the header. */
  readonly cookie?: (header: string) => string | undefined
}

/**
 * Strips hop-by-hop headers (and every header nominated in `Connection`), every proxy-owned header
 * (and its underscore variants), then sets X-Forwarded-For/-Proto/-Host and X-Request-Id.
 * Replaces `req.headers` with a fresh object holding only what may go on; returns it. Nothing is
 * ever deleted from it: one `delete` turns a V8 object into a dictionary, and a dictionary costs
 * about 1.7 µs more per request each time the upstream client then walks it.
 */
export function sanitizeRequestHeaders(req: IncomingMessage, options: ForwardHeaderOptions): IncomingHttpHeaders {
  const given = req.headers
  const nominated = nominatedHeaders(given.connection)
  const headers: IncomingHttpHeaders = {}
  for (const name in given) {
    const normalized = normalizeName(name)
    // Transfer-Encoding: the upstream client frames the request body itself. Underscore spellings of the
    // framing headers were refused before (checkRequestFraming); none goes on should one get here.
    if (HOP_BY_HOP.has(normalized) || PROXY_OWNED.has(normalized) || nominated?.has(name) || normalized === 'transfer-encoding') continue
    if (normalized === 'content-length' && name !== normalized) continue
    if (name === 'authorization' && options.authorization !== undefined) continue
    if (name === 'cookie' && options.cookie) {
      const kept = options.cookie(given.cookie!)
      if (kept !== undefined) headers.cookie = kept
      continue
    }
    headers[name] = given[name]
  }
  if (options.authorization) headers.authorization = options.authorization
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

const NON_ASCII = /[^\u0000-\u007f]/
const GROUP_DELIMITERS = /[%,]/

/**
 * A header value that carries `value` as its UTF-8 bytes: undici and node:http write a header string
 * as latin1, one byte per character, so a non-ASCII value is handed over as the latin1 string of its
 * UTF-8 bytes (what Go and nginx proxies send; Rack reads the bytes). Control characters never get
 * here: credentials carrying them are refused (`identityValuesClean`).
 */
export function utf8HeaderValue(value: string): string {
  return NON_ASCII.test(value) ? Buffer.from(value, 'utf8').toString('latin1') : value
}

/** `X-Forwarded-Groups`: comma-separated, each group's `%` and `,` percent-encoded so no value splits in two. */
export function groupsHeaderValue(groups: readonly string[]): string {
  // Entra object ids and GitLab paths never contain either: the common case is a plain join.
  if (!groups.some((group) => GROUP_DELIMITERS.test(group))) return groups.join(',')
  return groups.map((group) => group.replaceAll('%', '%25').replaceAll(',', '%2C')).join(',')
}

/**
 * The identity headers for GitLab (docs/bearer.md); nothing for anonymous requests or app/CI identities without
 * a user. An extra issuer's id and name go out qualified (`gitlab-ci:alice`), as its groups do.
 */
export function setIdentityHeaders(headers: IncomingHttpHeaders, identity: Identity): void {
  if (identity.kind === 'anonymous') return
  if (identity.id) headers['x-forwarded-user-id'] = utf8HeaderValue(qualifiedValue(identity, identity.id))
  if (identity.kind === 'user' || identity.kind === 'ci') {
    if (identity.name) headers['x-forwarded-user'] = utf8HeaderValue(qualifiedValue(identity, identity.name))
    if (identity.email) headers['x-forwarded-email'] = utf8HeaderValue(identity.email)
  }
  if (identity.groups.length > 0) headers['x-forwarded-groups'] = utf8HeaderValue(groupsHeaderValue(identity.groups))
}

/**
 * A Cookie header without the cookies `drop` names (the IAP's own), GitLab's kept; `undefined` when none is
 * left. A pair is also read split at commas (`a=1, iap=…`), as Rack 2 reads it: no client sends that, but
 * whoever does must not hand GitLab the proxy's session cookie.
 */
export function withoutCookies(header: string, drop: (name: string) => boolean): string | undefined {
  const kept = header
    .split(';')
    .map((pair) => (pair.includes(',') ? pair.split(',').filter((part) => !drop(cookieName(part))).join(',') : pair))
    .filter((pair) => pair.trim() !== '' && !drop(cookieName(pair)))
    .join(';')
    .trim()
  return kept === '' ? undefined : kept
}
