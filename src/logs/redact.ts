/**
 * Redaction for the access log: query parameters that carry secrets keep their name and lose their
 * value, whatever the name when the value holds a credential (a token's shape, an `Authorization`
 * header's credentials, a URL with a user in it); path segments that are secrets themselves (GitLab
 * invite tokens, reply keys) lose theirs.
 */

export const REDACTED = '[REDACTED]'

const SECRET_NAMES = new Set([
  'private_token', 'access_token', 'job_token', 'token', 'id_token', 'refresh_token', 'nonce',
  'client_secret', 'password', 'passwd', 'secret', 'key', 'api_key', 'apikey', 'signature', 'sig', 'session',
  'assertion', 'client_assertion', 'code_verifier', 'authenticity_token', 'feed_token', 'rss_token',
  'otp', 'x-amz-signature', 'x-amz-credential', 'x-amz-security-token', 'sudo',
  'jwt', 'id_token_hint', 'ticket', 'reset_password_token', 'confirmation_token', 'unlock_token',
  'authorization', 'user_code', 'device_code', 'oauth_verifier',
])

/**
 * On OAuth/OIDC callback routes (the Web IDE's `/-/ide/oauth_redirect` among them) the authorization
 * code and state are credentials too (GitLab uses `state=opened` elsewhere), and so is the Entra
 * session id a front-channel logout names (it ends sessions). Elsewhere, a `code` beside a `state` is
 * an OAuth reply all the same, and loses its value; `state` keeps its own.
 */
const CALLBACK_NAMES = new Set(['code', 'state', 'session_state', 'sid'])
const CALLBACK_PATH = /^\/-\/iap\/|^\/oauth\/|^\/users\/auth\/|^\/-\/ide\/oauth_redirect$|[/_]callbacks?$/

/** Names that look secret even when not listed: anything ending in token/secret/password/key/signature. */
const SECRET_SUFFIX = /(token|secret|password|passwd|_key|signature|credential)$/

/** What a parameter's name reads as (`Private%5FToken[]` → `private_token`); undefined when undecodable. */
function parameterName(raw: string): string | undefined {
  let name = raw
  if (name.includes('%') || name.includes('+')) {
    try {
      name = decodeURIComponent(name.replaceAll('+', ' '))
    } catch {
      return undefined
    }
  }
  return name.toLowerCase().replace(/\[\]$/, '')
}

/** How a query's parameter names are read: on a callback route, or beside a `state` (an OAuth reply). */
interface NameContext { callback: boolean, oauthReply: boolean }

function isSecretName(raw: string, context: NameContext): boolean {
  const name = parameterName(raw)
  if (name === undefined) return true // undecodable parameter names are treated as secret
  return SECRET_NAMES.has(name) || SECRET_SUFFIX.test(name) || (context.callback && CALLBACK_NAMES.has(name))
    || (context.oauthReply && name === 'code')
}

/**
 * Values that are credentials whatever their parameter is called: GitLab's prefixed tokens (personal,
 * project and group access, OAuth, deploy, runner, CI job, trigger, feed, incoming mail, agent, SCIM,
 * feature-flag and workspace tokens, and the legacy runner registration prefix) and JWTs (a JSON
 * header, base64url: `eyJ`, then two more dot-separated parts).
 */
const TOKEN_SHAPE = String.raw`(?:(?:glpat|gloas|gldt|glrt|glrtr|glcbt|glptt|glft|glimt|glagent|glsoat|glffct|glwt|gltst|glsat)-|GR1348941)[\w-]{8,}|eyJ[\w-]+\.[\w-]+\.`
/**
 * An `Authorization` header's credentials pasted into a value: `Bearer`, `Basic` or `token`, then a
 * token68 of 8 characters or more that is not a plain word (`token rotation`, `basic Authentication`
 * are searches, `Basic dXNlcjpwYXNz` is not).
 */
const HEADER_CREDENTIAL = String.raw`(?:[Bb]earer|BEARER|[Bb]asic|BASIC|[Tt]oken|TOKEN)\s+(?=[\w.~+/=-]{8})(?![A-Za-z][a-z]*(?![\w.~+/=-]))`
/**
 * A credential anywhere in a value, where a token can start: at the value's start or after a character
 * no token holds (`token glpat-…`, `oauth2:glpat-…`), never inside a run of token characters — so
 * `release-glrt-rotation` stays, and each run is tried from its start only, which keeps the search
 * linear in the value's length.
 */
const SECRET_VALUE = new RegExp(`(?<![\\w-])(?:${TOKEN_SHAPE}|${HEADER_CREDENTIAL})`)
/**
 * A URL with a user in it (`https://user:password@host`, `https://<token>@host`): the authority,
 * up to its last `@` as URL parsers read it, holds the credential. The whole value goes, not just the
 * userinfo: parsers disagree on where a malformed userinfo ends, and a cut in the wrong place leaks half.
 */
const URL_WITH_USER = /:\/\/[^/?#\\]*@/

/** Times a value is decoded to be tested: a value encoded inside a return target inside a return target. */
const MAX_DECODINGS = 3

/**
 * `value` form-decoded as Rack reads it (`+` is a space), each `%XX` as its byte in Latin-1: never
 * fails on malformed or non-UTF-8 encoding, and decodes every ASCII character a credential is made of.
 */
function formDecoded(value: string): string {
  return value.replaceAll('+', ' ').replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
}

/** `value` percent-decoded; undefined when its encoding is malformed. */
function percentDecoded(value: string): string | undefined {
  if (!value.includes('%')) return value
  try {
    return decodeURIComponent(value)
  } catch {
    return undefined
  }
}

/**
 * Whether the value holds a credential (a token's shape, header credentials, a URL's user) as
 * received or once it is decoded, up to three times.
 */
function isSecretValue(raw: string): boolean {
  for (let value = raw, decodings = 0; ; decodings++) {
    if (SECRET_VALUE.test(value) || URL_WITH_USER.test(value)) return true
    if (decodings === MAX_DECODINGS || !/[%+]/.test(value)) return false
    value = formDecoded(value)
  }
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

/** Whether one of the parameters is named `state`: a `code` beside it is an OAuth reply. */
function hasState(parts: string[]): boolean {
  for (let i = 0; i < parts.length; i += 2) {
    const part = parts[i]!
    const eq = part.indexOf('=')
    if (parameterName(eq === -1 ? part : part.slice(0, eq)) === 'state') return true
  }
  return false
}

/** Nested URLs are followed this deep (a return target inside a return target). */
const MAX_NESTING = 3
/** A value that may hold a query of its own: `?` or `=`, plain or percent-encoded. */
const NESTED_HINT = /[?=]|%3[fd]/i

function redactParameters(query: string, callback: boolean, depth: number): string {
  if (query === '') return query
  const parts = query.split(/([&;])/) // separators kept at the odd indexes
  const context = { callback, oauthReply: hasState(parts) }
  let changed = false
  for (let i = 0; i < parts.length; i += 2) {
    const part = parts[i]!
    const eq = part.indexOf('=')
    const name = eq === -1 ? part : part.slice(0, eq)
    if (isSecretValue(name)) {
      // A bare value (`?glpat-…`), or a credential sent as a name (`?glpat-…=1`), is redacted whole.
      parts[i] = REDACTED
      changed = true
    } else if (eq === -1) {
      continue
    } else if (isSecretName(name, context)) {
      parts[i] = `${name}=${REDACTED}`
      changed = true
    } else {
      // A nested URL loses the secrets of its own query first; what would be logged is then tested
      // whole, so a credential the nested pass did not cut (in its path, its user, past the nesting
      // limit) takes the whole value with it.
      const value = part.slice(eq + 1)
      const nested = redactNested(value, depth)
      if (isSecretValue(nested ?? value)) {
        parts[i] = `${name}=${REDACTED}`
        changed = true
      } else if (nested !== undefined) {
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
  if (q === -1 && redacted === REDACTED) return REDACTED // the whole value was one credential (`Basic dXNl…%3D%3D`)
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
