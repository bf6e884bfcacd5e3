/** The names rotation gives a log's files (src/logs/writer.ts), read back by rotation, `logs` and `logs verify`. */

/** `NAME.<UTC timestamp>-<counter>[.gz]`: the counter has three digits or more (a process past 999 rotations). */
const ROTATED_NAME = /^(.*)\.(\d{8}T\d{9}Z)-(\d{3,})(\.gz)?$/

/** A rotated file's log name and its place in time (timestamp, then counter), or undefined for any other name. */
export function parseRotatedName(file: string): { readonly log: string; readonly stamp: string; readonly counter: number } | undefined {
  const m = ROTATED_NAME.exec(file)
  return m ? { log: m[1]!, stamp: m[2]!, counter: Number(m[3]) } : undefined
}

/** Oldest first: by timestamp, then by counter as a number (`-1000` after `-999`). */
export function compareRotated(a: { stamp: string; counter: number }, b: { stamp: string; counter: number }): number {
  return a.stamp < b.stamp ? -1 : a.stamp > b.stamp ? 1 : a.counter - b.counter
}
