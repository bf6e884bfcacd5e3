import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { createServer as createHttpsServer, request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { baseConfig, BIN, ROOT, startServe, writeConfig, type ServeHandle } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'

let dir: string
let upstream: Upstream
let proxy: ServeHandle

beforeAll(async () => {
  // A throwaway self-signed certificate made at test time (never committed).
  dir = mkdtempSync(join(tmpdir(), 'gitlab-iap-tls-'))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt')], { stdio: 'pipe' })
  upstream = await startUpstream()
  proxy = await startServe(baseConfig(upstream.url, { server: { listen: '127.0.0.1:0', publicUrl: 'https://127.0.0.1', tls: { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') } } }))
})
afterAll(async () => {
  await proxy?.stop()
  await upstream?.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('server.tls', () => {
  it('serves HTTPS on the main listener and tells GitLab the scheme', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: proxy.port, path: '/api/v4/tls', rejectUnauthorized: false }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      })
      req.on('error', reject)
      req.end()
    })
    expect(status).toBe(200)
    expect(upstream.requests.at(-1)!.headers['x-forwarded-proto']).toBe('https')
  })
})

describe('GitLab over HTTPS (upstream.url https://)', () => {
  async function httpsGitLab(): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
    const seen: string[] = []
    const server = createHttpsServer({ cert: readFileSync(join(dir, 'tls.crt')), key: readFileSync(join(dir, 'tls.key')) }, (req, res) => {
      seen.push(req.url ?? '')
      res.writeHead(200, { 'content-type': 'text/plain', 'set-cookie': ['_gitlab_session=abc; path=/; secure; HttpOnly'] })
      res.end('GitLab over TLS')
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => new Promise((resolve) => server.close(() => resolve())) }
  }

  it('forwards over TLS to a GitLab whose certificate the process trusts (NODE_EXTRA_CA_CERTS)', async () => {
    const gitlab = await httpsGitLab()
    const tlsProxy = await startServe(baseConfig(gitlab.url), { env: { NODE_EXTRA_CA_CERTS: join(dir, 'tls.crt') } })
    try {
      const res = await fetch(`${tlsProxy.url}/api/v4/projects/a%2Fb?x=1`)
      expect(res.status).toBe(200)
      expect(await res.text()).toBe('GitLab over TLS')
      expect(res.headers.get('set-cookie')).toContain('_gitlab_session=abc')
      expect(gitlab.seen).toEqual(['/api/v4/projects/a%2Fb?x=1'])
    } finally {
      await tlsProxy.stop()
      await gitlab.close()
    }
  })

  it('refuses (502) a GitLab whose certificate is not trusted, and sends it nothing', async () => {
    const gitlab = await httpsGitLab()
    const tlsProxy = await startServe(baseConfig(gitlab.url))
    try {
      const res = await fetch(`${tlsProxy.url}/api/v4/projects`)
      expect(res.status).toBe(502)
      expect(gitlab.seen).toEqual([])
    } finally {
      await tlsProxy.stop()
      await gitlab.close()
    }
  })
})

describe('server.tls files that cannot be used', () => {
  const run = promisify(execFile)
  async function cli(args: string[]): Promise<{ code: number; stderr: string }> {
    try {
      const { stderr } = await run(process.execPath, [BIN, ...args], { cwd: ROOT, timeout: 15_000 })
      return { code: 0, stderr }
    } catch (err) {
      const e = err as { code: number; stderr: string }
      return { code: e.code, stderr: e.stderr }
    }
  }
  const withTls = (tls: { cert: string; key: string }) => writeConfig(baseConfig(upstream.url, { server: { listen: '127.0.0.1:0', publicUrl: 'https://127.0.0.1', tls } }))

  it('serve names the key of a missing file in one line and exits 1; check warns (it may run where the file is not mounted)', async () => {
    const file = withTls({ cert: join(dir, 'missing.crt'), key: join(dir, 'tls.key') })
    const serve = await cli(['serve', '--config', file.path])
    expect(serve.code).toBe(1)
    expect(serve.stderr.trim()).toBe(`gitlab-iap: server.tls.cert: cannot read ${join(dir, 'missing.crt')}: no such file`)
    const check = await cli(['check', '--config', file.path])
    expect(check.code).toBe(0)
    expect(check.stderr.trim()).toBe(`warning: server.tls.cert: cannot read ${join(dir, 'missing.crt')}: no such file on this machine (serve refuses to start without it) (IAP_WARN_FILE_UNREADABLE)`)
    file.cleanup()
  })

  it('check still refuses a file that is there but no PEM certificate, when the other one is missing', async () => {
    const file = withTls({ cert: join(dir, 'tls.key'), key: join(dir, 'missing.key') })
    const result = await cli(['check', '--config', file.path])
    file.cleanup()
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/^gitlab-iap: server\.tls\.cert: \S+tls\.key is not a PEM certificate: /)
  })

  it('check refuses a key that does not belong to the certificate', async () => {
    execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', join(dir, 'other.key')], { stdio: 'pipe' })
    const file = withTls({ cert: join(dir, 'tls.crt'), key: join(dir, 'other.key') })
    const result = await cli(['check', '--config', file.path])
    file.cleanup()
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/^gitlab-iap: server\.tls: the certificate and key cannot be used/)
  })
})
