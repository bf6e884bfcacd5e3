/**
 * Path and project globs: `*` matches within one segment, `**` any number of segments (zero included).
 * Compiled once to a RegExp over the lower-cased match form; a pattern ending in `/**` also covers
 * its base (`/admin/**` covers `/admin`), the safe reading for deny and group rules alike.
 * The literal parts are brought to the form requests are matched in (`matchPath`, `projectCandidates`),
 * or a pattern like `/caf%C3%A9/**` or `/t/` could never match anything.
 */
import { foldCase, percentDecode, toMatchForm } from '../http/canonical-path.ts'

const SPECIAL = /[.*+?^${}()|[\]\\]/g

/** `path`: decoded except `%2F` (as `matchPath`); `project`: fully decoded (as `projectCandidates`). */
export type GlobForm = 'path' | 'project'

/** A pattern that cannot be brought to the match form (bad percent-encoding); `index` is its place in the list. */
export class GlobError extends Error {
  readonly index: number
  constructor(index: number, message: string) {
    super(message)
    this.name = 'GlobError'
    this.index = index
  }
}

/** The literal text between wildcards in match form, or `undefined` when its percent-encoding is malformed. */
function literalForm(text: string, form: GlobForm): string | undefined {
  if (form === 'path') return toMatchForm(text)
  const decoded = percentDecode(text)
  return decoded === undefined ? undefined : foldCase(decoded)
}

/** Requests drop a trailing slash before matching (`/t/` is matched as `/t`), so patterns do too. */
function withoutTrailingSlash(pattern: string): string {
  return pattern.length > 1 && pattern.endsWith('/') ? pattern.replace(/\/+$/, '') || '/' : pattern
}

type GlobToken = { readonly kind: 'literal'; readonly text: string } | { readonly kind: 'deep' | 'any' | 'star' }

/** What each wildcard matches: `/**` the path and anything below it, `**` anything, `*` within one segment. */
const WILDCARD_SOURCE = { deep: '(?:/.*)?', any: '.*', star: '[^/]*' } as const

/** A glob's wildcards and the literal text between them. Wildcards are only the raw `*`: a decoded `%2A` is a literal star, as in a request. */
function globTokens(glob: string): GlobToken[] {
  const tokens: GlobToken[] = []
  let literal = ''
  const flush = () => {
    if (literal) tokens.push({ kind: 'literal', text: literal })
    literal = ''
  }
  let i = 0
  while (i < glob.length) {
    if (glob.startsWith('/**', i) && (i + 3 === glob.length || glob[i + 3] === '/')) {
      flush()
      tokens.push({ kind: 'deep' })
      i += 3
    } else if (glob.startsWith('**', i)) {
      flush()
      tokens.push({ kind: 'any' })
      i += 2
    } else if (glob[i] === '*') {
      flush()
      tokens.push({ kind: 'star' })
      i += 1
    } else {
      literal += glob[i]
      i += 1
    }
  }
  flush()
  return tokens
}

/** Throws a `GlobError` (index 0) when the pattern's percent-encoding is malformed. */
export function compileGlob(pattern: string, form: GlobForm = 'path'): RegExp {
  let source = ''
  for (const token of globTokens(form === 'path' ? withoutTrailingSlash(pattern) : pattern)) {
    if (token.kind !== 'literal') {
      source += WILDCARD_SOURCE[token.kind]
      continue
    }
    const decoded = literalForm(token.text, form)
    if (decoded === undefined) throw new GlobError(0, `bad percent-encoding in "${pattern}": "%" needs two hex digits, and the bytes must be UTF-8 (a literal "%" is "%25")`)
    source += decoded.replace(SPECIAL, '\\$&')
  }
  return new RegExp(`^${source}$`)
}

/** Compiles several globs into one RegExp (one test per request instead of one per pattern); a `GlobError` names the pattern's index. */
export function compileGlobs(patterns: readonly string[], form: GlobForm = 'path'): RegExp {
  const parts = patterns.map((p, index) => {
    try {
      return compileGlob(p, form).source.slice(1, -1)
    } catch (err) {
      throw err instanceof GlobError ? new GlobError(index, err.message) : err
    }
  })
  return new RegExp(`^(?:${parts.join('|')})$`)
}

/**
 * For `projects` patterns: a RegExp over a case-folded group path that matches when some pattern can match a
 * path strictly below that group (`a/b/**` and `*` + `/b` lie below `a`; `**` + `/secret` below every group),
 * or `undefined` when no pattern ever can. A group's own endpoints (group search, issues, packages) reach what
 * lies below it, so such a rule has a say on them too (src/policy). Each cut is where a `/` can fall in a match:
 * a `/` in a literal part, or anywhere inside a `**`.
 */
export function compileBelow(patterns: readonly string[]): RegExp | undefined {
  const cuts: string[] = []
  for (const pattern of patterns) {
    let source = ''
    for (const token of globTokens(pattern)) {
      if (token.kind !== 'literal') {
        if (token.kind !== 'star') cuts.push(source + WILDCARD_SOURCE[token.kind])
        source += WILDCARD_SOURCE[token.kind]
        continue
      }
      // The patterns were compiled before (compileGlobs): a malformed escape cannot reach here, the raw text is a fallback.
      const decoded = literalForm(token.text, 'project') ?? foldCase(token.text)
      let from = 0
      for (let slash = decoded.indexOf('/'); slash !== -1; slash = decoded.indexOf('/', slash + 1)) {
        source += decoded.slice(from, slash).replace(SPECIAL, '\\$&')
        cuts.push(source)
        from = slash
      }
      source += decoded.slice(from).replace(SPECIAL, '\\$&')
    }
  }
  return cuts.length === 0 ? undefined : new RegExp(`^(?:${cuts.join('|')})$`)
}
