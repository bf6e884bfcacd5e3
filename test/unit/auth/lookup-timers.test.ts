import { afterEach, describe, expect, it, vi } from 'vitest'
import { createTokenCache } from '../../../src/auth/bearer/token-cache.ts'
import type { IssuerSpec } from '../../../src/auth/bearer/issuers.ts'
import type { Identity } from '../../../src/auth/identity.ts'
import { createRevocations } from '../../../src/auth/revocations.ts'
import { createMemoryStore } from '../../../src/auth/session/memory-store.ts'
import { NearCache } from '../../../src/auth/session/near-cache.ts'
import { systemClock } from '../../../src/auth/session/clock.ts'

// lru-cache's default ttlResolution caches the clock for 1 ms and arms a timer to forget it: at a
// request a millisecond, every hot-path lookup would schedule a timer (and the event loop a wakeup).
const identity: Identity = { kind: 'user', id: 'oid-1', name: 'ada@example.test', groups: [], roles: [], issuer: 'entra', issuedAt: 1 }

/** Runs `lookup` 20 times, each more than a millisecond after the last; returns how many timers were armed. */
function timersArmedBy(lookup: () => unknown): number {
  const spy = vi.spyOn(globalThis, 'setTimeout')
  for (let i = 0; i < 20; i++) {
    const until = performance.now() + 1.5
    while (performance.now() < until);
    lookup()
  }
  const armed = spy.mock.calls.length
  spy.mockRestore()
  return armed
}

afterEach(() => vi.restoreAllMocks())

describe('hot-path lookups arm no timers', () => {
  it('verified-token cache hit', () => {
    const cache = createTokenCache()
    cache.set('k', { identity, spec: { label: 'entra' } as IssuerSpec, verifiedAt: 0 }, 60_000)
    expect(timersArmedBy(() => expect(cache.get('k')).toBeDefined())).toBe(0)
  })

  it('revocation check of a revoked and of a clean identity', () => {
    const revocations = createRevocations()
    revocations.revoke('someone-else')
    revocations.revoke('oid-1', 0)
    expect(timersArmedBy(() => revocations.isRevoked(identity) && revocations.isRevoked({ ...identity, id: 'oid-2', name: 'x' }))).toBe(0)
  })

  it('session near cache hit', () => {
    const near = new NearCache<{ n: number }>({ max: 10, maxAgeMs: 60_000, maxBytes: 1 << 20, sizeOf: () => 1 })
    near.enable(near.epoch)
    near.complete(near.begin('a')!, { n: 1 })
    expect(timersArmedBy(() => expect(near.get('a')).toEqual({ n: 1 }))).toBe(0)
  })

  it('memory session store read', async () => {
    const store = createMemoryStore({ maxSessions: 10, clock: systemClock })
    const now = Date.now()
    await store.set('s', { v: 1, user: { id: 'oid-1', groups: [], roles: [] } as never, createdAt: now, lastSeenAt: now, refreshedAt: now, expiresAt: now + 60_000 }, 60_000)
    expect(timersArmedBy(() => expect(store.get('s')).toBeDefined())).toBe(0)
  })
})
