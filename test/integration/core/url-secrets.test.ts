/**
 * Secrets that ride in configured URLs (a Redis password, credentials or a token in an http(s) URL)
 * never reach `check` output, serve's log or the unauthenticated admin `/readyz`; and `check` refuses
 * exactly the Redis URLs `serve` refuses.
 */
import { execFile } from 'node:child_process'
import { createServer, type Server } from 'node:net'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { baseConfig, BIN, ROOT, startServe, writeConfig } from '../../helpers/serve.ts'

const run = promisify(execFile)
async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, timeout: 15_000 })
    return { code: 0, output: stdout + stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, output: e.stdout + e.stderr }
  }
}

const withRedis = baseConfig('http://127.0.0.1:9', { session: { store: 'redis', redis: { url: '${REDIS_URL}' } } })

describe('a secret in a Redis URL', () => {
  it.each([
    ['a "/" in the password', 'redis://:Pw/Secret+Part@127.0.0.1:6379/0'],
    ['an "@" in the password', 'redis://:Pw@Secret@127.0.0.1:6379/0'],
    ['credentials per sentinel', 'redis-sentinel://:A@h1,:BSecret@h2/m'],
  ])('%s: check and serve both refuse it, and neither prints it', async (_what, url) => {
    const file = writeConfig(withRedis)
    const check = await cli(['check', '--config', file.path], { REDIS_URL: url })
    const serve = await cli(['serve', '--config', file.path], { REDIS_URL: url })
    file.cleanup()
    expect(check.code).toBe(1)
    expect(serve.code).toBe(1)
    expect(check.output).toMatch(/session\.redis\.url: /)
    expect(serve.output).toMatch(/session\.redis\.url: /)
    expect(check.output + serve.output).not.toMatch(/Secret|Pw/)
  })
})

describe('credentials or a token in an http(s) URL', () => {
  it('check refuses upstream.url with user:password@ without printing it', async () => {
    const file = writeConfig(baseConfig('${UPSTREAM}'))
    const check = await cli(['check', '--config', file.path], { UPSTREAM: 'http://root:PASSsecret@127.0.0.1:8181' })
    file.cleanup()
    expect(check.code).toBe(1)
    expect(check.output).toMatch(/upstream\.url: .*user name or password/)
    expect(check.output).not.toMatch(/PASSsecret/)
  })

  describe('a JWKS URL with a token in its query, at an IdP that is down', () => {
    let dead: Server
    let port: number
    beforeAll(async () => {
      // Accepts and hangs up at once: every key fetch fails.
      dead = createServer((socket) => socket.destroy())
      await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve))
      port = (dead.address() as { port: number }).port
    })
    afterAll(() => new Promise<void>((resolve) => dead.close(() => resolve())))

    it('/readyz and the log name the URL without its query', async () => {
      const jwksUri = `http://127.0.0.1:${port}/keys?private_token=glpat-Secret0123456789`
      const proxy = await startServe(
        baseConfig('http://127.0.0.1:9', { issuers: [{ name: 'ci', issuer: `http://127.0.0.1:${port}`, audiences: ['x'], jwksUri }] }),
        { waitForReady: false },
      )
      try {
        let body = ''
        for (let i = 0; i < 100 && !/lastError/.test(body); i++) {
          body = await fetch(`${proxy.adminUrl}/readyz`).then((r) => r.text())
          await new Promise((r) => setTimeout(r, 50))
        }
        expect(body).toMatch(/lastError/)
        expect(body).toContain(`http://127.0.0.1:${port}/keys`)
        expect(body + proxy.stderr()).not.toMatch(/glpat|private_token|Secret/)
      } finally {
        await proxy.stop()
      }
    })
  })
})
