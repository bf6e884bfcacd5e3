/**
 * The admin listener: `/healthz` (process alive), `/readyz` (config loaded, keys fetched, stores
 * reachable), `/metrics` (Prometheus text) and `POST /admin/revoke`. Never on the main listener.
 */
import { timingSafeEqual, createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RevokeResult } from '../auth/revocations.ts'
import { isIapError } from '../errors.ts'
import type { Metrics } from '../metrics/registry.ts'

export interface ReadinessCheck {
  /** Short name shown in /readyz details. */
  readonly name: string
  check(): { ready: boolean; detail?: Record<string, unknown> }
}

export interface AdminDeps {
  readonly metrics: Metrics
  readonly token?: string
  readonly checks: readonly ReadinessCheck[]
  /**
   * Ends a user's sessions everywhere and revokes their bearer tokens issued before now. Rejects
   * with `IAP_ERR_SESSION_STORE_UNAVAILABLE` when that could not be completed; it is idempotent.
   */
  readonly revoke?: (user: string) => Promise<RevokeResult>
  /** False once shutdown began: readiness fails so the load balancer drains us. */
  readonly accepting: () => boolean
  /** A refused `/admin/revoke` (token missing or wrong): someone is probing the admin API. */
  readonly onAuthFailure?: (reason: 'admin-token-missing' | 'admin-token-invalid', req: IncomingMessage) => void
}

/** The admin paths and the methods each answers; any other method gets 405 with `Allow`. */
const METHODS: ReadonlyMap<string, readonly string[]> = new Map([
  ['/healthz', ['GET', 'HEAD']],
  ['/readyz', ['GET', 'HEAD']],
  ['/metrics', ['GET', 'HEAD']],
  ['/admin/revoke', ['POST']],
])

const MAX_BODY = 4096
/** Seconds a caller of `/admin/revoke` waits before retrying while the session store is down. */
const REVOKE_RETRY_AFTER_SECONDS = 5

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body) + '\n'
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}

/**
 * HTTP's whitespace only (SP, HTAB) and the line ends a file adds. Not `String#trim`: it also strips
 * U+00A0, which a raw 0xA0 byte in a header decodes to, and so made `Bearer \xa0` match a blank token.
 */
function asciiTrim(text: string): string {
  // A loop, not a regex: `[ \t]+$` backtracks quadratically over a long run of inner spaces.
  const blank = (i: number) => text[i] === ' ' || text[i] === '\t' || text[i] === '\r' || text[i] === '\n'
  let start = 0
  let end = text.length
  while (start < end && blank(start)) start++
  while (end > start && blank(end - 1)) end--
  return text.slice(start, end)
}

/** The configured admin token as compared; `undefined` (admin API disabled) when it is blank. */
function adminToken(token: string | undefined): string | undefined {
  const trimmed = token === undefined ? '' : asciiTrim(token)
  return trimmed === '' ? undefined : trimmed
}

/** Constant-time comparison of the presented bearer token with the configured one. */
function hasAdminToken(req: IncomingMessage, token: string): 'ok' | 'admin-token-missing' | 'admin-token-invalid' {
  const header = req.headers.authorization
  if (typeof header !== 'string' || !/^Bearer /i.test(header)) return 'admin-token-missing'
  const digest = (text: string) => createHash('sha256').update(text).digest()
  // Both sides trimmed: a token read from a file (`kubectl create secret --from-file`) often ends in a newline no header can carry.
  return timingSafeEqual(digest(asciiTrim(header.slice(7))), digest(token)) ? 'ok' : 'admin-token-invalid'
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_BODY) {
        // Answered 413 by the caller; the rest of the body is not read (the connection closes after the answer).
        req.removeAllListeners('data')
        req.pause()
        reject(Object.assign(new Error('body too large'), { code: 'IAP_BODY_TOO_LARGE' }))
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

export function createAdminHandler(deps: AdminDeps) {
  const token = adminToken(deps.token)
  return async function handleAdmin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!
    try {
      const methods = METHODS.get(path)
      if (!methods) return sendJson(res, 404, { error: 'not found' })
      if (!methods.includes(req.method ?? '')) return sendJson(res, 405, { error: 'method not allowed' }, { allow: methods.join(', ') })
      if (path === '/healthz') return sendJson(res, 200, { status: 'ok' })
      if (path === '/readyz') {
        const details: Record<string, unknown> = {}
        let ready = deps.accepting()
        if (!ready) details.shutdown = { ready: false }
        for (const check of deps.checks) {
          const result = check.check()
          details[check.name] = { ready: result.ready, ...result.detail }
          if (!result.ready) ready = false
        }
        return sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not-ready', checks: details })
      }
      if (path === '/metrics') {
        const text = await deps.metrics.render()
        res.writeHead(200, { 'content-type': deps.metrics.contentType, 'cache-control': 'no-store' })
        res.end(text)
        return
      }
      if (path === '/admin/revoke') {
        const presented = token === undefined ? undefined : hasAdminToken(req, token)
        if (presented !== 'ok') {
          if (presented !== undefined) deps.onAuthFailure?.(presented, req)
          res.setHeader('www-authenticate', 'Bearer realm="gitlab-iap-admin"')
          return sendJson(res, 401, { error: token ? 'invalid admin token' : 'admin API disabled: set admin.token' })
        }
        if (!deps.revoke) return sendJson(res, 501, { error: 'revocation is not available' })
        let user: unknown
        try {
          user = (JSON.parse(await readBody(req)) as { user?: unknown }).user
        } catch (err) {
          if ((err as { code?: string }).code === 'IAP_BODY_TOO_LARGE') {
            res.shouldKeepAlive = false
            return sendJson(res, 413, { error: `body over ${MAX_BODY} bytes` })
          }
          return sendJson(res, 400, { error: 'body must be JSON {"user": "<oid|upn>"}' })
        }
        if (typeof user !== 'string' || user.length === 0 || user.length > 256) return sendJson(res, 400, { error: 'body must be JSON {"user": "<oid|upn>"}' })
        let result: RevokeResult
        try {
          result = await deps.revoke(user)
        } catch (err) {
          if (!isIapError(err, 'IAP_ERR_SESSION_STORE_UNAVAILABLE')) throw err
          // Partly done at most (this replica refuses the user's older tokens); never report success.
          return sendJson(
            res,
            503,
            {
              error: `the session store is unavailable, so the revocation of ${JSON.stringify(user)} may not have reached every replica and session; retry the same request (it is safe to repeat) until it answers 200`,
              code: err.code,
            },
            { 'retry-after': String(REVOKE_RETRY_AFTER_SECONDS) },
          )
        }
        return sendJson(res, 200, { revoked: user, revokedAt: new Date(result.at).toISOString(), sessionsEnded: result.sessionsEnded, shared: result.shared })
      }
      sendJson(res, 404, { error: 'not found' })
    } catch (err) {
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error', code: (err as { code?: string }).code })
      else res.destroy()
    }
  }
}
