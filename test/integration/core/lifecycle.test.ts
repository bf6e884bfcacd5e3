import { request } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'
import { rawRequest } from '../../helpers/http.ts'

const cleanups: (() => Promise<unknown>)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})
async function setup(config?: (upstreamUrl: string) => Record<string, unknown>): Promise<{ upstream: Upstream; proxy: ServeHandle }> {
  const upstream = await startUpstream()
  cleanups.push(() => upstream.close())
  const proxy = await startServe(config ? config(upstream.url) : baseConfig(upstream.url))
  cleanups.push(() => proxy.stop())
  return { upstream, proxy }
}

describe('upstream faults', () => {
  it('answers 502 with the request id when GitLab is down', async () => {
    const proxy = await startServe(baseConfig('http://127.0.0.1:9'))
    cleanups.push(() => proxy.stop())
    const res = await fetch(`${proxy.url}/dashboard`, { headers: { accept: 'text/html' } })
    expect(res.status).toBe(502)
    const id = res.headers.get('x-request-id')!
    expect(id).toMatch(/^[0-9a-f-]{36}$/)
    expect(await res.text()).toContain(id)
  })

  it('answers 504 when GitLab stays silent longer than upstream.timeoutSeconds', async () => {
    const { proxy } = await setup((url) => baseConfig(url, { upstream: { url, timeoutSeconds: 1 } }))
    const started = Date.now()
    const res = await fetch(`${proxy.url}/-/test/slow?ms=5000`, { headers: { accept: 'application/json' } })
    expect(res.status).toBe(504)
    expect(Date.now() - started).toBeLessThan(4000)
    expect(((await res.json()) as { reason: string }).reason).toBe('upstream-timeout')
  })

  it('answers 408 (the client\'s fault) and lets go of GitLab when the client\'s upload stalls longer than upstream.timeoutSeconds', async () => {
    const { upstream, proxy } = await setup((url) => baseConfig(url, { upstream: { url, timeoutSeconds: 1 } }))
    const url = new URL(proxy.url)
    const started = Date.now()
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, method: 'POST', path: '/-/test/upload', headers: { 'content-length': 1000 }, agent: false }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      req.on('error', reject)
      req.write(Buffer.alloc(10)) // then nothing more: 990 bytes never come
    })
    expect(status).toBe(408)
    expect(Date.now() - started).toBeLessThan(4000)
    await expect.poll(() => upstream.abandoned, { timeout: 3000 }).toContain('/-/test/upload')
  })

  it('answers 504 (GitLab\'s fault, not the client\'s) when GitLab stops taking an upload the client keeps sending', async () => {
    const { proxy } = await setup((url) => baseConfig(url, { upstream: { url, timeoutSeconds: 1 } }))
    const url = new URL(proxy.url)
    // /-/test/slow never reads its body: once the buffers between are full, the client cannot send more.
    const status = await new Promise<number>((resolve, reject) => {
      const total = 64 * 1024 * 1024
      const req = request({ host: url.hostname, port: url.port, method: 'POST', path: '/-/test/slow?ms=30000', headers: { 'content-length': total, accept: 'application/json' }, agent: false }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      req.on('error', () => {})
      const chunk = Buffer.alloc(256 * 1024)
      let sent = 0
      const pump = () => {
        while (sent < total) {
          sent += chunk.length
          if (!req.write(chunk)) return void req.once('drain', pump)
        }
        req.end()
      }
      pump()
      setTimeout(() => reject(new Error('no answer')), 10_000).unref()
    })
    expect(status).toBe(504)
    await expect.poll(() => proxy.records().find((r) => r['url.path'] === '/-/test/slow'), { timeout: 3000 }).toMatchObject({ 'error.code': 'upstream-timeout' })
  })

  it('aborts the upstream request when the client disconnects', async () => {
    const { upstream, proxy } = await setup()
    const url = new URL(proxy.url)
    const req = request({ host: url.hostname, port: url.port, path: '/-/test/slow?ms=4000', agent: false })
    req.on('error', () => {})
    req.end()
    await expect.poll(() => upstream.reached('/-/test/slow').length, { timeout: 3000 }).toBe(1)
    req.destroy()
    await expect.poll(() => upstream.abandoned.length, { timeout: 3000 }).toBe(1)
  })
})

describe('trusted proxies', () => {
  it('extends X-Forwarded-For and keeps the request id only from a trusted peer', async () => {
    const { upstream, proxy } = await setup((url) => baseConfig(url, { server: { listen: '127.0.0.1:0', publicUrl: 'https://gitlab.example.com', trustedProxies: ['127.0.0.0/8'] } }))
    await rawRequest(proxy.url, 'GET', '/api/v4/x', { 'X-Forwarded-For': '203.0.113.7', 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'gitlab.example.com', 'X-Request-Id': 'ingress-id-1' })
    const seen = upstream.requests.at(-1)!.headers
    expect(seen['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1')
    expect(seen['x-forwarded-proto']).toBe('https')
    expect(seen['x-forwarded-host']).toBe('gitlab.example.com')
    expect(seen['x-request-id']).toBe('ingress-id-1')
  })
})

describe('SIGTERM', () => {
  it('stops accepting, finishes in-flight requests and exits 0', async () => {
    const { proxy } = await setup()
    const inflight = fetch(`${proxy.url}/-/test/slow?ms=800`).then(async (r) => ({ status: r.status, body: await r.text() }))
    await new Promise((r) => setTimeout(r, 200))
    const exit = proxy.stop('SIGTERM')
    await new Promise((r) => setTimeout(r, 100))
    await expect(fetch(`${proxy.url}/api/v4/late`)).rejects.toThrow()
    const done = await inflight
    expect(done.status).toBe(200)
    expect(JSON.parse(done.body)).toEqual({ slept: 800 })
    expect(await exit).toBe(0)
  })

  it('a SIGHUP during the drain (a config-reloader sidecar) is ignored: the in-flight request finishes and the exit is 0', async () => {
    const { proxy } = await setup()
    const inflight = fetch(`${proxy.url}/-/test/slow?ms=1000`).then((r) => r.status)
    await new Promise((r) => setTimeout(r, 200))
    const exit = proxy.stop('SIGTERM')
    await new Promise((r) => setTimeout(r, 200))
    proxy.process.kill('SIGHUP')
    expect(await inflight).toBe(200)
    expect(await exit).toBe(0)
    expect(proxy.stderr()).toContain('SIGHUP ignored')
    expect(proxy.records().map((r) => r['url.path'])).toContain('/-/test/slow')
  })

  it('requests cut when the grace period ends still leave their records', async () => {
    const { proxy } = await setup((url) => ({ ...baseConfig(url), server: { ...(baseConfig(url).server as object), shutdownGraceSeconds: 1 } }))
    // One waiting for GitLab's head, one whose body GitLab has not finished: both outlast the grace period.
    const slow = rawRequest(proxy.url, 'GET', '/-/test/slow?ms=20000').catch(() => undefined)
    const late = rawRequest(proxy.url, 'GET', '/-/test/late-body?ms=20000').catch(() => undefined)
    await new Promise((r) => setTimeout(r, 300))
    expect(await proxy.stop('SIGTERM')).toBe(0)
    await Promise.all([slow, late])
    const byPath = Object.fromEntries(proxy.records().map((r) => [r['url.path'], r]))
    // The proxy cut them, not the client: no 499 (client left), and the code says why.
    expect(byPath['/-/test/slow']).toMatchObject({ 'http.response.status_code': 503, 'iap.aborted': true, 'error.code': 'shutdown-grace-exceeded', 'event.outcome': 'failure' })
    expect(byPath['/-/test/late-body']).toMatchObject({ 'http.response.status_code': 200, 'iap.aborted': true, 'error.code': 'shutdown-grace-exceeded', 'event.outcome': 'failure' })
  })

  it('closes open websockets at once, logs each, and does not wait out the grace period for them', async () => {
    const { proxy } = await setup()
    const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/-/cable`)
    const id = await new Promise<string | undefined>((resolve, reject) => {
      ws.once('upgrade', (res) => resolve(res.headers['x-request-id'] as string | undefined))
      ws.once('error', reject)
    })
    const closed = new Promise((resolve) => ws.once('close', resolve))
    const started = Date.now()
    expect(await proxy.stop('SIGTERM')).toBe(0)
    await closed
    expect(Date.now() - started).toBeLessThan(5000)
    expect(proxy.records().filter((r) => r['http.request.id'] === id)).toHaveLength(1)
  })
})

describe('streaming memory', () => {
  it('proxies a 1 GiB upload with bounded memory', { timeout: 120_000 }, async () => {
    const { upstream, proxy } = await setup()
    const pid = proxy.process.pid!
    const rssMiB = async () => {
      const { readFile } = await import('node:fs/promises')
      const status = await readFile(`/proc/${pid}/status`, 'utf8')
      return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024
    }
    const url = new URL(proxy.url)
    const upload = (total: number) => new Promise<void>((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, method: 'PUT', path: '/-/test/upload', headers: { 'content-length': total, 'content-type': 'application/octet-stream' }, agent: false }, (res) => {
        res.resume()
        res.on('end', resolve)
      })
      req.on('error', reject)
      const chunk = Buffer.alloc(1024 * 1024, 7)
      let sent = 0
      const write = () => {
        while (sent < total) {
          sent += chunk.length
          if (!req.write(chunk)) return void req.once('drain', write)
        }
        req.end()
      }
      write()
    })
    // "Idle" is a process that has already served a streaming request (JIT, pools and heap warmed up).
    await upload(64 * 1024 * 1024)
    const idle = await rssMiB()
    let peak = idle
    const sampler = setInterval(() => rssMiB().then((v) => (peak = Math.max(peak, v)), () => {}), 50)
    const total = 1024 * 1024 * 1024
    await upload(total)
    clearInterval(sampler)
    expect(upstream.uploads.at(-1)).toBe(total)
    console.info(`1 GiB upload: idle ${idle.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB (+${(peak - idle).toFixed(1)} MiB)`)
    expect(peak - idle).toBeLessThan(64)
  })
})
