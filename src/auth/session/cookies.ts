/**
 * Cookie parsing and serialising, and the session cookie itself: an opaque random id (256 bits)
 * with an HMAC, `<id>.<mac>`. The cookie never holds a token or identity; the record is server-side.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { SessionKeys } from './keys.ts'

/** Every value sent for `name` in a Cookie header, in order (a browser may send duplicates). */
export function cookieValues(header: string | undefined, name: string): string[] {
  if (typeof header !== 'string' || !header.includes(name)) return []
  const found: string[] = []
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=')
    if (eq === -1) continue
    if (pair.slice(0, eq).trim() !== name) continue
    let value = pair.slice(eq + 1).trim()
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1)
    found.push(value)
  }
  return found
}

export interface CookieAttributes {
  /** Seconds; 0 deletes the cookie. Absent: a browser-session cookie. */
  readonly maxAgeSeconds?: number
  /** `Secure`; required by the `__Host-` prefix. */
  readonly secure: boolean
}

/** A `Set-Cookie` value with the attributes every gitlab-iap cookie has: HttpOnly, SameSite=Lax, Path=/, no Domain. */
export function serializeCookie(name: string, value: string, attributes: CookieAttributes): string {
  let out = `${name}=${value}; Path=/; HttpOnly; SameSite=Lax`
  if (attributes.secure) out += '; Secure'
  if (attributes.maxAgeSeconds !== undefined) {
    out += `; Max-Age=${Math.max(0, Math.floor(attributes.maxAgeSeconds))}`
    if (attributes.maxAgeSeconds <= 0) out += '; Expires=Thu, 01 Jan 1970 00:00:00 GMT'
  }
  return out
}

/** A fresh session id: 32 random bytes (256 bits), base64url. */
export function createSessionId(): string {
  return randomBytes(32).toString('base64url')
}

const ID = /^[A-Za-z0-9_-]{43}$/
const MAC = /^[A-Za-z0-9_-]{22}$/

function macOf(keys: SessionKeys, id: string): Buffer {
  // 128 bits of the HMAC are plenty to reject forged cookies before any store lookup.
  return createHmac('sha256', keys.cookieMac).update(id).digest().subarray(0, 16)
}

/** The cookie value for a session id. */
export function signSessionId(keys: SessionKeys, id: string): string {
  return `${id}.${macOf(keys, id).toString('base64url')}`
}

/** The session id in a cookie value, or `undefined` when the value is malformed or its MAC does not verify. */
export function verifySessionCookie(keys: SessionKeys, value: string): string | undefined {
  const dot = value.indexOf('.')
  if (dot !== 43) return undefined
  const id = value.slice(0, dot)
  const mac = value.slice(dot + 1)
  if (!ID.test(id) || !MAC.test(mac)) return undefined
  const given = Buffer.from(mac, 'base64url')
  return given.length === 16 && timingSafeEqual(given, macOf(keys, id)) ? id : undefined
}

/** The key a session is stored under: HMAC(id), so reading the store does not yield a usable cookie. */
export function storeKeyFor(keys: SessionKeys, id: string): string {
  return createHmac('sha256', keys.storeId).update(id).digest('base64url')
}
