import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'

const run = promisify(execFile)
let upstream: Upstream
let proxy: ServeHandle
let work: string

const gitEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', GIT_AUTHOR_NAME: 'Dev', GIT_AUTHOR_EMAIL: 'dev@example.test', GIT_COMMITTER_NAME: 'Dev', GIT_COMMITTER_EMAIL: 'dev@example.test' }
const git = (args: string[], cwd: string) => run('git', ['-c', 'protocol.version=2', ...args], { cwd, env: { ...gitEnv, HOME: work } })

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'gitlab-iap-git-'))
  upstream = await startUpstream({ repos: ['group/project', 'group/sub/deep'] })
  proxy = await startServe(baseConfig(upstream.url))
})
afterAll(async () => {
  await proxy?.stop()
  await upstream?.close()
  rmSync(work, { recursive: true, force: true })
})

describe('git smart HTTP through the proxy', () => {
  it('clones, commits and pushes a real repository with the git CLI', async () => {
    const dir = join(work, 'clone')
    await git(['clone', '--quiet', `${proxy.url}/group/project.git`, dir], work)
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain('group/project')
    writeFileSync(join(dir, 'change.txt'), 'pushed through gitlab-iap\n')
    await git(['add', 'change.txt'], dir)
    await git(['commit', '--quiet', '-m', 'through the proxy'], dir)
    await git(['push', '--quiet', 'origin', 'main'], dir)
    const { stdout } = await run('git', ['--git-dir', join(upstream.repoRoot, 'group/project.git'), 'log', '--format=%s', '-1', 'main'])
    expect(stdout.trim()).toBe('through the proxy')
    const paths = upstream.requests.map((r) => r.url.split('?')[0])
    expect(paths).toContain('/group/project.git/info/refs')
    expect(paths).toContain('/group/project.git/git-upload-pack')
    expect(paths).toContain('/group/project.git/git-receive-pack')
  })

  it('pushes a larger pack with chunked transfer encoding', async () => {
    const dir = join(work, 'big')
    await git(['clone', '--quiet', `${proxy.url}/group/sub/deep.git`, dir], work)
    // Random content does not compress: a multi-MiB pack forces git to stream a chunked POST.
    writeFileSync(join(dir, 'blob.bin'), Buffer.from(Array.from({ length: 3 * 1024 * 1024 }, () => Math.floor(Math.random() * 256))))
    await git(['add', 'blob.bin'], dir)
    await git(['commit', '--quiet', '-m', 'big blob'], dir)
    await git(['-c', 'http.postBuffer=65536', 'push', '--quiet', 'origin', 'main'], dir)
    const { stdout } = await run('git', ['--git-dir', join(upstream.repoRoot, 'group/sub/deep.git'), 'log', '--format=%s', '-1', 'main'])
    expect(stdout.trim()).toBe('big blob')
    const push = upstream.requests.filter((r) => r.url === '/group/sub/deep.git/git-receive-pack').at(-1)!
    expect(push.headers['transfer-encoding']).toBe('chunked')
  })
})
