import { describe, it, expect } from 'vitest'
import { parseRedisUrl } from '../../../src/auth/session/redis-url.ts'

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
