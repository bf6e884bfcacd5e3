/**
 * Attribution to the project GitLab will actually serve, end to end through a real serve and the
 * GitLab-shaped upstream: former paths of wiki, design and snippet repositories (Gitlab::RepoPath
 * strips the suffix and follows redirects), REST references by a former path (`find_project` follows
 * redirects), group-wide endpoints of a group above a protected subgroup, groups named like words
 * GitLab no longer reserves, and the instance-level package registries that name a namespace.
 * The identity is an engineer: every attempt must be refused AND never reach GitLab.
 */
import { createServer, request, type Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startJwksServer, TEST_AUDIENCE, TEST_CLIENT, TEST_TENANT, type JwksServer } from '../../helpers/jwks-server.ts'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'
import { rawRequest } from '../../helpers/http.ts'

const ADMINS = '6c0bd1d2-0000-4000-8000-000000000001'
const ENG = '6c0bd1d2-0000-4000-8000-000000000002'
/** Groups GitLab's API answers by path (`GET /api/v4/groups/:path`): the current ones only, as GitLab's `find_group`. */
const GROUPS = ['secret-group', 'group', 'parent', 'parent/secret', 'parent/open', 'ide']

let idp: JwksServer
let upstream: Upstream
/** In front of the upstream: answers group lookups by path, passes everything else on. */
let gitlab: Server
let gitlabUrl: string
let proxy: ServeHandle
let blind: ServeHandle
/** With a `public` rule that names projects: anonymous requests by a former path are looked up. */
let open: ServeHandle
let eng: string
let admin: string

const rules = [
  { name: 'health', paths: ['/-/health'], public: true },
  { name: 'secret-projects', projects: ['secret-group/**'], groups: ['admins'] },
  { name: 'parent-secret', projects: ['parent/secret/**'], groups: ['admins'] },
  { name: 'ide-group', projects: ['ide/**'], groups: ['admins'] },
  { name: 'read-everything', paths: ['/**'], groups: ['engineering'] },
]

beforeAll(async () => {
  idp = await startJwksServer()
  upstream = await startUpstream({
    projects: { '42': 'secret-group/vault', '7': 'group/project', '8': 'parent/secret/app', '9': 'parent/open/app', '10': 'ide/vault', '11': 'open-src/tool' },
    // secret-group/vault was once old-name/vault: GitLab still redirects that path (git and find_project follow it).
    redirects: { 'old-name/vault': '42', 'old-open/tool': '11' },
    apiToken: 'api-token-1',
  })
  gitlab = createServer((req, res) => {
    const group = /^\/api\/v4\/groups\/([^/?]*[^/?\d][^/?]*)\?with_projects=false$/.exec(req.url ?? '')
    if (group && req.method === 'GET' && req.headers['private-token'] === 'api-token-1') {
      const path = decodeURIComponent(group[1]!).toLowerCase()
      const found = GROUPS.includes(path)
      res.writeHead(found ? 200 : 404, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify(found ? { id: 1, full_path: path } : { message: '404 Group Not Found' }))
    }
    const target = new URL(upstream.url)
    const pass = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    pass.on('error', () => res.destroy())
    req.pipe(pass)
  })
  await new Promise<void>((r) => gitlab.listen(0, '127.0.0.1', r))
  gitlabUrl = `http://127.0.0.1:${(gitlab.address() as { port: number }).port}`
  const config = (apiToken: string) =>
    baseConfig(gitlabUrl, {
      upstream: { url: gitlabUrl, apiToken, timeoutSeconds: 30 },
      entra: { tenantId: TEST_TENANT, clientId: TEST_CLIENT, authority: idp.authority, audiences: [TEST_AUDIENCE] },
      groups: { admins: ADMINS, engineering: ENG },
      policy: { rules },
    })
  proxy = await startServe(config('api-token-1'))
  // A proxy whose token GitLab refuses: it cannot ask which project a path names.
  blind = await startServe(config('not-the-token'))
  open = await startServe(
    baseConfig(gitlabUrl, {
      upstream: { url: gitlabUrl, apiToken: 'api-token-1', timeoutSeconds: 30 },
      entra: { tenantId: TEST_TENANT, clientId: TEST_CLIENT, authority: idp.authority, audiences: [TEST_AUDIENCE] },
      groups: { admins: ADMINS, engineering: ENG },
      policy: { rules: [{ name: 'open-source', projects: ['open-src/**'], public: true }, ...rules] },
    }),
  )
  eng = await idp.mint({ groups: [ENG] })
  admin = await idp.mint({ groups: [ADMINS, ENG] })
})
afterAll(async () => {
  await proxy?.stop()
  await blind?.stop()
  await open?.stop()
  await new Promise<void>((r) => (gitlab ? gitlab.close(() => r()) : r()))
  await upstream?.close()
  await idp?.close()
})

/** What reached GitLab other than the proxy's own lookups (with the API token) of a project or group. */
const forwarded = () => upstream.requests.filter((r) => !/^\/api\/v4\/(projects|groups)\/[^/?]+(\?with_projects=false)?$/.test(r.url) || !r.headers['private-token'])

async function expectRefused(method: string, target: string, status = 403): Promise<void> {
  upstream.clear()
  const res = await rawRequest(proxy.url, method, target, { authorization: `Bearer ${eng}` })
  expect(res.status, `${method} ${target}`).toBe(status)
  expect(forwarded(), `${method} ${target}`).toHaveLength(0)
}

async function expectForwarded(token: string, method: string, target: string): Promise<void> {
  upstream.clear()
  const res = await rawRequest(proxy.url, method, target, { authorization: `Bearer ${token}` })
  expect(res.status, `${method} ${target}`).not.toBe(403)
  expect(forwarded().map((r) => r.url), `${method} ${target}`).toContain(target)
}

describe('wiki, design and snippet repositories under a former path (F1)', () => {
  it.each([
    ['GET', '/old-name/vault.wiki.git/info/refs?service=git-upload-pack'],
    ['POST', '/old-name/vault.wiki.git/git-upload-pack'],
    ['GET', '/OLD-NAME/Vault.wiki.git/info/refs?service=git-upload-pack'],
    ['GET', '/old-name/vault.wiki/info/refs?service=git-upload-pack'],
    ['POST', '/old-name/vault.wiki.git/info/lfs/objects/batch'],
    ['GET', '/old-name/vault.design.git/info/refs?service=git-upload-pack'],
    ['POST', '/old-name/vault.design.git/git-upload-pack'],
    ['GET', '/old-name/vault/snippets/7.git/info/refs?service=git-upload-pack'],
    ['POST', '/old-name/vault/snippets/7.git/git-upload-pack'],
  ])('%s %s reaches secret-group/vault: refused', async (method, target) => {
    await expectRefused(method, target)
  })

  it('the policy decided on the repository of the project GitLab serves (secret-group/vault.wiki)', async () => {
    const res = await rawRequest(proxy.url, 'GET', '/old-name/vault.wiki.git/info/refs?service=git-upload-pack', { authorization: `Bearer ${eng}` })
    const id = res.headers['x-request-id']
    await expect.poll(() => proxy.records().find((r) => r['http.request.id'] === id)).toBeDefined()
    expect(proxy.records().find((r) => r['http.request.id'] === id)).toMatchObject({
      'iap.decision.rule': 'secret-projects',
      'iap.decision.reason': 'no-group-match',
      'iap.gitlab.project': 'secret-group/vault.wiki',
    })
  })

  it("a wiki of no project or group GitLab knows may be a group's former path (GitLab follows it, its API does not tell): refused", async () => {
    await expectRefused('GET', '/old-group.wiki.git/info/refs?service=git-upload-pack')
    await expectRefused('GET', '/old-group/sub.wiki.git/info/refs?service=git-upload-pack')
  })

  it('control: the wikis of an open project and an open group are forwarded; a secret group wiki is refused; admins reach it', async () => {
    await expectForwarded(eng, 'GET', '/group/project.wiki.git/info/refs?service=git-upload-pack')
    await expectForwarded(eng, 'GET', '/group.wiki.git/info/refs?service=git-upload-pack')
    await expectForwarded(eng, 'GET', '/group/project/snippets/3.git/info/refs?service=git-upload-pack')
    await expectRefused('GET', '/secret-group.wiki.git/info/refs?service=git-upload-pack')
    await expectRefused('GET', '/parent/secret.wiki.git/info/refs?service=git-upload-pack')
    await expectForwarded(admin, 'GET', '/old-name/vault.wiki.git/info/refs?service=git-upload-pack')
  })
})

describe('REST references by a former path (F2)', () => {
  it.each([
    ['GET', '/api/v4/projects/old-name%2Fvault/packages/generic/pkg/1.0/secret.bin'],
    ['POST', '/api/v4/projects/old-name%2Fvault/trigger/pipeline'],
    ['GET', '/api/v4/projects/OLD-NAME%2fvault/repository/files/a%2Fb.rb/raw'],
    ['GET', '/api/v4/security/projects/old-name%2Fvault/vulnerability_exports'],
    ['POST', '/api/v4/error_tracking/collector/api/old-name%2Fvault/store'],
    ['GET', '/api/v4/feature_flags/unleash/old-name%2Fvault/client/features'],
    ['GET', '/api/v3/repos/old-name/vault/branches'],
    ['GET', '/api/v4/packages/conan/v1/conans/pkg/1.0/old-name+vault/stable/download_urls'],
  ])('%s %s reaches secret-group/vault: refused', async (method, target) => {
    await expectRefused(method, target)
  })

  it('control: an open project by path is looked up once (cached) and forwarded', async () => {
    await expectForwarded(eng, 'GET', '/api/v4/projects/group%2Fproject/issues')
    upstream.clear()
    await rawRequest(proxy.url, 'GET', '/api/v4/projects/group%2Fproject/merge_requests', { authorization: `Bearer ${eng}` })
    expect(upstream.requests.filter((r) => r.url === '/api/v4/projects/group%2Fproject')).toHaveLength(0)
  })

  it('without a credential no lookup is made: the answer is a challenge whatever GitLab would say', async () => {
    upstream.clear()
    for (const target of ['/api/v4/projects/unseen-ns%2Fproject-1/issues', '/unseen-ns/project-2.git/info/refs?service=git-upload-pack']) {
      const res = await rawRequest(proxy.url, 'GET', target, {})
      expect(res.status, target).toBe(401)
    }
    expect(upstream.requests).toHaveLength(0)
  })

  it('with a public rule naming projects, an anonymous clone by a former path is looked up and reaches the public project', async () => {
    upstream.clear()
    const target = '/old-open/tool.git/info/refs?service=git-upload-pack'
    const res = await rawRequest(open.url, 'GET', target, {})
    expect(res.status).not.toBe(401)
    expect(forwarded().map((r) => r.url)).toContain(target)
    // A former path of a secret project is still refused, as a challenge.
    expect((await rawRequest(open.url, 'GET', '/old-name/vault.git/info/refs?service=git-upload-pack', {})).status).toBe(401)
  })

  it('when GitLab cannot be asked, a REST reference by path is denied (project-unresolved), as git is', async () => {
    upstream.clear()
    const res = await rawRequest(blind.url, 'GET', '/api/v4/projects/group%2Fproject/issues', { authorization: `Bearer ${eng}` })
    expect(res.status).toBe(403)
    expect(forwarded()).toHaveLength(0)
    const id = res.headers['x-request-id']
    await expect.poll(() => blind.records().find((r) => r['http.request.id'] === id)).toBeDefined()
    expect(blind.records().find((r) => r['http.request.id'] === id)).toMatchObject({ 'iap.decision.reason': 'project-unresolved' })
  })
})

describe('group-wide endpoints of a group above a protected subgroup (F4)', () => {
  it.each([
    ['GET', '/api/v4/groups/parent/search?scope=blobs&search=password'],
    ['GET', '/api/v4/groups/parent/merge_requests'],
    ['GET', '/api/v4/groups/parent/-/packages/maven/com/secret/app/1.0/app-1.0.jar'],
    ['GET', '/api/v4/groups/PARENT/issues'],
    ['GET', '/groups/parent/-/merge_requests'],
    ['GET', '/api/v4/group/parent/-/packages/composer/packages'],
    ['GET', '/api/v4/packages/npm/@parent%2Fsecret-lib'],
    ['GET', '/api/v4/packages/terraform/modules/v1/parent/network/aws/versions'],
  ])('%s %s reaches parent/secret: refused', async (method, target) => {
    await expectRefused(method, target)
  })

  it('control: group-wide endpoints of groups with nothing protected below stay open; admins reach parent', async () => {
    await expectForwarded(eng, 'GET', '/api/v4/groups/group/search?scope=blobs&search=x')
    await expectForwarded(eng, 'GET', '/api/v4/groups/parent%2Fopen/issues')
    await expectForwarded(eng, 'GET', '/api/v4/projects/parent%2Fopen%2Fapp/issues')
    await expectForwarded(admin, 'GET', '/api/v4/groups/parent/search?scope=blobs&search=password')
  })
})

describe('groups named like words GitLab no longer reserves (F5)', () => {
  it.each([
    ['GET', '/ide/vault/-/raw/main/secret.txt'],
    ['GET', '/ide/vault'],
    ['GET', '/ide/vault/info/refs?service=git-upload-pack'],
  ])('%s %s is attributed to ide/vault: refused', async (method, target) => {
    await expectRefused(method, target)
  })
})

describe('instance-level package registries that name a namespace or project (F7)', () => {
  it.each([
    ['GET', '/api/v4/packages/npm/@secret-group%2Fsecret-lib'],
    ['GET', '/api/v4/packages/npm/@secret-group/secret-lib'],
    ['GET', '/api/v4/packages/npm/-/package/@secret-group%2Fsecret-lib/dist-tags'],
    ['GET', '/api/v4/packages/conan/v1/conans/pkg/1.0/secret-group+vault/stable/download_urls'],
    ['GET', '/api/v4/packages/conan/v1/files/pkg/1.0/secret-group+vault/stable/0/export/conanfile.py'],
    ['GET', '/api/v4/packages/terraform/modules/v1/secret-group/network/aws/versions'],
  ])('%s %s is attributed to secret-group: refused', async (method, target) => {
    await expectRefused(method, target)
  })

  it('control: the same registries for an open namespace are forwarded', async () => {
    await expectForwarded(eng, 'GET', '/api/v4/packages/npm/@group%2Flib')
    await expectForwarded(eng, 'GET', '/api/v4/packages/terraform/modules/v1/group/network/aws/versions')
    await expectForwarded(eng, 'GET', '/api/v4/packages/conan/v1/conans/pkg/1.0/group+project/stable/download_urls')
  })
})
