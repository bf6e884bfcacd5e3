/**
 * Canonical-path gate (SPEC "Paths are not rewritten"). STUB until the policy issue lands:
 * it rejects only the most obvious non-canonical forms.
 */
/** Returns a kebab-case reason when `path` (raw, undecoded, without query) is not canonical; `undefined` when it is. */
export function checkCanonicalPath(path: string): string | undefined {
  if (!path.startsWith('/')) return 'path-not-absolute'
  if (path.includes('//')) return 'path-double-slash'
  if (/(^|\/)\.\.?(\/|$)/.test(path)) return 'path-dot-segment'
  if (path.includes('\\')) return 'path-backslash'
  return undefined
}
