/**
 * Redaction for the access log: query parameters that carry secrets keep their name and lose their
 * value, whatever the name when the value has a token's shape; path segments that are secrets
 * themselves (GitLab invite tokens, reply keys) lose theirs.
 */

export const REDACTED = '[REDACTED]'

const SECRET_NAMES = new Set([
  'private_token', 'access_token', 'job_token', 'token', 'id_token', 'refresh_token', 'nonce',
  'client_secret', 'password', 'passwd', 'secret', 'key', 'api_key', 'apikey', 'signature', 'sig', 'session',
  'assertion', 'client_assertion', 'code_verifier', 'authenticity_token', 'feed_token', 'rss_token',
  'otp', 'x-amz-signature', 'x-amz-credential', 'x-amz-security-token', 'sudo',
  'jwt', 'id_token_hint', 'ticket', 'reset_password_token', 'confirmation_token', 'unlock_token',
])

/**
 * On OAuth/OIDC callback routes the authorization code and state are credentials too (GitLab uses
 * `state=opened` elsewhere), and so is the Entra session id a front-channel logout names (it ends sessions).
 */
const CALLBACK_NAMES = new Set(['code', 'state', 'session_state', 'sid'])
const CALLBACK_PATH = /^\/-\/iap\/|^\/oauth\/|^\/users\/auth\/|[/_]callbacks?$/

/** Names that look secret even when not listed: anything ending in token/secret/password/key/signature. */
const SECRET_SUFFIX = /(token|secret|password|passwd|_key|signature|credential)$/

function isSecretName(raw: string, callback: boolean): boolean {
  let name = raw
  if (name.includes('%') || name.includes('+')) {
    try {
      name = decodeURIComponent(name.replaceAll('+', ' '))
    } catch {
      return true // undecodable parameter names are treated as secret
    }
  }
  name = name.toLowerCase().replace(/\[\]$/, '')
  return SECRET_NAMES.has(name) || SECRET_SUFFIX.test(name) || (callback && CALLBACK_NAMES.has(name))
}

/**
 * Values that are credentials whatever their parameter is called: GitLab's prefixed tokens (personal,
 * project and group access, OAuth, deploy, runner, CI job, trigger, feed, incoming mail, agent, SCIM,
 * feature-flag and workspace tokens, and the legacy runner registration prefix) and JWTs (a JSON
 * header, base64url: `eyJ`, then two more dot-separated parts).
 */
const TOKEN_SHAPE = String.raw`(?:(?:glpat|gloas|gldt|glrt|glrtr|glcbt|glptt|glft|glimt|glagent|glsoat|glffct|glwt|gltst|glsat)-|GR1348941)[\w-]{8,}|eyJ[\w-]+\.[\w-]+\.`
const SECRET_VALUE = new RegExp(`^(?:${TOKEN_SHAPE})`)

/** `value` percent-decoded; undefined when its encoding is malformed. */
function percentDecoded(value: string): string | undefined {
  if (!value.includes('%')) return value
  try {
    return decodeURIComponent(value)
  } catch {
    return undefined
  }
}

function isSecretValue(raw: string): boolean {
  const value = percentDecoded(raw)
  return value !== undefined && SECRET_VALUE.test(value)
}

/**
 * `a=1&private_token=glpat-x;b` → `a=1&private_token=[REDACTED];b`; the rest stays byte-for-byte.
 * `;` separates parameters too: Rack 2 (GitLab's) reads it so, and a token after it authenticates.
 * A value that is itself a URL or a query (the sign-in's `rd=/feed.atom?feed_token=…`, a
 * `redirect_to`) has its own query redacted, and is then logged percent-encoded.
 */
export function redactQuery(query: string, path = ''): string {
  return redactParameters(query, CALLBACK_PATH.test(path), 0)
}

/** Nested URLs are followed this deep (a return target inside a return target). */
const MAX_NESTING = 3
/** A value that may hold a query of its own: `?` or `=`, plain or percent-encoded. */
const NESTED_HINT = /[?=]|%3[fd]/i

function redactParameters(query: string, callback: boolean, depth: number): string {
  if (query === '') return query
  const parts = query.split(/([&;])/) // separators kept at the odd indexes
  let changed = false
  for (let i = 0; i < parts.length; i += 2) {
    const part = parts[i]!
    const eq = part.indexOf('=')
    const name = eq === -1 ? part : part.slice(0, eq)
    if (eq === -1) {
      // A bare value (`?glpat-…`) is redacted whole.
      if (isSecretValue(part)) {
        parts[i] = REDACTED
        changed = true
      }
    } else if (isSecretName(name, callback) || isSecretValue(part.slice(eq + 1))) {
      parts[i] = `${name}=${REDACTED}`
      changed = true
    } else {
      const nested = redactNested(part.slice(eq + 1), depth)
      if (nested !== undefined) {
        parts[i] = `${name}=${nested}`
        changed = true
      }
    }
  }
  return changed ? parts.join('') : query
}

/** The value with its own query redacted (percent-encoded), or undefined when it holds no secret. */
function redactNested(value: string, depth: number): string | undefined {
  if (depth >= MAX_NESTING || !NESTED_HINT.test(value)) return undefined
  const decoded = percentDecoded(value)
  if (decoded === undefined) return undefined
  // `/path?query#fragment`, or a bare query (`a=1&token=…`).
  const hash = decoded.indexOf('#')
  const url = hash === -1 ? decoded : decoded.slice(0, hash)
  const q = url.indexOf('?')
  const nestedPath = q === -1 ? '' : url.slice(0, q)
  const nestedQuery = q === -1 ? url : url.slice(q + 1)
  if (!nestedQuery.includes('=') && q === -1) return undefined
  const redacted = redactParameters(nestedQuery, CALLBACK_PATH.test(nestedPath), depth + 1)
  if (redacted === nestedQuery) return undefined
  return encodeURIComponent(q === -1 ? redacted : `${nestedPath}?${redacted}`)
}

/**
 * GitLab routes whose first variable segment is a secret: `/-/invites/<token>`, and the reply key of
 * `/-/sent_notifications/<key>/unsubscribe` (`/sent_notifications/...` before GitLab moved it under `/-/`).
 */
const SECRET_SEGMENT = /^(\/-\/invites\/|\/(?:-\/)?sent_notifications\/)[^/]+/
/** A segment with a token's shape, wherever it is in the path (a token pasted into a URL is still a token). */
const TOKEN_SEGMENT = new RegExp(`(?<=^|/)(?:${TOKEN_SHAPE})[^/]*`, 'g')
/** Cheap test before either replacement: most paths have neither. */
const SECRET_PATH_HINT = /^\/(?:-\/)?(?:invites|sent_notifications)\/|(?:^|\/)(?:gl[a-z]{2,6}-|GR1348941|eyJ)/

/** `/-/invites/abc123/accept` → `/-/invites/[REDACTED]/accept`, `/x/glpat-…` → `/x/[REDACTED]`; every other path as it is. */
export function redactPath(path: string): string {
  if (!SECRET_PATH_HINT.test(path)) return path
  return path.replace(SECRET_SEGMENT, `$1${REDACTED}`).replace(TOKEN_SEGMENT, REDACTED)
}

/**
 * A project or group path as attributed, redacted as its URL path would be: token-shaped segments
 * (`group/glpat-…/-` pasted into a URL), and the secrets of the routes above (a group may now be named
 * `sent_notifications`, so `/sent_notifications/<key>/unsubscribe` is attributed to a project).
 */
export function redactProject(project: string): string {
  return redactPath(`/${project}`).slice(1)
}
