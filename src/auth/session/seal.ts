/**
 * Authenticated encryption (AES-256-GCM) of small strings: refresh tokens at rest (a store dump must not yield them)
 * and the login transaction cookie. The associated data binds a sealed value to its place
 * (a session's store key, a cookie name), so one cannot be swapped in for another.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'

const IV_BYTES = 12
const TAG_BYTES = 16
const VERSION = 'v1.'

/** Encrypts `plaintext`; the result is `v1.` + base64url(iv | tag | ciphertext). */
export function seal(key: Buffer, plaintext: string, associatedData: string): string {
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  cipher.setAAD(Buffer.from(associatedData, 'utf8'))
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return VERSION + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')
}

/** Decrypts a value made by `seal` with the same key and associated data; `undefined` when anything does not match. */
export function open(key: Buffer, sealed: string, associatedData: string): string | undefined {
  if (typeof sealed !== 'string' || !sealed.startsWith(VERSION)) return undefined
  const raw = Buffer.from(sealed.slice(VERSION.length), 'base64url')
  if (raw.length < IV_BYTES + TAG_BYTES) return undefined
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES })
    decipher.setAAD(Buffer.from(associatedData, 'utf8'))
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES))
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8')
  } catch {
    return undefined
  }
}
