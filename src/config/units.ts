/** Parsers for the human units used in config.yaml: durations (`90s`, `10m`, `1h30m`, `12h`) and sizes (`100MiB`, `1Gi`). */

const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g
const DURATION_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

/**
 * `"10m"` → 600000 (milliseconds); compound forms as Go writes them (`"1h30m"`, `"2m30s"`); a bare
 * number is seconds (`"3600"`, as in `upstream.timeoutSeconds`). `undefined` when the text is not a duration.
 */
export function parseDurationMs(text: string): number | undefined {
  const trimmed = text.trim()
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000)
  if (!DURATION.test(trimmed)) return undefined
  let ms = 0
  for (const [, amount, unit] of trimmed.matchAll(DURATION_PART)) ms += Number(amount) * DURATION_MS[unit as keyof typeof DURATION_MS]
  return Math.round(ms)
}

const SIZE = /^(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)$/i
/** Decimal for `K`/`KB`/`M`/`MB`/… (as Kubernetes reads `M`), binary for `Ki`/`KiB`/`Mi`/`MiB`/…; case does not matter. */
const SIZE_POWER = { '': 0, k: 1, m: 2, g: 3, t: 4 } as const

/** `"100MiB"` → 104857600 (bytes); `"100M"`, `"100mb"`, `"1Gi"` too; a bare number is bytes; `undefined` when not a size. */
export function parseSizeBytes(text: string): number | undefined {
  const match = SIZE.exec(text.trim())
  if (!match) return undefined
  const unit = match[2]!.toLowerCase()
  const prefix = unit.replace(/i?b?$/, '') as keyof typeof SIZE_POWER
  // A lone "i" (or "ib") names no unit.
  if (prefix === '' && unit !== '' && unit !== 'b') return undefined
  const base = unit.includes('i') ? 1024 : 1000
  return Math.round(Number(match[1]) * base ** SIZE_POWER[prefix])
}

/** `600000` → `"10m"`: the inverse, for summaries. */
export function formatDurationMs(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`
  }
  return `${ms}ms`
}
