import type { IncomingMessage } from 'node:http'
import { describe, it, expect } from 'vitest'
import { forwardableResponseHeaders, groupsHeaderValue, sanitizeRequestHeaders, setIdentityHeaders, utf8HeaderValue, withoutCookies } from '../../../src/proxy/headers.ts'
import type { Identity } from '../../../src/auth/identity.ts'
import { hasBody } from '../../../src/proxy/forward.ts'

const request = (headers: Record<string, string>) => ({ headers, socket: { remoteAddress: '::ffff:10.0.0.9' } }) as unknown as IncomingMessage
const base = { requestId: 'req-1', peerTrusted: false, scheme: 'https' as const, websocket: false }
const dropIap = (header: string) => withoutCookies(header, (name) => name === 'iap' || name.startsWith('iap-tx-'))

describe('sanitizeRequestHeaders', () => {
  it('keeps the client Authorization by default, drops it on null, replaces it on a string', () => {
    const given = { host: 'gitlab.example.com', authorization: 'Bearer entra' }
    expect(sanitizeRequestHeaders(request(given), base).authorization).toBe('Bearer entra')
    const dropped = sanitizeRequestHeaders(request(given), { ...base, authorization: null })
    expect(dropped).not.toHaveProperty('authorization')
    expect(sanitizeRequestHeaders(request(given), { ...base, authorization: 'Basic Z2l0bGFi' }).authorization).toBe('Basic Z2l0bGFi')
    // Replacing works when the client sent none under that name (X-IAP-Authorization carried the token).
    expect(sanitizeRequestHeaders(request({ host: 'h' }), { ...base, authorization: 'Basic eA==' }).authorization).toBe('Basic eA==')
  })

  it('passes the Cookie header through the filter, and leaves it out when nothing is left', () => {
    const mixed = sanitizeRequestHeaders(request({ host: 'h', cookie: '_gitlab_session=gl; iap=s1; iap-tx-abc=t; other=1' }), { ...base, cookie: dropIap })
    expect(mixed.cookie).toBe('_gitlab_session=gl; other=1')
    const onlyOurs = sanitizeRequestHeaders(request({ host: 'h', cookie: 'iap=s1; iap-tx-abc=t' }), { ...base, cookie: dropIap })
    expect(onlyOurs).not.toHaveProperty('cookie')
    expect(sanitizeRequestHeaders(request({ host: 'h', cookie: 'iap=s1' }), base).cookie).toBe('iap=s1')
  })

  it('sets provenance and the request id, never copying proxy-owned headers from the client', () => {
    const out = sanitizeRequestHeaders(request({ host: 'h', 'x-forwarded-user': 'mallory', x_forwarded_user: 'mallory', 'x-request-id': 'client' }), base)
    expect(out).toEqual({ host: 'h', 'x-forwarded-for': '10.0.0.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'h', 'x-request-id': 'req-1' })
  })

  it('drops the identity headers of other identity-aware proxies, which something behind GitLab may trust', () => {
    const spoofed = ['x-auth-request-preferred-username', 'x-auth-request-groups', 'x-auth-request-access-token', 'remote-user', 'remote-email', 'remote-groups', 'remote-name', 'x-remote-user', 'x-webauth-user']
    const out = sanitizeRequestHeaders(request({ host: 'h', ...Object.fromEntries(spoofed.map((name) => [name, 'mallory'])) }), base)
    for (const name of spoofed) expect(out, name).not.toHaveProperty(name)
  })

  it('Connection cannot nominate the end-to-end headers GitLab needs: Host, the body\'s framing and labels (RFC 9110 §7.6.1)', () => {
    const given = {
      host: 'gitlab.example.com', connection: 'Host, Content-Length, Content-Type, Content-Encoding, Cache-Control, X-Hop, close',
      'content-length': '11', 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip', 'cache-control': 'no-cache', 'x-hop': 'dropped',
    }
    const out = sanitizeRequestHeaders(request(given), base)
    expect(out).toEqual({
      host: 'gitlab.example.com', 'content-length': '11', 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip', 'cache-control': 'no-cache',
      'x-forwarded-for': '10.0.0.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'gitlab.example.com', 'x-request-id': 'req-1',
    })
    // The websocket handshake too (http-proxy-3 sends what this leaves).
    const ws = sanitizeRequestHeaders(request({ host: 'gitlab.example.com', connection: 'Upgrade, Host', upgrade: 'websocket' }), { ...base, websocket: true })
    expect(ws).toMatchObject({ host: 'gitlab.example.com', 'x-forwarded-host': 'gitlab.example.com', connection: 'Upgrade', upgrade: 'websocket' })
  })

  it('never forwards an underscore spelling of a framing header', () => {
    const out = sanitizeRequestHeaders(request({ host: 'h', 'content-length': '4', transfer_encoding: 'chunked', content_length: '40' }), base)
    expect(out).not.toHaveProperty('transfer_encoding')
    expect(out).not.toHaveProperty('content_length')
    expect(out['content-length']).toBe('4')
  })
})

describe('hasBody', () => {
  // `req.headers` are GitLab's by then (cleaned): whether a body follows is read from the raw framing.
  const sent = (rawHeaders: string[]) => ({ headers: {}, rawHeaders }) as unknown as IncomingMessage
  it('reads the framing the parser used, whatever the cleaned headers hold', () => {
    expect(hasBody(sent(['Host', 'h', 'Content-Length', '11', 'Connection', 'Content-Length']))).toBe(true)
    expect(hasBody(sent(['Host', 'h', 'transfer-encoding', 'chunked']))).toBe(true)
    expect(hasBody(sent(['Host', 'h', 'content-length', '0']))).toBe(false)
    expect(hasBody(sent(['Host', 'h']))).toBe(false)
  })
})

describe('withoutCookies', () => {
  it('removes by exact name only, keeping look-alikes and values that contain the name', () => {
    expect(dropIap('iapx=1; iap=2; a=iap; iap-tx-1=3')).toBe('iapx=1; a=iap')
    expect(dropIap(' iap=2 ')).toBeUndefined()
  })

  it('also removes them from comma-joined pairs (Rack 2 splits at commas), keeping the rest and commas inside values', () => {
    expect(dropIap('other=1, iap=secret')).toBe('other=1')
    expect(dropIap('iap=secret,other=1; b=2')).toBe('other=1; b=2')
    expect(dropIap('a=1; list=x,y, iap-tx-0=t')).toBe('a=1; list=x,y')
    expect(dropIap('iap=secret, iap-tx-1=t')).toBeUndefined()
  })
})

describe('forwardableResponseHeaders', () => {
  it('drops hop-by-hop, nominated and Transfer-Encoding headers and sets Connection for the client hop', () => {
    const given = { 'content-type': 'text/html', connection: 'keep-alive, X-Internal', 'keep-alive': 'timeout=5', 'x-internal': 'secret', 'transfer-encoding': 'chunked', 'set-cookie': ['a=1', 'b=2'] }
    expect(forwardableResponseHeaders(given, 'close')).toEqual({ 'content-type': 'text/html', 'set-cookie': ['a=1', 'b=2'], connection: 'close' })
    const own = (name: string) => name === 'iap' || name.startsWith('iap-tx-')
    expect(forwardableResponseHeaders({ 'set-cookie': ['iap=x; Path=/', ' iap-tx-1=y', 'a=1'] }, 'keep-alive', own)).toEqual({ 'set-cookie': ['a=1'], connection: 'keep-alive' })
    expect(forwardableResponseHeaders({ 'set-cookie': ['iap=x'], 'content-type': 'text/html' }, 'keep-alive', own)).toEqual({ 'content-type': 'text/html', connection: 'keep-alive' })
    expect(forwardableResponseHeaders({ 'content-length': '2', connection: 'keep-alive', upgrade: 'h2c' }, 'keep-alive')).toEqual({ 'content-length': '2', connection: 'keep-alive' })
  })

  it('keeps GitLab\'s own framing and labels even when its Connection names them', () => {
    const given = { connection: 'close, Content-Length, Content-Type, X-Internal', 'content-length': '2', 'content-type': 'text/plain', 'x-internal': 'secret' }
    expect(forwardableResponseHeaders(given, 'keep-alive')).toEqual({ 'content-length': '2', 'content-type': 'text/plain', connection: 'keep-alive' })
  })

  it('honours every Connection header when GitLab sends several', () => {
    const given = { connection: ['keep-alive', 'X-Internal, X-Other'], 'x-internal': 'secret', 'x-other': 'secret', link: ['<a>; rel=preload', '<b>; rel=preload'] }
    expect(forwardableResponseHeaders(given as never, 'keep-alive')).toEqual({ link: ['<a>; rel=preload', '<b>; rel=preload'], connection: 'keep-alive' })
  })
})

describe('identity headers', () => {
  const OID = '7a1d0c55-0000-4000-8000-000000000001'
  const ada: Identity = { kind: 'user', id: OID, name: 'ada@example.test', email: 'ada@example.test', groups: ['g1', 'g2'], roles: [], issuer: 'entra' }
  const headersFor = (identity: Identity) => {
    const headers: Record<string, string | string[] | undefined> = {}
    setIdentityHeaders(headers, identity)
    return headers
  }
  /** What GitLab reads: the bytes undici writes for a header string (one byte per character), as UTF-8. */
  const asGitLabReadsIt = (value: unknown) => Buffer.from(String(value), 'latin1').toString('utf8')

  it('an Entra user: plain values', () => {
    expect(headersFor(ada)).toEqual({ 'x-forwarded-user-id': OID, 'x-forwarded-user': 'ada@example.test', 'x-forwarded-email': 'ada@example.test', 'x-forwarded-groups': 'g1,g2' })
  })

  it('non-ASCII values go out as their UTF-8 bytes; ASCII values are the same string', () => {
    expect(utf8HeaderValue('ada@example.test')).toBe('ada@example.test')
    // Every character of the handed-over string is one byte (latin1), never above 0xFF: undici sends it as is.
    for (const value of ['renée@example.test', '李雷@example.test', 'ü😀']) {
      const sent = utf8HeaderValue(value)
      expect(sent).toMatch(/^[\u0000-\u00ff]*$/)
      expect(Buffer.from(sent, 'latin1')).toEqual(Buffer.from(value, 'utf8'))
    }
    const headers = headersFor({ ...ada, name: '李雷@example.test', email: 'renée@example.test', groups: ['équipe'] })
    expect(asGitLabReadsIt(headers['x-forwarded-user'])).toBe('李雷@example.test')
    expect(asGitLabReadsIt(headers['x-forwarded-email'])).toBe('renée@example.test')
    expect(asGitLabReadsIt(headers['x-forwarded-groups'])).toBe('équipe')
  })

  it('X-Forwarded-Groups: % and , inside a group are percent-encoded, so a value never splits', () => {
    expect(groupsHeaderValue(['g1', 'platform/infra'])).toBe('g1,platform/infra')
    expect(groupsHeaderValue(['admins,other', '100%', 'a%2Cb'])).toBe('admins%2Cother,100%25,a%252Cb')
    const sent = String(headersFor({ ...ada, groups: ['g-eng', 'admins,other'] })['x-forwarded-groups'])
    expect(sent.split(',').map(decodeURIComponent)).toEqual(['g-eng', 'admins,other'])
  })

  it('an extra issuer\'s id and name are qualified like its groups; the email is not', () => {
    const ci: Identity = { kind: 'ci', id: OID, name: OID, email: 'ada@example.test', groups: ['gitlab-ci:platform'], roles: [], issuer: 'gitlab-ci' }
    expect(headersFor(ci)).toEqual({
      'x-forwarded-user-id': `gitlab-ci:${OID}`, 'x-forwarded-user': `gitlab-ci:${OID}`, 'x-forwarded-email': 'ada@example.test', 'x-forwarded-groups': 'gitlab-ci:platform',
    })
    // An app-kind extra issuer: an id, no user headers.
    expect(headersFor({ kind: 'app', id: 'svc', groups: [], roles: [], issuer: 'partner' })).toEqual({ 'x-forwarded-user-id': 'partner:svc' })
  })

  it('nothing for anonymous', () => {
    expect(headersFor({ kind: 'anonymous', id: '', groups: [], roles: [], issuer: '' })).toEqual({})
  })
})
