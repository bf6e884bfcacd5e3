import { spawn, type ChildProcess } from 'node:child_process'
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { DEMO_USERS } from '../../../src/devidp/index.ts'
import { BIN, ROOT } from '../../helpers/serve.ts'
import { createBrowser } from './stack.ts'

let child: ChildProcess
let stdout = ''
let stderr = ''
let url = ''
let tokenUrl = ''
let revokeCommand = ''

beforeAll(async () => {
  child = spawn(process.execPath, [BIN, 'demo', '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout!.setEncoding('utf8').on('data', (t: string) => (stdout += t))
  child.stderr!.setEncoding('utf8').on('data', (t: string) => (stderr += t))
  const deadline = Date.now() + 20_000
  while (!/follow below/.test(stdout)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`demo did not start: ${stderr}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  url = /Open (http:\/\/127\.0\.0\.1:\d+)\//.exec(stdout)![1]!
  tokenUrl = /TOKEN=\$\(curl -s '([^?']+)\?user=bob'\)/.exec(stdout)![1]!
  revokeCommand = /curl -X POST .*\/admin\/revoke/.exec(stdout)![0]
})
afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r))
    child.kill('SIGINT')
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
    if (child.exitCode === null) child.kill('SIGKILL')
  }
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

  it('prints --help', async () => {
    const help = spawn(process.execPath, [BIN, 'demo', '--help'], { cwd: ROOT })
    let text = ''
    help.stdout.setEncoding('utf8').on('data', (t: string) => (text += t))
    const code = await new Promise((r) => help.once('exit', r))
    expect(code).toBe(0)
    expect(text).toMatch(/^Usage: gitlab-iap demo/)
  })
})
