/**
 * One proxy with the Redis session store on a private `redis-server`, for a whole test file: the tests
 * that stop, hang or restart Redis. Without redis-server the file skips, visibly; with CI=true it fails.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll } from 'vitest'
import type { ServeHandle } from '../../helpers/serve.ts'
import { hasRedisServer, startRedisServer, type RedisServer } from './redis-server.ts'
import { startStack, type Stack } from './stack.ts'

export interface RedisProxy {
  readonly stack: Stack
  readonly redis: RedisServer
  readonly proxy: ServeHandle
  /** Polls the proxy's `/readyz` until it answers `wanted` (about 5 s at most); returns the last status. */
  readyStatus(wanted: number): Promise<number>
}

/** Registers the file's hooks; the fields are set once `beforeAll` has run. */
export function useRedisProxy(file: string): RedisProxy {
  if (!hasRedisServer) {
    if (process.env.CI === 'true') throw new Error('redis-server is required in CI (apt-get install -y redis-server)')
    console.warn(`SKIPPED ${file}: redis-server is not installed`)
  }
  const env = {} as { stack: Stack; redis: RedisServer; proxy: ServeHandle }
  beforeAll(async () => {
    if (!hasRedisServer) return
    env.redis = await startRedisServer()
    env.stack = await startStack()
    env.proxy = await env.stack.startProxy({ store: 'redis', redisUrl: env.redis.url })
  })
  afterAll(async () => {
    await env.stack?.close()
    await env.redis?.close()
  })
  return {
    get stack() {
      return env.stack
    },
    get redis() {
      return env.redis
    },
    get proxy() {
      return env.proxy
    },
    async readyStatus(wanted) {
      let status = 0
      for (let i = 0; i < 100 && status !== wanted; i++) {
        status = (await fetch(`${env.proxy.adminUrl}/readyz`)).status
        if (status !== wanted) await sleep(50)
      }
      return status
    },
  }
}
