/**
 * Every kind of record the access log writes validates against the published JSON Schema
 * (docs/access-log.schema.json), whose `required` list holds every field a record must carry.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { ANONYMOUS, type Identity } from '../../../src/auth/identity.ts'
import { createAccessLog } from '../../../src/logs/index.ts'
import type { RequestContext } from '../../../src/server/context.ts'
import { alice, requestContext } from '../../helpers/records.ts'

const schema = JSON.parse(readFileSync(join(import.meta.dirname, '../../../docs/access-log.schema.json'), 'utf8')) as { required: string[]; properties: Record<string, unknown> }
const validate = z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0])

/** Fields every record carries (`iap.gitlab.project` only when known). */
const REQUIRED_FIELDS = [
  '@timestamp', 'http.request.id', 'http.request.method', 'url.path', 'http.response.status_code', 'http.response.bytes', 'event.duration',
  'event.outcome', 'client.ip', 'user_agent.original', 'user.id', 'user.name', 'user.email', 'iap.identity.kind', 'iap.identity.groups',
  'iap.auth.method', 'iap.decision.result', 'iap.decision.rule', 'iap.decision.reason', 'iap.gitlab.route',
]

const app: Identity = { kind: 'app', id: 'sp-oid', groups: [], roles: ['Api.Read'], issuer: 'entra', appId: 'client-1' }
const ci: Identity = { kind: 'ci', id: 'ada', name: 'ada', groups: ['gitlab-ci:platform'], roles: [], issuer: 'gitlab-ci', ci: { projectPath: 'platform/infra', ref: 'main', refProtected: true, pipelineId: '574', jobId: '302' } }

const ctx = requestContext

/** One context of each kind the pipeline (and the parser-refusal path of src/server/start.ts) logs. */
const KINDS: Record<string, RequestContext> = {
  'allowed session user': ctx({ upstreamNs: 700n }),
  'allowed app': ctx({ identity: app, authMethod: 'bearer', route: 'api', project: undefined, path: '/api/v4/projects', query: '' }),
  'allowed ci over basic, groups from graph': ctx({ identity: { ...ci, groupsSource: 'graph', displayName: 'Ada' }, authMethod: 'basic', route: 'git' }),
  'denied by rule': ctx({ status: 403, decision: { result: 'deny', rule: 'admin-area', reason: 'deny-rule' } }),
  'anonymous, no rule matched': ctx({ identity: ANONYMOUS, authMethod: 'none', status: 403, decision: { result: 'deny', rule: null, reason: 'no-rule-matched' } }),
  'challenge to sign in': ctx({ identity: ANONYMOUS, authMethod: 'none', status: 302, decision: { result: 'challenge', rule: null, reason: 'credentials-missing' } }),
  'before the policy (no decision)': ctx({ identity: ANONYMOUS, authMethod: 'none', status: 400, decision: undefined, project: undefined }),
  'upstream cut the body after 200': ctx({ error: 'upstream-reset', upstreamNs: 5n }),
  'upstream unreachable': ctx({ status: 502, error: 'upstream-unreachable' }),
  'client left': ctx({ status: 499, aborted: true }),
  'oversized user agent and query (cut, within the schema)': ctx({ userAgent: 'u'.repeat(40_000), query: `q=${'x'.repeat(40_000)}` }),
  'websocket': ctx({ websocket: true, route: 'cable', path: '/-/cable', query: '', project: undefined, status: 101, bytesIn: 1000 }),
  // As src/server/start.ts builds it for a request Node's parser refused: no headers, maybe no method or path.
  'parser-refused': ctx({
    method: '-', target: '', path: '', query: '', userAgent: '', route: 'other', project: undefined, authMethod: 'none', identity: ANONYMOUS,
    decision: { result: 'deny', rule: null, reason: 'malformed-request' }, status: 400, bytesOut: 0, error: 'request-syntax-invalid',
  }),
  'headers timeout': ctx({
    method: '-', target: '', path: '', query: '', userAgent: '', route: 'other', project: undefined, authMethod: 'none', identity: ANONYMOUS,
    decision: { result: 'deny', rule: null, reason: 'headers-timeout' }, status: 408, bytesOut: 0, error: 'request-headers-timeout',
  }),
}

const dir = mkdtempSync(join(tmpdir(), 'iap-schema-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('docs/access-log.schema.json', () => {
  it('requires every field a record must carry', () => {
    for (const field of REQUIRED_FIELDS) expect(schema.required, field).toContain(field)
  })

  it('validates every kind of record the access log writes, chain fields and all', async () => {
    const output = join(dir, 'access.log')
    const log = createAccessLog({ output, rotate: { size: 1e12, keep: 1, compress: false }, integrity: { key: 'k'.repeat(32) }, onError: 'serve' }, { instanceId: 'instance-1' })
    const kinds = Object.keys(KINDS)
    for (const kind of kinds) log.write(KINDS[kind]!, 2_001_000n)
    await log.close()
    const lines = readFileSync(output, 'utf8').split('\n').filter(Boolean)
    expect(lines).toHaveLength(kinds.length)
    lines.forEach((line, i) => {
      const record = JSON.parse(line) as Record<string, unknown>
      const result = validate.safeParse(record)
      expect(result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`), kinds[i]).toEqual([])
      for (const field of REQUIRED_FIELDS) expect(record, `${kinds[i]}: ${field}`).toHaveProperty([field])
    })
  })

  it('rejects a record missing a required field', () => {
    const record = JSON.parse(readFileSync(join(dir, 'access.log'), 'utf8').split('\n')[0]!) as Record<string, unknown>
    expect(validate.safeParse(record).success).toBe(true)
    for (const field of ['http.request.id', 'user.id', 'iap.decision.rule', 'iap.gitlab.route']) {
      const { [field]: _, ...without } = record
      expect(validate.safeParse(without).success, field).toBe(false)
    }
  })
})
