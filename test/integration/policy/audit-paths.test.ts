/**
 * Policy and path findings of the audit, through a running serve: encoded unreserved characters
 * that hid a project from its rule, other spellings of `/-/iap/`, anonymous requests answered 403
 * where signing in may help (and 401 where a deny rule refuses everyone), patterns that could never
 * match (encoded or with a trailing slash), and HEAD
 * slipping past a `methods: [GET]` rule.
 */
import { spawn } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startJwksServer, TEST_AUDIENCE, TEST_CLIENT, TEST_TENANT, type JwksServer } from '../../helpers/jwks-server.ts'
import { rawRequest } from '../../helpers/http.ts'
import { baseConfig, BIN, ROOT, startServe, writeConfig, type ServeHandle } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'

const ADMINS = '6c0bd1d2-0000-4000-8000-000000000001'
const ENG = '6c0bd1d2-0000-4000-8000-000000000002'
let idp: JwksServer
let upstream: Upstream
let proxy: ServeHandle
let engineer: string

beforeAll(async () => {
  idp = await startJwksServer()
  upstream = await startUpstream({ projects: { '42': 'secret-group/vault', '7': 'group/project' }, apiToken: 'api-token-1' })
  proxy = await startServe(
    baseConfig(upstream.url, {
      upstream: { url: upstream.url, apiToken: 'api-token-1', timeoutSeconds: 30 },
      entra: { tenantId: TEST_TENANT, clientId: TEST_CLIENT, authority: idp.authority, audiences: [TEST_AUDIENCE] },
      groups: { admins: ADMINS, engineering: ENG },
      policy: {
        rules: [
          { name: 'health', paths: ['/-/health'], public: true },
          { name: 'blocked', paths: ['/-/blocked/**'], deny: true },
          { name: 'no-export', paths: ['/export/**'], methods: ['GET'], deny: true },
          { name: 'cafe', paths: ['/caf%C3%A9/**'], deny: true },
          { name: 'trailing', paths: ['/t/'], deny: true },
          { name: 'secret-projects', projects: ['secret-group/**'], groups: ['admins'] },
          { name: 'engineers', paths: ['/group/**', '/team/**', '/api/**', '/projects/**', '/export/**', '/caf*/**', '/t', '/~*/**', '/-/blocked/**'], groups: ['engineering'] },
        ],
      },
    }),
  )
  engineer = await idp.mint({ groups: [ENG] })
})
afterAll(async () => {
  await proxy?.stop()
  await upstream?.close()
  await idp?.close()
})

const json = { accept: 'application/json' }
const bodyOf = (body: string) => JSON.parse(body) as Record<string, unknown>
/** Requests that reached "GitLab" itself (not the proxy's own lookups of numeric ids). */
const forwarded = () => upstream.requests.filter((r) => !r.headers['private-token'])

describe('encoded unreserved characters (RFC 3986 §6.2.2.2)', () => {
  it.each(['/api/v4/%70rojects/secret-group%2Fvault/issues', '/api/v4/%70rojects/42', '/%70rojects/42', '/team/vault.git/info/%72efs?service=git-upload-pack', '/%73ecret-group/vault'])(
    '%s is refused with 400 path-encoded-unreserved and never reaches GitLab',
    async (target) => {
      upstream.clear()
      const res = await rawRequest(proxy.url, 'GET', target, { ...json, authorization: `Bearer ${engineer}` })
      expect(res.status).toBe(400)
      expect(bodyOf(res.body)).toMatchObject({ reason: 'path-encoded-unreserved' })
      expect(upstream.requests).toHaveLength(0)
    },
  )

  it('control: %7E and encoded letters in file names still pass', async () => {
    for (const target of ['/~alice/project', '/%7Ealice/project', '/group/project/-/blob/main/%61.rb']) {
      const res = await rawRequest(proxy.url, 'GET', target, { authorization: `Bearer ${engineer}` })
      expect(res.status, target).toBe(200)
    }
  })
})

describe('other spellings of /-/iap/', () => {
  it.each(['/-/IAP/whoami', '/-/Iap/whoami', '/-/iAp/login', '/-/IAP'])('%s is answered by the proxy (404), never forwarded', async (target) => {
    upstream.clear()
    const res = await rawRequest(proxy.url, 'GET', target, { ...json, authorization: `Bearer ${engineer}` })
    expect(res.status).toBe(404)
    expect(upstream.requests).toHaveLength(0)
  })
})

describe('requests without credentials are challenged (401) where signing in may help', () => {
  it.each([
    ['a rule that needs an identity', '/group/project', 'engineers'],
    ['no rule (policy.default: deny)', '/elsewhere', null],
    ['an unresolved numeric project id', '/api/v4/projects/12345/issues', null],
  ])('%s: %s', async (_name, target, rule) => {
    upstream.clear()
    const res = await rawRequest(proxy.url, 'GET', target, json)
    expect(res.status).toBe(401)
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="gitlab-iap"/)
    expect(bodyOf(res.body)).toMatchObject({ reason: 'login-required' })
    expect(forwarded()).toHaveLength(0)
    const id = res.headers['x-request-id']
    await expect.poll(() => proxy.records().find((r) => r['http.request.id'] === id)).toBeDefined()
    expect(proxy.records().find((r) => r['http.request.id'] === id)).toMatchObject({ 'iap.decision.result': 'challenge', 'iap.decision.rule': rule, 'iap.decision.reason': 'login-required', 'http.response.status_code': 401 })
  })

  it('a deny rule refuses them outright (403 deny-rule), as it refuses everyone: signing in cannot help', async () => {
    const scrape = async () => (await fetch(`${proxy.adminUrl}/metrics`)).text()
    const series = /^gitlab_iap_requests_total\{decision="deny",auth_method="none",route="web"\} (\d+)/m
    const count = (text: string) => Number(series.exec(text)?.[1] ?? 0)
    const before = count(await scrape())
    upstream.clear()
    for (const [method, headers] of [['GET', json], ['POST', json], ['GET', { 'user-agent': 'git/2.45.1' }]] as const) {
      const res = await rawRequest(proxy.url, method, '/-/blocked/x', headers, method === 'POST' ? '' : undefined)
      expect(res.status, method).toBe(403)
      expect(res.headers['www-authenticate'], method).toBeUndefined()
      if (headers === json) expect(bodyOf(res.body), method).toMatchObject({ rule: 'blocked', reason: 'deny-rule' })
      else expect(res.body).toMatch(/^gitlab-iap: access denied by rule "blocked" \(deny-rule\); request id \S+$/m)
      const id = res.headers['x-request-id']
      await expect.poll(() => proxy.records().find((r) => r['http.request.id'] === id)).toBeDefined()
      expect(proxy.records().find((r) => r['http.request.id'] === id)).toMatchObject({
        'iap.decision.result': 'deny', 'iap.decision.rule': 'blocked', 'iap.decision.reason': 'deny-rule',
        'iap.identity.kind': 'anonymous', 'iap.auth.method': 'none', 'http.response.status_code': 403, 'event.outcome': 'failure',
      })
    }
    expect(forwarded()).toHaveLength(0)
    expect(count(await scrape()) - before).toBe(3)
  })

  it('with a credential, the same requests are refused (403) with the rule reason', async () => {
    for (const [target, reason] of [['/-/blocked/x', 'deny-rule'], ['/elsewhere', 'no-rule-matched'], ['/api/v4/projects/12345/issues', 'project-unresolved']] as const) {
      const res = await rawRequest(proxy.url, 'GET', target, { ...json, authorization: `Bearer ${engineer}` })
      expect(res.status, target).toBe(403)
      expect(bodyOf(res.body), target).toMatchObject({ reason })
    }
  })
})

describe('patterns in the request form', () => {
  it('an encoded pattern matches the request it names (/caf%C3%A9/**)', async () => {
    upstream.clear()
    for (const target of ['/caf%C3%A9/menu', '/caf%c3%a9/menu', '/CAF%C3%A9']) {
      const res = await rawRequest(proxy.url, 'GET', target, { ...json, authorization: `Bearer ${engineer}` })
      expect(res.status, target).toBe(403)
      expect(bodyOf(res.body), target).toMatchObject({ rule: 'cafe' })
    }
    expect(upstream.requests).toHaveLength(0)
  })

  it('a pattern with a trailing slash matches the path with and without it (/t/)', async () => {
    for (const target of ['/t', '/t/']) {
      const res = await rawRequest(proxy.url, 'GET', target, { ...json, authorization: `Bearer ${engineer}` })
      expect(res.status, target).toBe(403)
      expect(bodyOf(res.body), target).toMatchObject({ rule: 'trailing' })
    }
  })
})

describe('GET in methods covers HEAD', () => {
  it('a deny rule on GET also stops HEAD; other methods fall through', async () => {
    upstream.clear()
    const head = await rawRequest(proxy.url, 'HEAD', '/export/all.csv', { authorization: `Bearer ${engineer}` })
    expect(head.status).toBe(403)
    expect((await rawRequest(proxy.url, 'GET', '/export/all.csv', { authorization: `Bearer ${engineer}` })).status).toBe(403)
    expect(upstream.requests).toHaveLength(0)
    expect((await rawRequest(proxy.url, 'POST', '/export/all.csv', { authorization: `Bearer ${engineer}` }, '')).status).toBe(200)
  })
})

describe('a pattern that cannot be decoded', () => {
  it('is a config error naming its key path (check, and serve refuses to start)', async () => {
    const file = writeConfig(baseConfig('http://127.0.0.1:9', { policy: { rules: [{ name: 'ok', paths: ['/a'], public: true }, { name: 'bad', paths: ['/b', '/caf%C3'], deny: true }] } }))
    try {
      for (const command of ['check', 'serve']) {
        const res = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, [BIN, command, '--config', file.path], { cwd: ROOT })
          let stderr = ''
          child.stderr.on('data', (d) => (stderr += d))
          child.on('close', (code) => resolve({ code, stderr }))
        })
        expect(res.code, command).toBe(1)
        expect(res.stderr, command).toContain('gitlab-iap: policy.rules[1].paths[1]: bad percent-encoding in "/caf%C3"')
      }
    } finally {
      file.cleanup()
    }
  })
})
