/**
 * Path and project globs: `*` matches within one segment, `**` any number of segments (zero included).
 * Compiled once to a RegExp over the lower-cased match form; a pattern ending in `/**` also covers
 * its base (`/admin/**` covers `/admin`), the safe reading for deny and group rules alike.
 */

const SPECIAL = /[.+?^${}()|[\]\\]/g

export function compileGlob(pattern: string): RegExp {
  const lower = pattern.toLowerCase()
  let source = ''
  let i = 0
  while (i < lower.length) {
    if (lower.startsWith('/**', i) && (i + 3 === lower.length || lower[i + 3] === '/')) {
      source += '(?:/.*)?'
      i += 3
    } else if (lower.startsWith('**', i)) {
      source += '.*'
      i += 2
    } else if (lower[i] === '*') {
      source += '[^/]*'
      i += 1
    } else {
      source += lower[i]!.replace(SPECIAL, '\\$&')
      i += 1
    }
  }
  return new RegExp(`^${source}$`)
}

/** Compiles several globs into one RegExp (one test per request instead of one per pattern). */
export function compileGlobs(patterns: readonly string[]): RegExp {
  const parts = patterns.map((p) => compileGlob(p).source.slice(1, -1))
  return new RegExp(`^(?:${parts.join('|')})$`)
}
