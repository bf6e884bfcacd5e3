/** Parsers for the human units used in config.yaml: durations (`90s`, `10m`, `12h`) and sizes (`100MiB`). */

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/
const DURATION_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

/** `"10m"` → 600000 (milliseconds); `undefined` when the text is not a duration. */
export function parseDurationMs(text: string): number | undefined {
  const match = DURATION.exec(text.trim())
  if (!match) return undefined
  return Math.round(Number(match[1]) * DURATION_MS[match[2] as keyof typeof DURATION_MS])
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/
const SIZE_BYTES = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 } as const

/** `"100MiB"` → 104857600 (bytes); a bare number is bytes; `undefined` when not a size. */
export function parseSizeBytes(text: string): number | undefined {
  const match = SIZE.exec(text.trim())
  if (!match) return undefined
  return Math.round(Number(match[1]) * SIZE_BYTES[(match[2] ?? 'B') as keyof typeof SIZE_BYTES])
}

/** `600000` → `"10m"`: the inverse, for summaries. */
export function formatDurationMs(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`
  }
  return `${ms}ms`
}
