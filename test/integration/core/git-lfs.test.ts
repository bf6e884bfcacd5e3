/**
 * Git LFS through the proxy with the real `git` and `git-lfs` CLIs. GitLab's batch answer hands
 * git-lfs its own `Authorization: Basic` for the object transfers, which carries no IAP credential:
 * the IAP token travels in `X-IAP-Authorization` (git's `http.extraHeader`, which git-lfs sends with
 * every request), and GitLab's header passes untouched (docs/bearer.md).
 */
import { execFile, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LFS_OBJECT_AUTHORIZATION } from '../../../src/upstream/lfs.ts'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'
import { startJwksServer, TEST_AUDIENCE, TEST_CLIENT, TEST_TENANT, type JwksServer } from '../../helpers/jwks-server.ts'

const run = promisify(execFile)
const haveGitLfs = spawnSync('git', ['lfs', 'version']).status === 0
if (!haveGitLfs && process.env.CI === 'true') throw new Error('git-lfs is required in CI (.ci/run installs it)')
if (!haveGitLfs) console.warn('skipping Git LFS tests: git-lfs is not installed (Debian package git-lfs)')

let idp: JwksServer
let upstream: Upstream
let proxy: ServeHandle
let work: string

const gitEnv = () => ({ PATH: process.env.PATH, HOME: work, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', GIT_ASKPASS: '/bin/false', GIT_AUTHOR_NAME: 'Dev', GIT_AUTHOR_EMAIL: 'dev@example.test', GIT_COMMITTER_NAME: 'Dev', GIT_COMMITTER_EMAIL: 'dev@example.test' })
const git = (args: string[], cwd: string) => run('git', args, { cwd, env: gitEnv() })

describe.skipIf(!haveGitLfs)('Git LFS through the proxy', () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitlab-iap-lfs-'))
    idp = await startJwksServer()
    upstream = await startUpstream({ repos: ['group/project'] })
    proxy = await startServe(
      baseConfig(upstream.url, {
        entra: { tenantId: TEST_TENANT, clientId: TEST_CLIENT, authority: idp.authority, audiences: [TEST_AUDIENCE] },
        groups: { engineering: 'g-eng' },
        policy: { rules: [{ name: 'engineering', paths: ['/**'], groups: ['engineering'] }] },
      }),
    )
    await git(['lfs', 'install', '--skip-repo'], work)
  })
  afterAll(async () => {
    await proxy?.stop()
    await upstream?.close()
    await idp?.close()
    if (work) rmSync(work, { recursive: true, force: true })
  })

  it('pushes and fetches an LFS object with the IAP token in X-IAP-Authorization; GitLab\'s own header passes', async () => {
    const token = await idp.mint()
    await git(['config', '--global', `http.${proxy.url}/.extraHeader`, `X-IAP-Authorization: Bearer ${token}`], work)
    await git(['config', '--global', 'lfs.locksverify', 'false'], work)

    const dir = join(work, 'push')
    await git(['clone', '--quiet', `${proxy.url}/group/project.git`, dir], work)
    await git(['lfs', 'track', '*.bin'], dir)
    const content = randomBytes(512 * 1024)
    writeFileSync(join(dir, 'model.bin'), content)
    await git(['add', '.gitattributes', 'model.bin'], dir)
    await git(['commit', '--quiet', '-m', 'an LFS object'], dir)
    upstream.clear()
    await git(['push', '--quiet', 'origin', 'main'], dir)

    const oid = createHash('sha256').update(content).digest('hex')
    expect(upstream.lfsObjects.get(`group/project.git/${oid}`)?.equals(content)).toBe(true)
    const upload = upstream.requests.find((r) => r.method === 'PUT' && r.url.includes(`/gitlab-lfs/objects/${oid}`))!
    expect(upload.headers.authorization).toBe(LFS_OBJECT_AUTHORIZATION)
    expect(upload.headers['x-iap-authorization']).toBeUndefined()
    expect(upload.headers['x-forwarded-user']).toBe('ada@example.test')
    expect(upstream.requests.some((r) => r.url === '/group/project.git/info/lfs/objects/batch')).toBe(true)

    const again = join(work, 'fetch')
    await git(['clone', '--quiet', `${proxy.url}/group/project.git`, again], work)
    expect(readFileSync(join(again, 'model.bin')).equals(content)).toBe(true)
  })

  it('without the IAP token the proxy refuses the LFS batch request and GitLab sees nothing', async () => {
    upstream.clear()
    const res = await fetch(`${proxy.url}/group/project.git/info/lfs/objects/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.git-lfs+json', accept: 'application/vnd.git-lfs+json', authorization: LFS_OBJECT_AUTHORIZATION },
      body: JSON.stringify({ operation: 'download', objects: [] }),
    })
    expect(res.status).toBe(401)
    expect(upstream.requests).toHaveLength(0)
  })
})
