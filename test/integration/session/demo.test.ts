import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { DEMO_USERS } from '../../../src/devidp/index.ts'
import { BIN, ROOT } from '../../helpers/serve.ts'
import { createBrowser } from './stack.ts'

/** The banner is complete once its last command (the `check` one) is printed. */
const BANNER_END = /check --config \S+\n/

interface RunningDemo {
  child: ChildProcess
  stdout(): string
  stderr(): string
}

/** Starts `gitlab-iap demo` in its own process group (so a test can see every process it leaves) and waits for the banner. */
async function startDemoProcess(args: string[] = []): Promise<RunningDemo> {
  const child = spawn(process.execPath, [BIN, 'demo', '--port', '0', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let out = ''
  let err = ''
  child.stdout!.setEncoding('utf8').on('data', (t: string) => (out += t))
  child.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t))
  const deadline = Date.now() + 20_000
  while (!BANNER_END.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`demo did not start: ${err}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return { child, stdout: () => out, stderr: () => err }
}

/** Sends SIGINT (or `signal`) and resolves with the exit code (null after a SIGKILL when it did not stop in time). */
async function interrupt(child: ChildProcess, timeoutMs = 5000, signal: NodeJS.Signals = 'SIGINT'): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  child.kill(signal)
  const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(r, timeoutMs, 'timeout'))])
  if (code === 'timeout') {
    child.kill('SIGKILL')
    return null
  }
  return code
}

/** Processes still in a process group (the demo ran detached, as its own group). */
function processesInGroup(pgid: number): string[] {
  const ps = execFileSync('ps', ['-eo', 'pid=,pgid=,args='], { encoding: 'utf8' })
  return ps.split('\n').filter((line) => line.trim().split(/\s+/)[1] === String(pgid))
}

/** Runs printed shell lines with /bin/sh in `cwd`, with the project's Node and `npx` on PATH, and no demo secrets in the environment. */
function sh(script: string, cwd = ROOT): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(ROOT, 'node_modules/.bin')}:${process.env.PATH}` }
  for (const name of ['IAP_ADMIN_TOKEN', 'ENTRA_CLIENT_SECRET', 'IAP_SESSION_SECRET', 'GITLAB_IAP_CONFIG', 'TOKEN']) delete env[name]
  return new Promise((resolve) => {
    execFile('/bin/sh', ['-c', script], { cwd, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr })
    })
  })
}

/** The one printed line that contains `needle` (trimmed), failing when there is none. */
function printedLine(text: string, needle: string | RegExp): string {
  const line = text.split('\n').find((l) => (typeof needle === 'string' ? l.includes(needle) : needle.test(l)))
  if (!line) throw new Error(`no printed line with ${String(needle)} in:\n${text}`)
  return line.trim().replace(/\s+#.*$/, '')
}

let demo: RunningDemo
let stdout = ''
let url = ''
let tokenUrl = ''
let revokeCommand = ''
let dir = ''

beforeAll(async () => {
  demo = await startDemoProcess()
  stdout = demo.stdout()
  url = /Open (http:\/\/127\.0\.0\.1:\d+)\//.exec(stdout)![1]!
  tokenUrl = /TOKEN=\$\(curl -s '([^?']+)\?user=bob'\)/.exec(stdout)![1]!
  revokeCommand = /curl -X POST .*\/admin\/revoke/.exec(stdout)![0]
  dir = dirname(/--config (\S+)/.exec(stdout)![1]!)
})
afterAll(async () => {
  if (demo) await interrupt(demo.child)
})

describe('gitlab-iap demo', () => {
  it('prints the URL, every demo user with groups, and the curl commands', () => {
    for (const user of Object.values(DEMO_USERS)) expect(stdout).toContain(user.upn)
    expect(stdout).toMatch(/alice\s+alice@contoso\.test\s+admins, engineering/)
    expect(stdout).toMatch(/dave\s+dave@contoso\.test\s+\(no groups\)/)
    expect(stdout).toMatch(/erin .*\+249 more \(groups overage/)
    expect(stdout).toContain(`curl -H "Authorization: Bearer $TOKEN" ${url}/api/v4/projects`)
    expect(revokeCommand).toContain('Authorization: Bearer ')
  })

  it('states the policy as the rules say it (secret-group/**)', () => {
    expect(stdout).toContain('secret-group/**')
    expect(stdout).not.toMatch(/secret-group\/\*(?!\*)/)
  })

  it('prints a git command that keeps the token out of the remote URL, and the Basic form for real GitLab', () => {
    expect(stdout).toContain(`git -c http.extraHeader="X-IAP-Authorization: Bearer $TOKEN" clone ${url}/group/project.git`)
    expect(stdout).toContain('https://$TOKEN:$GITLAB_PAT@')
    expect(stdout).not.toContain('oauth2:$TOKEN')
  })

  it('writes its config and access log to a fresh private temporary directory, secrets only as ${VAR}', () => {
    expect(dirname(dir)).toBe(tmpdir())
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    const config = readFileSync(join(dir, 'config.yaml'), 'utf8')
    for (const name of ['IAP_ADMIN_TOKEN', 'ENTRA_CLIENT_SECRET', 'IAP_SESSION_SECRET']) expect(config).toContain(`\${${name}}`)
    const env = readFileSync(join(dir, 'demo.env'), 'utf8')
    expect(statSync(join(dir, 'demo.env')).mode & 0o777).toBe(0o600)
    const secrets = env.trim().split('\n').map((line) => line.slice(line.indexOf('=') + 1))
    expect(secrets).toHaveLength(3)
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThanOrEqual(32)
      expect(config).not.toContain(secret)
    }
    expect(revokeCommand).toContain(/IAP_ADMIN_TOKEN=(\S+)/.exec(env)![1]!)
  })

  it('signs a browser in through the dev IdP and serves the upstream', async () => {
    const browser = createBrowser()
    const page = await browser.navigate(`${url}/group/project`, 'carol')
    expect(page.status).toBe(200)
    expect(page.body).toContain(`<p id="user">${DEMO_USERS.carol.upn}</p>`)
    expect((await browser.navigate(`${url}/secret-group/vault`)).status).toBe(403)
  })

  it('the printed token command gives a bearer token the proxy accepts', async () => {
    const token = await (await fetch(`${tokenUrl}?user=bob`)).text()
    expect(token).toMatch(/^eyJ/)
    const api = await fetch(`${url}/api/v4/projects`, { headers: { authorization: `Bearer ${token}` } })
    expect(api.status).toBe(200)
    const seen = (await api.json()) as { headers: Record<string, string> }
    expect(seen.headers['x-forwarded-user']).toBe(DEMO_USERS.bob.upn)
    expect((await fetch(`${url}/api/v4/projects`)).status).toBe(401)
  })

  it('the printed git clone works as printed, and the token is nowhere in the clone', async () => {
    const work = mkdtempSync(join(tmpdir(), 'gitlab-iap-demo-clone-'))
    try {
      const script = [printedLine(stdout, "TOKEN=$(curl -s '"), printedLine(stdout, 'git -c http.extraHeader='), 'cd project && git log --oneline && git remote -v && cat .git/config'].join('\n')
      const run = await sh(`set -e\n${script}`, work)
      expect(run.stderr + run.stdout).not.toMatch(/fatal|error/i)
      expect(run.code).toBe(0)
      expect(run.stdout).toContain('initial commit')
      expect(run.stdout).toContain(`${url}/group/project.git`)
      expect(run.stdout).not.toContain('eyJ')
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  })

  it('writes no access-log record to stdout: the banner stays readable', async () => {
    await fetch(`${url}/admin`, { headers: { accept: 'application/json' } })
    await new Promise((r) => setTimeout(r, 200))
    for (const line of demo.stdout().split('\n')) expect(line.trimStart().startsWith('{')).toBe(false)
  })

  it('the printed explain command works on the written config, without the secrets', async () => {
    const run = await sh(printedLine(stdout, ' explain --config '))
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/deny/)
    expect(run.stdout).toContain('admin-area')
  })

  it('the printed check command passes with the printed environment (and needs it)', async () => {
    const run = await sh(printedLine(stdout, ' check --config '))
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(run.stdout).toContain(`config ${join(dir, 'config.yaml')}: valid`)
    expect(run.stdout).toContain(`access log ${join(dir, 'access.log')}`)
    expect(run.stdout).toMatch(/secret-projects: projects secret-group\/\*\*/)
    const bare = await sh(`npx gitlab-iap check --config ${join(dir, 'config.yaml')}`)
    expect(bare.code).toBe(1)
    expect(bare.stderr).toMatch(/IAP_SESSION_SECRET is not set/)
  })

  it('the printed logs command reads the access log: every line a record, the denials by rule', async () => {
    const token = await (await fetch(`${tokenUrl}?user=carol`)).text()
    for (const path of ['/secret-group/vault', '/admin']) {
      expect((await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } })).status).toBe(403)
    }
    await new Promise((r) => setTimeout(r, 300)) // the writer batches lines for up to 25 ms
    const run = await sh(printedLine(stdout, ' logs '))
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('secret-projects')
    expect(run.stdout).toContain('admin-area')
    const records = readFileSync(join(dir, 'access.log'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(records.some((r) => r['url.path'] === '/group/project.git/git-upload-pack' && r['user.name'] === DEMO_USERS.bob.upn)).toBe(true)
  })

  it('prints --help', async () => {
    const help = spawn(process.execPath, [BIN, 'demo', '--help'], { cwd: ROOT })
    let text = ''
    help.stdout.setEncoding('utf8').on('data', (t: string) => (text += t))
    const code = await new Promise((r) => help.once('exit', r))
    expect(code).toBe(0)
    expect(text).toMatch(/^Usage: gitlab-iap demo/)
    expect(text).toContain('--keep')
  })
})

describe('gitlab-iap demo: Ctrl-C', () => {
  it('exits 0, leaves no process behind and removes its directory', async () => {
    const own = await startDemoProcess()
    const ownDir = dirname(/--config (\S+)/.exec(own.stdout())![1]!)
    expect(existsSync(ownDir)).toBe(true)
    expect(await interrupt(own.child)).toBe(0)
    expect(processesInGroup(own.child.pid!)).toEqual([])
    expect(existsSync(ownDir)).toBe(false)
    expect(own.stderr()).toBe('')
  })

  it('closing the terminal (SIGHUP) stops it the same way: its directory, secrets included, is removed', async () => {
    const own = await startDemoProcess()
    const ownDir = dirname(/--config (\S+)/.exec(own.stdout())![1]!)
    expect(await interrupt(own.child, 5000, 'SIGHUP')).toBe(0)
    expect(processesInGroup(own.child.pid!)).toEqual([])
    expect(existsSync(ownDir)).toBe(false)
  })

  it('--keep keeps the directory and names it on exit', async () => {
    const own = await startDemoProcess(['--keep'])
    const ownDir = dirname(/--config (\S+)/.exec(own.stdout())![1]!)
    try {
      expect(await interrupt(own.child)).toBe(0)
      expect(processesInGroup(own.child.pid!)).toEqual([])
      expect(existsSync(join(ownDir, 'config.yaml'))).toBe(true)
      expect(existsSync(join(ownDir, 'access.log'))).toBe(true)
      expect(own.stdout()).toContain(`kept ${ownDir}`)
    } finally {
      rmSync(ownDir, { recursive: true, force: true })
    }
  })
})
