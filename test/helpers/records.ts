import type { Identity } from '../../src/auth/identity.ts'
import { runLogs } from '../../src/cli/logs.ts'
import type { RequestContext } from '../../src/server/context.ts'
import { withCapturedIo } from './cli-io.ts'

/** Reads an ECS field from an access-log record whether it is written flat ("url.path") or nested ({url:{path}}). */
export function field(record: Record<string, unknown>, name: string): unknown {
  if (name in record) return record[name]
  let value: unknown = record
  for (const part of name.split('.')) {
    if (value === null || typeof value !== 'object') return undefined
    value = (value as Record<string, unknown>)[part]
  }
  return value
}

export function findRecord(records: Record<string, unknown>[], predicate: (r: Record<string, unknown>) => boolean): Record<string, unknown> | undefined {
  return records.find(predicate)
}

/** A signed-in user as the access-log tests use it. */
export const alice: Identity = { kind: 'user', id: 'oid-alice', name: 'alice@example.com', email: 'alice@example.com', groups: ['g-eng'], roles: [], issuer: 'entra' }

/** A request context for access-log records: an allowed GET by alice, with `over` on top. */
export function requestContext(over: Partial<RequestContext> = {}): RequestContext {
  return {
    id: 'req-1', startNs: 1_000n, startMs: Date.parse('2026-11-28T10:00:00Z'), clientIp: '10.1.2.3', method: 'GET',
    target: '/group/project/-/issues?state=opened', path: '/group/project/-/issues', query: 'state=opened', userAgent: 'curl/8',
    websocket: false, route: 'web', project: 'group/project', authMethod: 'session', identity: alice,
    decision: { result: 'allow', rule: 'read-everything', reason: 'group-match' }, status: 200, bytesIn: 0, bytesOut: 512, ...over,
  }
}

/** Runs `gitlab-iap logs ARGS` in-process and collects what it printed. */
export function runLogsCommand(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return withCapturedIo((io) => runLogs(args, io))
}
