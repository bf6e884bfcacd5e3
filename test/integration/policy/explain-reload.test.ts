import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BIN, ROOT, baseConfig, startServe } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}
const EXAMPLE_ENV = { IAP_ADMIN_TOKEN: 'x'.repeat(20), GITLAB_API_TOKEN: 't', ENTRA_CLIENT_SECRET: 's', IAP_SESSION_SECRET: 's'.repeat(32), IAP_LOG_KEY: 'k'.repeat(32) }

describe('gitlab-iap explain', () => {
  it('names the deciding rule and reason for an identity with groups', async () => {
    const res = await cli(['explain', '--config', 'config.example.yaml', '--path', '/admin/users', '--group', 'engineering'], EXAMPLE_ENV)
    expect(res.code).toBe(0)
    expect(res.stdout).toMatch(/^decision: deny$/m)
    expect(res.stdout).toMatch(/^rule:\s+admin-area \(rule 5 of 8\)$/m)
    expect(res.stdout).toMatch(/^reason:\s+no-group-match$/m)
  })

  it('--json gives route and project (GitLab-aware) for scripts', async () => {
    const res = await cli(['explain', '--config', 'config.example.yaml', '--path', '/api/v4/projects/secret-group%2Fvault/issues', '--method', 'post', '--group', 'admins', '--json'], EXAMPLE_ENV)
    expect(JSON.parse(res.stdout)).toMatchObject({ decision: 'allow', rule: 'secret-projects', reason: 'group-match', route: 'api', project: 'secret-group/vault', method: 'POST', status: null, response: 'forwarded' })
  })

  it('anonymous requests are challenged; non-canonical paths are refused before the policy', async () => {
    const anon = JSON.parse((await cli(['explain', '--config', 'config.example.yaml', '--path', '/group/project', '--anonymous', '--json'], EXAMPLE_ENV)).stdout)
    expect(anon).toMatchObject({ decision: 'deny', challenge: true, rule: 'read-everything', reason: 'login-required', status: 401, response: '302 to sign-in (browsers) or 401' })
    const bad = JSON.parse((await cli(['explain', '--config', 'config.example.yaml', '--path', '/x/%2e%2e/admin', '--group', 'admins', '--json'], EXAMPLE_ENV)).stdout)
    expect(bad).toMatchObject({ decision: 'deny', rule: null, reason: 'path-encoded-dot', status: 400 })
  })

  it("the proxy's own /-/iap/ endpoints: answered by serve itself, never forwarded, no rule", async () => {
    const explain = async (path: string, method = 'GET') =>
      JSON.parse((await cli(['explain', '--config', 'config.example.yaml', '--path', path, '--method', method, '--group', 'engineering', '--json'], EXAMPLE_ENV)).stdout)
    expect(await explain('/-/iap/whoami')).toMatchObject({ decision: 'allow', rule: null, reason: 'iap-endpoint', status: 200, response: 'answered by gitlab-iap', route: 'iap' })
    expect(await explain('/-/iap/logout', 'POST')).toMatchObject({ decision: 'allow', reason: 'iap-endpoint' })
    const anonymous = await cli(['explain', '--config', 'config.example.yaml', '--path', '/-/iap/whoami', '--anonymous', '--json'], EXAMPLE_ENV)
    expect(JSON.parse(anonymous.stdout)).toMatchObject({ decision: 'deny', challenge: true, reason: 'credentials-missing', status: 401 })
    expect(await explain('/-/iap/whoami', 'POST')).toMatchObject({ decision: 'deny', rule: null, reason: 'method-not-allowed', status: 405 })
    expect(await explain('/-/IAP/whoami')).toMatchObject({ decision: 'deny', rule: null, reason: 'iap-endpoint-unknown', status: 404 })
    expect(await explain('/-/iap/nope')).toMatchObject({ decision: 'deny', reason: 'iap-endpoint-unknown', status: 404 })
    expect(await explain('/-/iap/jwks.json', 'POST')).toMatchObject({ decision: 'deny', reason: 'method-not-allowed', status: 405 })
    // Without browser sign-in (no client secret), login, callback and logout answer 503 and say so, as serve does.
    const withoutSignIn = await cli(['explain', '--config', 'config.example.yaml', '--path', '/-/iap/login', '--json'], { ...EXAMPLE_ENV, ENTRA_CLIENT_SECRET: '' })
    expect(JSON.parse(withoutSignIn.stdout)).toMatchObject({ decision: 'deny', reason: 'sign-in-not-configured', status: 503 })
  })

  it('an anonymous request the policy would refuse is challenged; the text still says why no rule decided', async () => {
    const anon = await cli(['explain', '--config', 'config.example.yaml', '--path', '/api/v4/projects/42/issues', '--anonymous'], EXAMPLE_ENV)
    // An API request is never sent to sign-in (src/app.ts): 401, browser or not.
    expect(anon.stdout).toMatch(/^decision: deny \(challenged: no credential; answered 401: API requests are never sent to sign-in\)$/m)
    expect(anon.stdout).toMatch(/^rule:\s+\(none: the project could not be resolved\)$/m)
    expect(anon.stdout).toMatch(/^reason:\s+login-required$/m)
    expect(anon.stdout).toMatch(/^response: 401$/m)
    const signedIn = JSON.parse((await cli(['explain', '--config', 'config.example.yaml', '--path', '/api/v4/projects/42/issues', '--group', 'engineering', '--json'], EXAMPLE_ENV)).stdout)
    expect(signedIn).toMatchObject({ decision: 'deny', rule: null, reason: 'project-unresolved', status: 403 })
  })

  it('needs none of the secrets serve needs; refuses an unknown alias, method or address in one line', async () => {
    const bare = await cli(['explain', '--config', 'config.example.yaml', '--path', '/admin/users', '--group', 'admins'])
    expect(bare.code).toBe(0)
    expect(bare.stdout).toMatch(/^decision: allow$/m)
    // Unset variables in URL, GUID and address fields too (check still names each of them).
    const typed = join(mkdtempSync(join(tmpdir(), 'explain-env-')), 'config.yaml')
    writeFileSync(typed, [
      'server: { listen: "127.0.0.1:18080", publicUrl: "${PUBLIC_URL}" }', 'admin: { listen: "${ADMIN_LISTEN}" }', 'upstream: { url: "${UPSTREAM_URL}" }',
      'entra: { tenantId: "${TENANT_ID}", clientId: "${CLIENT_ID}" }', 'groups: { admins: "6c0bd1d2-0000-4000-8000-000000000001" }',
      'policy: { rules: [ { name: admin-area, paths: ["/admin/**"], groups: [admins] } ] }', '',
    ].join('\n'))
    const explained = await cli(['explain', '--config', typed, '--path', '/admin/users', '--group', 'admins', '--json'])
    expect(explained.stderr).toBe('')
    expect(JSON.parse(explained.stdout)).toMatchObject({ decision: 'allow', rule: 'admin-area' })
    const checked = await cli(['check', '--config', typed])
    expect(checked.code).toBe(1)
    for (const name of ['PUBLIC_URL', 'ADMIN_LISTEN', 'UPSTREAM_URL', 'TENANT_ID', 'CLIENT_ID']) expect(checked.stderr).toContain(`environment variable ${name} is not set`)
    const alias = await cli(['explain', '--config', 'config.example.yaml', '--path', '/admin/users', '--group', 'admns'], EXAMPLE_ENV)
    expect(alias.code).toBe(2)
    expect(alias.stderr.trim()).toMatch(/^gitlab-iap: --group admns: unknown group alias \(aliases: admins, .*\); a raw group is an object id or "<issuer>:<group>"$/)
    const method = await cli(['explain', '--config', 'config.example.yaml', '--path', '/x', '--method', 'G T'], EXAMPLE_ENV)
    expect(method.code).toBe(2)
    expect(method.stderr.trim()).toMatch(/^gitlab-iap: --method G T: unknown HTTP method/)
    const ip = await cli(['explain', '--config', 'config.example.yaml', '--path', '/x', '--ip', 'bogus'], EXAMPLE_ENV)
    expect(ip.code).toBe(2)
    expect(ip.stderr.trim()).toBe('gitlab-iap: --ip bogus: not an IPv4 or IPv6 address')
  })

  it('config.example.yaml keeps the project API open to engineering, reads and writes alike (an example rule must not shadow it)', async () => {
    for (const method of ['GET', 'POST', 'PUT']) {
      const res = JSON.parse((await cli(['explain', '--config', 'config.example.yaml', '--path', '/api/v4/projects/group%2Fproject/issues', '--method', method, '--group', 'engineering', '--json'], EXAMPLE_ENV)).stdout)
      expect(res, method).toMatchObject({ decision: 'allow' })
    }
  })

  it('requires --path', async () => {
    const res = await cli(['explain', '--config', 'config.example.yaml'], EXAMPLE_ENV)
    expect(res.code).toBe(2)
    expect(res.stderr.trim()).toBe('gitlab-iap: --path is required (e.g. --path /admin/users)')
  })

  it('refuses contradictory identities instead of silently answering for another one', async () => {
    for (const [flags, message] of [
      [['--user', 'bob@contoso.com', '--anonymous'], '--anonymous contradicts --user'],
      [['--group', 'engineering', '--anonymous'], '--anonymous contradicts --group'],
      [['--app', '22222222-2222-2222-2222-222222222222', '--user', 'bob@contoso.com'], '--app contradicts --user'],
      [['--app', '22222222-2222-2222-2222-222222222222', '--group', 'admins'], '--app contradicts --group'],
      [['--group', 'engineering', '--group', 'ci-platform'], 'one identity comes from one issuer'],
    ] as const) {
      const res = await cli(['explain', '--config', 'config.example.yaml', '--path', '/admin', ...flags], EXAMPLE_ENV)
      expect(res.code).toBe(2)
      expect(res.stdout).toBe('')
      expect(res.stderr).toContain(message)
    }
  })
})

describe('hot reload', () => {
  let upstream: Upstream
  beforeAll(async () => {
    upstream = await startUpstream()
  })
  afterAll(async () => {
    await upstream?.close()
  })

  it('a valid edit swaps the policy without restart; an invalid one keeps it; SIGHUP reloads too', async () => {
    const rules = (path: string) => ({ policy: { rules: [{ name: 'open', paths: [path], public: true }] } })
    const proxy = await startServe(baseConfig(upstream.url, rules('/a/**')))
    try {
      expect((await fetch(`${proxy.url}/a/x`)).status).toBe(200)
      // No rule matches /b/x: a request without credentials is challenged (401), not refused.
      expect((await fetch(`${proxy.url}/b/x`)).status).toBe(401)
      writeFileSync(proxy.configPath, JSON.stringify(baseConfig(upstream.url, rules('/b/**'))))
      await expect.poll(async () => (await fetch(`${proxy.url}/b/x`)).status, { timeout: 5000 }).toBe(200)
      expect((await fetch(`${proxy.url}/a/x`)).status).toBe(401)

      const before = proxy.stderr().length
      writeFileSync(proxy.configPath, JSON.stringify({ ...baseConfig(upstream.url, rules('/c/**')), policy: { rules: [{ name: 'broken', paths: ['/c/**'], groups: ['nope'] }] } }))
      await expect.poll(() => proxy.stderr().slice(before), { timeout: 5000 }).toContain('policy.rules[0].groups[0]: unknown group alias \\"nope\\"')
      expect((await fetch(`${proxy.url}/b/x`)).status).toBe(200)

      // Edit without a file event reaching us, then SIGHUP.
      const text = readFileSync(proxy.configPath, 'utf8')
      expect(text).toContain('broken')
      writeFileSync(proxy.configPath, JSON.stringify(baseConfig(upstream.url, rules('/d/**'))))
      proxy.process.kill('SIGHUP')
      await expect.poll(async () => (await fetch(`${proxy.url}/d/x`)).status, { timeout: 5000 }).toBe(200)
      expect(proxy.stderr()).toContain('policy reloaded')

      // A reloaded policy is warned about like the one the process started with.
      const beforeWarning = proxy.stderr().length
      writeFileSync(proxy.configPath, JSON.stringify({ ...baseConfig(upstream.url, rules('/e/**')), policy: { rules: [{ name: 'vaults', projects: ['**/vault'], deny: true }] } }))
      await expect.poll(() => proxy.stderr().slice(beforeWarning), { timeout: 5000 }).toContain('IAP_WARN_PROJECTS_EVERY_GROUP')
    } finally {
      await proxy.stop()
    }
  })
})

