/**
 * Every metric, made in one place on a private prom-client Registry (never the global one, so two
 * apps can live in one process). Labels are bounded: decision, auth method, route class, issuer name,
 * reason — never a user, path or project.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { asRegistered, HotCounter, HotHistogram } from './hot.ts'
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
  /** A config reload (SIGHUP or file change) was applied, or rejected and the running policy kept. */
  configReload(result: 'success' | 'failure'): void
  /** A refused call to the admin API (token missing or wrong). */
  adminAuthFailure(reason: 'admin-token-missing' | 'admin-token-invalid'): void
}

/** The `error.code`s of requests GitLab did not answer as it should (src/proxy/forward.ts): a bounded set. */
const UPSTREAM_ERROR = /^upstream-[a-z-]{1,40}$/

const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600]

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry()
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
  // Observed on every request: the hot-path types, which print what prom-client's own would.
  const register = <T extends HotCounter | HotHistogram>(metric: T): T => {
    registry.registerMetric(asRegistered(metric))
    return metric
  }
  const requests = register(new HotCounter('gitlab_iap_requests_total', 'Requests by decision, authentication method and GitLab route class.', ['decision', 'auth_method', 'route']))
  const duration = register(new HotHistogram('gitlab_iap_request_duration_seconds', 'Time from request to the end of the response, as seen by the proxy.', ['route', 'decision'], DURATION_BUCKETS))
  const upstream = register(new HotHistogram('gitlab_iap_upstream_duration_seconds', 'Time until GitLab sent its response headers.', ['route'], DURATION_BUCKETS))
  const jwks = new Counter({ name: 'gitlab_iap_jwks_fetch_total', help: 'Signing-key (JWKS) fetches per issuer and result.', labelNames: ['issuer', 'result'] as const, registers: [registry] })
  const tokenCache = register(new HotCounter('gitlab_iap_token_cache_total', 'Verified-token cache lookups (hit: no crypto).', ['result']))
  const authFailures = new Counter({ name: 'gitlab_iap_auth_failures_total', help: 'Rejected credentials by reason.', labelNames: ['reason'] as const, registers: [registry] })
  const logFailures = new Counter({ name: 'gitlab_iap_access_log_write_failures_total', help: 'Access-log writes or rotations that failed.', registers: [registry] })
  const websockets = new Gauge({ name: 'gitlab_iap_websocket_connections', help: 'Websocket connections open through the proxy.', registers: [registry] })
  const upstreamErrors = new Counter({ name: 'gitlab_iap_upstream_errors_total', help: 'Requests GitLab could not answer (unreachable, timeout, reset, invalid response), by reason.', labelNames: ['reason'] as const, registers: [registry] })
  const reloads = new Counter({ name: 'gitlab_iap_config_reloads_total', help: 'Config reloads (SIGHUP or file change) by result; a failed one keeps the running policy.', labelNames: ['result'] as const, registers: [registry] })
  const lastReloadOk = new Gauge({ name: 'gitlab_iap_config_last_reload_successful', help: '1 when the last config reload (or the start) applied, 0 when it was rejected.', registers: [registry] })
  const lastReloadAt = new Gauge({ name: 'gitlab_iap_config_last_reload_success_timestamp_seconds', help: 'When the running config was loaded (start or last applied reload), Unix time.', registers: [registry] })
  const adminAuthFailures = new Counter({ name: 'gitlab_iap_admin_auth_failures_total', help: 'Refused admin API calls (token missing or wrong).', labelNames: ['reason'] as const, registers: [registry] })
  lastReloadOk.set(1)
  lastReloadAt.set(Date.now() / 1000)

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    observeRequest(ctx, endNs) {
      const decision = ctx.decision?.result ?? 'deny'
      const { authMethod, route } = ctx
      requests.inc(`${decision}|${authMethod}|${route}`)
      duration.observe(`${route}|${decision}`, Number(endNs - ctx.startNs) / 1e9)
      if (ctx.upstreamNs !== undefined) upstream.observe(route, Number(ctx.upstreamNs) / 1e9)
      if (ctx.websocketCounted) websockets.dec()
      if (ctx.error !== undefined && UPSTREAM_ERROR.test(ctx.error)) upstreamErrors.labels(ctx.error).inc()
    },
    jwksFetch: (issuer, result) => jwks.labels(issuer, result).inc(),
    tokenCache: (result) => tokenCache.inc(result),
    authFailure: (reason) => authFailures.labels(reason).inc(),
    logWriteFailure: () => logFailures.inc(),
    websocketOpened(ctx) {
      ctx.websocketCounted = true
      websockets.inc()
    },
    configReload(result) {
      reloads.labels(result).inc()
      lastReloadOk.set(result === 'success' ? 1 : 0)
      if (result === 'success') lastReloadAt.set(Date.now() / 1000)
    },
    adminAuthFailure: (reason) => adminAuthFailures.labels(reason).inc(),
  }
}
