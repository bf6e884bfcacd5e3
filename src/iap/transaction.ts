/**
 * The login transaction: `state`, `nonce`, the PKCE verifier and the return path, sealed
 * (AES-256-GCM: signed and unreadable) into a short-lived HttpOnly cookie in one of a few fixed
 * slots, so several tabs can sign in at once and a callback only works in the browser that started
 * it (no login CSRF, no injected code). One-time use is enforced separately through the session store.
 *
 * Fixed slot names, not one name per sign-in: sign-ins started in parallel (a restored window of
 * tabs, or `<img src="/-/iap/login">` in a page GitLab renders) cannot see each other's cookies, so
 * only a bounded set of names keeps them from piling up into a Cookie header that every request,
 * sign-in included, is refused for (431 here, 400 at an ingress).
 */
import { randomInt, timingSafeEqual } from 'node:crypto'
import { serializeCookie } from '../auth/session/cookies.ts'
import { open, seal } from '../auth/session/seal.ts'
import { validateRedirectTarget } from '../http/redirect-target.ts'
import { redactPath, redactQuery } from '../logs/redact.ts'

export interface LoginTransaction {
  readonly state: string
  readonly nonce: string
  readonly codeVerifier: string
  /** Validated same-origin return path. */
  readonly returnTo: string
  /** Epoch ms after which the callback is refused. */
  readonly expiresAt: number
}

/** How long a user may take at the sign-in page. */
export const TRANSACTION_TTL_MS = 10 * 60_000

/** Most sign-ins a browser may have pending (one per tab that was sent to sign-in); a new one takes the oldest's slot. */
export const TRANSACTION_SLOTS = 3

/**
 * Longest return target a transaction keeps. With the slots full this bounds the Cookie header's
 * share of pending sign-ins to about 5 KB, under the 8 KB a proxy in front (nginx's default) accepts.
 */
export const MAX_STORED_RETURN_TARGET = 1024

/** A random part, then optionally `.` and the return target (base64url): see `loginState`. */
const STATE = /^[A-Za-z0-9_-]{22,128}(?:\.[A-Za-z0-9_-]{1,1400})?$/

/**
 * The `state` of a sign-in: its random part, and the (stored) return target after a `.`. The target
 * rides along only so that a tab whose transaction another tab's overwrote (sign-ins started at once
 * share three slots) can start again for the same page; it is validated again before any use
 * (`returnTargetOfState`). `state` travels through Entra and every log on the way, so it carries the
 * target only as far as it holds no secret (`shareableReturnTarget`).
 */
export function loginState(random: string, returnTo: string): string {
  const shareable = shareableReturnTarget(returnTo)
  return shareable === '/' ? random : `${random}.${Buffer.from(shareable, 'utf8').toString('base64url')}`
}

/**
 * A return target without what the access log would redact: a query holding a token (`?feed_token=`,
 * `?private_token=`) is dropped, and a path holding one (`/-/invites/<token>`) gives `/`. The fragment
 * is always dropped: a browser never sends one to a server, so none travels through Entra and its logs.
 * The whole target stays in the sealed transaction cookie; only a lost transaction's fallback loses the part.
 */
export function shareableReturnTarget(returnTo: string): string {
  const target = withoutFragment(returnTo)
  const q = target.indexOf('?')
  const path = q === -1 ? target : target.slice(0, q)
  if (redactPath(path) !== path) return '/'
  if (q === -1) return target
  const query = target.slice(q + 1)
  return redactQuery(query, path) === query ? target : path
}

/** The return target a `state` carries, validated like `rd`; `/` when it carries none or one that is refused. */
export function returnTargetOfState(state: string | null): string {
  if (!state || !STATE.test(state)) return '/'
  const dot = state.indexOf('.')
  if (dot === -1) return '/'
  const checked = validateRedirectTarget(Buffer.from(state.slice(dot + 1), 'base64url').toString('utf8'))
  return checked.ok ? checked.target : '/'
}

/** Cookie marking a sign-in started again after a lost transaction: a second loss shows the error, not a loop. */
export function retryCookieName(sessionCookie: string): string {
  return `${sessionCookie}-tx-retry`
}

/** Cookie name of a slot: `<session cookie>-tx-<slot>` (keeps the `__Host-` prefix). */
export function transactionCookieName(sessionCookie: string, slot: number): string {
  return `${sessionCookie}-tx-${slot}`
}

/**
 * The return target a transaction keeps: a validated target too long to keep whole (`rd` may be up
 * to 2,048 characters) loses its fragment, then its query, then its path; the user lands one step up, not elsewhere.
 */
export function storedReturnTarget(target: string): string {
  if (target.length <= MAX_STORED_RETURN_TARGET) return target
  const unanchored = withoutFragment(target)
  if (unanchored.length <= MAX_STORED_RETURN_TARGET) return unanchored
  const path = unanchored.split('?', 1)[0]!
  return path.length <= MAX_STORED_RETURN_TARGET ? path : '/'
}

/** The target up to its first `#` (a `?` after it is the fragment's). */
function withoutFragment(target: string): string {
  const hash = target.indexOf('#')
  return hash === -1 ? target : target.slice(0, hash)
}

/** `Set-Cookie` carrying the sealed transaction in `slot`. */
export function transactionCookie(key: Buffer, sessionCookie: string, slot: number, tx: LoginTransaction, secure: boolean): string {
  const name = transactionCookieName(sessionCookie, slot)
  return serializeCookie(name, seal(key, JSON.stringify(tx), name), { secure, maxAgeSeconds: Math.ceil(TRANSACTION_TTL_MS / 1000) })
}

/** `Set-Cookie` deleting the transaction cookie of `slot`. */
export function clearTransactionCookie(sessionCookie: string, slot: number, secure: boolean): string {
  return serializeCookie(transactionCookieName(sessionCookie, slot), '', { secure, maxAgeSeconds: 0 })
}

interface PendingCookie {
  readonly name: string
  /** The slot, or undefined for a name that is not a slot's (an older release's per-state names). */
  readonly slot: number | undefined
  /** The opened transaction, or undefined when the value cannot be opened. */
  readonly tx: Partial<LoginTransaction> | undefined
}

/** The transaction cookies a request carries, each opened. */
function pendingCookies(key: Buffer, sessionCookie: string, cookieHeader: string | undefined): PendingCookie[] {
  const prefix = `${sessionCookie}-tx-`
  if (typeof cookieHeader !== 'string' || !cookieHeader.includes(prefix)) return []
  const found: PendingCookie[] = []
  for (const pair of cookieHeader.split(';')) {
    const eq = pair.indexOf('=')
    if (eq === -1) continue
    const name = pair.slice(0, eq).trim()
    if (!name.startsWith(prefix) || name === retryCookieName(sessionCookie)) continue
    const suffix = name.slice(prefix.length)
    const slot = /^[0-9]$/.test(suffix) && Number(suffix) < TRANSACTION_SLOTS ? Number(suffix) : undefined
    let value = pair.slice(eq + 1).trim()
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1)
    let tx: Partial<LoginTransaction> | undefined
    const text = slot === undefined ? undefined : open(key, value, name)
    if (text !== undefined) {
      try {
        tx = JSON.parse(text) as Partial<LoginTransaction>
      } catch {
        // unreadable: treated as absent
      }
    }
    found.push({ name, slot, tx })
  }
  return found
}

export type TransactionResult =
  | { readonly ok: true; readonly tx: LoginTransaction; readonly slot: number }
  | { readonly ok: false; readonly reason: 'login-state-invalid' | 'login-transaction-missing' | 'login-transaction-expired' }

/** Finds and opens the transaction for the callback's `state`; refuses a missing, forged, mismatched or expired one. */
export function readTransaction(key: Buffer, sessionCookie: string, cookieHeader: string | undefined, state: string | null, now: number): TransactionResult {
  if (!state || !STATE.test(state)) return { ok: false, reason: 'login-state-invalid' }
  const wanted = Buffer.from(state)
  for (const { slot, tx } of pendingCookies(key, sessionCookie, cookieHeader)) {
    if (slot === undefined || tx === undefined) continue
    const held = Buffer.from(String(tx.state))
    if (held.length !== wanted.length || !timingSafeEqual(held, wanted)) continue
    if (typeof tx.expiresAt !== 'number' || now > tx.expiresAt) return { ok: false, reason: 'login-transaction-expired' }
    return { ok: true, tx: tx as LoginTransaction, slot }
  }
  return { ok: false, reason: 'login-transaction-missing' }
}

export interface SlotChoice {
  readonly slot: number
  /** `Set-Cookie` values deleting transaction cookies that are not a slot's (older releases named one per sign-in). */
  readonly stale: readonly string[]
}

/**
 * The slot a new sign-in takes: a free one (absent, unreadable or expired), picked at random so that
 * sign-ins started together from the same cookies spread over the slots; with none free, the one
 * whose transaction expires first.
 */
export function chooseTransactionSlot(key: Buffer, sessionCookie: string, cookieHeader: string | undefined, now: number, secure: boolean): SlotChoice {
  const pending = pendingCookies(key, sessionCookie, cookieHeader)
  const expiresAt = new Array<number>(TRANSACTION_SLOTS).fill(-1)
  for (const { slot, tx } of pending) {
    if (slot === undefined || typeof tx?.expiresAt !== 'number' || tx.expiresAt <= now) continue
    expiresAt[slot] = Math.max(expiresAt[slot]!, tx.expiresAt)
  }
  const free = expiresAt.flatMap((at, slot) => (at === -1 ? [slot] : []))
  const slot = free.length > 0 ? free[randomInt(free.length)]! : expiresAt.indexOf(Math.min(...expiresAt))
  const stale = [...new Set(pending.filter((p) => p.slot === undefined).map((p) => p.name))]
  return { slot, stale: stale.map((name) => serializeCookie(name, '', { secure, maxAgeSeconds: 0 })) }
}
