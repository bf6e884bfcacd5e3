import { describe, it, expect } from 'vitest'
import { parseRedisUrl, redactRedisError, redactRedisUrl } from '../../../src/auth/session/redis-url.ts'

describe('parseRedisUrl', () => {
  it.each([
    ['redis://redis:6379/0', { mode: 'standalone', node: { host: 'redis', port: 6379 }, tls: false, db: 0 }],
    ['redis://127.0.0.1', { mode: 'standalone', node: { host: '127.0.0.1', port: 6379 }, tls: false, db: 0 }],
    ['rediss://:p%40ss@redis.example:6380/3', { mode: 'standalone', node: { host: 'redis.example', port: 6380 }, tls: true, db: 3, password: 'p@ss' }],
    ['redis://user:pw@[::1]:7000', { mode: 'standalone', node: { host: '::1', port: 7000 }, tls: false, db: 0, username: 'user', password: 'pw' }],
    ['redis-sentinel://s1:26379,s2:26380,s3/mymaster/2', { mode: 'sentinel', sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26380 }, { host: 's3', port: 26379 }], name: 'mymaster', db: 2 }],
    ['redis-cluster://n1:7000,n2:7001', { mode: 'cluster', nodes: [{ host: 'n1', port: 7000 }, { host: 'n2', port: 7001 }], tls: false }],
  ])('%s', (url, expected) => {
    expect(parseRedisUrl(url)).toEqual(expected)
  })

  it('lets session.redis.password win over the URL', () => {
    expect(parseRedisUrl('redis://:inurl@h:1/0', 'fromconfig')).toMatchObject({ password: 'fromconfig' })
  })

  it.each([
    'http://redis:6379',
    'redis://a:1,b:2/0',
    'redis://h:99999',
    'redis://h/0/1',
    'redis://h/x',
    'redis-sentinel://s1:26379',
    'redis-cluster://n1:7000/0',
    'redis://',
  ])('refuses %s', (url) => {
    expect(() => parseRedisUrl(url)).toThrow(TypeError)
  })
})

describe('parseRedisUrl never quotes the URL it refuses', () => {
  // Each URL holds a secret ("Secret", "Pw", "B") where a password would be; the message must say what
  // is wrong without repeating any of it (it reaches `check` output, serve's stderr and CI logs).
  it.each([
    ['a "/" in the password', 'redis://:Pw/Secret+Part@127.0.0.1:6379/0', /percent-encoded.*%2F/],
    ['an "@" in the password', 'redis://:Pw@Secret@127.0.0.1:6379/0', /percent-encoded.*%40/],
    ['credentials per sentinel', 'redis-sentinel://:A@h1,:B@h2/m', /once, before the first host/],
    ['a "?" in the password', 'redis://:Pw?Secret@127.0.0.1:6379/0', /percent-encoded.*%3F/],
    ['a "#" in the password', 'redis://:Pw#Secret@127.0.0.1:6379/0', /percent-encoded.*%23/],
    ['a stray "%" in the password', 'redis://:Pw%zzSecret@127.0.0.1:6379/0', /%25/],
    ['a bad host', 'redis://:PwSecret@bad:host:1/0', /host/],
    ['a bad port', 'redis://:PwSecret@h:99999/0', /port/],
    ['a bad database', 'redis://:PwSecret@h:1/Secret', /database/],
  ])('%s', (_what, url, expected) => {
    let message = ''
    try {
      parseRedisUrl(url)
    } catch (err) {
      expect(err).toBeInstanceOf(TypeError)
      message = (err as Error).message
    }
    expect(message).toMatch(expected)
    expect(message).not.toMatch(/Secret|Pw|B@|:B|h2|bad:host|99999/)
  })
})

describe('redactRedisUrl', () => {
  it.each([
    ['redis://:Pw%2FSecret@127.0.0.1:6379/0', 'redis://***@127.0.0.1:6379/0'],
    ['rediss://user:Secret@[::1]:7000/2', 'rediss://***@[::1]:7000/2'],
    ['redis://redis:6379', 'redis://redis:6379/0'],
    ['redis-sentinel://:Secret@s1:26379,s2/mymaster/1', 'redis-sentinel://***@s1:26379,s2:26379/mymaster/1'],
    ['redis-cluster://:Secret@n1:7000,n2:7001', 'redis-cluster://***@n1:7000,n2:7001'],
  ])('%s → %s', (url, expected) => {
    expect(redactRedisUrl(url)).toBe(expected)
  })

  it('shows nothing of a URL it cannot parse', () => {
    expect(redactRedisUrl('redis-sentinel://:A@h1,:B@h2/m')).toBe('redis-sentinel://(invalid URL)')
    expect(redactRedisUrl('redis://:Pw/Secret@h/0')).not.toMatch(/Pw|Secret/)
  })
})

describe('redactRedisError', () => {
  it.each([
    ['getaddrinfo ENOTFOUND Secret@127.0.0.1', 'getaddrinfo ENOTFOUND ***@127.0.0.1'],
    ['connect to redis://user:Secret@h:1/0 failed', 'connect to redis://***@h:1/0 failed'],
    ['connect ECONNREFUSED 127.0.0.1:6379', 'connect ECONNREFUSED 127.0.0.1:6379'],
    ['WRONGPASS invalid username-password pair or user is disabled.', 'WRONGPASS invalid username-password pair or user is disabled.'],
  ])('%s', (message, expected) => {
    expect(redactRedisError(message)).toBe(expected)
  })

  it('removes the configured password wherever it appears', () => {
    expect(redactRedisError('ERR unexpected token hunter2-long near ...', 'hunter2-long')).toBe('ERR unexpected token *** near ...')
  })
})
