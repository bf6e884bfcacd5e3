/**
 * A listener that cannot bind ends `serve` at once with IAP_ERR_LISTEN_FAILED, whatever it opened before
 * (the Redis client, key refresh timers): a supervisor (systemd, Kubernetes) must see the failure.
 */
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { baseConfig, writeConfig } from '../../helpers/serve.ts'
import { hasRedisServer, startRedisServer, type RedisServer } from './redis-server.ts'

const BIN = new URL('../../../bin/gitlab-iap.js', import.meta.url).pathname
const CI = process.env.CI === 'true'
if (!hasRedisServer) {
  if (CI) throw new Error('redis-server is required in CI (apt-get install -y redis-server)')
  console.warn('SKIPPED test/integration/session/listen-failure.test.ts: redis-server is not installed')
}

let redis: RedisServer
beforeAll(async () => {
  if (hasRedisServer) redis = await startRedisServer()
})
afterAll(async () => {
  await redis?.close()
})

function serve(configPath: string): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = Date.now()
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'serve', '--config', configPath], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    child.on('close', (code) => {
      clearTimeout(killer)
      resolve({ code, stderr, ms: Date.now() - started })
    })
  })
}

describe.skipIf(!hasRedisServer)('a listener that cannot bind', () => {
  it.each(['main', 'admin'] as const)('the %s port taken, with a Redis session store: exit 1 at once, naming the listener', async (taken) => {
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const port = (blocker.address() as { port: number }).port
    const base = baseConfig('http://127.0.0.1:9') as { server: Record<string, unknown>; admin: Record<string, unknown> }
    // An IdP that accepts connections and never answers: its pending key fetch must not hold the exit.
    const silentIdp = createServer(() => {})
    await new Promise<void>((resolve) => silentIdp.listen(0, '127.0.0.1', resolve))
    const authority = `http://127.0.0.1:${(silentIdp.address() as { port: number }).port}`
    const file = writeConfig({
      ...base,
      entra: { tenantId: '00000000-0000-4000-8000-000000000001', clientId: '00000000-0000-4000-8000-000000000002', authority },
      server: { ...base.server, ...(taken === 'main' && { listen: `127.0.0.1:${port}` }) },
      admin: { ...base.admin, ...(taken === 'admin' && { listen: `127.0.0.1:${port}` }) },
      session: { store: 'redis', redis: { url: redis.url }, secret: 's'.repeat(40) },
    })
    try {
      const result = await serve(file.path)
      expect(result.code).toBe(1)
      expect(result.stderr).toContain(`${taken} listener cannot listen on 127.0.0.1:${port}`)
      expect(result.stderr).toContain(`another process holds the port; stop it or change ${taken === 'main' ? 'server' : 'admin'}.listen`)
      expect(result.ms).toBeLessThan(4_000)
    } finally {
      file.cleanup()
      blocker.close()
      silentIdp.close()
    }
  })
})
