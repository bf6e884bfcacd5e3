/**
 * Git LFS through the proxy with the real `git` and `git-lfs` CLIs. GitLab's batch answer hands
 * git-lfs its own `Authorization: Basic` for the object transfers, which carries no IAP credential:
 * either the IAP token travels in `X-IAP-Authorization` (git's `http.extraHeader`, which git-lfs sends
 * with every request), or, with the two-credential URL, the proxy adds grants of its own to the batch
 * answer. GitLab's header passes untouched either way (docs/bearer.md).
 */
import { execFile, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { LFS_OBJECT_AUTHORIZATION } from '../../../src/upstream/lfs.ts'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'
import { isolatedGitEnv } from '../../helpers/git.ts'
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

const gitEnv = () => isolatedGitEnv(work)
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

  it('the two-credential URL (IAP token as username, GitLab PAT as password) pushes and fetches LFS objects: the batch answer carries grants of the proxy, never the client\'s token', async () => {
    // Only the credentials in the URL, as `https://$IAP_TOKEN:$GITLAB_PAT@host/…` has them: no extra header left by the test above.
    await git(['config', '--global', '--unset-all', `http.${proxy.url}/.extraHeader`], work).catch(() => {})
    const token = await idp.mint({ groups: ['g-eng', 'g-not-in-any-rule'] })
    const url = twoCredentialUrl(proxy.url, token)
    const content = randomBytes(64 * 1024)
    await pushLfsFile(url, 'two-credentials-push', 'weights.dat', content, () => upstream.clear())
    const oid = createHash('sha256').update(content).digest('hex')
    expect(upstream.lfsObjects.get(`group/project.git/${oid}`)?.equals(content)).toBe(true)

    const dir = join(work, 'two-credentials-clone')
    await git(['-c', 'credential.helper=', 'clone', '--quiet', url.href, dir], work)
    expect(readFileSync(join(dir, 'weights.dat')).equals(content)).toBe(true)
    // GitLab saw neither the IAP token nor a grant; the object transfers carried GitLab's own credential.
    const upload = upstream.requests.find((r) => r.method === 'PUT' && r.url.includes(`/gitlab-lfs/objects/${oid}`))!
    const download = upstream.requests.find((r) => r.method === 'GET' && r.url.includes(`/gitlab-lfs/objects/${oid}`))!
    for (const transfer of [upload, download]) {
      expect(transfer.headers.authorization).toBe(LFS_OBJECT_AUTHORIZATION)
      expect(transfer.headers['x-iap-authorization']).toBeUndefined()
      expect(transfer.headers['x-forwarded-user']).toBe('ada@example.test')
    }
    expect(JSON.stringify(upstream.requests)).not.toContain(token)
    expect(JSON.stringify(upstream.requests)).not.toContain('iaplfs1.')
    // The batch answer is rewritten, so it is asked for uncompressed (git-lfs asks for gzip).
    const batches = upstream.requests.filter((r) => r.url === '/group/project.git/info/lfs/objects/batch')
    expect(batches.length).toBeGreaterThan(0)
    for (const b of batches) expect(b.headers['accept-encoding']).toBeUndefined()
    // The access log names the user of the grant, with only the groups the policy names.
    const isTransfer = (r: Record<string, unknown>) => r['url.path'] === `/group/project.git/gitlab-lfs/objects/${oid}` && r['http.request.method'] === 'GET'
    // Records are written in batches: wait for this one.
    for (let waited = 0; !proxy.records().some(isTransfer) && waited < 5000; waited += 50) await new Promise((r) => setTimeout(r, 50))
    const transferRecord = proxy.records().findLast(isTransfer)
    expect(transferRecord).toMatchObject({ 'user.name': 'ada@example.test', 'iap.auth.method': 'bearer', 'iap.identity.groups': ['g-eng'], 'iap.decision.result': 'allow' })
  })

  it('a grant opens only its own object and operation; GitLab never sees the refused requests', async () => {
    const content = randomBytes(1024)
    const oid = await pushObject(content)
    const token = await idp.mint()
    const answer = await batch(proxy.url, token, 'download', [{ oid, size: content.length }])
    const action = answer.objects[0]!.actions.download!
    expect(action.header.Authorization).toBe(LFS_OBJECT_AUTHORIZATION)
    const grant = action.header['X-IAP-Authorization'] as string
    expect(grant).toMatch(/^Bearer iaplfs1\./)
    expect(grant).not.toContain(token)
    const href = new URL(action.href)
    expect(href.origin).toBe(proxy.url)

    const ok = await fetch(href, { headers: { authorization: LFS_OBJECT_AUTHORIZATION, 'x-iap-authorization': grant } })
    expect(Buffer.from(await ok.arrayBuffer()).equals(content)).toBe(true)
    upstream.clear()
    const other = `${proxy.url}/group/project.git/gitlab-lfs/objects/${'0'.repeat(64)}`
    for (const [target, method, reason] of [[other, 'GET', 'lfs-grant-out-of-scope'], [href.href, 'PUT', 'lfs-grant-out-of-scope'], [`${proxy.url}/group/project.git/info/refs?service=git-receive-pack`, 'GET', 'lfs-grant-out-of-scope']] as const) {
      const res = await fetch(target, { method, headers: { authorization: LFS_OBJECT_AUTHORIZATION, 'x-iap-authorization': grant, accept: 'application/json' }, ...(method === 'PUT' && { body: 'x' }) })
      expect(res.status).toBe(401)
      expect(await res.json()).toMatchObject({ reason })
    }
    const forged = grant.slice(0, -4) + (grant.endsWith('AAAA') ? 'BBBB' : 'AAAA')
    const bad = await fetch(href, { headers: { 'x-iap-authorization': forged, accept: 'application/json' } })
    expect(bad.status).toBe(401)
    expect(await bad.json()).toMatchObject({ reason: 'lfs-grant-invalid' })
    expect(upstream.requests).toHaveLength(0)
  })

  it('with LFS in object storage, the redirect to the store carries the grant along, never the client\'s token', async () => {
    // Stopped even when the test times out (git waiting on a refused transfer).
    const store = await startObjectStore(() => upstreamWithStore.lfsObjects)
    onTestFinished(() => store.close())
    const upstreamWithStore = await startUpstream({ repos: ['group/project'], lfsObjectStore: store.url })
    onTestFinished(() => upstreamWithStore.close())
    const proxyWithStore = await startServe(baseConfig(upstreamWithStore.url, {
      entra: { tenantId: TEST_TENANT, clientId: TEST_CLIENT, authority: idp.authority, audiences: [TEST_AUDIENCE] },
      groups: { engineering: 'g-eng' },
      policy: { rules: [{ name: 'engineering', paths: ['/**'], groups: ['engineering'] }] },
    }))
    onTestFinished(async () => void (await proxyWithStore.stop()))
    const token = await idp.mint()
    const url = twoCredentialUrl(proxyWithStore.url, token)
    const content = randomBytes(32 * 1024)
    await pushLfsFile(url, 'store-push', 'stored.dat', content)

    const dir = join(work, 'store-clone')
    await git(['-c', 'credential.helper=', 'clone', '--quiet', url.href, dir], work)
    expect(readFileSync(join(dir, 'stored.dat')).equals(content)).toBe(true)
    expect(store.requests.length).toBeGreaterThan(0)
    for (const r of store.requests) {
      expect(JSON.stringify(r.headers)).not.toContain(token)
      expect(r.headers.authorization).toBeUndefined()
      // What git-lfs carried across the redirect: a grant for that one object, worthless elsewhere.
      const grant = String(r.headers['x-iap-authorization'])
      expect(grant).toMatch(/^Bearer iaplfs1\./)
      const elsewhere = await fetch(`${proxyWithStore.url}/group/project.git/gitlab-lfs/objects/${'0'.repeat(64)}`, { headers: { 'x-iap-authorization': grant, accept: 'application/json' } })
      expect(elsewhere.status).toBe(401)
    }
  })

  it('revoking the user ends the grants minted from their earlier token', async () => {
    const content = randomBytes(512)
    const oid = await pushObject(content)
    const who = { oid: '7a1d0c55-0000-4000-8000-000000000f5e', preferred_username: 'leaver@example.test', iat: Math.floor(Date.now() / 1000) - 5 }
    const token = await idp.mint(who)
    const action = (await batch(proxy.url, token, 'download', [{ oid, size: content.length }])).objects[0]!.actions.download!
    const headers = { authorization: LFS_OBJECT_AUTHORIZATION, 'x-iap-authorization': action.header['X-IAP-Authorization'] as string, accept: 'application/json' }
    expect((await fetch(action.href, { headers })).status).toBe(200)
    const revoke = await fetch(`${proxy.adminUrl}/admin/revoke`, {
      method: 'POST',
      headers: { authorization: 'Bearer admin-token-for-tests-0123456789', 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'leaver@example.test' }),
    })
    expect(revoke.status).toBe(200)
    const after = await fetch(action.href, { headers })
    expect(after.status).toBe(401)
    expect(await after.json()).toMatchObject({ reason: 'token-revoked' })
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

/** The git URL with two credentials (docs/bearer.md): the IAP token as username, a GitLab PAT as password. */
function twoCredentialUrl(base: string, token: string): URL {
  const url = new URL(`${base}/group/project.git`)
  url.username = token
  url.password = 'glpat-anything'
  return url
}

/** Clones `url` into `name`, commits `file` as an LFS object and pushes it (`beforePush` runs just before). */
async function pushLfsFile(url: URL, name: string, file: string, content: Buffer, beforePush?: () => void): Promise<void> {
  const seed = join(work, name)
  await git(['-c', 'credential.helper=', 'clone', '--quiet', url.href, seed], work)
  await git(['lfs', 'track', '*.dat'], seed)
  writeFileSync(join(seed, file), content)
  await git(['add', '.gitattributes', file], seed)
  await git(['commit', '--quiet', '-m', `LFS object ${file}`], seed)
  beforePush?.()
  await git(['-c', 'credential.helper=', 'push', '--quiet', 'origin', 'main'], seed)
}

/** Pushes one LFS object through the proxy with the IAP token in X-IAP-Authorization; returns its oid. */
async function pushObject(content: Buffer): Promise<string> {
  const oid = createHash('sha256').update(content).digest('hex')
  const token = await idp.mint()
  const answer = await batch(proxy.url, token, 'upload', [{ oid, size: content.length }])
  const upload = answer.objects[0]!.actions?.upload
  if (upload) {
    const res = await fetch(upload.href, { method: 'PUT', headers: { ...upload.header, 'content-type': 'application/octet-stream' }, body: content })
    expect(res.status).toBe(200)
  }
  return oid
}

interface BatchAnswer {
  objects: { oid: string; actions: Record<string, { href: string; header: Record<string, string> }> }[]
}

/** An LFS batch call with the two-credential Basic form (IAP token as username, a GitLab PAT as password). */
async function batch(base: string, token: string, operation: 'upload' | 'download', objects: { oid: string; size: number }[]): Promise<BatchAnswer> {
  const res = await fetch(`${base}/group/project.git/info/lfs/objects/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/vnd.git-lfs+json', accept: 'application/vnd.git-lfs+json', authorization: `Basic ${Buffer.from(`${token}:glpat-anything`).toString('base64')}` },
    body: JSON.stringify({ operation, transfers: ['basic'], objects }),
  })
  expect(res.status).toBe(200)
  return (await res.json()) as BatchAnswer
}

/** An object store on loopback: serves the objects GitLab redirects downloads to and records what reached it. */
async function startObjectStore(objects: () => ReadonlyMap<string, Buffer>) {
  const requests: { url: string; headers: IncomingHttpHeaders }[] = []
  const server = createServer((req, res) => {
    requests.push({ url: req.url ?? '/', headers: { ...req.headers } })
    const oid = (req.url ?? '').slice(1).split('?')[0]!
    const found = [...objects().entries()].find(([key]) => key.endsWith(`/${oid}`))?.[1]
    if (!found) return res.writeHead(404).end()
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': found.length }).end(found)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
