/**
 * The canonical-path gate (docs/policy.md, "Canonical paths").
 * A request whose path could be read two ways — by the policy here and by GitLab (or by
 * http-proxy-3's WHATWG URL parsing) — is refused with 400 instead of being "cleaned up".
 * What passes is forwarded byte-for-byte, and matched as `matchPath` decodes it.
 */

/** Segments after which GitLab treats the rest of the path as a file or ref name (may hold `;`, `%2E`, `%23`). */
const FILE_PATH_MARKERS = [
  '/-/blob/', '/-/raw/', '/-/tree/', '/-/edit/', '/-/blame/', '/-/blame_page/', '/-/commits/', '/-/new/', '/-/create/', '/-/create_dir/',
  '/-/update/', '/-/preview/', '/-/find_file/', '/-/files/',
  // Ref names in one segment: GitLab's own links encode `feature/x` as `feature%2Fx` here.
  '/-/branches/', '/-/tags/', '/-/compare/', '/-/network/', '/-/graphs/', '/-/refs/', '/-/jobs/artifacts/',
]

/**
 * Plus the REST API's file and ref markers, for `/api/` paths only: on a web path they are namespace names
 * (`/group/repository/tree/vault.git/info/%72efs` is git traffic of the project `group/repository/tree/vault`).
 */
const API_FILE_PATH_MARKERS = [
  ...FILE_PATH_MARKERS,
  '/repository/files/', '/repository/tree', '/repository/blobs/', '/repository/commits/', '/repository/branches/', '/repository/tags/', '/repository/archive',
]

const HEX = /^[0-9a-fA-F]{2}$/

/**
 * Returns a kebab-case reason when `path` (raw, undecoded, without query) is not canonical;
 * `undefined` when it is. Accepted percent-encodings: `%2F` in REST API paths and file/ref names
 * (GitLab's encoded namespaces, files and branches), `%2E` and `%3B`/`%23`/`%3F` in file/ref names,
 * and any well-formed UTF-8 encoding of a byte that does not change routing. Before a file/ref name,
 * an encoded letter, digit, `-` or `_` is refused: decoded, it would route somewhere a raw prefix test did not see.
 */
export function checkCanonicalPath(path: string): string | undefined {
  if (path.length === 0 || path.charCodeAt(0) !== 0x2f) return 'path-not-absolute'
  const api = path.startsWith('/api/')
  const fileStart = fileNameStart(path, api)
  const routingEnd = fileStart === -1 ? path.length : fileStart
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i)
    if (code < 0x21 || code === 0x7f) return 'path-control-character'
    if (code > 0x7e) return 'path-raw-non-ascii'
    if (code === 0x5c) return 'path-backslash'
    if (code === 0x23) return 'path-fragment'
    if (code === 0x3f) return 'path-encoded-delimiter' // a "?" inside the path part cannot come from a real request line
    if (code === 0x3b && i < routingEnd) return 'path-matrix-param'
    if (code === 0x2f && path.charCodeAt(i + 1) === 0x2f) return 'path-double-slash'
    if (code === 0x25) {
      const hex = path.slice(i + 1, i + 3)
      if (!HEX.test(hex)) return 'path-bad-percent-encoding'
      const byte = parseInt(hex, 16)
      if (byte === 0) return 'path-nul'
      if (byte < 0x20 || byte === 0x7f) return 'path-control-character'
      if (byte === 0x5c) return 'path-backslash'
      if (i < routingEnd) {
        // In the routing part only plain characters: an encoded dot, ";", "#" or "?" is read differently by someone.
        if (byte === 0x2e) return 'path-encoded-dot'
        if (byte === 0x3b) return 'path-matrix-param'
        if (byte === 0x23 || byte === 0x3f) return 'path-encoded-delimiter'
        if (byte === 0x2f && !api) return 'path-encoded-slash'
        // "%25" (an encoded "%") lets a component that decodes twice see %2e, %2f or %5c.
        if (byte === 0x25) return 'path-double-encoding'
        // RFC 3986 §6.2.2.2: "%70rojects" is "projects" to GitLab but not to a prefix test. "%7E" (~) stays:
        // Java's URLEncoder emits it.
        if (isEncodedUnreserved(byte)) return 'path-encoded-unreserved'
      }
      i += 2
    }
  }
  // Overlong and invalid UTF-8 (e.g. %c0%ae for ".") must not decode to something else downstream.
  const decoded = percentDecode(path)
  if (decoded === undefined) return 'path-bad-percent-encoding'
  // Dot segments anywhere, raw or encoded (also inside file names: Workhorse routes on the decoded path).
  for (const segment of decoded.split('/')) {
    if (segment === '.' || segment === '..') return 'path-dot-segment'
  }
  return undefined
}

/** ASCII letters, digits, "-" and "_": unreserved characters that no client needs to encode ("." is refused on its own). */
function isEncodedUnreserved(byte: number): boolean {
  return (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || byte === 0x2d || byte === 0x5f
}

/** Index where a file/ref name begins (after a marker such as `/-/blob/`, or `/repository/files/` in the API), or -1. */
function fileNameStart(path: string, api: boolean): number {
  let best = -1
  for (const marker of api ? API_FILE_PATH_MARKERS : FILE_PATH_MARKERS) {
    const at = path.indexOf(marker)
    if (at !== -1) {
      const end = at + marker.length
      if (best === -1 || end < best) best = end
    }
  }
  return best
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Percent-decodes `text`; `undefined` for a `%` without two hex digits, or bytes that are not valid
 * (or are overlong) UTF-8. Raw characters are kept as they are (also non-ASCII ones, as written in a
 * config pattern). With `keepEncodedSlash`, `%2F` stays encoded, as GitLab routes it.
 */
export function percentDecode(text: string, keepEncodedSlash = false): string | undefined {
  if (!text.includes('%')) return text
  let out = ''
  let bytes: number[] = []
  const flush = (): boolean => {
    if (bytes.length === 0) return true
    try {
      out += utf8.decode(Uint8Array.from(bytes))
    } catch {
      return false
    }
    bytes = []
    return true
  }
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) !== 0x25) {
      // A raw character ends a run of encoded bytes: that run must be complete UTF-8 on its own.
      if (!flush()) return undefined
      out += text[i]
      continue
    }
    const hex = text.slice(i + 1, i + 3)
    if (!HEX.test(hex)) return undefined
    const byte = parseInt(hex, 16)
    i += 2
    if (byte === 0x2f && keepEncodedSlash) {
      if (!flush()) return undefined
      out += '%2F'
    } else bytes.push(byte)
  }
  return flush() ? out : undefined
}

/**
 * The form the policy matches: percent-decoded except `%2F` (kept as `%2f`, so an encoded namespace
 * stays one segment, as GitLab routes it), lower-cased (GitLab resolves namespaces case-insensitively).
 * `undefined` when the percent-encoding is malformed. Config path patterns are brought to this form too.
 */
export function toMatchForm(text: string): string | undefined {
  const decoded = percentDecode(text, true)
  return decoded === undefined ? undefined : foldCase(decoded)
}

const DOTTED_CAPITAL_I = /\u0130/g

/**
 * Lower case as GitLab's database compares names: PostgreSQL's `lower()` maps each character on its
 * own, so `İ` (U+0130) becomes `i`, where JavaScript's `toLowerCase` gives `i` plus a combining dot.
 * Without this, `%C4%B0nternal/vault` would miss a rule for `internal/**` and still reach that project.
 */
export function foldCase(text: string): string {
  return (text.includes('\u0130') ? text.replace(DOTTED_CAPITAL_I, 'i') : text).toLowerCase()
}

/** `toMatchForm` of a request path. Only call on a path `checkCanonicalPath` accepted. */
export function matchPath(path: string): string {
  return toMatchForm(path) ?? foldCase(path)
}
