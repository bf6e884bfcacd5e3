/**
 * The two-credential git form with the real git CLI:
 *   git clone http://$IAP_TOKEN:$GITLAB_PAT@proxy/group/project.git
 * The proxy verifies the JWT username and forwards `Basic oauth2:$GITLAB_PAT` (or
 * `gitlab-ci-token:$CI_JOB_TOKEN` for a GitLab CI token); the upstream checks that credential like
 * GitLab does, so a clone succeeds only when both checks pass.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'
import { startJwksServer, TEST_AUDIENCE, TEST_CLIENT, TEST_TENANT, type JwksServer } from '../../helpers/jwks-server.ts'

const run = promisify(execFile)
const PAT = 'glpat-test-0123456789abcdef'
const JOB_TOKEN = 'glcbt-64_test-job-token'

let idp: JwksServer
let upstream: Upstream
let proxy: ServeHandle
let work: string

const gitEnv = () => ({ PATH: process.env.PATH, HOME: work, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', GIT_ASKPASS: '/bin/false' })
const clone = (url: string, dir: string) => run('git', ['-c', 'protocol.version=2', '-c', 'credential.helper=', 'clone', '--quiet', url, join(work, dir)], { cwd: work, env: gitEnv() })
const withCredentials = (user: string, password: string) => {
  const url = new URL(`${proxy.url}/group/project.git`)
  url.username = encodeURIComponent(user)
  url.password = encodeURIComponent(password)
  return url.href
}
const basicOf = (header: unknown) => Buffer.from(String(header).replace(/^Basic /, ''), 'base64').toString()

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'gitlab-iap-git-basic-'))
  idp = await startJwksServer()
  upstream = await startUpstream({ repos: ['group/project'], gitCredentials: [{ username: 'oauth2', password: PAT }, { username: 'gitlab-ci-token', password: JOB_TOKEN }] })
  proxy = await startServe(
    baseConfig(upstream.url, {
      entra: { tenantId: TEST_TENANT, clientId: TEST_CLIENT, authority: idp.authority, audiences: [TEST_AUDIENCE] },
      issuers: [{ name: 'gitlab-ci', issuer: idp.ciIssuer, audiences: ['https://gitlab.test'], claims: { user: 'user_login', groups: ['project_path'] } }],
      groups: { engineering: 'g-eng' },
      policy: {
        rules: [
          { name: 'ci-clone', paths: ['/**'], groups: ['engineering', 'gitlab-ci:platform/infra'] },
        ],
      },
    }),
  )
})

afterAll(async () => {
  await proxy?.stop()
  await upstream?.close()
  await idp?.close()
  if (work) rmSync(work, { recursive: true, force: true })
})

describe('git clone with the IAP token as username and the GitLab PAT as password', () => {
  it('clones a private repository; GitLab receives oauth2:PAT and never the IAP token', async () => {
    const token = await idp.mint()
    upstream.clear()
    await clone(withCredentials(token, PAT), 'entra-clone')
    expect(readFileSync(join(work, 'entra-clone/README.md'), 'utf8')).toContain('group/project')
    const gitRequests = upstream.requests.filter((r) => r.url.startsWith('/group/project.git/'))
    expect(gitRequests.length).toBeGreaterThanOrEqual(2)
    for (const r of gitRequests) {
      expect(basicOf(r.headers.authorization)).toBe(`oauth2:${PAT}`)
      expect(JSON.stringify(r.headers)).not.toContain(token)
    }
  })

  it('a GitLab CI id_token as username forwards gitlab-ci-token:$CI_JOB_TOKEN', async () => {
    const token = await idp.mint({}, { issuer: 'ci' })
    upstream.clear()
    await clone(withCredentials(token, JOB_TOKEN), 'ci-clone')
    expect(readFileSync(join(work, 'ci-clone/README.md'), 'utf8')).toContain('group/project')
    const last = upstream.requests.filter((r) => r.url.startsWith('/group/project.git/')).at(-1)!
    expect(basicOf(last.headers.authorization)).toBe(`gitlab-ci-token:${JOB_TOKEN}`)
  })

  it('both checks apply: a valid IAP token with a wrong PAT is refused by GitLab', async () => {
    await expect(clone(withCredentials(await idp.mint(), 'glpat-wrong'), 'wrong-pat')).rejects.toThrow(/Authentication failed|401|could not read/i)
  })

  it('both checks apply: the right PAT without an IAP token never reaches GitLab', async () => {
    upstream.clear()
    await expect(clone(withCredentials('ada', PAT), 'no-token')).rejects.toThrow()
    expect(upstream.requests.filter((r) => r.url.startsWith('/group/project.git/'))).toHaveLength(0)
  })

  it('an expired IAP token is refused with a Basic challenge and never reaches GitLab', async () => {
    upstream.clear()
    const expired = await idp.mint({ exp: Math.floor(Date.now() / 1000) - 600, iat: Math.floor(Date.now() / 1000) - 4000, nbf: Math.floor(Date.now() / 1000) - 4000 })
    await expect(clone(withCredentials(expired, PAT), 'expired')).rejects.toThrow()
    expect(upstream.requests).toHaveLength(0)
    const res = await fetch(`${proxy.url}/group/project.git/info/refs?service=git-upload-pack`, { headers: { authorization: `Basic ${Buffer.from(`${expired}:${PAT}`).toString('base64')}` } })
    expect(res.status).toBe(401)
    expect(res.headers.get('www-authenticate')).toContain('Basic realm="gitlab-iap"')
    expect(res.headers.get('www-authenticate')).toContain('error_description="The token has expired."')
  })

  it('the IAP token as the password (one credential) is consumed and removed', async () => {
    upstream.clear()
    const path = '/group/project.git/info/refs?service=git-upload-pack'
    const res = await fetch(`${proxy.url}${path}`, { headers: { authorization: `Basic ${Buffer.from(`anyone:${await idp.mint()}`).toString('base64')}` } })
    // It reached GitLab (which then wants its own credential) without any Authorization header.
    expect(res.status).toBe(401)
    const reached = upstream.reached('/group/project.git/info/refs')
    expect(reached).toHaveLength(1)
    expect(reached[0]!.headers.authorization).toBeUndefined()
  })
})
