/**
 * Faults for the discovery and JWKS endpoints, so tests can prove a relying party survives a sick IdP:
 * `down` (503), `reset` (connection destroyed, no response), `slow` (delayed, then the real answer),
 * `garbage` (200 with invalid JSON), `huge` (200 with the real document padded to several MiB); and
 * `busy` for the token endpoint (400 `temporarily_unavailable`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'

export type EndpointFault = 'down' | 'busy' | 'reset' | 'slow' | 'garbage' | 'huge' | 'no-id-token' | null

/**
 * Which endpoints a fault applies to: `all` is discovery and JWKS; `token` (refresh and code redemption)
 * takes `down`, `busy` (a 400 with Entra's `temporarily_unavailable`), `reset` and `no-id-token` (the
 * provider's answer without its `id_token`).
 */
export type FaultTarget = 'discovery' | 'jwks' | 'token' | 'all'

/** Padding size of the `huge` fault: well above any sane metadata size limit. */
export const HUGE_BODY_BYTES = 8 * 1024 * 1024

/** Writes a JSON body (with no-store, as metadata caching is the client's business). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers })
  res.end(text)
}

/**
 * Serves `document()` under `fault`. Resolves once the response is handled; for `slow`, after the delay.
 * `document` is computed after any delay, so a slow JWKS reflects keys rotated meanwhile.
 */
export async function serveWithFault(
  fault: EndpointFault,
  req: IncomingMessage,
  res: ServerResponse,
  document: () => Record<string, unknown>,
  delay: () => Promise<void>,
): Promise<void> {
  switch (fault) {
    case 'down':
      return sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'AADSTS90033: A transient error has occurred.' }, { 'retry-after': '1' })
    case 'busy':
      return sendJson(res, 400, { error: 'temporarily_unavailable', error_description: 'AADSTS90033: A transient error has occurred. Please try again.\r\nTrace ID: 00000000-0000-0000-0000-000000000000' })
    case 'reset':
      req.socket.destroy()
      return
    case 'garbage': {
      const text = '{"keys":[{"kty":"RSA",' + '\u0000<html>not json'
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
      res.end(text)
      return
    }
    case 'huge':
      return sendJson(res, 200, { ...document(), x_padding: 'a'.repeat(HUGE_BODY_BYTES) })
    case 'slow':
      await delay()
      if (res.destroyed) return
      return sendJson(res, 200, document())
    default:
      return sendJson(res, 200, document())
  }
}

/** Makes the JSON answer about to be written on `res` leave out its `id_token` (a token endpoint that omits it). */
export function withoutIdToken(res: ServerResponse): void {
  const end = res.end.bind(res) as (chunk?: unknown, ...rest: unknown[]) => ServerResponse
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    if ((typeof chunk === 'string' || Buffer.isBuffer(chunk)) && !res.headersSent) {
      let body: unknown
      try {
        body = JSON.parse(chunk.toString())
      } catch {
        return end(chunk, ...rest)
      }
      if (body !== null && typeof body === 'object' && 'id_token' in body) {
        delete (body as Record<string, unknown>).id_token
        const text = JSON.stringify(body)
        res.setHeader('content-length', Buffer.byteLength(text))
        return end(text, ...rest)
      }
    }
    return end(chunk, ...rest)
  }) as ServerResponse['end']
}
