/** The clock sessions read (lru-cache's `perf` shape), injectable so tests can travel in time. */
export interface Clock {
  now(): number
}

/** Wall-clock milliseconds. */
export const systemClock: Clock = { now: () => Date.now() }
