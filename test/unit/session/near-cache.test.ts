import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it, expect } from 'vitest'
import { NearCache } from '../../../src/auth/session/near-cache.ts'

const value = (n: number) => ({ n })
const limits = (max: number, maxAgeMs: number) => ({ max, maxAgeMs, maxBytes: 1 << 30, sizeOf: () => 1 })

function enabledCache(max = 10, maxAgeMs = 60_000) {
  const cache = new NearCache<{ n: number }>(limits(max, maxAgeMs))
  expect(cache.enable(cache.epoch)).toBe(true)
  return cache
}

describe('session near cache', () => {
  it('serves nothing and keeps nothing until enabled', () => {
    const cache = new NearCache<{ n: number }>(limits(10, 60_000))
    expect(cache.begin('a')).toBeUndefined()
    expect(cache.get('a')).toBeUndefined()
    expect(cache.enabled).toBe(false)
  })

  it('keeps a completed read and serves it', () => {
    const cache = enabledCache()
    cache.complete(cache.begin('a')!, value(1))
    expect(cache.get('a')).toEqual(value(1))
    cache.complete(cache.begin('missing')!, undefined)
    expect(cache.get('missing')).toBeUndefined()
    expect(cache.size).toBe(1)
  })

  it('an invalidation that overtakes the read reply voids it (the Redis docs race)', () => {
    const cache = enabledCache()
    const ticket = cache.begin('a')!
    cache.invalidate('a')
    cache.complete(ticket, value(1))
    expect(cache.get('a')).toBeUndefined()
  })

  it('an invalidation drops a kept entry', () => {
    const cache = enabledCache()
    cache.complete(cache.begin('a')!, value(1))
    cache.complete(cache.begin('b')!, value(2))
    cache.invalidate('a')
    expect(cache.get('a')).toBeUndefined()
    expect(cache.get('b')).toEqual(value(2))
  })

  it('disable empties the cache and voids reads in flight, even after re-enabling', () => {
    const cache = enabledCache()
    cache.complete(cache.begin('a')!, value(1))
    const inFlight = cache.begin('b')!
    cache.disable()
    expect(cache.get('a')).toBeUndefined()
    expect(cache.enable(cache.epoch)).toBe(true)
    cache.complete(inFlight, value(2))
    expect(cache.get('b')).toBeUndefined()
    expect(cache.get('a')).toBeUndefined()
  })

  it('enable set up before a later disable is ignored (tracking confirmed for a connection already gone)', () => {
    const cache = new NearCache<{ n: number }>(limits(10, 60_000))
    const epoch = cache.epoch
    cache.disable()
    expect(cache.enable(epoch)).toBe(false)
    expect(cache.enabled).toBe(false)
  })

  it('clear (FLUSHDB) forgets everything but stays enabled', () => {
    const cache = enabledCache()
    cache.complete(cache.begin('a')!, value(1))
    const inFlight = cache.begin('b')!
    cache.clear()
    cache.complete(inFlight, value(2))
    expect(cache.size).toBe(0)
    expect(cache.enabled).toBe(true)
    cache.complete(cache.begin('c')!, value(3))
    expect(cache.get('c')).toEqual(value(3))
  })

  it('only the newest read of a key is kept', () => {
    const cache = enabledCache()
    const older = cache.begin('a')!
    const newer = cache.begin('a')!
    cache.complete(newer, value(2))
    cache.complete(older, value(1))
    expect(cache.get('a')).toEqual(value(2))
  })

  it('is bounded in bytes', () => {
    const cache = new NearCache<{ n: number }>({ max: 100, maxAgeMs: 60_000, maxBytes: 250, sizeOf: (v) => v.n })
    cache.enable(cache.epoch)
    for (const [i, key] of ['a', 'b', 'c'].entries()) cache.complete(cache.begin(key)!, value(100 + i))
    expect(cache.get('a')).toBeUndefined()
    expect(cache.get('b')).toEqual(value(101))
    expect(cache.get('c')).toEqual(value(102))
  })

  it('is bounded in entries and in age', async () => {
    const cache = enabledCache(2, 30)
    for (const [i, key] of ['a', 'b', 'c'].entries()) cache.complete(cache.begin(key)!, value(i))
    expect(cache.size).toBe(2)
    expect(cache.get('a')).toBeUndefined()
    expect(cache.get('c')).toEqual(value(2))
    await sleep(60)
    expect(cache.get('c')).toBeUndefined()
  })
})
