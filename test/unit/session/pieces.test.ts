import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it, expect } from 'vitest'
import * as client from 'openid-client'
import { userFromIdToken, withGraphGroups } from '../../../src/auth/session/id-token-user.ts'
import { identityOf, openRecord, sealRecord } from '../../../src/auth/session/record.ts'
import { deriveSessionKeys } from '../../../src/auth/session/keys.ts'
import { seal } from '../../../src/auth/session/seal.ts'
import { classifyRedeemError, classifyRefreshError, isLoopbackHttp } from '../../../src/iap/entra-client.ts'
import { SIGN_IN_REASONS } from '../../../src/iap/reasons.ts'
import { chooseTransactionSlot, clearTransactionCookie, loginState, MAX_STORED_RETURN_TARGET, readTransaction, returnTargetOfState, shareableReturnTarget, storedReturnTarget, transactionCookie, TRANSACTION_SLOTS, type LoginTransaction } from '../../../src/iap/transaction.ts'

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47'
const key = deriveSessionKeys('transaction-test-secret-0123456789abcdef').transactionSeal

describe('login transaction cookie', () => {
  const now = 1_700_000_000_000
  const tx: LoginTransaction = { state: 'S'.repeat(43), nonce: 'n'.repeat(43), codeVerifier: 'v'.repeat(43), returnTo: '/group/project', expiresAt: now + 600_000 }
  const header = (setCookie: string) => setCookie.split(';')[0]!

  it('round-trips in its slot, found by state, and never shows the verifier or nonce', () => {
    const set = transactionCookie(key, '__Host-iap', 1, tx, true)
    expect(set.startsWith('__Host-iap-tx-1=')).toBe(true)
    expect(set).toMatch(/; Path=\/; HttpOnly; SameSite=Lax; Secure; Max-Age=600$/)
    expect(set).not.toContain(tx.codeVerifier)
    expect(set).not.toContain(tx.nonce)
    const other = transactionCookie(key, '__Host-iap', 0, { ...tx, state: 'T'.repeat(43) }, true)
    expect(readTransaction(key, '__Host-iap', `a=b; ${header(other)}; ${header(set)}`, tx.state, now)).toEqual({ ok: true, tx, slot: 1 })
  })

  it.each([
    ['no state', null, 'login-state-invalid'],
    ['malformed state', 'a b', 'login-state-invalid'],
    ['other state', 'T'.repeat(43), 'login-transaction-missing'],
    ['a state that differs in its last character', 'S'.repeat(42) + 'X', 'login-transaction-missing'],
  ])('refuses %s', (_name, state, reason) => {
    const set = transactionCookie(key, '__Host-iap', 0, tx, true)
    expect(readTransaction(key, '__Host-iap', header(set), state, now)).toEqual({ ok: false, reason })
  })

  it('refuses a forged, moved or expired transaction', () => {
    const set = transactionCookie(key, '__Host-iap', 2, tx, true)
    expect(readTransaction(deriveSessionKeys('another-secret-entirely-0123456789abcd').transactionSeal, '__Host-iap', header(set), tx.state, now)).toEqual({ ok: false, reason: 'login-transaction-missing' })
    // Sealed for another slot (the name is associated data) → not accepted under this one.
    const moved = header(set).replace('-tx-2=', '-tx-0=')
    expect(readTransaction(key, '__Host-iap', moved, tx.state, now)).toEqual({ ok: false, reason: 'login-transaction-missing' })
    // A name that is not a slot's is never read, whatever it holds.
    const legacy = `__Host-iap-tx-elsewhere=${seal(key, JSON.stringify(tx), '__Host-iap-tx-elsewhere')}`
    expect(readTransaction(key, '__Host-iap', legacy, tx.state, now)).toEqual({ ok: false, reason: 'login-transaction-missing' })
    expect(readTransaction(key, '__Host-iap', header(set), tx.state, tx.expiresAt + 1)).toEqual({ ok: false, reason: 'login-transaction-expired' })
    expect(clearTransactionCookie('__Host-iap', 2, true)).toMatch(/^__Host-iap-tx-2=; .*Max-Age=0/)
  })

  it('a new sign-in takes a free slot, or the one whose sign-in expires first; names that are not a slot\'s are deleted', () => {
    const at = (slot: number, expiresAt: number) => header(transactionCookie(key, '__Host-iap', slot, { ...tx, expiresAt }, true))
    const slots = new Set(Array.from({ length: 60 }, () => chooseTransactionSlot(key, '__Host-iap', undefined, now, true).slot))
    expect(slots).toEqual(new Set(Array.from({ length: TRANSACTION_SLOTS }, (_, i) => i)))
    for (let i = 0; i < 20; i++) {
      expect(chooseTransactionSlot(key, '__Host-iap', `${at(0, now + 5)}; ${at(2, now + 9)}`, now, true).slot).toBe(1)
      // Expired and unreadable slots are free.
      expect(chooseTransactionSlot(key, '__Host-iap', `${at(0, now - 1)}; ${at(1, now + 9)}; __Host-iap-tx-2=junk`, now, true).slot).not.toBe(1)
    }
    expect(chooseTransactionSlot(key, '__Host-iap', `${at(0, now + 7)}; ${at(1, now + 3)}; ${at(2, now + 9)}`, now, true)).toEqual({ slot: 1, stale: [] })
    const { stale } = chooseTransactionSlot(key, '__Host-iap', `__Host-iap-tx-0123456789abcdef=x; __Host-iap-tx-7=y; __Host-iap=s`, now, true)
    expect(stale.map((c) => c.split('=')[0])).toEqual(['__Host-iap-tx-0123456789abcdef', '__Host-iap-tx-7'])
    expect(stale.every((c) => /Max-Age=0/.test(c))).toBe(true)
  })

  it('keeps a long return target without its query, or as /', () => {
    expect(storedReturnTarget('/group/project?a=1')).toBe('/group/project?a=1')
    expect(storedReturnTarget(`/group/project/-/issues?search=${'a'.repeat(1500)}`)).toBe('/group/project/-/issues')
    expect(storedReturnTarget(`/${'p'.repeat(1100)}?q=1`)).toBe('/')
    expect(storedReturnTarget(`/${'p'.repeat(MAX_STORED_RETURN_TARGET - 1)}`)).toHaveLength(MAX_STORED_RETURN_TARGET)
  })

  it('keeps a fragment in the transaction, drops it first when the target is too long, and never puts it in the state', () => {
    expect(storedReturnTarget('/group/project?a=1#note_1')).toBe('/group/project?a=1#note_1')
    expect(storedReturnTarget(`/group/project?a=1#${'n'.repeat(1100)}`)).toBe('/group/project?a=1')
    expect(storedReturnTarget(`/group/project#x?search=${'a'.repeat(1100)}`)).toBe('/group/project')
    expect(shareableReturnTarget('/group/project?a=1#note_1')).toBe('/group/project?a=1')
    expect(shareableReturnTarget('/group/project#x?private_token=glpat-0123456789abcdefghij')).toBe('/group/project')
    const state = loginState('r'.repeat(43), '/group/project#note_1')
    expect(returnTargetOfState(state)).toBe('/group/project')
    expect(loginState('r'.repeat(43), '/#top')).toBe('r'.repeat(43))
  })
})

describe('userFromIdToken', () => {
  const claims = { tid: TENANT, oid: '690222be-ff1a-4d56-abd1-7e4f7d38e474', preferred_username: 'ada@contoso.com', email: 'ada@contoso.com', name: 'Ada', groups: ['g1', 'g2'], roles: ['GitLab.User'], login_hint: 'O.hint', sid: 'sid-1' }

  it('maps an Entra v2 ID token', () => {
    expect(userFromIdToken(claims, TENANT)).toEqual({
      ok: true,
      overage: false,
      loginHint: 'O.hint',
      sid: 'sid-1',
      user: { id: claims.oid, name: 'ada@contoso.com', email: 'ada@contoso.com', displayName: 'Ada', tenantId: TENANT, groups: ['g1', 'g2'], roles: ['GitLab.User'], groupsSource: 'token' },
    })
  })
  it('prefers upn over preferred_username', () => {
    expect(userFromIdToken({ ...claims, upn: 'ada@corp.example' }, TENANT)).toMatchObject({ user: { name: 'ada@corp.example' } })
    // A guest: Entra names its home identity provider in `idp`; the session keeps the mark, and so does the identity.
    const guest = userFromIdToken({ ...claims, idp: 'live.com' }, TENANT)
    expect(guest).toMatchObject({ ok: true, user: { guest: true } })
    expect(guest.ok && identityOf({ v: 1, user: guest.user, createdAt: 0, lastSeenAt: 0, refreshedAt: 0, expiresAt: 1000 }).guest).toBe(true)
  })
  it('pins the tenant and needs oid', () => {
    expect(userFromIdToken({ ...claims, tid: '00000000-0000-0000-0000-000000000000' }, TENANT)).toEqual({ ok: false, reason: 'login-tenant-invalid' })
    expect(userFromIdToken({ ...claims, tid: undefined }, TENANT)).toEqual({ ok: false, reason: 'login-tenant-invalid' })
    expect(userFromIdToken({ ...claims, oid: undefined }, TENANT)).toEqual({ ok: false, reason: 'login-claims-invalid' })
  })
  it('flags overage and never follows the claim source', () => {
    const overage = { ...claims, groups: undefined, _claim_names: { groups: 'src1' }, _claim_sources: { src1: { endpoint: 'https://graph.windows.net/x' } } }
    const result = userFromIdToken(overage, TENANT)
    expect(result).toMatchObject({ ok: true, overage: true, user: { groups: [], groupsSource: 'overage-unresolved' } })
    if (result.ok) expect(withGraphGroups(result.user, ['a', 'b'])).toMatchObject({ groups: ['a', 'b'], groupsSource: 'graph' })
  })
  it('no groups claim → groupsSource none', () => {
    expect(userFromIdToken({ ...claims, groups: undefined }, TENANT)).toMatchObject({ user: { groups: [], groupsSource: 'none' } })
  })
  it('refuses an id, name, email or group with a control character (headers cannot carry them), as bearer tokens are', () => {
    for (const extra of [
      { preferred_username: 'ada@contoso.com\r\nX-Forwarded-User: root' },
      { upn: 'ada\n@contoso.com' },
      { email: 'ada\u0000@contoso.com' },
      { groups: ['g1', 'g\u007f2'] },
      { oid: '690222be-ff1a-4d56-abd1-7e4f7d38e47\t' },
    ]) {
      expect(userFromIdToken({ ...claims, ...extra }, TENANT), JSON.stringify(extra)).toEqual({ ok: false, reason: 'login-claims-invalid' })
    }
    // Non-ASCII is fine (sent as UTF-8); the display name never goes into a header.
    expect(userFromIdToken({ ...claims, preferred_username: '李雷@contoso.com', name: 'Ada\r\n' }, TENANT)).toMatchObject({ ok: true, user: { name: '李雷@contoso.com' } })
  })
})

describe('entra client error translation', () => {
  it('plain http only for loopback authorities', () => {
    expect(isLoopbackHttp('http://127.0.0.1:8080')).toBe(true)
    expect(isLoopbackHttp('http://localhost:1')).toBe(true)
    expect(isLoopbackHttp('http://login.example.com')).toBe(false)
    expect(isLoopbackHttp('https://127.0.0.1')).toBe(false)
  })
  it('an OAuth error answer to a refresh ends the session; anything else is an outage', () => {
    const invalidGrant = new client.ResponseBodyError('server responded with an error in the response body', { cause: { error: 'invalid_grant' }, response: new Response('{}', { status: 400 }) } as never)
    expect(classifyRefreshError(invalidGrant)).toBe('session-refresh-rejected')
    expect(classifyRefreshError(new TypeError('fetch failed'))).toBe('session-refresh-unavailable')
    expect(classifyRefreshError(Object.assign(new Error('timeout'), { name: 'TimeoutError' }))).toBe('session-refresh-unavailable')
  })
  it('redeem failures map to reasons', () => {
    expect(classifyRedeemError(new TypeError('fetch failed'))).toEqual({ reason: 'login-idp-unavailable', status: 502 })
    expect(classifyRedeemError(Object.assign(new Error('x'), { code: 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' }))).toEqual({ reason: 'login-id-token-invalid', status: 400 })
    expect(classifyRedeemError(Object.assign(new Error('x'), { code: 'OAUTH_INVALID_RESPONSE_PARAMETER' }))).toEqual({ reason: 'login-callback-invalid', status: 400 })
  })
})

describe('reasons are documented', () => {
  const doc = readFileSync(join(import.meta.dirname, '../../../docs/errors.md'), 'utf8')
  it.each(SIGN_IN_REASONS.map((r) => [r]))('%s appears in docs/errors.md', (reason) => {
    expect(doc).toContain(`\`${reason}\``)
  })
})

describe('sealed session records (shared store)', () => {
  const keys = deriveSessionKeys('s'.repeat(32))
  const record = {
    v: 1 as const, createdAt: 1, lastSeenAt: 2, refreshedAt: 3, expiresAt: 4,
    user: { id: '7a1d0c55-0000-4000-8000-000000000001', name: 'ada@example.test', groups: ['g-eng'], roles: [], tenantId: 't' },
  }
  it('round-trips under its own key only; an edit, another key or another secret reads as absent', () => {
    const text = sealRecord(keys.recordMac, 'key-a', record as never)
    expect(openRecord(keys.recordMac, 'key-a', text)).toEqual(record)
    expect(openRecord(keys.recordMac, 'key-b', text)).toBeUndefined()
    expect(openRecord(deriveSessionKeys('t'.repeat(32)).recordMac, 'key-a', text)).toBeUndefined()
    expect(openRecord(keys.recordMac, 'key-a', text.replace('g-eng', 'g-adm'))).toBeUndefined()
    expect(openRecord(keys.recordMac, 'key-a', JSON.stringify(record))).toBeUndefined()
  })
})
