/**
 * Valid but weak settings: the proxy runs with them and says so (serve logs each at start, `check`
 * prints them), rather than refusing a config the SPEC allows.
 */
import type { Config } from './schema.ts'

export interface ConfigWarning {
  readonly code: string
  readonly key: string
  readonly message: string
}

export function configWarnings(config: Config): ConfigWarning[] {
  const warnings: ConfigWarning[] = []
  const token = config.admin.token
  if (token !== undefined && Buffer.byteLength(token) < 16) {
    warnings.push({ code: 'IAP_WARN_ADMIN_TOKEN_SHORT', key: 'admin.token', message: 'shorter than 16 bytes: easy to guess; generate one with `openssl rand -base64 32`' })
  }
  const key = config.accessLog.integrity?.key
  if (key !== undefined && Buffer.byteLength(key) < 32) {
    warnings.push({ code: 'IAP_WARN_LOG_KEY_SHORT', key: 'accessLog.integrity.key', message: 'shorter than 32 bytes: a weak HMAC key lets a forger rebuild the chain; generate one with `openssl rand -base64 48`' })
  }
  return warnings
}
