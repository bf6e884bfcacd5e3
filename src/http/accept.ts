/**
 * `Accept` (RFC 9110 §12.5.1), just enough for the two bodies the proxy writes itself (HTML, JSON).
 * Pure, and linear in the header's length: a client's header never meets a backtracking regex.
 */

export interface MediaRange {
  /** Lower-cased; `*` for a wildcard. */
  readonly type: string
  readonly subtype: string
  /** 0..1; 1 when the range has no `q`. */
  readonly q: number
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/
/** RFC 9110 §12.4.2 qvalue: at most three decimals, never above 1. */
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/

/** Splits on `separator` outside quoted strings (a quoted parameter value may hold `,` or `;`). */
function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (quoted) {
      if (c === '\\') i++
      else if (c === '"') quoted = false
    } else if (c === '"') quoted = true
    else if (c === separator) {
      parts.push(text.slice(start, i))
      start = i + 1
    }
  }
  parts.push(text.slice(start))
  return parts
}

/**
 * The media ranges of an `Accept` header, in order. A malformed range, or one with a malformed `q`, is
 * dropped. Parameters other than `q` are ignored: the proxy's own bodies have none to match.
 */
export function parseAccept(header: string): MediaRange[] {
  const ranges: MediaRange[] = []
  for (const element of splitOutsideQuotes(header, ',')) {
    const [mediaRange, ...params] = splitOutsideQuotes(element, ';')
    const slash = mediaRange!.indexOf('/')
    const type = mediaRange!.slice(0, slash).trim().toLowerCase()
    const subtype = mediaRange!.slice(slash + 1).trim().toLowerCase()
    if (slash === -1 || !TOKEN.test(type) || !TOKEN.test(subtype) || (type === '*' && subtype !== '*')) continue
    let q = 1
    for (const param of params) {
      const eq = param.indexOf('=')
      if (eq === -1 || param.slice(0, eq).trim().toLowerCase() !== 'q') continue
      // The first `q` is the weight; anything after it is an accept-extension.
      const value = param.slice(eq + 1).trim()
      q = QVALUE.test(value) ? Number(value) : Number.NaN
      break
    }
    if (!Number.isNaN(q)) ranges.push({ type, subtype, q })
  }
  return ranges
}

/**
 * The range that decides for `type/subtype`: the most specific matching one (`text/html` over `text/*`
 * over the full wildcard; the first of equals). `specificity` is 2, 1 or 0 for those, -1 (with q 0)
 * when none matches. `exactOnly` ignores wildcards.
 */
export function matchOf(ranges: readonly MediaRange[], type: string, subtype: string, exactOnly = false): { q: number; specificity: number } {
  let specificity = -1
  let q = 0
  for (const range of ranges) {
    const s = range.type === type ? (range.subtype === subtype ? 2 : range.subtype === '*' ? 1 : -1) : range.type === '*' ? 0 : -1
    if (s > specificity && (s === 2 || !exactOnly)) {
      specificity = s
      q = range.q
    }
  }
  return { q, specificity }
}

/** The weight the ranges give `type/subtype` (`matchOf`), 0 when none matches. */
export function qualityOf(ranges: readonly MediaRange[], type: string, subtype: string, exactOnly = false): number {
  return matchOf(ranges, type, subtype, exactOnly).q
}
