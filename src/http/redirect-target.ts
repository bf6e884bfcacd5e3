/**
 * Validation of the `rd` (return-to) parameter of `/-/iap/login`: only same-origin relative paths.
 * Open redirects in sign-in flows are the most repeated advisory class of comparable proxies
 * (oauth2-proxy CVE-2020-5233, CVE-2020-11053, CVE-2020-4037; mod_auth_openidc CVE-2019-20479,
 * CVE-2021-32786), each a variation on "the validator and the browser parse the URL differently".
 * So this is an allow-list of a narrow shape, not a deny-list of known tricks.
 */
import { isIapPath } from '../gitlab/attribute.ts'

export type RedirectTargetResult =
  | { readonly ok: true; readonly target: string }
  | { readonly ok: false; readonly reason: 'redirect-target-invalid' }

/** Longest `rd` accepted; longer ones are refused rather than truncated. */
export const MAX_REDIRECT_TARGET = 2048

/**
 * RFC 3986 path and query characters only (plus `%` for escapes). Anything else — whitespace,
 * control characters, `\`, `"`, `<`, `>`, `` ` ``, `{`, `}`, `|`, `^`, non-ASCII — is refused:
 * browsers silently drop or rewrite several of them (tab, newline, `\` → `/`), which is how
 * `/\t/evil.example` became `//evil.example`. A `#` only starts the fragment.
 */
const PATH_ALLOWED = /^[A-Za-z0-9\-._~%!$&'()*+,;=:@/]+$/
/**
 * The query also takes `[` and `]`, which browsers send raw there (GitLab's `label_name[]=bug`):
 * after the `?` they cannot change the origin. In the path they stay refused (`/[::1]` tricks).
 */
const QUERY_ALLOWED = /^[A-Za-z0-9\-._~%!$&'()*+,;=:@/?[\]]*$/
/**
 * The fragment (`#note_12`, `#L10-20`): it never leaves the browser and cannot change the origin, so it
 * takes the query's characters, except `@`: no GitLab anchor holds one, and `/x#@evil.example` is the
 * shape of the userinfo tricks refused everywhere else.
 */
const FRAGMENT_ALLOWED = /^[A-Za-z0-9\-._~%!$&'()*+,;=:/?[\]]+$/

/** How many rounds of percent-decoding are checked: intermediaries (and some servers) decode again. */
const DECODE_ROUNDS = 3

const INVALID: RedirectTargetResult = Object.freeze({ ok: false, reason: 'redirect-target-invalid' })

/**
 * The proxy's own endpoints a user may land on after sign-in: read-only, and spelled exactly as the
 * proxy routes them (src/iap/routes.ts matches the path as sent: `/-/IAP/whoami` is a 404 there).
 */
const IAP_LANDING_PAGES: ReadonlySet<string> = new Set(['/-/iap/whoami', '/-/iap/jwks.json'])

/**
 * Checks one decoded (or raw) form of the path part of `rawPath`: absolute, no `//`, `/\`, dot segment,
 * backslash, control character, or `/-/iap/` other than a landing page as sent.
 */
function pathFormIsSafe(path: string, rawPath: string): boolean {
  if (!path.startsWith('/')) return false
  // `//host` and `/\host` are network-path references to a browser; `\` anywhere is read as `/`.
  if (path.includes('//') || path.includes('\\')) return false
  // A return to `/-/iap/logout` or `/-/iap/login` is a forced sign-out or a sign-in loop. Only the
  // read-only pages pass, and only unencoded: a decoded form naming one came from another spelling.
  if (isIapPath(path) && (path !== rawPath || !IAP_LANDING_PAGES.has(path))) return false
  // Dot segments let `/a/../..//evil` collapse into a network path after resolution.
  if (/(^|\/)\.\.?(\/|$)/.test(path)) return false
  // C0 controls, DEL, and the C1/Unicode spaces that browsers strip or treat as separators.
  if (/[\u0000-\u0020\u007f-\u00a0\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f\u2060\u3000\ufeff]/.test(path)) return false
  // Ideographic and fullwidth full stops/solidi that IDNA maps to `.` and `/`.
  if (/[\u3002\uff0e\uff61\uff0f\uff3c\u2044\u2215\u29f8]/.test(path)) return false
  return true
}

function decodeOnce(text: string): string | undefined {
  try {
    return decodeURIComponent(text)
  } catch {
    return undefined
  }
}

/** A query or fragment: its characters, and once decoded no control character that could split headers downstream. */
function tailIsSafe(text: string, allowed: RegExp): boolean {
  if (!allowed.test(text)) return false
  const decoded = decodeOnce(text)
  return decoded !== undefined && !/[\u0000-\u001f\u007f]/.test(decoded)
}

/**
 * Validates a decoded `rd` value. Returns the same string when it is a same-origin relative path,
 * optionally with a query and a fragment (`/group/project/-/issues?state=opened#note_1`), else
 * `redirect-target-invalid`.
 * @example validateRedirectTarget('//evil.example') // { ok: false, reason: 'redirect-target-invalid' }
 */
export function validateRedirectTarget(rd: unknown): RedirectTargetResult {
  if (typeof rd !== 'string' || rd.length === 0 || rd.length > MAX_REDIRECT_TARGET) return INVALID
  // The first `#` ends path and query (a `?` after it belongs to the fragment), as a browser reads it.
  const hash = rd.indexOf('#')
  const beforeHash = hash === -1 ? rd : rd.slice(0, hash)
  const q = beforeHash.indexOf('?')
  const rawPath = q === -1 ? beforeHash : beforeHash.slice(0, q)
  if (!PATH_ALLOWED.test(rawPath)) return INVALID
  if (q !== -1 && !tailIsSafe(beforeHash.slice(q + 1), QUERY_ALLOWED)) return INVALID
  if (hash !== -1 && !tailIsSafe(rd.slice(hash + 1), FRAGMENT_ALLOWED)) return INVALID
  if (!pathFormIsSafe(rawPath, rawPath)) return INVALID
  // Every decoding round of the path must stay safe; `%2F%2Fevil` and `%5Cevil` are refused too.
  let form = rawPath
  for (let round = 0; round < DECODE_ROUNDS && form.includes('%'); round++) {
    const decoded = decodeOnce(form)
    if (decoded === undefined || !pathFormIsSafe(decoded, rawPath)) return INVALID
    form = decoded
  }
  // Last line of defence: resolved the way a browser would, it must stay on our origin with the same path and fragment.
  const base = 'http://gitlab-iap.invalid'
  let resolved: URL
  try {
    resolved = new URL(rd, base)
  } catch {
    return INVALID
  }
  if (resolved.origin !== base || resolved.pathname !== rawPath || resolved.hash !== (hash === -1 ? '' : rd.slice(hash))) return INVALID
  return { ok: true, target: rd }
}

/**
 * The `rd` for a login redirect of a request to `target` (path + query): the target when
 * `/-/iap/login` will accept it, else its path alone, else `/`, so the redirect never leads to a 400.
 */
export function loginReturnTarget(target: string, path: string): string {
  if (validateRedirectTarget(target).ok) return target
  return validateRedirectTarget(path).ok ? path : '/'
}
