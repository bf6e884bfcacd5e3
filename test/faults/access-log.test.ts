/**
 * The access log cannot be written (disk full: /dev/full answers ENOSPC to every write).
 * `accessLog.onError: serve` keeps serving and alerts in metrics; `deny` refuses with 503.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { baseConfig, startServe } from '../helpers/serve.ts'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'

let upstream: Upstream
beforeAll(async () => {
  upstream = await startUpstream()
})
afterAll(async () => {
  await upstream?.close()
})

const failures = async (adminUrl: string) => Number(/^gitlab_iap_access_log_write_failures_total (\d+)/m.exec(await (await fetch(`${adminUrl}/metrics`)).text())?.[1] ?? 0)

describe('log destination full', () => {
  it('onError: serve keeps answering and counts the failures', async () => {
    const proxy = await startServe(baseConfig(upstream.url, { accessLog: { output: '/dev/full', onError: 'serve' } }))
    try {
      for (let i = 0; i < 5; i++) expect((await fetch(`${proxy.url}/api/v4/x`)).status).toBe(200)
      await expect.poll(() => failures(proxy.adminUrl), { timeout: 3000 }).toBeGreaterThan(0)
      expect(proxy.stderr()).toContain('IAP_ERR_LOG_WRITE_FAILED')
      expect((await fetch(`${proxy.url}/api/v4/x`)).status).toBe(200)
    } finally {
      await proxy.stop()
    }
  })

  it('onError: deny refuses requests with 503 once the log cannot be written, and forwards nothing', async () => {
    const proxy = await startServe(baseConfig(upstream.url, { accessLog: { output: '/dev/full', onError: 'deny' } }))
    try {
      await (await fetch(`${proxy.url}/api/v4/first`)).text()
      await expect.poll(async () => (await fetch(`${proxy.url}/api/v4/probe`)).status, { timeout: 3000 }).toBe(503)
      upstream.clear()
      const refused = await fetch(`${proxy.url}/api/v4/after`)
      expect(refused.status).toBe(503)
      // The body names why, as every refusal of the proxy's own does.
      expect(await refused.json()).toMatchObject({ error: 'Service Unavailable', reason: 'access-log-unavailable', requestId: refused.headers.get('x-request-id') })
      expect(upstream.reached('/api/v4/after')).toHaveLength(0)
      const ready = await fetch(`${proxy.adminUrl}/readyz`)
      expect(ready.status).toBe(503)
    } finally {
      await proxy.stop()
    }
  })
})

describe('log file that cannot be opened', () => {
  it('keeps serving, and shuts down cleanly: no stack trace on the way out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iap-log-unopenable-'))
    writeFileSync(join(dir, 'not-a-dir'), '')
    const proxy = await startServe(baseConfig(upstream.url, { accessLog: { output: join(dir, 'not-a-dir', 'access.log'), onError: 'serve' } }))
    try {
      expect((await fetch(`${proxy.url}/api/v4/x`)).status).toBe(200)
      await expect.poll(() => proxy.stderr(), { timeout: 3000 }).toContain('IAP_ERR_LOG_WRITE_FAILED')
    } finally {
      expect(await proxy.stop()).toBe(0)
      rmSync(dir, { recursive: true, force: true })
    }
    expect(proxy.stderr()).toContain('"msg":"stopped"')
    expect(proxy.stderr()).not.toMatch(/sonic boom|\n\s+at /)
  })
})

describe('stdout reader that stalls (a stuck log shipper)', () => {
  it('holds a bounded backlog: beyond it records are dropped and counted, onError: deny refuses, and it recovers once read', { timeout: 120_000 }, async () => {
    const proxy = await startServe(baseConfig(upstream.url, { accessLog: { output: 'stdout', onError: 'deny' } }))
    try {
      // Nobody reads stdout from here on: the pipe and then the proxy's destination fill up.
      proxy.process.stdout!.pause()
      let drained = 0
      proxy.process.stdout!.on('data', (chunk: string) => (drained += Buffer.byteLength(chunk)))
      // Records of about 30 KB each: a long path (it is logged as received).
      const path = `/api/v4/${'a'.repeat(30_000)}`
      let sent = 0
      let refused = false
      const started = Date.now()
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (!refused && Date.now() - started < 30_000) {
            const res = await fetch(`${proxy.url}${path}`)
            await res.arrayBuffer()
            sent += 1
            if (res.status === 503) refused = true
          }
        }),
      )
      expect(refused).toBe(true)
      // Before refusing, it held at most MAX_PENDING_BYTES (16 MiB) plus a batch; not every record since the stall.
      expect(sent * 30_000).toBeGreaterThan(12 * 1024 * 1024)
      expect(sent * 30_000).toBeLessThan(40 * 1024 * 1024)
      expect(await failures(proxy.adminUrl)).toBeGreaterThan(0)
      expect((await fetch(`${proxy.adminUrl}/readyz`)).status).toBe(503)
      await expect.poll(() => proxy.stderr(), { timeout: 3000 }).toContain('IAP_ERR_LOG_WRITE_FAILED')

      // The reader resumes: the backlog drains and the proxy is ready and logging again.
      proxy.process.stdout!.resume()
      // A reader slower than the writer makes SonicBoom wait 100 ms per full pipe: on a busy machine this takes seconds.
      await expect.poll(async () => (await fetch(`${proxy.adminUrl}/readyz`)).status, { timeout: 40_000, interval: 200 }).toBe(200)
      expect(drained).toBeLessThan(20 * 1024 * 1024)
      const res = await fetch(`${proxy.url}/api/v4/after-the-stall`)
      expect(res.status).toBe(200)
      const id = res.headers.get('x-request-id')
      await expect.poll(() => proxy.records().some((r) => r['http.request.id'] === id), { timeout: 3000 }).toBe(true)
    } finally {
      proxy.process.stdout!.resume()
      await proxy.stop()
    }
  })
})
