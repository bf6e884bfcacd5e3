import type { IncomingMessage } from 'node:http'
import { describe, it, expect } from 'vitest'
import { deriveSessionKeys } from '../../../src/auth/session/keys.ts'
import { createMemoryStore } from '../../../src/auth/session/memory-store.ts'
import { approximateRecordBytes, assessSession, storeTtlMs, type SessionRecord, type SessionUser } from '../../../src/auth/session/record.ts'
import { createSessions, type RefreshResult, type Refresher } from '../../../src/auth/session/sessions.ts'
import { open } from '../../../src/auth/session/seal.ts'
import { IapError } from '../../../src/errors.ts'

const MIN = 60_000
const timeouts = { absoluteTimeoutMs: 12 * 60 * MIN, idleTimeoutMs: 60 * MIN, refreshIntervalMs: 10 * MIN }
const keys = deriveSessionKeys('unit-test-session-secret-0123456789abcdef')
const ada: SessionUser = { id: '690222be-ff1a-4d56-abd1-7e4f7d38e474', name: 'Ada@Contoso.com', email: 'ada@contoso.com', groups: ['g-eng'], roles: [], groupsSource: 'token' }

function setup(refresh?: Refresher, timeoutsOverride: Partial<typeof timeouts & { refreshGraceMs: number }> = {}) {
  let now = 1_700_000_000_000
  const clock = { now: () => now }
  const store = createMemoryStore({ maxSessions: 1000, clock })
  const sessions = createSessions({ cookieName: '__Host-iap', secureCookies: true, keys, store, timeouts: { ...timeouts, ...timeoutsOverride }, clock, ...(refresh && { refresh }) })
  return { sessions, store, advance: (ms: number) => (now += ms) }
}

const request = (cookie?: string) => ({ headers: cookie === undefined ? {} : { cookie } }) as IncomingMessage
const cookieOf = (setCookie: string) => setCookie.split(';')[0]!

describe('record rules', () => {
  const record: SessionRecord = { v: 1, user: ada, createdAt: 0, lastSeenAt: 0, refreshedAt: 0, expiresAt: timeouts.absoluteTimeoutMs }
  it.each([
    [1, { status: 'active', refreshDue: false, touchDue: false }],
    [10 * MIN, { status: 'active', refreshDue: true, touchDue: true }],
    [60 * MIN, { status: 'expired', reason: 'session-idle-timeout' }],
  ])('at %d ms → %o', (now, expected) => {
    expect(assessSession(record, now, timeouts)).toEqual(expected)
  })
  it('absolute expiry wins even when recently seen', () => {
    expect(assessSession({ ...record, lastSeenAt: timeouts.absoluteTimeoutMs - 1 }, timeouts.absoluteTimeoutMs, timeouts)).toEqual({ status: 'expired', reason: 'session-expired' })
  })
  it('the store keeps a record until the earlier of idle and absolute end', () => {
    expect(storeTtlMs(record, 0, timeouts)).toBe(60 * MIN)
    expect(storeTtlMs({ ...record, lastSeenAt: 11.5 * 60 * MIN }, 11.5 * 60 * MIN, timeouts)).toBe(30 * MIN)
  })
})

describe('memory bounds', () => {
  const sized = (i: number, groups: number): SessionRecord => ({
    v: 1,
    user: { ...ada, id: `user-${i}`, groups: Array.from({ length: groups }, (_, g) => `6c0bd1d2-0000-4000-8000-${String(g).padStart(12, '0')}`) },
    createdAt: 0, lastSeenAt: 0, refreshedAt: 0, expiresAt: timeouts.absoluteTimeoutMs,
    refreshToken: 'r'.repeat(1600), idToken: 'i'.repeat(1700), loginHint: 'h'.repeat(64), sid: 's'.repeat(36),
  })
  it('a typical record is estimated near what heap snapshots show (about 4.6 KB), and groups add to it', () => {
    expect(approximateRecordBytes(sized(1, 10))).toBeGreaterThan(4000)
    expect(approximateRecordBytes(sized(1, 10))).toBeLessThan(6000)
    expect(approximateRecordBytes(sized(1, 250)) - approximateRecordBytes(sized(1, 10))).toBeGreaterThan(240 * 36)
  })
  it('the memory store evicts the oldest sessions when their bytes exceed the budget, whatever the count', async () => {
    const store = createMemoryStore({ maxSessions: 1000, maxBytes: 10 * approximateRecordBytes(sized(10, 10)), clock: Date })
    for (let i = 10; i < 25; i++) await store.set(`k${i}`, sized(i, 10), 60 * MIN)
    expect(store.readiness()).toMatchObject({ sessions: 10 })
    expect(store.get('k10')).toBeUndefined()
    expect(store.get('k24')).toMatchObject({ user: { id: 'user-24' } })
    // The user index follows evictions: revoking an evicted user's sessions finds none.
    expect(await store.deleteUser('user-10')).toBe(0)
    expect(await store.deleteUser('user-24')).toBe(1)
  })
})

describe('sessions (memory store)', () => {
  it('no cookie → no session step result', () => {
    const { sessions } = setup()
    expect(sessions.authenticate(request())).toBeUndefined()
    expect(sessions.authenticate(request('_gitlab_session=abc'))).toBeUndefined()
  })

  it('create → cookie → identity, synchronously', async () => {
    const { sessions } = setup()
    const created = await sessions.create(ada, { refreshToken: 'rt-1', idToken: 'id-1' })
    expect(created.setCookie).toMatch(/^__Host-iap=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}; Path=\/; HttpOnly; SameSite=Lax; Secure; Max-Age=43200$/)
    const outcome = sessions.authenticate(request(`_gitlab_session=x; ${cookieOf(created.setCookie)}`))
    expect(outcome).toMatchObject({ ok: true, method: 'session', identity: { kind: 'user', id: ada.id, name: ada.name, groups: ['g-eng'], issuer: 'entra' } })
    // Tokens are sealed at rest, bound to the store key.
    expect(JSON.stringify(created.record)).not.toContain('rt-1')
    expect(open(keys.tokenSeal, created.record.refreshToken!, created.key)).toBe('rt-1')
  })

  it('each sign-in gets a fresh id', async () => {
    const { sessions } = setup()
    const a = await sessions.create(ada, {})
    const b = await sessions.create(ada, {})
    expect(cookieOf(a.setCookie)).not.toBe(cookieOf(b.setCookie))
  })

  it('rejects tampered, foreign and unknown cookies', async () => {
    const { sessions } = setup()
    const created = await sessions.create(ada, {})
    const value = cookieOf(created.setCookie).split('=')[1]!
    const tampered = value.slice(0, 5) + (value[5] === 'x' ? 'y' : 'x') + value.slice(6)
    expect(sessions.authenticate(request(`__Host-iap=${tampered}`))).toMatchObject({ ok: false, reason: 'session-cookie-invalid', status: 401 })
    const foreign = createSessions({ cookieName: '__Host-iap', secureCookies: true, keys: deriveSessionKeys('some-other-deployment-secret-0123456789'), store: createMemoryStore({ maxSessions: 100, clock: Date }), timeouts, clock: Date })
    const theirs = await foreign.create(ada, {})
    expect(sessions.authenticate(request(cookieOf(theirs.setCookie)))).toMatchObject({ ok: false, reason: 'session-cookie-invalid' })
    await sessions.store.delete(created.key)
    expect(sessions.authenticate(request(cookieOf(created.setCookie)))).toMatchObject({ ok: false, reason: 'session-unknown' })
  })

  it('a valid cookie among junk duplicates is found', async () => {
    const { sessions } = setup()
    const created = await sessions.create(ada, {})
    expect(sessions.authenticate(request(`__Host-iap=junk; ${cookieOf(created.setCookie)}`))).toMatchObject({ ok: true })
  })

  it('ends sessions at the idle timeout and at the absolute timeout', async () => {
    const { sessions, advance } = setup(async () => ({ ok: true, user: ada, refreshToken: 'rt' }))
    const idle = await sessions.create(ada, { refreshToken: 'rt' })
    advance(59 * MIN)
    expect(await sessions.authenticate(request(cookieOf(idle.setCookie)))).toMatchObject({ ok: true })
    advance(61 * MIN)
    expect(sessions.authenticate(request(cookieOf(idle.setCookie)))).toMatchObject({ ok: false, reason: expect.stringMatching(/session-idle-timeout|session-unknown/) })

    const busy = await sessions.create(ada, { refreshToken: 'rt' })
    for (let t = 0; t < 12 * 60; t += 5) {
      advance(5 * MIN)
      const outcome = await sessions.authenticate(request(cookieOf(busy.setCookie)))
      if (t + 5 < 12 * 60) expect(outcome).toMatchObject({ ok: true })
      else expect(outcome).toMatchObject({ ok: false, reason: expect.stringMatching(/session-expired|session-unknown/) })
    }
  })

  it('refreshes once per interval, single-flight, and applies new groups', async () => {
    let calls = 0
    let release!: (r: RefreshResult) => void
    const { sessions, advance } = setup(async (token) => {
      calls++
      expect(token).toBe('rt-1')
      return new Promise<RefreshResult>((r) => (release = r))
    })
    const created = await sessions.create(ada, { refreshToken: 'rt-1' })
    advance(10 * MIN)
    const pending = Array.from({ length: 20 }, () => sessions.authenticate(request(cookieOf(created.setCookie))))
    await new Promise((r) => setTimeout(r, 10))
    expect(calls).toBe(1)
    release({ ok: true, user: { ...ada, groups: ['g-other'] }, refreshToken: 'rt-2' })
    const outcomes = await Promise.all(pending)
    for (const o of outcomes) expect(o).toMatchObject({ ok: true, identity: { groups: ['g-other'] } })
    const stored = sessions.store.get(created.key) as SessionRecord
    expect(open(keys.tokenSeal, stored.refreshToken!, created.key)).toBe('rt-2')
    // Within the interval: no further refresh, synchronous answer.
    advance(MIN)
    expect(sessions.authenticate(request(cookieOf(created.setCookie)))).toMatchObject({ ok: true, identity: { groups: ['g-other'] } })
    expect(calls).toBe(1)
  })

  it('a rejected refresh (user disabled) ends the session', async () => {
    const { sessions, advance } = setup(async () => ({ ok: false, reason: 'session-refresh-rejected' }))
    const created = await sessions.create(ada, { refreshToken: 'rt' })
    advance(11 * MIN)
    expect(await sessions.authenticate(request(cookieOf(created.setCookie)))).toMatchObject({ ok: false, reason: 'session-refresh-rejected', status: 401 })
    expect(sessions.store.get(created.key)).toBeUndefined()
  })

  it('an unreachable IdP fails closed with 503 and keeps the session for later', async () => {
    let up = false
    const { sessions, advance } = setup(async () => (up ? { ok: true, user: ada } : { ok: false, reason: 'session-refresh-unavailable' }))
    const created = await sessions.create(ada, { refreshToken: 'rt' })
    advance(11 * MIN)
    expect(await sessions.authenticate(request(cookieOf(created.setCookie)))).toMatchObject({ ok: false, reason: 'session-refresh-unavailable', status: 503 })
    up = true
    expect(await sessions.authenticate(request(cookieOf(created.setCookie)))).toMatchObject({ ok: true })
  })

  it('within session.refreshGrace an unreachable IdP serves the session as last refreshed, retried every 30 s; past the grace it is 503', async () => {
    let up = false
    let calls = 0
    const regrouped = { ...ada, groups: ['g-eng', 'g-new'] }
    const { sessions, advance } = setup(async () => (calls++, up ? { ok: true, user: regrouped } : { ok: false, reason: 'session-refresh-unavailable' }), { refreshGraceMs: 15 * MIN })
    const created = await sessions.create(ada, { refreshToken: 'rt' })
    const req = () => request(cookieOf(created.setCookie))
    advance(11 * MIN)
    expect(await sessions.authenticate(req())).toMatchObject({ ok: true, identity: { groups: ['g-eng'] } })
    expect(calls).toBe(1)
    advance(20_000)
    expect(await sessions.authenticate(req())).toMatchObject({ ok: true })
    expect(calls).toBe(1) // not before the retry time
    advance(11_000)
    // Due again: served at once, retried in the background.
    expect(await sessions.authenticate(req())).toMatchObject({ ok: true, identity: { groups: ['g-eng'] } })
    await new Promise((r) => setTimeout(r, 10))
    expect(calls).toBe(2)
    // 10 min interval + 15 min grace since the last refresh: refused, fail closed.
    advance(14 * MIN)
    expect(await sessions.authenticate(req())).toMatchObject({ ok: false, reason: 'session-refresh-unavailable', status: 503 })
    // Entra back: the refresh lands and its groups take effect.
    up = true
    expect(await sessions.authenticate(req())).toMatchObject({ ok: true, identity: { groups: ['g-eng', 'g-new'] } })
  })

  it('a revocation that lands while the refresh waits on Entra is honoured, grace or not', async () => {
    let now = 1_700_000_000_000
    const clock = { now: () => now }
    let revoked: number | undefined
    const store = createMemoryStore({ maxSessions: 10, clock })
    const refresh: Refresher = async () => {
      revoked = now
      now += 1000
      return { ok: false, reason: 'session-refresh-unavailable' }
    }
    const sessions = createSessions({ cookieName: '__Host-iap', secureCookies: true, keys, store, timeouts: { ...timeouts, refreshGraceMs: 15 * MIN }, clock, refresh, revokedAt: () => revoked })
    const created = await sessions.create(ada, { refreshToken: 'rt' })
    now += 11 * MIN
    expect(await sessions.authenticate(request(cookieOf(created.setCookie)))).toMatchObject({ ok: false, reason: 'session-revoked' })
  })

  it('the grace never covers a refresh Entra refused: that session ends at the next retry', async () => {
    let answer: RefreshResult = { ok: false, reason: 'session-refresh-unavailable' }
    const { sessions, advance } = setup(async () => answer, { refreshGraceMs: 15 * MIN })
    const created = await sessions.create(ada, { refreshToken: 'rt' })
    advance(11 * MIN)
    expect(await sessions.authenticate(request(cookieOf(created.setCookie)))).toMatchObject({ ok: true })
    answer = { ok: false, reason: 'session-refresh-rejected' }
    advance(31_000)
    // The background retry hears the refusal: the session is gone before the next request.
    await sessions.authenticate(request(cookieOf(created.setCookie)))
    await new Promise((r) => setTimeout(r, 10))
    expect(sessions.store.get(created.key)).toBeUndefined()
    expect(await sessions.authenticate(request(cookieOf(created.setCookie)))).toMatchObject({ ok: false, status: 401 })
  })

  it('without a refresh token the session ends at the refresh interval', async () => {
    const { sessions, advance } = setup(async () => ({ ok: true, user: ada }))
    const created = await sessions.create(ada, {})
    advance(10 * MIN)
    expect(await sessions.authenticate(request(cookieOf(created.setCookie)))).toMatchObject({ ok: false, reason: 'session-refresh-missing' })
  })

  it('endUser ends every session of a user by oid or upn (any case)', async () => {
    const { sessions } = setup()
    const a = await sessions.create(ada, {})
    const b = await sessions.create(ada, {})
    const other = await sessions.create({ ...ada, id: 'other-oid', name: 'bob@contoso.com' }, {})
    expect(await sessions.endUser('ADA@contoso.com')).toBe(2)
    expect(sessions.authenticate(request(cookieOf(a.setCookie)))).toMatchObject({ ok: false, reason: 'session-unknown' })
    expect(sessions.authenticate(request(cookieOf(b.setCookie)))).toMatchObject({ ok: false })
    expect(sessions.authenticate(request(cookieOf(other.setCookie)))).toMatchObject({ ok: true })
    expect(await sessions.endUser('other-oid')).toBe(1)
  })

  it('end() deletes the session and returns the id_token hint', async () => {
    const { sessions } = setup()
    const created = await sessions.create(ada, { idToken: 'the-id-token', loginHint: 'hint' })
    expect(await sessions.end(request(cookieOf(created.setCookie)))).toEqual({ idToken: 'the-id-token', loginHint: 'hint', identity: expect.objectContaining({ kind: 'user', id: ada.id }) })
    expect(sessions.authenticate(request(cookieOf(created.setCookie)))).toMatchObject({ ok: false, reason: 'session-unknown' })
    expect(sessions.clearCookie()).toMatch(/^__Host-iap=; Path=\/; HttpOnly; SameSite=Lax; Secure; Max-Age=0/)
  })

  it('claimOnce answers true once', async () => {
    const { store } = setup()
    expect(await store.claimOnce('state-1', 60_000)).toBe(true)
    expect(await store.claimOnce('state-1', 60_000)).toBe(false)
  })

  it('refuses a session that began before a revocation of its user, even if its record survived', async () => {
    let now = 1_700_000_000_000
    const clock = { now: () => now }
    const revoked = new Map<string, number>()
    const sessions = createSessions({
      cookieName: '__Host-iap', secureCookies: true, keys, timeouts, clock,
      store: createMemoryStore({ maxSessions: 100, clock }),
      revokedAt: (user) => revoked.get(user.toLowerCase()),
    })
    const before = await sessions.create(ada, {})
    now += 1000
    revoked.set(ada.name!.toLowerCase(), now)
    expect(sessions.authenticate(request(cookieOf(before.setCookie)))).toMatchObject({ ok: false, reason: 'session-revoked' })
    expect(sessions.authenticate(request(cookieOf(before.setCookie)))).toMatchObject({ ok: false, reason: 'session-unknown' })
    now += 1
    const after = await sessions.create(ada, {})
    expect(sessions.authenticate(request(cookieOf(after.setCookie)))).toMatchObject({ ok: true })
  })

  it('a store that throws fails closed with 503, never anonymous', async () => {
    const { sessions, store } = setup()
    const created = await sessions.create(ada, {})
    store.get = () => {
      throw new IapError('IAP_ERR_SESSION_STORE_UNAVAILABLE', 'down')
    }
    expect(sessions.authenticate(request(cookieOf(created.setCookie)))).toMatchObject({ ok: false, status: 503, reason: 'session-store-unavailable' })
    store.get = () => Promise.reject(new IapError('IAP_ERR_SESSION_STORE_UNAVAILABLE', 'down'))
    expect(await sessions.authenticate(request(cookieOf(created.setCookie)))).toMatchObject({ ok: false, status: 503, reason: 'session-store-unavailable' })
  })
})
