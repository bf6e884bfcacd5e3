/**
 * "Who may read" with the real git CLI, under config.example.yaml's policy shape: a `methods: [GET, HEAD]`
 * rule for readers, then a rule for writers. git reads with POSTs (`git-upload-pack`), so readers
 * must be able to clone and fetch through a GET rule, and still not push (`git-receive-pack`, refused at its advertisement).
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startServe, type ServeHandle } from '../../helpers/serve.ts'
import { isolatedGitEnv } from '../../helpers/git.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'
import { startJwksServer, type JwksServer } from '../../helpers/jwks-server.ts'
import { CONTRACTORS, ENGINEERING, readersAndWritersConfig } from '../../helpers/readers-writers.ts'

const run = promisify(execFile)

let idp: JwksServer
let upstream: Upstream
let proxy: ServeHandle
let work: string

const gitEnv = () => isolatedGitEnv(work)
/** git with the IAP token in `X-IAP-Authorization`, as CI jobs and scripts send it. */
const git = (token: string, args: string[], cwd: string) =>
  run('git', ['-c', 'protocol.version=2', '-c', `http.extraHeader=X-IAP-Authorization: Bearer ${token}`, ...args], { cwd, env: gitEnv() })

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'gitlab-iap-git-readers-'))
  idp = await startJwksServer()
  upstream = await startUpstream({ repos: ['group/project'] })
  proxy = await startServe(
    readersAndWritersConfig(upstream.url, idp.authority),
  )
})

afterAll(async () => {
  await proxy?.stop()
  await upstream?.close()
  await idp?.close()
  if (work) rmSync(work, { recursive: true, force: true })
})

describe('git readers and writers under a GET/HEAD reading rule', () => {
  it('a contractor clones and fetches, and is refused the push (403 from the writers rule)', async () => {
    const token = await idp.mint({ groups: [CONTRACTORS] })
    const dir = join(work, 'contractor')
    await git(token, ['clone', '--quiet', `${proxy.url}/group/project.git`, dir], work)
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain('group/project')
    await git(token, ['fetch', '--quiet', 'origin'], dir)
    writeFileSync(join(dir, 'change.txt'), 'a contractor tries to push\n')
    await git(token, ['add', 'change.txt'], dir)
    await git(token, ['commit', '--quiet', '-m', 'not allowed'], dir)
    await expect(git(token, ['push', '--quiet', 'origin', 'main'], dir)).rejects.toThrow(/403/)
    const decisions = () => proxy.records().filter((r) => String(r['url.path']).startsWith('/group/project.git/')).map((r) => [r['url.path'], r['iap.decision.rule'], r['http.response.status_code']])
    // Records are written when responses end: the refused push's may land just after git gave up.
    // The push is refused at its ref advertisement (info/refs?service=git-receive-pack reads as the POST it starts), before any pack is sent.
    await expect.poll(decisions, { timeout: 3000 }).toContainEqual(['/group/project.git/info/refs', 'engineering', 403])
    expect(decisions().map(([path]) => path)).not.toContain('/group/project.git/git-receive-pack')
    expect(decisions()).toContainEqual(['/group/project.git/git-upload-pack', 'read-everything', 200])
  })

  it('an engineer clones and pushes', async () => {
    const token = await idp.mint({ groups: [ENGINEERING] })
    const dir = join(work, 'engineer')
    await git(token, ['clone', '--quiet', `${proxy.url}/group/project.git`, dir], work)
    writeFileSync(join(dir, 'change.txt'), 'an engineer pushes\n')
    await git(token, ['add', 'change.txt'], dir)
    await git(token, ['commit', '--quiet', '-m', 'allowed'], dir)
    await git(token, ['push', '--quiet', 'origin', 'main'], dir)
    const { stdout } = await run('git', ['--git-dir', join(upstream.repoRoot, 'group/project.git'), 'log', '--format=%s', '-1', 'main'])
    expect(stdout.trim()).toBe('allowed')
  })
})
