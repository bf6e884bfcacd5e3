/**
 * Responses the proxy writes itself (never forwarded): small HTML or JSON bodies chosen by `Accept`
 * (plain text for git itself, which shows nothing else to its user), always carrying the request id,
 * never the policy text, a token or a cookie.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { matchOf, parseAccept, qualityOf } from './accept.ts'
import { oneLine } from './one-line.ts'

export interface StatusPage {
  readonly status: number
  readonly title: string
  readonly message: string
  readonly requestId: string
  /** Name of the rule that decided (403 pages). */
  readonly rule?: string | null
  /** Stable reason (401/403/503), shown to help users and support staff. */
  readonly reason?: string
  /**
   * A browser session's user, on an HTML page: who is signed in, with a way out to sign in as someone
   * else (the usual cause of a 403 in a browser is the wrong account).
   */
  readonly signedInAs?: string
  /** On an HTML page, the link the user follows next (under the message): home, or a sign-in again. */
  readonly next?: { readonly href: string; readonly text: string }
}

/** The status pages' one inline style; other proxy pages build on it (src/iap/pages.ts). */
export const STATUS_PAGE_CSS = 'body{font:16px system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}code{background:#f3f3f3;padding:0 .25rem}'

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  408: 'Request Timeout', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout', 505: 'HTTP Version Not Supported',
}

export function statusText(status: number): string {
  return STATUS_TEXT[status] ?? 'Error'
}

/** `Sec-Fetch-Dest` of a navigation: a page, top-level or framed. */
const NAVIGATION_DESTINATIONS = new Set(['document', 'iframe', 'frame'])

/**
 * False for an image, a script, a style sheet, a fetch: `Sec-Fetch-Dest` names something other than a
 * page. Clients that send no `Sec-Fetch-Dest` (older browsers, git, curl, Node's fetch) pass.
 */
export function isNavigationDestination(req: Pick<IncomingMessage, 'headers'>): boolean {
  const dest = req.headers['sec-fetch-dest']
  return dest === undefined || NAVIGATION_DESTINATIONS.has(dest)
}

/**
 * True for a browser navigation: GET/HEAD whose `Accept` names `text/html` itself with a non-zero
 * weight (docs/sign-in.md; the full wildcard is every script's default, not a browser's sign), and
 * whose `Sec-Fetch-Dest`, when sent, is a page: a script's fetch of an HTML fragment gets its 401.
 */
export function isBrowserNavigation(req: IncomingMessage): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false
  if (!isNavigationDestination(req)) return false
  const accept = req.headers.accept
  // Cheap exit for the requests that never name HTML (API clients, git).
  if (typeof accept !== 'string' || !/text\/html/i.test(accept)) return false
  return qualityOf(parseAccept(accept), 'text', 'html', true) > 0
}

/**
 * JSON unless `Accept` weighs HTML above JSON. On a tie the more specific range wins (RFC 9110
 * §12.5.1): `text/html` named beside the full wildcard, which is all that reaches JSON, is a browser's
 * HTML. An equally specific tie (no header, only the full wildcard, both named) stays JSON.
 */
export function prefersJson(req: Pick<IncomingMessage, 'headers'>): boolean {
  const accept = req.headers.accept
  // Only `text/html`, `text/*` or the full wildcard can give HTML any weight.
  if (typeof accept !== 'string' || !/html|\*/i.test(accept)) return true
  const ranges = parseAccept(accept)
  const html = matchOf(ranges, 'text', 'html')
  const json = matchOf(ranges, 'application', 'json')
  if (html.q !== json.q) return html.q < json.q
  return html.q === 0 || html.specificity <= json.specificity
}

/**
 * git itself (`git/2.45.1`; libgit2 also says `git/2.0 (libgit2 ...)`): it shows its user an error body only
 * when that is `text/plain`, each line as `remote: ...`, and otherwise just the status. Not git-lfs
 * (`git-lfs/3.4.1 ...`), which reads the JSON `message`.
 */
export function isGitClient(req: Pick<IncomingMessage, 'headers'>): boolean {
  const agent = req.headers['user-agent']
  return typeof agent === 'string' && agent.startsWith('git/')
}

export type StatusPageFormat = 'json' | 'html' | 'text'

/** Plain text for git itself, else JSON or HTML by `Accept` (`prefersJson`). */
export function statusPageFormat(req: Pick<IncomingMessage, 'headers'>): StatusPageFormat {
  if (isGitClient(req)) return 'text'
  return prefersJson(req) ? 'json' : 'html'
}

/** The challenge reasons of a request that carried no credential at all (the others: one was refused). */
const NO_CREDENTIAL = new Set(['credentials-missing', 'login-required'])

/**
 * The plain-text page for git: one fact a line, each line `gitlab-iap: ...` (git prints them as
 * `remote: gitlab-iap: ...`). What the JSON page says, no more: the rule and reason, the message, the
 * request id; a 401 adds how a token is sent, never the token.
 */
function renderTextPage(page: StatusPage): string {
  const id = `request id ${oneLine(page.requestId)}`
  const reason = page.reason ? ` (${oneLine(page.reason)})` : ''
  let lines: string[]
  if (page.status === 403) {
    const rule = page.rule !== undefined && page.rule !== null ? ` by rule "${oneLine(page.rule)}"` : ''
    lines = [`access denied${rule}${reason}; ${id}`]
  } else if (page.status === 401) {
    const what = page.reason && !NO_CREDENTIAL.has(page.reason) ? 'authentication failed' : 'sign-in required'
    lines = [
      `${what}${reason}: ${oneLine(page.message)}`,
      'send a gitlab-iap access token from your identity provider as "X-IAP-Authorization: Bearer <token>" (git config http.extraHeader) or as the user name in the repository URL',
      id,
    ]
  } else {
    lines = [`${oneLine(page.message)}${reason}; ${id}`]
  }
  return lines.map((line) => `gitlab-iap: ${line}\n`).join('')
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!)
}

export function renderStatusPage(page: StatusPage, format: StatusPageFormat): { body: string; contentType: string } {
  if (format === 'text') return { body: renderTextPage(page), contentType: 'text/plain; charset=utf-8' }
  if (format === 'json') {
    const body: Record<string, unknown> = { error: statusText(page.status), message: page.message, requestId: page.requestId }
    if (page.rule !== undefined && page.rule !== null) body.rule = page.rule
    if (page.reason) body.reason = page.reason
    return { body: JSON.stringify(body) + '\n', contentType: 'application/json; charset=utf-8' }
  }
  const rows = [
    page.next ? `<p><a href="${escapeHtml(page.next.href)}">${escapeHtml(page.next.text)}</a></p>` : '',
    page.rule ? `<p>Rule: <code>${escapeHtml(page.rule)}</code></p>` : '',
    page.reason ? `<p>Reason: <code>${escapeHtml(page.reason)}</code></p>` : '',
    `<p>Request id: <code>${escapeHtml(page.requestId)}</code></p>`,
    page.signedInAs ? `<p>Signed in as <strong>${escapeHtml(page.signedInAs)}</strong>. <a href="/-/iap/logout">Sign out</a> to use another account.</p>` : '',
  ].join('')
  const body =
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">` +
    `<title>${page.status} ${escapeHtml(page.title)}</title>` +
    `<style>${STATUS_PAGE_CSS}</style>` +
    `</head><body><h1>${escapeHtml(page.title)}</h1><p>${escapeHtml(page.message)}</p>${rows}</body></html>\n`
  return { body, contentType: 'text/html; charset=utf-8' }
}

/** Writes a status page unless headers were already sent (then the response is cut). */
export function sendStatusPage(req: IncomingMessage, res: ServerResponse, page: StatusPage, headers: Record<string, string | string[]> = {}): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const { body, contentType } = renderStatusPage(page, statusPageFormat(req))
  res.writeHead(page.status, {
    ...headers,
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-request-id': page.requestId,
  })
  res.end(req.method === 'HEAD' ? undefined : body)
}

/** `WWW-Authenticate` values for a 401: Bearer always, Basic too on git/LFS routes so git asks its credential helper. */
export function wwwAuthenticate(reason: string | undefined, description: string | undefined, basic: boolean): string[] {
  // Inside a quoted-string: `"` and `\` become `'` (the sentence stays legible), CR/LF a space.
  const quoted = (text: string) => text.replace(/["\\]/g, "'").replace(/[\r\n]/g, ' ')
  const bearer = reason && reason !== 'credentials-missing'
    ? `Bearer realm="gitlab-iap", error="invalid_token", error_description="${quoted(description ?? reason)}"`
    : 'Bearer realm="gitlab-iap"'
  return basic ? [bearer, 'Basic realm="gitlab-iap"'] : [bearer]
}

export function sendRedirect(res: ServerResponse, location: string, requestId: string, headers: Record<string, string | string[]> = {}): void {
  res.writeHead(302, { ...headers, location, 'cache-control': 'no-store', 'content-length': 0, 'x-request-id': requestId })
  res.end()
}

/** What a refused handshake's body names besides the status: like a status page's JSON, never policy text. */
export interface SocketRefusal {
  /** Name of the rule that decided (403). */
  readonly rule?: string | null
  /** Stable reason. */
  readonly reason?: string
}

/** Answers on a raw socket (websocket handshakes that are refused) and ends it. */
export function writeSocketResponse(socket: Duplex, status: number, requestId: string, extraHeaders: string[] = [], refusal: SocketRefusal = {}): void {
  if (socket.destroyed) return
  const json: Record<string, unknown> = { error: statusText(status), requestId }
  if (refusal.rule !== undefined && refusal.rule !== null) json.rule = refusal.rule
  if (refusal.reason) json.reason = refusal.reason
  const body = JSON.stringify(json) + '\n'
  socket.end(
    `HTTP/1.1 ${status} ${statusText(status)}\r\n` +
      `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `x-request-id: ${requestId}\r\ncache-control: no-store\r\nconnection: close\r\n` +
      extraHeaders.map((h) => `${h}\r\n`).join('') +
      `\r\n${body}`,
  )
}
