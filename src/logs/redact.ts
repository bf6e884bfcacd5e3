/** Query-string redaction for the access log: parameters that carry secrets keep their name, lose their value. */

export const REDACTED = '[REDACTED]'

const SECRET_NAMES = new Set([
  'private_token', 'access_token', 'job_token', 'token', 'id_token', 'refresh_token', 'nonce',
  'client_secret', 'password', 'passwd', 'secret', 'key', 'api_key', 'apikey', 'signature', 'sig', 'session',
  'assertion', 'client_assertion', 'code_verifier', 'authenticity_token', 'feed_token', 'rss_token',
  'otp', 'x-amz-signature', 'x-amz-credential', 'x-amz-security-token', 'sudo',
])

/** On OAuth/OIDC callback routes the authorization code and state are credentials too (GitLab uses `state=opened` elsewhere). */
const CALLBACK_NAMES = new Set(['code', 'state', 'session_state'])
const CALLBACK_PATH = /^\/-\/iap\/|^\/oauth\/|^\/users\/auth\/|\/callback$/

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

/** `a=1&private_token=glpat-x&b` → `a=1&private_token=[REDACTED]&b`; the rest stays byte-for-byte. */
export function redactQuery(query: string, path = ''): string {
  if (query === '') return query
  const callback = CALLBACK_PATH.test(path)
  const parts = query.split('&')
  let changed = false
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!
    const eq = part.indexOf('=')
    const name = eq === -1 ? part : part.slice(0, eq)
    if (eq !== -1 && isSecretName(name, callback)) {
      parts[i] = `${name}=${REDACTED}`
      changed = true
    }
  }
  return changed ? parts.join('&') : query
}
