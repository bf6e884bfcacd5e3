/**
 * Error codes for things that are broken (config, startup, upstream, stores).
 * Normal outcomes of a request (a denied path, an expired token) are *reasons*, not errors:
 * see `src/policy/decision.ts` and `src/auth/reasons.ts`. Every code is listed in docs/errors.md.
 */
export const IAP_ERROR_CODES = [
  'IAP_ERR_CONFIG_INVALID',
  'IAP_ERR_CONFIG_UNREADABLE',
  'IAP_ERR_CONFIG_ENV_MISSING',
  'IAP_ERR_CLI_USAGE',
  'IAP_ERR_DEMO_UNAVAILABLE',
  'IAP_ERR_LISTEN_FAILED',
  'IAP_ERR_UPSTREAM_UNREACHABLE',
  'IAP_ERR_UPSTREAM_TIMEOUT',
  'IAP_ERR_UPSTREAM_PROJECT_LOOKUP',
  'IAP_ERR_SESSION_STORE_UNAVAILABLE',
  'IAP_ERR_JWKS_UNAVAILABLE',
  'IAP_ERR_IDP_UNAVAILABLE',
  'IAP_ERR_ENTRA_CLIENT_AUTH',
  'IAP_ERR_GRAPH_UNAVAILABLE',
  'IAP_ERR_LOG_WRITE_FAILED',
  'IAP_ERR_LOG_CHAIN_BROKEN',
] as const

export type IapErrorCode = (typeof IAP_ERROR_CODES)[number]

export class IapError extends Error {
  readonly code: IapErrorCode
  constructor(code: IapErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'IapError'
    this.code = code
  }
}

export function isIapError(err: unknown, code?: IapErrorCode): err is IapError {
  return err instanceof IapError && (code === undefined || err.code === code)
}
