/**
 * Every metric, made in one place on a private prom-client Registry (never the global one, so two
 * apps can live in one process). Labels are bounded: decision, auth method, route class, issuer name,
 * reason — never a user, path or project.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { RequestContext } from '../server/context.ts'

export interface Metrics {
  /** Prometheus text exposition. */
  render(): Promise<string>
  readonly contentType: string
  readonly registry: Registry
  observeRequest(ctx: RequestContext, endNs: bigint): void
  jwksFetch(issuer: string, result: 'success' | 'failure'): void
  tokenCache(result: 'hit' | 'miss'): void
  authFailure(reason: string): void
  logWriteFailure(): void
  /** A websocket handshake is being forwarded: counted open until its record is written. */
  websocketOpened(ctx: RequestContext): void
}

const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600]

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry()
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
  const requests = new Counter({ name: 'gitlab_iap_requests_total', help: 'Requests by decision, authentication method and GitLab route class.', labelNames: ['decision', 'auth_method', 'route'] as const, registers: [registry] })
  const duration = new Histogram({ name: 'gitlab_iap_request_duration_seconds', help: 'Time from request to the end of the response, as seen by the proxy.', labelNames: ['route', 'decision'] as const, buckets: DURATION_BUCKETS, registers: [registry] })
  const upstream = new Histogram({ name: 'gitlab_iap_upstream_duration_seconds', help: 'Time until GitLab sent its response headers.', labelNames: ['route'] as const, buckets: DURATION_BUCKETS, registers: [registry] })
  const jwks = new Counter({ name: 'gitlab_iap_jwks_fetch_total', help: 'Signing-key (JWKS) fetches per issuer and result.', labelNames: ['issuer', 'result'] as const, registers: [registry] })
  const tokenCache = new Counter({ name: 'gitlab_iap_token_cache_total', help: 'Verified-token cache lookups (hit: no crypto).', labelNames: ['result'] as const, registers: [registry] })
  const authFailures = new Counter({ name: 'gitlab_iap_auth_failures_total', help: 'Rejected credentials by reason.', labelNames: ['reason'] as const, registers: [registry] })
  const logFailures = new Counter({ name: 'gitlab_iap_access_log_write_failures_total', help: 'Access-log writes or rotations that failed.', registers: [registry] })
  const websockets = new Gauge({ name: 'gitlab_iap_websocket_connections', help: 'Websocket connections open through the proxy.', registers: [registry] })

  // Label children are cached: the hot path does one Map lookup instead of hashing a label object.
  const requestChildren = new Map<string, { inc(): void }>()
  const durationChildren = new Map<string, { observe(v: number): void }>()
  const upstreamChildren = new Map<string, { observe(v: number): void }>()
  const cached = <T>(map: Map<string, T>, key: string, make: () => T): T => {
    let child = map.get(key)
    if (!child) map.set(key, (child = make()))
    return child
  }

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    observeRequest(ctx, endNs) {
      const decision = ctx.decision?.result ?? 'deny'
      cached(requestChildren, `${decision}|${ctx.authMethod}|${ctx.route}`, () => requests.labels(decision, ctx.authMethod, ctx.route)).inc()
      cached(durationChildren, `${ctx.route}|${decision}`, () => duration.labels(ctx.route, decision)).observe(Number(endNs - ctx.startNs) / 1e9)
      if (ctx.upstreamNs !== undefined) cached(upstreamChildren, ctx.route, () => upstream.labels(ctx.route)).observe(Number(ctx.upstreamNs) / 1e9)
      if (ctx.websocketCounted) websockets.dec()
    },
    jwksFetch: (issuer, result) => jwks.labels(issuer, result).inc(),
    tokenCache: (result) => tokenCache.labels(result).inc(),
    authFailure: (reason) => authFailures.labels(reason).inc(),
    logWriteFailure: () => logFailures.inc(),
    websocketOpened(ctx) {
      ctx.websocketCounted = true
      websockets.inc()
    },
  }
}
