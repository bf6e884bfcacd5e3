/**
 * The server-side session record and the pure rules about it: expiry (absolute and idle), when
 * to refresh, when to write "last seen" back, how long the store keeps it, and the Identity it
 * stands for. Times are epoch milliseconds.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { Identity } from '../identity.ts'

export interface SessionUser {
  /** Entra object id (`oid`). */
  readonly id: string
  /** upn / preferred_username. */
  readonly name?: string
  /** A guest (B2B) user: `users` rules match it by object id only. */
  readonly guest?: boolean
  readonly email?: string
  readonly displayName?: string
  readonly tenantId?: string
  readonly groups: readonly string[]
  readonly roles: readonly string[]
  readonly groupsSource: NonNullable<Identity['groupsSource']>
}

export interface SessionRecord {
  readonly v: 1
  readonly user: SessionUser
  readonly createdAt: number
  lastSeenAt: number
  readonly refreshedAt: number
  /** Absolute end: sign-in time + `session.absoluteTimeout`. */
  readonly expiresAt: number
  /** Refresh token, sealed with the token key and the store key as associated data. */
  readonly refreshToken?: string
  /** ID token (for `id_token_hint` at logout), sealed like the refresh token. */
  readonly idToken?: string
  /** The `login_hint` claim, used as `logout_hint` (https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc). */
  readonly loginHint?: string
  /** Entra session id claim (`sid`), for front-channel logout by sid. */
  readonly sid?: string
}

/**
 * About how many bytes a record holds in memory (V8 keeps these ASCII strings at a byte per
 * character, plus object overhead): what bounds the memory store and the Redis store's local copy.
 * Sealed tokens and groups dominate; heap snapshots put a typical record near 4.6 KB.
 */
export function approximateRecordBytes(record: SessionRecord): number {
  const u = record.user
  let bytes = 600 + u.id.length + (u.name?.length ?? 0) + (u.email?.length ?? 0) + (u.displayName?.length ?? 0) + (u.tenantId?.length ?? 0)
  for (const g of u.groups) bytes += g.length + 16
  for (const r of u.roles) bytes += r.length + 16
  bytes += (record.refreshToken?.length ?? 0) + (record.idToken?.length ?? 0) + (record.loginHint?.length ?? 0) + (record.sid?.length ?? 0)
  return bytes
}

export interface SessionTimeouts {
  readonly absoluteTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly refreshIntervalMs: number
  /** How long past the interval a session may be served as last refreshed while Entra cannot be reached (0: not at all). */
  readonly refreshGraceMs?: number
}

export type SessionAssessment =
  | { readonly status: 'expired'; readonly reason: 'session-expired' | 'session-idle-timeout' }
  | { readonly status: 'active'; readonly refreshDue: boolean; readonly touchDue: boolean }

/** How stale `lastSeenAt` may get before it is written back: a tenth of the idle timeout, at most a minute. */
export function touchIntervalMs(t: SessionTimeouts): number {
  return Math.min(60_000, Math.floor(t.idleTimeoutMs / 10))
}

/** Decides whether a record is still valid at `now`, and whether it needs a refresh or a "last seen" write. */
export function assessSession(record: SessionRecord, now: number, t: SessionTimeouts): SessionAssessment {
  if (now >= record.expiresAt) return { status: 'expired', reason: 'session-expired' }
  if (now - record.lastSeenAt >= t.idleTimeoutMs) return { status: 'expired', reason: 'session-idle-timeout' }
  return {
    status: 'active',
    refreshDue: now - record.refreshedAt >= t.refreshIntervalMs,
    touchDue: now - record.lastSeenAt >= touchIntervalMs(t),
  }
}

/** True while a session whose refresh is due may still be served as last refreshed (Entra unreachable). */
export function withinRefreshGrace(record: SessionRecord, now: number, t: SessionTimeouts): boolean {
  const grace = t.refreshGraceMs ?? 0
  return grace > 0 && now - record.refreshedAt < t.refreshIntervalMs + grace
}

/** How long the store should keep the record from `now`: until the absolute end or the idle end, whichever is first. */
export function storeTtlMs(record: SessionRecord, now: number, t: SessionTimeouts): number {
  return Math.max(1, Math.min(record.expiresAt - now, record.lastSeenAt + t.idleTimeoutMs - now))
}

/** When the session ends if nothing else happens (for whoami): the earlier of the absolute and the idle end. */
export function sessionEndsAt(record: SessionRecord, t: SessionTimeouts): number {
  return Math.min(record.expiresAt, record.lastSeenAt + t.idleTimeoutMs)
}

/** The Identity a session stands for. `issuedAt` is the sign-in time, so a revocation after it ends the session's rights. */
export function identityOf(record: SessionRecord): Identity {
  const u = record.user
  return {
    kind: 'user',
    id: u.id,
    ...(u.name !== undefined && { name: u.name }),
    ...(u.guest === true && { guest: true }),
    ...(u.email !== undefined && { email: u.email }),
    ...(u.displayName !== undefined && { displayName: u.displayName }),
    ...(u.tenantId !== undefined && { tenantId: u.tenantId }),
    groups: u.groups,
    roles: u.roles,
    issuer: 'entra',
    expiresAt: Math.floor(record.expiresAt / 1000),
    issuedAt: Math.floor(record.createdAt / 1000),
    groupsSource: u.groupsSource,
  }
}

/**
 * Lower-cased keys a session is indexed under: its user's oid and upn, so `/admin/revoke` finds it,
 * and `sid:<Entra session id>`, so a front-channel logout from Entra finds it.
 */
export function indexKeys(record: SessionRecord): string[] {
  const user = record.user
  const keys = [user.id.toLowerCase()]
  if (user.name && user.name.toLowerCase() !== keys[0]) keys.push(user.name.toLowerCase())
  if (record.sid) keys.push(sidKey(record.sid))
  return keys
}

/** The index key of an Entra session id (`sid` claim). */
export const sidKey = (sid: string): string => `sid:${sid.toLowerCase()}`

/**
 * A record as a shared store keeps it: its JSON, a newline, and an HMAC over the store key and the
 * JSON. Whoever can write Redis can then neither edit a record (its groups, its expiry) nor copy
 * another user's record under their own session's key.
 */
export function sealRecord(macKey: Buffer, storeKey: string, record: SessionRecord): string {
  const json = JSON.stringify(record)
  return `${json}\n${recordMac(macKey, storeKey, json)}`
}

/** The record a sealed text holds; `undefined` when its MAC does not verify (or it is no record). */
export function openRecord(macKey: Buffer, storeKey: string, text: string): SessionRecord | undefined {
  // JSON.stringify never writes a raw newline: the last one separates the MAC.
  const cut = text.lastIndexOf('\n')
  if (cut === -1) return undefined
  const json = text.slice(0, cut)
  const given = Buffer.from(text.slice(cut + 1), 'base64url')
  const expected = Buffer.from(recordMac(macKey, storeKey, json), 'base64url')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined
  return parseRecord(json)
}

function recordMac(macKey: Buffer, storeKey: string, json: string): string {
  return createHmac('sha256', macKey).update(storeKey).update('\n').update(json).digest('base64url')
}

/** Parses a stored record; `undefined` for anything that is not a well-formed v1 record (fail closed). */
export function parseRecord(text: string): SessionRecord | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  const r = value as Partial<SessionRecord> | null
  if (!r || typeof r !== 'object' || r.v !== 1) return undefined
  if (typeof r.createdAt !== 'number' || typeof r.lastSeenAt !== 'number' || typeof r.refreshedAt !== 'number' || typeof r.expiresAt !== 'number') return undefined
  const u = r.user as Partial<SessionUser> | undefined
  if (!u || typeof u.id !== 'string' || u.id === '' || !Array.isArray(u.groups) || !Array.isArray(u.roles)) return undefined
  return r as SessionRecord
}
