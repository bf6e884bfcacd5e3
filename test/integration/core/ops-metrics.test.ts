import { writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'

const handles: ServeHandle[] = []
afterAll(async () => {
  for (const h of handles) await h.stop()
})

/** One sample of the Prometheus text, or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('operator metrics beyond the request, JWKS and auth counters', () => {
  it('count rejected reloads, refused admin calls and requests GitLab could not answer', async () => {
    // GitLab unreachable (nothing listens on port 9).
    const proxy = await startServe(baseConfig('http://127.0.0.1:9'))
    handles.push(proxy)
    const metrics = async () => (await fetch(`${proxy.adminUrl}/metrics`)).text()
    const start = await metrics()
    expect(sample(start, 'gitlab_iap_config_last_reload_successful')).toBe(1)
    const loadedAt = sample(start, 'gitlab_iap_config_last_reload_success_timestamp_seconds')!
    expect(Math.abs(loadedAt - Date.now() / 1000)).toBeLessThan(120)

    expect((await fetch(`${proxy.url}/group/project`)).status).toBe(502)
    expect((await fetch(`${proxy.adminUrl}/admin/revoke`, { method: 'POST', headers: { authorization: 'Bearer wrong' }, body: '{"user":"x"}' })).status).toBe(401)
    expect((await fetch(`${proxy.adminUrl}/admin/revoke`, { method: 'POST', body: '{"user":"x"}' })).status).toBe(401)

    // A reload the config check refuses: the running policy stays, and the metrics say the last reload failed.
    writeFileSync(proxy.configPath, JSON.stringify({ ...baseConfig('http://127.0.0.1:9'), policy: { rules: [{ name: 'broken', paths: ['/**'], groups: ['nope'] }] } }))
    proxy.process.kill('SIGHUP')
    await expect.poll(async () => sample(await metrics(), 'gitlab_iap_config_last_reload_successful'), { timeout: 5000 }).toBe(0)
    const after = await metrics()
    expect(sample(after, 'gitlab_iap_config_reloads_total{result="failure"}')).toBeGreaterThanOrEqual(1)
    expect(sample(after, 'gitlab_iap_config_last_reload_success_timestamp_seconds')).toBe(loadedAt)
    expect(sample(after, 'gitlab_iap_upstream_errors_total{reason="upstream-unreachable"}')).toBe(1)
    expect(sample(after, 'gitlab_iap_admin_auth_failures_total{reason="admin-token-invalid"}')).toBe(1)
    expect(sample(after, 'gitlab_iap_admin_auth_failures_total{reason="admin-token-missing"}')).toBe(1)
    expect(proxy.stderr()).toContain('IAP_WARN_ADMIN_AUTH_FAILED')
    expect(proxy.stderr()).not.toContain('Bearer wrong')

    // Requests Node's parser refuses are counted like every other one (their records are written too).
    const total = (text: string) => text.split('\n').filter((l) => l.startsWith('gitlab_iap_requests_total{')).reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0)
    const before = total(await metrics())
    const port = Number(new URL(proxy.url).port)
    await new Promise<void>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => socket.write('GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n'))
      socket.on('data', () => {})
      socket.on('close', () => resolve())
      socket.on('error', () => resolve())
    })
    await expect.poll(async () => total(await metrics()), { timeout: 3000 }).toBe(before + 1)

    // A good reload sets it back.
    writeFileSync(proxy.configPath, JSON.stringify(baseConfig('http://127.0.0.1:9')))
    proxy.process.kill('SIGHUP')
    await expect.poll(async () => sample(await metrics(), 'gitlab_iap_config_last_reload_successful'), { timeout: 5000 }).toBe(1)
    expect(sample(await metrics(), 'gitlab_iap_config_reloads_total{result="success"}')).toBeGreaterThanOrEqual(1)
  })
})
