/**
 * The proxy as an OpenID client of Entra ID (openid-client v6): discovery of the tenant's v2
 * metadata, authorization URLs with PKCE S256 + state + nonce, code redemption, refresh, and the
 * end-session URL. This is the only module that knows openid-client's errors; it turns them into
 * reasons (`login-*`, `session-refresh-*`) and `IAP_ERR_IDP_UNAVAILABLE`.
 */
import * as client from 'openid-client'
import type { EntraConfig } from '../config/schema.ts'
import { IapError } from '../errors.ts'
import { oneLine } from '../http/one-line.ts'

export interface TokenSet {
  readonly claims: Readonly<Record<string, unknown>>
  readonly idToken: string
  readonly refreshToken?: string
}

export type RedeemResult =
  | { readonly ok: true; readonly tokens: TokenSet }
  | { readonly ok: false; readonly reason: LoginFailureReason; readonly status: 400 | 403 | 502; readonly idpError?: IdpError; readonly outage?: IdpOutage }

export type LoginFailureReason =
  | 'login-denied-at-idp'
  | 'login-callback-invalid'
  | 'login-code-rejected'
  | 'login-client-auth-failed'
  | 'login-id-token-invalid'
  | 'login-idp-unavailable'

/** The token endpoint's OAuth error, for the operator's log: `error` and a sanitized, capped `error_description`. */
export interface IdpError {
  readonly error: string
  readonly description?: string
}

/**
 * What the operator's log says of Entra failing a token request (`login-idp-unavailable`): the HTTP
 * status and Entra's sanitized `error` and `error_description` when it answered, else the network error.
 */
export interface IdpOutage {
  readonly httpStatus?: number
  readonly error?: string
  readonly description?: string
  /** Without a usable answer: the failure's code (`ECONNRESET`, `UND_ERR_CONNECT_TIMEOUT`, `TimeoutError`, `OAUTH_RESPONSE_IS_NOT_JSON`). */
  readonly failure?: string
}

/**
 * Token-endpoint `error` values that mean Entra is down or busy, whatever the status: the code may be
 * fine, so the user is told to try again, not that the sign-in response was bad.
 */
const OUTAGE_ERRORS = new Set(['temporarily_unavailable', 'server_error'])

/**
 * Token-endpoint errors that blame the proxy's own credentials, not the user's code: Entra answers
 * `invalid_client` to a wrong or expired secret (AADSTS7000215, AADSTS7000222) and `unauthorized_client`
 * to an unknown client id (AADSTS700016).
 */
const CLIENT_AUTH_ERRORS = new Set(['invalid_client', 'unauthorized_client'])

/** Longest `error_description` kept: Entra's carry trace and correlation ids, worth a log line, not a page. */
export const IDP_DESCRIPTION_MAX = 500

export type RefreshGrantResult =
  | { readonly ok: true; readonly tokens: Partial<TokenSet> }
  /** `idpError`: Entra refused the proxy's own client credentials (for the operator's log). */
  | { readonly ok: false; readonly reason: 'session-refresh-rejected' | 'session-refresh-unavailable'; readonly idpError?: IdpError }

export interface EntraClient {
  /** The v2 issuer (`${authority}/${tenantId}/v2.0`). */
  readonly issuer: string
  readonly redirectUri: string
  /** Discovery has succeeded at least once. */
  isReady(): boolean
  /** Starts discovery (and retries it later on failure); resolves either way. */
  warmUp(): Promise<void>
  authorizationUrl(input: { state: string; nonce: string; codeChallenge: string; loginHint?: string }): Promise<URL>
  /** Redeems the code in the callback URL, checking state, nonce, PKCE, `iss`, `aud`, `exp`. */
  redeem(callbackUrl: URL, checks: { state: string; nonce: string; codeVerifier: string }): Promise<RedeemResult>
  refresh(refreshToken: string): Promise<RefreshGrantResult>
  /** The end_session_endpoint URL, or undefined when the provider has none (or is unreachable). */
  endSessionUrl(params: { postLogoutRedirectUri: string; idTokenHint?: string; logoutHint?: string }): Promise<URL | undefined>
}

export interface EntraClientOptions {
  readonly entra: EntraConfig
  /** `server.publicUrl`; the redirect URI is `${publicUrl}/-/iap/callback`. */
  readonly publicUrl: string
  readonly fetch?: typeof fetch
  /** Per-request timeout towards the IdP, seconds (openid-client's `timeout`). */
  readonly timeoutSeconds?: number
  /** Minimum time between two discovery attempts after a failure. */
  readonly discoveryRetryMs?: number
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1'])

/** Plain-http authorities are only accepted on loopback (the dev IdP in tests and the demo). */
export function isLoopbackHttp(url: string): boolean {
  const u = new URL(url)
  return u.protocol === 'http:' && LOOPBACK.has(u.hostname)
}

/** Control characters (CR/LF in Entra's descriptions, anything a log line should not carry) become spaces. */
function sanitizeDescription(text: unknown, secrets: readonly string[]): string | undefined {
  if (typeof text !== 'string' || text === '') return undefined
  let out = text
  // The IdP has no business echoing them, but if it did the log must not: a secret or code never lands there.
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join('[redacted]')
  out = oneLine(out).trim()
  return out.length > IDP_DESCRIPTION_MAX ? `${out.slice(0, IDP_DESCRIPTION_MAX - 1)}…` : out
}

/** The OAuth `error` a token-endpoint failure carries: in the JSON body, or in a `WWW-Authenticate` challenge (a 401 may use either). */
function tokenEndpointError(err: unknown): { error: string; description?: unknown } | undefined {
  if (err instanceof client.ResponseBodyError) return { error: err.error, description: err.error_description }
  if (err instanceof client.WWWAuthenticateChallengeError) {
    for (const challenge of err.cause) {
      const error = challenge.parameters.error
      if (typeof error === 'string') return { error, description: challenge.parameters.error_description }
    }
  }
  return undefined
}

/** The HTTP status of a token-endpoint answer openid-client refused (on its error, or the `Response` it carries as cause). */
function httpStatusOf(err: unknown): number | undefined {
  if (err instanceof client.ResponseBodyError || err instanceof client.WWWAuthenticateChallengeError) return err.status
  const cause = (err as { cause?: unknown } | undefined)?.cause
  // Duck-typed: a custom fetch (undici's) brings its own Response class.
  const status = (cause as { status?: unknown } | undefined)?.status
  return typeof cause === 'object' && cause !== null && 'headers' in cause && typeof status === 'number' ? status : undefined
}

/** An OAuth `error` value fit for a log field: printable ASCII (RFC 6749's alphabet), capped. */
function sanitizeErrorCode(error: unknown): string | undefined {
  if (typeof error !== 'string' || error === '') return undefined
  const clean = error.replace(/[^\x20-\x7e]/g, '?')
  return clean.length > 64 ? `${clean.slice(0, 63)}…` : clean
}

/**
 * Entra down or busy at the token endpoint: a 5xx or 429 answer, or a `temporarily_unavailable` /
 * `server_error` error whatever its status. Undefined for anything else (a refused code, a bad token).
 */
export function outageOf(err: unknown, secrets: readonly string[] = []): IdpOutage | undefined {
  const httpStatus = httpStatusOf(err)
  const oauth = tokenEndpointError(err)
  const busy = oauth !== undefined && OUTAGE_ERRORS.has(oauth.error)
  if (!busy && (httpStatus === undefined || (httpStatus < 500 && httpStatus !== 429))) return undefined
  const error = sanitizeErrorCode(oauth?.error)
  const description = sanitizeDescription(oauth?.description, secrets)
  return { ...(httpStatus !== undefined && { httpStatus }), ...(error !== undefined && { error }), ...(description !== undefined && { description }) }
}

/** Most bytes of an error answer read for its `error` and `error_description`: a gateway's HTML page may be large. */
const ERROR_BODY_MAX = 16 * 1024

/**
 * Entra's `error` and `error_description` from the unread body of a 5xx answer (openid-client reads
 * only 4xx bodies), best effort: at most ERROR_BODY_MAX bytes and one second.
 */
async function errorOfBody(err: unknown, secrets: readonly string[]): Promise<Pick<IdpOutage, 'error' | 'description'>> {
  const response = (err as { cause?: unknown } | undefined)?.cause as { bodyUsed?: boolean; body?: ReadableStream<Uint8Array> | null } | undefined
  const body = response?.body
  if (!body || response.bodyUsed) return {}
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  const timer = setTimeout(() => void reader.cancel().catch(() => undefined), 1000)
  try {
    while (size < ERROR_BODY_MAX) {
      const { done, value } = await reader.read()
      if (done) break
      chunks.push(value)
      size += value.byteLength
    }
  } catch {
    return {}
  } finally {
    clearTimeout(timer)
    void reader.cancel().catch(() => undefined)
  }
  let json: unknown
  try {
    json = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    return {}
  }
  if (typeof json !== 'object' || json === null) return {}
  const { error: rawError, error_description: rawDescription } = json as Record<string, unknown>
  const error = sanitizeErrorCode(rawError)
  const description = sanitizeDescription(rawDescription, secrets)
  return { ...(error !== undefined && { error }), ...(description !== undefined && { description }) }
}

/** The code of a failure without a usable answer (a reset, a refused connection, a timeout), for the log; never its message. */
function failureOf(err: unknown): string | undefined {
  let current: unknown = err
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
    const { code, name } = current as { code?: unknown; name?: unknown }
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,63}$/.test(code)) return code
    if (name === 'TimeoutError' || name === 'AbortError') return name
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

/** Entra refusing the proxy's own client credentials (`invalid_client`, `unauthorized_client`), with its sanitized words. */
export function clientAuthErrorOf(err: unknown, secrets: readonly string[] = []): IdpError | undefined {
  const oauth = tokenEndpointError(err)
  if (!oauth || !CLIENT_AUTH_ERRORS.has(oauth.error)) return undefined
  const description = sanitizeDescription(oauth.description, secrets)
  return { error: oauth.error, ...(description !== undefined && { description }) }
}

/**
 * Maps openid-client's errors for a code redemption to a reason. `secrets` (the client secret, the
 * code) are cut out of the IdP's description before it can reach a log.
 */
export function classifyRedeemError(err: unknown, secrets: readonly string[] = []): { reason: LoginFailureReason; status: 400 | 403 | 502; idpError?: IdpError; outage?: IdpOutage } {
  if (err instanceof client.AuthorizationResponseError) {
    return err.error === 'access_denied' || err.error === 'consent_required' || err.error === 'interaction_required' || err.error === 'login_required'
      ? { reason: 'login-denied-at-idp', status: 403 }
      : { reason: 'login-callback-invalid', status: 400 }
  }
  const idpError = clientAuthErrorOf(err, secrets)
  // The proxy's misconfiguration, not the user's: a gateway error, and the operator gets the IdP's words.
  if (idpError) return { reason: 'login-client-auth-failed', status: 502, idpError }
  // Entra down or busy (a 5xx, `temporarily_unavailable`): an outage, before any reading of it as a bad response.
  const outage = outageOf(err, secrets)
  if (outage) return { reason: 'login-idp-unavailable', status: 502, outage }
  if (err instanceof client.ResponseBodyError) return { reason: 'login-code-rejected', status: 400 }
  const code = (err as { code?: string })?.code
  if (code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' || code === 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED' || code === 'OAUTH_MISSING_REQUIRED_CLAIM' || code === 'OAUTH_INVALID_RESPONSE' || code === 'OAUTH_JWS_SIGNATURE_VERIFICATION_FAILED' || code === 'OAUTH_JWT_UNSUPPORTED_ALG' || code === 'OAUTH_UNSUPPORTED_ALG') {
    return { reason: 'login-id-token-invalid', status: 400 }
  }
  if (code === 'OAUTH_INVALID_RESPONSE_PARAMETER' || code === 'OAUTH_MISSING_RESPONSE_PARAMETER' || code === 'OAUTH_UNEXPECTED_RESPONSE_PARAMETER' || code === 'OAUTH_RESPONSE_IS_NOT_CONFORM') {
    return { reason: 'login-callback-invalid', status: 400 }
  }
  if (code !== undefined && code.startsWith('OAUTH_') && code !== 'OAUTH_RESPONSE_IS_NOT_JSON' && code !== 'OAUTH_HTTP_REQUEST_FORBIDDEN') {
    return { reason: 'login-callback-invalid', status: 400 }
  }
  return { reason: 'login-idp-unavailable', status: 502 }
}

/** Maps openid-client's errors for a refresh: an OAuth error answer ends the session; anything else is an outage. */
export function classifyRefreshError(err: unknown): 'session-refresh-rejected' | 'session-refresh-unavailable' {
  // The proxy's credentials were refused, not the user's grant (an expired client secret): an outage the
  // operator must fix, during which sessions in their refresh grace keep working, not the end of every session.
  if (clientAuthErrorOf(err)) return 'session-refresh-unavailable'
  // Entra busy or failing (`temporarily_unavailable` may come with a 400): the grant may be fine.
  if (outageOf(err)) return 'session-refresh-unavailable'
  if (err instanceof client.ResponseBodyError && err.status >= 400 && err.status < 500) return 'session-refresh-rejected'
  const code = (err as { code?: string })?.code
  // The new ID token does not validate (another tenant, user, audience): treat as a rejected grant.
  if (code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' || code === 'OAUTH_MISSING_REQUIRED_CLAIM') return 'session-refresh-rejected'
  return 'session-refresh-unavailable'
}

export function createEntraClient(options: EntraClientOptions): EntraClient {
  const { entra } = options
  const clientSecret = entra.clientSecret
  if (!clientSecret) throw new IapError('IAP_ERR_CONFIG_INVALID', 'entra.clientSecret: browser sign-in needs the client secret')
  const authority = entra.authority.replace(/\/+$/, '')
  const issuer = `${authority}/${entra.tenantId}/v2.0`
  const redirectUri = `${options.publicUrl.replace(/\/+$/, '')}/-/iap/callback`
  const insecure = isLoopbackHttp(authority)
  const retryMs = options.discoveryRetryMs ?? 5000
  let config: client.Configuration | undefined
  let pending: Promise<client.Configuration> | undefined
  let lastFailure = 0

  async function discover(): Promise<client.Configuration> {
    const found = await client.discovery(
      new URL(issuer),
      entra.clientId,
      { redirect_uris: [redirectUri], response_types: ['code'] },
      client.ClientSecretPost(clientSecret),
      {
        timeout: options.timeoutSeconds ?? 10,
        ...(insecure && { execute: [client.allowInsecureRequests] }),
      },
    )
    if (options.fetch) found[client.customFetch] = options.fetch as never
    found.timeout = options.timeoutSeconds ?? 10
    return found
  }

  function configuration(): Promise<client.Configuration> {
    if (config) return Promise.resolve(config)
    if (!pending) {
      if (Date.now() - lastFailure < retryMs && lastFailure !== 0) {
        return Promise.reject(new IapError('IAP_ERR_IDP_UNAVAILABLE', `Entra discovery at ${issuer} failed recently; retrying shortly`))
      }
      pending = discover().then(
        (c) => {
          config = c
          pending = undefined
          return c
        },
        (err: unknown) => {
          lastFailure = Date.now()
          pending = undefined
          throw new IapError('IAP_ERR_IDP_UNAVAILABLE', `Entra discovery at ${issuer} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err })
        },
      )
    }
    return pending
  }

  const scope = entra.scopes.join(' ')

  return {
    issuer,
    redirectUri,
    isReady: () => config !== undefined,
    warmUp: () => configuration().then(() => {}, () => {}),
    async authorizationUrl({ state, nonce, codeChallenge, loginHint }) {
      const c = await configuration()
      return client.buildAuthorizationUrl(c, {
        redirect_uri: redirectUri,
        scope,
        state,
        nonce,
        code_challenge: codeChallenge,
        code_challenge_method: 'S256',
        response_mode: 'query',
        ...(loginHint !== undefined && { login_hint: loginHint }),
      })
    },
    async redeem(callbackUrl, checks) {
      let c: client.Configuration
      try {
        c = await configuration()
      } catch {
        return { ok: false, reason: 'login-idp-unavailable', status: 502 }
      }
      try {
        const tokens = await client.authorizationCodeGrant(c, callbackUrl, {
          pkceCodeVerifier: checks.codeVerifier,
          expectedState: checks.state,
          expectedNonce: checks.nonce,
          idTokenExpected: true,
        }, { redirect_uri: redirectUri })
        const claims = tokens.claims()
        if (!claims || !tokens.id_token) return { ok: false, reason: 'login-id-token-invalid', status: 400 }
        return { ok: true, tokens: { claims: claims as Record<string, unknown>, idToken: tokens.id_token, ...(tokens.refresh_token !== undefined && { refreshToken: tokens.refresh_token }) } }
      } catch (err) {
        const code = callbackUrl.searchParams.get('code')
        const secrets = [clientSecret, ...(code ? [code] : [])]
        const failed = classifyRedeemError(err, secrets)
        if (failed.reason !== 'login-idp-unavailable') return { ok: false, ...failed }
        // What the operator needs to tell an Entra incident from a network one: its status and words, or the network error.
        const failure = failureOf(err)
        const outage: IdpOutage = failed.outage
          ? { ...(failed.outage.error === undefined && (await errorOfBody(err, secrets))), ...failed.outage }
          : { ...(failure !== undefined && { failure }) }
        return { ok: false, ...failed, outage }
      }
    },
    async refresh(refreshToken) {
      let c: client.Configuration
      try {
        c = await configuration()
      } catch {
        return { ok: false, reason: 'session-refresh-unavailable' }
      }
      try {
        const tokens = await client.refreshTokenGrant(c, refreshToken, { scope })
        const claims = tokens.claims()
        return {
          ok: true,
          tokens: {
            ...(claims && { claims: claims as Record<string, unknown> }),
            ...(tokens.id_token !== undefined && { idToken: tokens.id_token }),
            ...(tokens.refresh_token !== undefined && { refreshToken: tokens.refresh_token }),
          },
        }
      } catch (err) {
        const idpError = clientAuthErrorOf(err, [clientSecret, refreshToken])
        return { ok: false, reason: classifyRefreshError(err), ...(idpError && { idpError }) }
      }
    },
    async endSessionUrl({ postLogoutRedirectUri, idTokenHint, logoutHint }) {
      let c: client.Configuration
      try {
        c = await configuration()
      } catch {
        return undefined
      }
      if (!c.serverMetadata().end_session_endpoint) return undefined
      return client.buildEndSessionUrl(c, {
        post_logout_redirect_uri: postLogoutRedirectUri,
        ...(idTokenHint !== undefined && { id_token_hint: idTokenHint }),
        ...(logoutHint !== undefined && { logout_hint: logoutHint }),
      })
    },
  }
}
