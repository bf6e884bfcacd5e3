import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'
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
