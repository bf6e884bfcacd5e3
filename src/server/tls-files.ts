/**
 * The main listener's certificate and key, read and checked as a pair before anything listens, so a
 * wrong path or a key that does not match fails with the config key named (in `serve` and in `check`).
 */
import { readFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import type { Config } from '../config/schema.ts'
import { IapError } from '../errors.ts'

export interface TlsFiles {
  readonly cert: Buffer
  readonly key: Buffer
}

export function readTlsFiles(tls: NonNullable<Config['server']['tls']>): TlsFiles {
  const read = (name: 'cert' | 'key'): Buffer => {
    try {
      return readFileSync(tls[name])
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message
      throw new IapError('IAP_ERR_CONFIG_INVALID', `server.tls.${name}: cannot read ${tls[name]}: ${reason}`, { cause: err })
    }
  }
  const files = { cert: read('cert'), key: read('key') }
  try {
    createSecureContext(files)
  } catch (err) {
    throw new IapError('IAP_ERR_CONFIG_INVALID', `server.tls: the certificate and key cannot be used: ${(err as Error).message}`, { cause: err })
  }
  return files
}
