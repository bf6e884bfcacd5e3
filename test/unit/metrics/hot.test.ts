import { Counter, Histogram, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { asRegistered, HotCounter, HotHistogram } from '../../../src/metrics/hot.ts'

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 1, 60]
// Bounds exactly, between bounds, zero, and beyond the last bound.
const VALUES = [0, 0.0005, 0.00050001, 0.001, 0.003, 0.7, 1, 59.9, 60, 61, 3600.5]

function both() {
  const reference = new Registry()
  const refCounter = new Counter({ name: 'x_requests_total', help: 'Requests "by" decision\\route.', labelNames: ['decision', 'route'] as const, registers: [reference] })
  const refHistogram = new Histogram({ name: 'x_duration_seconds', help: 'Time.', labelNames: ['route', 'decision'] as const, buckets: BUCKETS, registers: [reference] })
  const hot = new Registry()
  const counter = new HotCounter('x_requests_total', 'Requests "by" decision\\route.', ['decision', 'route'])
  const histogram = new HotHistogram('x_duration_seconds', 'Time.', ['route', 'decision'], BUCKETS)
  hot.registerMetric(asRegistered(counter))
  hot.registerMetric(asRegistered(histogram))
  const observe = (decision: string, route: string, value: number) => {
    refCounter.labels(decision, route).inc()
    refHistogram.labels(route, decision).observe(value)
    counter.inc(`${decision}|${route}`)
    histogram.observe(`${route}|${decision}`, value)
  }
  return { reference, hot, observe }
}

describe('hot-path metrics', () => {
  it('print exactly what prom-client prints for the same observations', async () => {
    const { reference, hot, observe } = both()
    for (const v of VALUES) observe('allow', 'git', v)
    for (const v of VALUES.slice(3)) observe('deny', 'web', v)
    observe('challenge', 'we"ird\\route\n', 0.002)
    const text = await hot.metrics()
    expect(text).toBe(await reference.metrics())
    expect(text).toContain('x_duration_seconds_bucket{le="0.0005",route="git",decision="allow"} 2')
    expect(text).toContain('x_duration_seconds_count{route="git",decision="allow"} 11')
    expect(await hot.getMetricsAsJSON()).toEqual(await reference.getMetricsAsJSON())
  })

  it('print nothing before the first observation, and start over after reset', async () => {
    const { reference, hot, observe } = both()
    expect(await hot.metrics()).toBe(await reference.metrics())
    observe('allow', 'api', 0.01)
    hot.resetMetrics()
    reference.resetMetrics()
    expect(await hot.metrics()).toBe(await reference.metrics())
    expect(await hot.metrics()).not.toContain('route="api"')
  })
})
