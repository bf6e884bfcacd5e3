/**
 * The access log: one record per request. STUB until the logs issue lands: writes a minimal JSON line.
 */
import type { Config } from '../config/schema.ts'
import type { RequestContext } from '../server/context.ts'

export interface AccessLog {
  /** Called exactly once per request (or websocket connection), when it ends. Never throws. */
  write(ctx: RequestContext, endNs: bigint): void
  /** False while the destination cannot be written (see `accessLog.onError`). */
  readonly healthy: boolean
  /** Flush and close. */
  close(): Promise<void>
}

export interface AccessLogOptions {
  /** Names this process in the integrity chain. */
  readonly instanceId: string
}

export function createAccessLog(config: Config['accessLog'], _options: AccessLogOptions): AccessLog {
  const out = config.output === 'stdout' ? process.stdout : process.stdout
  return {
    healthy: true,
    write(ctx, endNs) {
      out.write(
        JSON.stringify({
          '@timestamp': new Date(ctx.startMs).toISOString(),
          'http.request.id': ctx.id,
          'http.request.method': ctx.method,
          'url.path': ctx.path,
          'http.response.status_code': ctx.status,
          'event.duration': Number(endNs - ctx.startNs),
          'iap.decision.result': ctx.decision?.result,
        }) + '\n',
      )
    },
    close: async () => {},
  }
}
