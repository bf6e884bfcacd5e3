/**
 * Keys derived from `session.secret` with HKDF-SHA256, one per purpose, so a key used to sign
 * cookies never also encrypts refresh tokens (and rotating the secret rotates all of them).
 */
import { hkdfSync } from 'node:crypto'

export interface SessionKeys {
  /** HMAC key that signs the session cookie (`<id>.<mac>`). */
  readonly cookieMac: Buffer
  /** HMAC key that turns a session id into its store key, so a store dump holds no usable cookie. */
  readonly storeId: Buffer
  /** AES-256-GCM key for tokens at rest (refresh token, id_token). */
  readonly tokenSeal: Buffer
  /** AES-256-GCM key for the short-lived login transaction cookie. */
  readonly transactionSeal: Buffer
  /** HMAC key over each session record in a shared store (Redis), bound to its store key. */
  readonly recordMac: Buffer
}

const SALT = Buffer.from('gitlab-iap/session/v1')

function derive(secret: string, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), SALT, Buffer.from(purpose), 32))
}

/** Derives every session key from the configured secret (>= 32 bytes, checked by the config schema). */
export function deriveSessionKeys(secret: string): SessionKeys {
  if (Buffer.byteLength(secret, 'utf8') < 32) throw new TypeError('session.secret must be at least 32 bytes')
  return Object.freeze({
    cookieMac: derive(secret, 'cookie-mac'),
    storeId: derive(secret, 'store-id'),
    tokenSeal: derive(secret, 'token-seal'),
    transactionSeal: derive(secret, 'transaction-seal'),
    recordMac: derive(secret, 'record-mac'),
  })
}
