/**
 * Policy bypass attempts against a running serve (path confusion: Oathkeeper
 * GHSA-p224-6x5r-fjpm, Envoy CVE-2019-9901 / CVE-2021-29492 / CVE-2026-73511, oauth2-proxy
 * CVE-2025-54576 / CVE-2026-41059; http-proxy-3's WHATWG path normalisation). The identity is an
 * engineer (may read everything except the admin area and secret-group); every attempt must be
 * refused AND never reach GitLab.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startJwksServer, TEST_AUDIENCE, TEST_CLIENT, TEST_TENANT, type JwksServer } from '../../helpers/jwks-server.ts'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'
import { rawRequest, rawSocket } from '../../helpers/http.ts'

const ADMINS = '6c0bd1d2-0000-4000-8000-000000000001'
const ENG = '6c0bd1d2-0000-4000-8000-000000000002'
let idp: JwksServer
let upstream: Upstream
let proxy: ServeHandle
let token: string

beforeAll(async () => {
  idp = await startJwksServer()
  upstream = await startUpstream({
    projects: { '42': 'secret-group/vault', '7': 'group/project' },
    groups: { '99': 'secret-group', '98': 'secret-group/sub', '8': 'group' },
    // secret-group/vault was once old-name/vault: GitLab still redirects that path (git follows it).
    redirects: { 'old-name/vault': '42' },
    apiToken: 'api-token-1',
  })
  proxy = await startServe(
    baseConfig(upstream.url, {
      upstream: { url: upstream.url, apiToken: 'api-token-1', timeoutSeconds: 30 },
      entra: { tenantId: TEST_TENANT, clientId: TEST_CLIENT, authority: idp.authority, audiences: [TEST_AUDIENCE] },
      groups: { admins: ADMINS, engineering: ENG },
      policy: {
        rules: [
          { name: 'health', paths: ['/-/health'], public: true },
          { name: 'admin-area', paths: ['/admin', '/admin/**', '/api/v4/admin/**'], groups: ['admins'] },
          { name: 'secret-projects', projects: ['secret-group/**'], groups: ['admins'] },
          { name: 'read-everything', paths: ['/**'], groups: ['engineering'] },
        ],
      },
    }),
  )
  token = await idp.mint({ groups: [ENG] })
})
afterAll(async () => {
  await proxy?.stop()
  await upstream?.close()
  await idp?.close()
})

const ATTEMPTS = [
  '/admin', '/admin/', '/ADMIN/users', '/Admin/Users', '/admin.json', '/admin/users.json', '/admin/users/', '/admin/users.',
  '/admin;x=1/users', '/admin/users;jsessionid=1', '/admin%3Bx/users', '/admin/./users', '/./admin/users', '/x/../admin/users',
  '/x/%2e%2e/admin/users', '/x/%2E%2E/admin/users', '/x/.%2e/admin/users', '/x/%2e./admin/users', '/x/%c0%ae%c0%ae/admin/users',
  '/x/%252e%252e/admin', '//admin/users', '/\\admin/users', '/%5cadmin/users', '/x%5c..%5cadmin', '/%2fadmin/users',
  '/admin%2fusers', '/adm%69n/users', '/%61dmin', '/admin%00/users', '/admin%09/users', '/admin#/users', '/api/v4/jobs/../../admin',
  '/api/v4/admin/users', '/API/V4/ADMIN/users', '/api/v4/admin;/users', '/secret-group/vault', '/Secret-Group/Vault/-/issues',
  '/secret-group/vault.git/info/refs?service=git-upload-pack', '/SECRET-GROUP/vault.git/git-upload-pack', '/secret-group/vault/info/refs?service=git-upload-pack',
  '/secret-group/vault.git/info/lfs/objects/batch', '/secret-group/sub/deeper/project/-/blob/main/x', '/api/v4/projects/secret-group%2Fvault',
  '/api/v4/projects/SECRET-GROUP%2fvault/repository/files/a', '/api/v4/projects/42', '/api/v4/projects/42/repository/tree',
  '/api/v4/groups/secret-group', '/secret-group/vault.json', '/secret-group/vault/', '/groups/secret-group/-/epics', '/secret-group%2fvault',
  '/%73ecret-group/vault', '/secret-group/./vault', '/x/../secret-group/vault',
  '/api/v4/groups/99/projects', '/api/v4/groups/99/search?scope=blobs&search=x', '/api/v4/namespaces/99', '/api/v4/groups/98',
  '/api/v4/groups/%39%39/projects', '/api/v4/projects/42.json', '/api/v4/groups/99.json', '/api/v4/groups/12345/projects',
  '/projects/42', '/-/ide/project/secret-group/vault/edit/main/-/README.md', '/-/ide/project/secret-group/vault',
  // Routes that name the project by id, by another name, or under another prefix.
  '/projects/42.json', '/projects/42-x', '/-/p/42', '/-/g/99', '/-/project/42/uploads/0123abcd/secret.pdf',
  '/-/organizations/default/projects/secret-group/vault/edit', '/-/push_from_secondary/2/secret-group/vault.git/info/refs?service=git-upload-pack',
  '/api/v3/repos/anything/secret-group@vault/branches', '/api/v4/error_tracking/collector/api/42/store', '/api/v4/group/99/-/packages/composer/packages',
  '/v2/secret-group/dependency_proxy/containers/alpine/manifests/latest', '/uploads/-/system/project/avatar/42/a.png',
  '/old-name/vault.git/info/refs?service=git-upload-pack', '/OLD-NAME/vault.git/info/lfs/objects/batch', '/old-name/vault/info/refs?service=git-upload-pack',
  // The former path's wiki, design and snippet repositories, REST references by the former path, and npm's scope.
  '/old-name/vault.wiki.git/info/refs?service=git-upload-pack', '/old-name/vault.design.git/info/refs?service=git-upload-pack',
  '/old-name/vault/snippets/7.git/info/refs?service=git-upload-pack', '/api/v4/projects/old-name%2Fvault/packages/generic/pkg/1.0/secret.bin',
  '/api/v4/projects/old-name%2Fvault/repository/files/README.md/raw', '/api/v4/packages/npm/@secret-group%2Fpkg',
]

describe('bypass attempts', () => {
  it(`has at least 40 attempts (${ATTEMPTS.length})`, () => expect(ATTEMPTS.length).toBeGreaterThanOrEqual(40))

  it.each(ATTEMPTS)('%s is refused and never reaches GitLab', async (target) => {
    upstream.clear()
    const res = target.includes('\u0000') || target.includes('#')
      ? { status: Number(/^HTTP\/1\.1 (\d+)/.exec(await rawSocket(proxy.url, `GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`))?.[1]) }
      : await rawRequest(proxy.url, 'GET', target, { authorization: `Bearer ${token}` })
    expect([400, 401, 403]).toContain(res.status)
    // The only thing GitLab may see is the API lookup of a numeric id or a git path, never the request itself.
    expect(upstream.requests.filter((r) => !/^\/api\/v4\/(projects|groups|namespaces)\/[^/?]+(\?with_projects=false)?$/.test(r.url) || !r.headers['private-token'])).toHaveLength(0)
  })

  it('control: git to an open project is looked up once through the API and forwarded', async () => {
    upstream.clear()
    for (let i = 0; i < 2; i++) {
      const res = await rawRequest(proxy.url, 'GET', '/group/project.git/info/refs?service=git-upload-pack', { authorization: `Bearer ${token}` })
      expect(res.status).not.toBe(403)
    }
    expect(upstream.requests.filter((r) => r.url.startsWith('/group/project.git/info/refs'))).toHaveLength(2)
    // Cached: one lookup for both requests.
    expect(upstream.requests.filter((r) => r.url === '/api/v4/projects/group%2Fproject')).toHaveLength(1)
  })

  it('control: the engineer does reach ordinary pages, and a resolved numeric id of an open project', async () => {
    for (const target of ['/group/project/-/issues', '/api/v4/projects/7/issues', '/api/v4/groups/8/projects', '/projects/7', '/-/ide/project/group/project/edit/main', '/-/health']) {
      const res = await rawRequest(proxy.url, 'GET', target, { authorization: `Bearer ${token}` })
      expect(res.status).toBe(200)
    }
  })
})
