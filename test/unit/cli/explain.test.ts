/**
 * `gitlab-iap explain` in-process: what it says for a request without credentials matches what serve
 * answers (a deny rule refuses outright; a challenge is a sign-in redirect only for a browser's GET or
 * HEAD outside the API, git and LFS, with browser sign-in configured), and a refusal names what the
 * identity lacks.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runExplain } from '../../../src/cli/explain.ts'
import { withCapturedIo } from '../../helpers/cli-io.ts'

const dir = mkdtempSync(join(tmpdir(), 'gitlab-iap-explain-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function configFile(name: string, signIn: boolean): string {
  const path = join(dir, name)
  writeFileSync(path, [
    'server: { listen: "127.0.0.1:18080", publicUrl: "https://gitlab.example.com" }',
    'upstream: { url: "http://gitlab:8181" }',
    `entra: { tenantId: "00000000-0000-0000-0000-000000000000", clientId: "11111111-1111-1111-1111-111111111111"${signIn ? ', clientSecret: "client-secret"' : ''} }`,
    `session: { secret: "${'s'.repeat(32)}" }`,
    'groups: { engineering: "6c0bd1d2-0000-4000-8000-000000000002" }',
    'policy:',
    '  rules:',
    '    - { name: blocked, paths: ["/-/blocked/**"], deny: true }',
    '    - { name: alice-only, paths: ["/alice/**"], users: ["alice@example.com"] }',
    '    - { name: admins-role, paths: ["/admin/**"], roles: ["GitLab.Admin"] }',
    '    - { name: deployer, paths: ["/api/v4/deploy/**"], apps: ["22222222-2222-2222-2222-222222222222"] }',
    '    - { name: engineering, paths: ["/**"], groups: [engineering] }',
    '',
  ].join('\n'))
  return path
}
const withSignIn = configFile('sign-in.yaml', true)
const withoutSignIn = configFile('no-sign-in.yaml', false)

async function explain(args: string[], config = withSignIn): Promise<string> {
  const res = await withCapturedIo((io) => runExplain(['--config', config, ...args], io))
  expect(res.stderr).toBe('')
  expect(res.code).toBe(0)
  return res.stdout
}
const explainJson = async (args: string[], config = withSignIn) => JSON.parse(await explain([...args, '--json'], config)) as Record<string, unknown>

describe('explain: a deny rule and a request without credentials', () => {
  it('is refused outright (403, reason deny-rule), as serve refuses it, not challenged', async () => {
    for (const method of ['GET', 'POST']) {
      expect(await explainJson(['--path', '/-/blocked/x', '--method', method, '--anonymous'])).toEqual(expect.objectContaining({ decision: 'deny', rule: 'blocked', reason: 'deny-rule', status: 403, response: '403' }))
      expect(await explainJson(['--path', '/-/blocked/x', '--method', method, '--anonymous'])).not.toHaveProperty('challenge')
    }
    const text = await explain(['--path', '/-/blocked/x', '--anonymous'])
    expect(text).toMatch(/^decision: deny$/m)
    expect(text).toMatch(/^reason:\s+deny-rule$/m)
    expect(text).toMatch(/^response: 403$/m)
  })

  it('control: a rule the identity lacks still challenges it', async () => {
    expect(await explainJson(['--path', '/alice/x', '--anonymous'])).toMatchObject({ decision: 'deny', challenge: true, rule: 'alice-only', reason: 'login-required', status: 401 })
  })
})

describe('explain: the response to a challenge', () => {
  it.each([
    ['GET', '/group/project'],
    ['HEAD', '/group/project/-/issues'],
  ])('a %s of a web page: browsers are sent to sign-in', async (method, path) => {
    expect(await explainJson(['--path', path, '--method', method, '--anonymous'])).toMatchObject({ challenge: true, status: 401, response: '302 to sign-in (browsers) or 401' })
    expect(await explain(['--path', path, '--method', method, '--anonymous'])).toMatch(/^decision: deny \(challenged: no credential; browsers are sent to sign-in, other clients get 401\)$/m)
  })

  it.each([
    ['POST', '/api/v4/jobs/request', 'only a GET or HEAD is sent to sign-in'],
    ['POST', '/group/project/-/issues', 'only a GET or HEAD is sent to sign-in'],
    ['DELETE', '/group/project', 'only a GET or HEAD is sent to sign-in'],
    ['GET', '/api/v4/projects/group%2Fproject/issues', 'API requests are never sent to sign-in'],
    ['GET', '/group/project.git/info/refs?service=git-upload-pack', 'git requests are never sent to sign-in'],
    ['GET', '/group/project.git/gitlab-lfs/objects/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 'LFS requests are never sent to sign-in'],
  ])('%s %s: 401 (%s)', async (method, path, why) => {
    expect(await explainJson(['--path', path, '--method', method, '--anonymous'])).toMatchObject({ challenge: true, status: 401, response: '401' })
    const text = await explain(['--path', path, '--method', method, '--anonymous'])
    expect(text).toMatch(/^response: 401$/m)
    expect(text).toContain(`decision: deny (challenged: no credential; answered 401: ${why})`)
  })

  it('without browser sign-in, a web page is answered 401 too', async () => {
    expect(await explainJson(['--path', '/group/project', '--anonymous'], withoutSignIn)).toMatchObject({ challenge: true, status: 401, response: '401' })
    expect(await explain(['--path', '/group/project', '--anonymous'], withoutSignIn)).toContain('(challenged: no credential; answered 401: browser sign-in is not configured)')
  })

  it("whoami's own 401 is no sign-in redirect either", async () => {
    expect(await explain(['--path', '/-/iap/whoami', '--anonymous'])).toMatch(/^decision: deny \(challenged: no credential; answered 401: the endpoint answers it itself\)$/m)
  })
})

describe('explain: the reason names what the identity lacks', () => {
  it.each([
    [['--path', '/alice/x', '--user', 'bob@example.com'], 'alice-only', 'no-user-match'],
    [['--path', '/admin/users', '--user', 'bob@example.com'], 'admins-role', 'no-role-match'],
    [['--path', '/api/v4/deploy/x', '--method', 'POST', '--app', '33333333-3333-3333-3333-333333333333'], 'deployer', 'no-app-match'],
    [['--path', '/group/project', '--user', 'bob@example.com'], 'engineering', 'no-group-match'],
  ])('%j: %s refuses it, %s', async (args, rule, reason) => {
    expect(await explainJson(args)).toMatchObject({ decision: 'deny', rule, reason, status: 403 })
    expect(await explain(args)).toMatch(new RegExp(`^reason:\\s+${reason}$`, 'm'))
  })
})
