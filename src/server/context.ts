/**
 * Everything the pipeline learns about one request, filled in stage by stage (one direction) and
 * read once at the end by the access log and metrics. Holds no secrets: never a token or cookie.
 */
import type { Identity } from '../auth/identity.ts'
import type { RouteClass } from '../gitlab/route.ts'
import type { Decision } from '../policy/decision.ts'

export type AuthMethod = 'session' | 'bearer' | 'basic' | 'none'

export interface RequestContext {
  readonly id: string
  /** `process.hrtime.bigint()` when the request arrived. */
  readonly startNs: bigint
  /** Epoch milliseconds when the request arrived. */
  readonly startMs: number
  /** Client address as established through `server.trustedProxies`. */
  readonly clientIp: string
  readonly method: string
  /** The request-target as received (path + query), forwarded byte-for-byte. */
  readonly target: string
  /** Path part of the target, not decoded. */
  readonly path: string
  /** Query part without `?` (may be empty). */
  readonly query: string
  readonly userAgent: string
  readonly websocket: boolean
  route: RouteClass
  /** `namespace/project` (or group path for group routes) when known. */
  project?: string
  authMethod: AuthMethod
  identity: Identity
  decision?: Decision
  /** HTTP status sent to the client. */
  status?: number
  bytesIn: number
  bytesOut: number
  /** A websocket counted in the open-connections gauge (uncounted when its record is written, whatever became of it). */
  websocketCounted?: boolean
  /** Time to upstream response headers, in nanoseconds, when the request was forwarded. */
  upstreamNs?: bigint
  /** Set when the client went away before the response finished. */
  aborted?: boolean
  /** Error code when the pipeline failed (upstream unreachable, store down...). */
  error?: string
}
