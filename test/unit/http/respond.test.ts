import type { IncomingMessage } from 'node:http'
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { matchOf, parseAccept, qualityOf } from '../../../src/http/accept.ts'
import { isBrowserNavigation, prefersJson, wwwAuthenticate, writeSocketResponse, type SocketRefusal } from '../../../src/http/respond.ts'

const request = (accept: string | undefined, method = 'GET') => ({ method, headers: accept === undefined ? {} : { accept } }) as unknown as IncomingMessage

describe('parseAccept / qualityOf', () => {
  it('parses ranges, weights and wildcards, case-insensitively', () => {
    expect(parseAccept('Text/HTML, application/json;q=0.5 , */*;Q=0.1')).toEqual([
      { type: 'text', subtype: 'html', q: 1 },
      { type: 'application', subtype: 'json', q: 0.5 },
      { type: '*', subtype: '*', q: 0.1 },
    ])
  })

  it('drops malformed ranges and malformed weights instead of guessing', () => {
    expect(parseAccept('text/html;q=2, text/plain;q=abc, application/json;q=0.5000, html, */json, /x, ,image/png;q=0.25')).toEqual([{ type: 'image', subtype: 'png', q: 0.25 }])
  })

  it('a quoted parameter may hold , and ; without splitting the range', () => {
    expect(parseAccept('text/html;foo="a,b;q=0", application/json;q=0.2')).toEqual([
      { type: 'text', subtype: 'html', q: 1 },
      { type: 'application', subtype: 'json', q: 0.2 },
    ])
  })

  it('the first q is the weight; later parameters are accept-extensions', () => {
    expect(parseAccept('text/html;level=1;q=0.3;ext=1;q=0.9')).toEqual([{ type: 'text', subtype: 'html', q: 0.3 }])
  })

  it('matchOf says how specific the deciding range is', () => {
    const ranges = parseAccept('text/html, */*;q=0.9')
    expect(matchOf(ranges, 'text', 'html')).toEqual({ q: 1, specificity: 2 })
    expect(matchOf(ranges, 'application', 'json')).toEqual({ q: 0.9, specificity: 0 })
    expect(matchOf(parseAccept('application/*'), 'application', 'json')).toEqual({ q: 1, specificity: 1 })
    expect(matchOf(parseAccept('image/png'), 'text', 'html')).toEqual({ q: 0, specificity: -1 })
  })

  it('the most specific matching range decides (RFC 9110 §12.5.1)', () => {
    const ranges = parseAccept('text/*;q=0.3, text/html;q=0.7, */*;q=0.5')
    expect(qualityOf(ranges, 'text', 'html')).toBe(0.7)
    expect(qualityOf(ranges, 'text', 'plain')).toBe(0.3)
    expect(qualityOf(ranges, 'application', 'json')).toBe(0.5)
    expect(qualityOf(parseAccept('text/html;q=0, */*'), 'text', 'html')).toBe(0)
    expect(qualityOf(parseAccept('*/*'), 'text', 'html', true)).toBe(0)
    expect(qualityOf([], 'text', 'html')).toBe(0)
  })

  it('stays linear on a hostile header', () => {
    const hostile = `"${'a,'.repeat(40_000)}`
    const started = performance.now()
    parseAccept(hostile)
    parseAccept(';'.repeat(80_000))
    expect(performance.now() - started).toBeLessThan(500)
  })
})

describe('body type and browser navigation by Accept', () => {
  it.each([
    [undefined, true],
    ['', true],
    ['application/json', true],
    ['*/*', true],
    ['application/json, text/html;q=0.1', true],
    ['text/html;q=0', true],
    ['text/html;q=0.5, application/json;q=0.5', true],
    ['text/html', false],
    ['text/*', false],
    ['text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', false],
    ['application/json;q=0.1, text/html', false],
    // A tie goes to the more specific range (RFC 9110 §12.5.1): HTML named, JSON only by a wildcard.
    ['text/html,*/*', false],
    ['text/html, application/*', false],
    ['text/*, */*', false],
    ['application/json, */*', true],
    ['*/*, text/html;q=0.5, application/json;q=0.5', true],
    ['text/*, application/*', true],
    ['text/html;q=0, */*;q=0', true],
  ])('Accept %s → JSON %s', (accept, json) => {
    expect(prefersJson(request(accept))).toBe(json)
  })

  it.each([
    ['text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', 'GET', true],
    ['TEXT/HTML', 'HEAD', true],
    ['application/json, text/html;q=0.1', 'GET', true],
    ['text/html;q=0', 'GET', false],
    ['text/html;q=0.000, */*', 'GET', false],
    ['*/*', 'GET', false],
    ['text/*', 'GET', false],
    ['application/json', 'GET', false],
    [undefined, 'GET', false],
    ['text/html', 'POST', false],
  ])('Accept %s on %s → navigation %s', (accept, method, navigation) => {
    expect(isBrowserNavigation(request(accept, method))).toBe(navigation)
  })
})

describe('wwwAuthenticate', () => {
  it('quotes and backslashes inside the description become apostrophes; CR/LF spaces', () => {
    const [bearer] = wwwAuthenticate('credential-malformed', 'The X-IAP-Authorization header must be "Bearer <JWT>".', false)
    expect(bearer).toBe(`Bearer realm="gitlab-iap", error="invalid_token", error_description="The X-IAP-Authorization header must be 'Bearer <JWT>'."`)
    expect(wwwAuthenticate('x', 'a\\b\r\nc', false)[0]).toContain(`error_description="a'b  c"`)
  })

  it('a bare challenge without a credential, Basic beside it on git routes', () => {
    expect(wwwAuthenticate('credentials-missing', undefined, true)).toEqual(['Bearer realm="gitlab-iap"', 'Basic realm="gitlab-iap"'])
  })
})

describe('writeSocketResponse', () => {
  function written(status: number, requestId: string, extra: string[] = [], refusal: SocketRefusal = {}): { head: string; body: Record<string, unknown> } {
    const socket = new PassThrough()
    writeSocketResponse(socket, status, requestId, extra, refusal)
    const text = socket.read().toString('utf8') as string
    const [head, body] = text.split('\r\n\r\n') as [string, string]
    expect(head).toMatch(new RegExp(`content-length: ${Buffer.byteLength(body)}\\r\\n`))
    return { head, body: JSON.parse(body) as Record<string, unknown> }
  }

  it('a 403 names the rule and the reason, like the status page JSON', () => {
    const { head, body } = written(403, 'rid-1', [], { rule: 'engineering', reason: 'no-group-match' })
    expect(head).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/)
    expect(body).toEqual({ error: 'Forbidden', requestId: 'rid-1', rule: 'engineering', reason: 'no-group-match' })
  })

  it('a 401 names the reason and carries the extra headers; no rule when none decided', () => {
    const { head, body } = written(401, 'rid-2', ['www-authenticate: Bearer realm="gitlab-iap"'], { reason: 'token-expired', rule: null })
    expect(head).toContain('\r\nwww-authenticate: Bearer realm="gitlab-iap"')
    expect(body).toEqual({ error: 'Unauthorized', requestId: 'rid-2', reason: 'token-expired' })
  })

  it('without details, the status and request id only', () => {
    expect(written(400, 'rid-3').body).toEqual({ error: 'Bad Request', requestId: 'rid-3' })
  })
})
