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
      expect((await fetch(`${proxy.url}/api/v4/after`)).status).toBe(503)
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
