/**
 * Requests refused before anything else reads them (RFC 9112): no `Host` on HTTP/1.1, several, a `Host`
 * that is no host, a transfer coding other than `chunked` alone (a body GitLab would get without its
 * coding), a framing header spelled with underscores (`Transfer_Encoding`, `Content_Length`: Node frames
 * without them, while Puma folds `_` to `-` and would frame by them), HTTP versions other than 1.x, and
 * methods GitLab does not serve (`TRACE` would echo the request, cookies included: cross-site tracing).
 * Their connection is closed after the answer. Pure; one pass over the raw headers.
 */
import type { IncomingMessage } from 'node:http'
import { HTTP_METHODS } from './methods.ts'

export interface FramingProblem {
  readonly status: 400 | 405 | 501 | 505
  readonly reason: string
}

/** reg-name or IPv4 (RFC 3986 §3.2.2), or an IPv6 literal, with an optional port. */
const HOST = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=%]+|\[[0-9A-Fa-f:.]+\])(?::(\d{0,5}))?$/

/** The headers that frame a request body, whose underscore spellings are refused. */
const FRAMING_HEADERS = new Set(['transfer-encoding', 'content-length'])

export function checkRequestFraming(req: Pick<IncomingMessage, 'method' | 'rawHeaders' | 'httpVersionMajor' | 'httpVersionMinor'>): FramingProblem | undefined {
  if (req.httpVersionMajor !== 1) return { status: 505, reason: 'http-version-unsupported' }
  if (!HTTP_METHODS.has(req.method ?? '')) return { status: 405, reason: 'method-not-allowed' }
  const raw = req.rawHeaders
  let host: string | undefined
  let hosts = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length === 4 && name.toLowerCase() === 'host') {
      hosts++
      host = raw[i + 1]
    } else if (name.length === 17 || name.length === 14) {
      const lower = name.toLowerCase()
      if (lower === 'transfer-encoding') {
        const codings = raw[i + 1]!.toLowerCase().split(',').map((c) => c.trim())
        // Not chunked last: the body's end cannot be found (RFC 9112 §6.3: 400). Chunked after another coding: 501.
        if (codings.at(-1) !== 'chunked') return { status: 400, reason: 'transfer-encoding-invalid' }
        if (codings.length > 1) return { status: 501, reason: 'transfer-coding-unsupported' }
      } else if (lower.includes('_') && FRAMING_HEADERS.has(lower.replaceAll('_', '-'))) {
        // GitLab (Puma) reads `Transfer_Encoding` as Transfer-Encoding and prefers it to the Content-Length
        // the body is framed by here: what follows its chunked end would be read as another request.
        return { status: 400, reason: 'framing-header-underscore' }
      }
    }
  }
  // HTTP/1.1 must send Host (RFC 9112 §3.2); HTTP/1.0 may not (health checks), and gets the public host.
  if (hosts === 0) return req.httpVersionMinor >= 1 ? { status: 400, reason: 'host-missing' } : undefined
  if (hosts > 1) return { status: 400, reason: 'host-duplicate' }
  const match = HOST.exec(host!)
  // A port is at most 65535 (RFC 6335 §6): `a:99999` names no port GitLab could be on.
  if (!match || Number(match[1] ?? 0) > 65535) return { status: 400, reason: 'host-invalid' }
  return undefined
}
