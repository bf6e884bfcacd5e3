/**
 * A push starts with `GET …/info/refs?service=git-receive-pack` (GitLab asks for push access there). A
 * reader under a `methods: [GET, HEAD]` rule must be refused at that advertisement, before git uploads
 * its pack, and git must show the user why (`remote: gitlab-iap: ...`, from a text/plain body). Readers
 * still clone and fetch; writers still push; `explain` agrees with `serve`.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { explainWith, startServe, type ConfigObject, type ServeHandle } from '../../helpers/serve.ts'
import { isolatedGitEnv } from '../../helpers/git.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'
import { startJwksServer, type JwksServer } from '../../helpers/jwks-server.ts'
import { CONTRACTORS, ENGINEERING, readersAndWritersConfig } from '../../helpers/readers-writers.ts'

const run = promisify(execFile)
const ADVERTISEMENT = '/group/project.git/info/refs'

let idp: JwksServer
let upstream: Upstream
let proxy: ServeHandle
let config: ConfigObject
let work: string

const gitEnv = () => isolatedGitEnv(work)
const git = (token: string, args: string[], cwd: string) =>
  run('git', ['-c', 'protocol.version=2', '-c', 'credential.helper=', '-c', `http.extraHeader=X-IAP-Authorization: Bearer ${token}`, ...args], { cwd, env: gitEnv() })
/** The stderr of a git command that must fail. */
const gitFails = async (token: string, args: string[], cwd: string): Promise<string> => {
  try {
    await git(token, args, cwd)
  } catch (err) {
    return String((err as { stderr?: string }).stderr)
  }
  throw new Error(`git ${args.join(' ')} succeeded`)
}

const explain = (args: string[]) => explainWith(config, args)

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'gitlab-iap-push-adv-'))
  idp = await startJwksServer()
  upstream = await startUpstream({ repos: ['group/project'] })
  config = readersAndWritersConfig(upstream.url, idp.authority)
  proxy = await startServe(config)
})

afterAll(async () => {
  await proxy?.stop()
  await upstream?.close()
  await idp?.close()
  if (work) rmSync(work, { recursive: true, force: true })
})

const recordsUnder = (prefix: string) => proxy.records().filter((r) => String(r['url.path']).startsWith(prefix))

describe('the receive-pack advertisement is the start of a push', () => {
  it('a reader clones and fetches, and its push is refused at the advertisement, before any pack is sent', async () => {
    const token = await idp.mint({ groups: [CONTRACTORS] })
    const dir = join(work, 'reader')
    await git(token, ['clone', '--quiet', `${proxy.url}/group/project.git`, dir], work)
    await git(token, ['fetch', '--quiet', 'origin'], dir)
    // A pack big enough that uploading it before the refusal would show.
    writeFileSync(join(dir, 'blob.bin'), randomBytes(2 * 1024 * 1024))
    await git(token, ['add', 'blob.bin'], dir)
    await git(token, ['commit', '--quiet', '-m', 'not allowed'], dir)
    const stderr = await gitFails(token, ['push', 'origin', 'main'], dir)
    expect(stderr).toMatch(/^remote: gitlab-iap: access denied by rule "engineering" \(no-group-match\); request id \S+$/m)
    expect(stderr).not.toContain('Everything up-to-date')
    expect(stderr).not.toContain(token)

    await expect.poll(() => recordsUnder(ADVERTISEMENT).find((r) => String(r['url.query']).includes('git-receive-pack')), { timeout: 3000 }).toBeDefined()
    const advertisement = recordsUnder(ADVERTISEMENT).find((r) => String(r['url.query']).includes('git-receive-pack'))!
    expect(advertisement).toMatchObject({
      'http.request.method': 'GET',
      'http.response.status_code': 403,
      'iap.decision.result': 'deny',
      'iap.decision.rule': 'engineering',
      'iap.decision.reason': 'no-group-match',
    })
    expect(stderr).toContain(String(advertisement['http.request.id']))
    expect(recordsUnder('/group/project.git/git-receive-pack')).toHaveLength(0)
    expect(upstream.requests.filter((r) => r.url.includes('git-receive-pack'))).toHaveLength(0)
    const reads = recordsUnder('/group/project.git/').filter((r) => r['iap.decision.rule'] === 'read-everything').map((r) => [r['http.request.method'], r['url.path'], r['http.response.status_code']])
    expect(reads).toContainEqual(['POST', '/group/project.git/git-upload-pack', 200])
  })

  it('a writer (a rule without methods) still pushes', async () => {
    const token = await idp.mint({ groups: [ENGINEERING] })
    const dir = join(work, 'writer')
    await git(token, ['clone', '--quiet', `${proxy.url}/group/project.git`, dir], work)
    writeFileSync(join(dir, 'change.txt'), 'an engineer pushes\n')
    await git(token, ['add', 'change.txt'], dir)
    await git(token, ['commit', '--quiet', '-m', 'allowed'], dir)
    await git(token, ['push', '--quiet', 'origin', 'main'], dir)
    const { stdout } = await run('git', ['--git-dir', join(upstream.repoRoot, 'group/project.git'), 'log', '--format=%s', '-1', 'main'])
    expect(stdout.trim()).toBe('allowed')
    await expect.poll(() => recordsUnder(ADVERTISEMENT).filter((r) => String(r['url.query']).includes('git-receive-pack') && r['iap.decision.rule'] === 'engineering' && r['iap.decision.result'] === 'allow').length, { timeout: 3000 }).toBeGreaterThan(0)
  })

  it('an expired token: git shows the 401 text as remote: lines, without the token', async () => {
    const expired = await idp.mint({ exp: Math.floor(Date.now() / 1000) - 600, iat: Math.floor(Date.now() / 1000) - 4000, nbf: Math.floor(Date.now() / 1000) - 4000 })
    const url = new URL(`${proxy.url}/group/project.git`)
    url.username = expired
    // GitLab's half of the two-credential URL (Basic with the IAP JWT as username): git sends both without asking.
    url.password = 'glpat-test-0123456789abcdef'
    let stderr = ''
    try {
      await run('git', ['-c', 'protocol.version=2', '-c', 'credential.helper=', 'ls-remote', url.href], { cwd: work, env: gitEnv() })
    } catch (err) {
      stderr = String((err as { stderr?: string }).stderr)
    }
    expect(stderr).toMatch(/^remote: gitlab-iap: .*token-expired/m)
    expect(stderr).toMatch(/^remote: gitlab-iap: .*X-IAP-Authorization/m)
    expect(stderr).not.toContain(expired)
  })

  it('git-lfs and other clients keep their JSON and HTML bodies', async () => {
    const token = await idp.mint({ groups: [CONTRACTORS] })
    const target = `${proxy.url}${ADVERTISEMENT}?service=git-receive-pack`
    const lfs = await fetch(target, { headers: { 'x-iap-authorization': `Bearer ${token}`, 'user-agent': 'git-lfs/3.4.1 (GitHub; linux amd64; go 1.21.1)' } })
    expect(lfs.status).toBe(403)
    expect(lfs.headers.get('content-type')).toBe('application/json; charset=utf-8')
    expect(await lfs.json()).toMatchObject({ rule: 'engineering', reason: 'no-group-match' })
    const browser = await fetch(target, { headers: { 'x-iap-authorization': `Bearer ${token}`, accept: 'text/html' } })
    expect(browser.headers.get('content-type')).toBe('text/html; charset=utf-8')
    const gitClient = await fetch(target, { headers: { 'x-iap-authorization': `Bearer ${token}`, 'user-agent': 'git/2.39.5', accept: 'text/html' } })
    expect(gitClient.headers.get('content-type')).toBe('text/plain; charset=utf-8')
  })

  it('explain agrees with serve', async () => {
    const path = `${ADVERTISEMENT}?service=git-receive-pack`
    const reader = JSON.parse((await explain(['--path', path, '--group', 'contractors', '--json'])).stdout)
    expect(reader).toMatchObject({ decision: 'deny', rule: 'engineering', reason: 'no-group-match', status: 403, method: 'GET' })
    const writer = JSON.parse((await explain(['--path', path, '--group', 'engineering', '--json'])).stdout)
    expect(writer).toMatchObject({ decision: 'allow', rule: 'engineering', reason: 'group-match' })
    const fetchAdvertisement = JSON.parse((await explain(['--path', `${ADVERTISEMENT}?service=git-upload-pack`, '--group', 'contractors', '--json'])).stdout)
    expect(fetchAdvertisement).toMatchObject({ decision: 'allow', rule: 'read-everything' })
    const text = (await explain(['--path', path, '--group', 'contractors'])).stdout
    expect(text).toMatch(/^rule:\s+engineering \(rule 2 of 2\)$/m)
  })
})
