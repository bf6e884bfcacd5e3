/**
 * GitLab over HTTPS by name: the proxy asks for (SNI) and checks the certificate of `upstream.url`'s host,
 * never the client's `Host` (the public name), which GitLab still receives as it was. A certificate for
 * another name is still refused: the check is not switched off. Certificates are made at test time by a
 * throwaway private CA (never committed), trusted through NODE_EXTRA_CA_CERTS (there is no upstream CA key).
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { createServer as createHttpsServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'

let dir: string
const cleanups: (() => Promise<unknown>)[] = []

/** A key and a certificate for `san`, signed by the test CA. */
function issue(name: string, san: string): { key: Buffer; cert: Buffer } {
  const key = join(dir, `${name}.key`)
  const csr = join(dir, `${name}.csr`)
  const crt = join(dir, `${name}.crt`)
  const ext = join(dir, `${name}.ext`)
  writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`)
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`, '-keyout', key, '-out', csr], { stdio: 'pipe' })
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-days', '1', '-extfile', ext, '-out', crt], { stdio: 'pipe' })
  return { key: readFileSync(key), cert: readFileSync(crt) }
}

interface Seen {
  readonly servername: string | false
  readonly host: string | undefined
}

/** An https GitLab on loopback that notes the name each request's TLS connection asked for, and its Host. */
async function httpsGitLab(tls: { key: Buffer; cert: Buffer }): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = []
  const server: Server = createHttpsServer(tls, (req, res) => {
    seen.push({ servername: (req.socket as { servername?: string | false }).servername ?? false, host: req.headers.host })
    res.end('GitLab over TLS')
  })
  server.on('upgrade', (req, socket) => {
    seen.push({ servername: (req.socket as { servername?: string | false }).servername ?? false, host: req.headers.host })
    socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => new Promise((resolve) => (server.closeAllConnections(), server.close(resolve))))
  return { port: (server.address() as AddressInfo).port, seen }
}

async function proxyTo(url: string): Promise<ServeHandle> {
  const proxy = await startServe(baseConfig(url), { env: { NODE_EXTRA_CA_CERTS: join(dir, 'ca.crt') } })
  cleanups.push(() => proxy.stop())
  return proxy
}

/** A request with the public name as `Host`, as every client behind the proxy sends it. */
function get(proxy: ServeHandle, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: proxy.port, path, headers: { host: 'gitlab.example.test', accept: 'application/json', ...headers } }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (text: string) => (body += text))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gitlab-iap-sni-'))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=gitlab-iap test CA', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt')], { stdio: 'pipe' })
})
afterAll(async () => {
  while (cleanups.length) await cleanups.pop()!()
  rmSync(dir, { recursive: true, force: true })
})

describe('upstream.url https://localhost', () => {
  it('connects for GitLab\'s name, not the client\'s Host, and GitLab still sees the Host it was sent', async () => {
    const gitlab = await httpsGitLab(issue('localhost', 'DNS:localhost'))
    const proxy = await proxyTo(`https://localhost:${gitlab.port}`)
    for (const path of ['/api/v4/version', '/explore']) {
      const res = await get(proxy, path)
      expect(res.status).toBe(200)
      expect(res.body).toBe('GitLab over TLS')
    }
    // A client with another Host reuses the same connection (no new handshake for each name).
    expect((await get(proxy, '/api/v4/other', { host: 'other.example.test' })).status).toBe(200)
    expect(gitlab.seen.map((s) => s.servername)).toEqual(['localhost', 'localhost', 'localhost'])
    expect(gitlab.seen.map((s) => s.host)).toEqual(['gitlab.example.test', 'gitlab.example.test', 'other.example.test'])
  })

  it('websocket handshakes too', async () => {
    const gitlab = await httpsGitLab(issue('localhost-ws', 'DNS:localhost'))
    const proxy = await proxyTo(`https://localhost:${gitlab.port}`)
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: proxy.port, path: '/-/cable', headers: { host: 'gitlab.example.test', connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } })
      req.on('response', (res) => (res.resume(), resolve(res.statusCode ?? 0)))
      req.on('upgrade', () => resolve(101))
      req.on('error', reject)
      req.end()
    })
    // GitLab's own refusal (400) came back: the TLS connection to it was made.
    expect(status).toBe(400)
    expect(gitlab.seen).toEqual([{ servername: 'localhost', host: 'gitlab.example.test' }])
  })

  it('a certificate for another name is still refused (502): the check is not switched off', async () => {
    const gitlab = await httpsGitLab(issue('elsewhere', 'DNS:elsewhere.example.test'))
    const proxy = await proxyTo(`https://localhost:${gitlab.port}`)
    const res = await get(proxy, '/api/v4/version')
    expect(res.status).toBe(502)
    expect(gitlab.seen).toEqual([])
  })

  it('an IP literal as upstream.url: no SNI, the certificate is checked against the address, whatever the Host', async () => {
    const gitlab = await httpsGitLab(issue('ip', 'IP:127.0.0.1'))
    const proxy = await proxyTo(`https://127.0.0.1:${gitlab.port}`)
    const res = await get(proxy, '/api/v4/version')
    expect(res.status).toBe(200)
    expect(gitlab.seen).toEqual([{ servername: false, host: 'gitlab.example.test' }])
  })
})
