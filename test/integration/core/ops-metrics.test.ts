import { writeFileSync } from 'node:fs'
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

describe('operator metrics beyond the SPEC minimum', () => {
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

    // A good reload sets it back.
    writeFileSync(proxy.configPath, JSON.stringify(baseConfig('http://127.0.0.1:9')))
    proxy.process.kill('SIGHUP')
    await expect.poll(async () => sample(await metrics(), 'gitlab_iap_config_last_reload_successful'), { timeout: 5000 }).toBe(1)
    expect(sample(await metrics(), 'gitlab_iap_config_reloads_total{result="success"}')).toBeGreaterThanOrEqual(1)
  })
})
