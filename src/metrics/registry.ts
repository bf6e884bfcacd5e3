/**
 * Every metric, made in one place on a private prom-client Registry (never the global one).
 * STUB until the logs/metrics issue lands.
 */
import type { RequestContext } from '../server/context.ts'

export interface Metrics {
  /** Prometheus text exposition. */
  render(): Promise<string>
  readonly contentType: string
  observeRequest(ctx: RequestContext, endNs: bigint): void
  jwksFetch(issuer: string, result: 'success' | 'failure'): void
  tokenCache(result: 'hit' | 'miss'): void
  authFailure(reason: string): void
  logWriteFailure(): void
}

export function createMetrics(): Metrics {
  return {
    render: async () => '',
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    observeRequest() {},
    jwksFetch() {},
    tokenCache() {},
    authFailure() {},
    logWriteFailure() {},
  }
}
