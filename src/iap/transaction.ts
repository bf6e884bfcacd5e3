/**
 * The login transaction: `state`, `nonce`, the PKCE verifier and the return path, sealed
 * (AES-256-GCM: signed and unreadable) into a short-lived HttpOnly cookie named after the state,
 * so several tabs can sign in at once and a callback only works in the browser that started it
 * (SECURITY.md E10). One-time use is enforced separately through the session store.
 */
import { timingSafeEqual } from 'node:crypto'
import { cookieValues, serializeCookie } from '../auth/session/cookies.ts'
import { open, seal } from '../auth/session/seal.ts'

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

const STATE = /^[A-Za-z0-9_-]{22,128}$/

/** Cookie name for a transaction: `<session cookie>-tx-<first 16 chars of state>` (keeps the `__Host-` prefix). */
export function transactionCookieName(sessionCookie: string, state: string): string {
  return `${sessionCookie}-tx-${state.slice(0, 16)}`
}

/** `Set-Cookie` carrying the sealed transaction. */
export function transactionCookie(key: Buffer, sessionCookie: string, tx: LoginTransaction, secure: boolean): string {
  const name = transactionCookieName(sessionCookie, tx.state)
  return serializeCookie(name, seal(key, JSON.stringify(tx), name), { secure, maxAgeSeconds: Math.ceil(TRANSACTION_TTL_MS / 1000) })
}

/** `Set-Cookie` deleting the transaction cookie for `state`. */
export function clearTransactionCookie(sessionCookie: string, state: string, secure: boolean): string {
  return serializeCookie(transactionCookieName(sessionCookie, state), '', { secure, maxAgeSeconds: 0 })
}

export type TransactionResult =
  | { readonly ok: true; readonly tx: LoginTransaction }
  | { readonly ok: false; readonly reason: 'login-state-invalid' | 'login-transaction-missing' | 'login-transaction-expired' }

/** Finds and opens the transaction for the callback's `state`; refuses a missing, forged, mismatched or expired one. */
export function readTransaction(key: Buffer, sessionCookie: string, cookieHeader: string | undefined, state: string | null, now: number): TransactionResult {
  if (!state || !STATE.test(state)) return { ok: false, reason: 'login-state-invalid' }
  const name = transactionCookieName(sessionCookie, state)
  const values = cookieValues(cookieHeader, name)
  if (values.length === 0) return { ok: false, reason: 'login-transaction-missing' }
  for (const value of values) {
    const text = open(key, value, name)
    if (text === undefined) continue
    let tx: LoginTransaction
    try {
      tx = JSON.parse(text) as LoginTransaction
    } catch {
      continue
    }
    const a = Buffer.from(String(tx.state))
    const b = Buffer.from(state)
    if (a.length !== b.length || !timingSafeEqual(a, b)) return { ok: false, reason: 'login-state-invalid' }
    if (typeof tx.expiresAt !== 'number' || now > tx.expiresAt) return { ok: false, reason: 'login-transaction-expired' }
    return { ok: true, tx }
  }
  return { ok: false, reason: 'login-transaction-missing' }
}

/** Most sign-ins a browser may have pending (one per tab that was sent to sign-in) before the oldest are dropped. */
export const MAX_PENDING_TRANSACTIONS = 3
/**
 * Most bytes of pending transaction cookies kept besides a new one: every request to the site carries
 * them, and proxies in front refuse a Cookie header beyond 8 KB (nginx's default), which would lock the
 * user out of the whole site, sign-in included, until they expire.
 */
export const MAX_PENDING_TRANSACTION_BYTES = 4096

/**
 * `Set-Cookie` values deleting the pending transactions a new sign-in pushes out: the oldest beyond
 * `MAX_PENDING_TRANSACTIONS - 1`, or beyond `MAX_PENDING_TRANSACTION_BYTES` with the new one, and any
 * that cannot be opened or has expired.
 */
export function prunedTransactionCookies(key: Buffer, sessionCookie: string, cookieHeader: string | undefined, newCookieBytes: number, now: number, secure: boolean): string[] {
  const prefix = `${sessionCookie}-tx-`
  if (typeof cookieHeader !== 'string' || !cookieHeader.includes(prefix)) return []
  const pending: { name: string; expiresAt: number; bytes: number }[] = []
  for (const pair of cookieHeader.split(';')) {
    const eq = pair.indexOf('=')
    const name = eq === -1 ? '' : pair.slice(0, eq).trim()
    if (!name.startsWith(prefix)) continue
    const value = pair.slice(eq + 1).trim()
    let expiresAt = -1
    const text = open(key, value, name)
    if (text !== undefined) {
      try {
        const tx = JSON.parse(text) as Partial<LoginTransaction>
        if (typeof tx.expiresAt === 'number' && tx.expiresAt > now) expiresAt = tx.expiresAt
      } catch {
        // unreadable: dropped below
      }
    }
    pending.push({ name, expiresAt, bytes: name.length + value.length + 2 })
  }
  // Newest first: kept while within both limits; everything after the first that does not fit goes.
  pending.sort((a, b) => b.expiresAt - a.expiresAt)
  const drop: string[] = []
  let kept = 0
  let bytes = newCookieBytes
  for (const tx of pending) {
    if (tx.expiresAt > now && kept < MAX_PENDING_TRANSACTIONS - 1 && bytes + tx.bytes <= MAX_PENDING_TRANSACTION_BYTES) {
      kept++
      bytes += tx.bytes
    } else drop.push(tx.name)
  }
  return [...new Set(drop)].map((name) => serializeCookie(name, '', { secure, maxAgeSeconds: 0 }))
}
