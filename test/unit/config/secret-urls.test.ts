/**
 * URLs in the config that could carry a secret: a Redis URL is checked with the parser `serve` uses,
 * so `check` refuses exactly what `serve` would; http(s) URLs never carry credentials (the proxy never
 * sends them). No message quotes the URL it refuses.
 */
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../../src/config/load.ts'
import { configErrorOf, MINIMAL_CONFIG } from '../../helpers/config.ts'

const minimal = MINIMAL_CONFIG
const withRedis = `${minimal}session: { store: redis, redis: { url: "\${REDIS_URL}" } }\n`
const errorOf = configErrorOf

describe('session.redis.url', () => {
  it.each([
    ['a "/" in the password', 'redis://:Pw/Secret+Part@127.0.0.1:6379/0', /percent-encoded/],
    ['an "@" in the password', 'redis://:Pw@Secret@127.0.0.1:6379/0', /percent-encoded/],
    ['credentials per sentinel', 'redis-sentinel://:A@h1,:B@h2/m', /before the first host/],
    ['two hosts in redis://', 'redis://a:1,b:2/0', /one host/],
  ])('refuses %s, as serve would, without quoting the URL', (_what, url, expected) => {
    const err = errorOf(withRedis, { REDIS_URL: url })
    expect(err.code).toBe('IAP_ERR_CONFIG_INVALID')
    expect(err.message).toMatch(/^session\.redis\.url: /)
    expect(err.message).toMatch(expected)
    expect(err.message).not.toMatch(/Secret|Pw|:B@|h2/)
  })

  it('accepts a percent-encoded password, and says once that the scheme is wrong', () => {
    expect(parseConfig(withRedis, { REDIS_URL: 'redis://:Pw%2FSecret%40@127.0.0.1:6379/0' }).session.redis?.url).toBe('redis://:Pw%2FSecret%40@127.0.0.1:6379/0')
    expect(errorOf(withRedis, { REDIS_URL: 'http://redis:6379' }).message).toBe('session.redis.url: must be a redis://, rediss://, redis-sentinel:// or redis-cluster:// URL')
  })
})

describe('http(s) URLs carry no credentials', () => {
  it.each([
    ['upstream.url', `server: { publicUrl: "https://gitlab.example.com" }\nupstream: { url: "\${URL}" }\n`],
    ['server.publicUrl', `server: { publicUrl: "\${URL}" }\nupstream: { url: "http://gitlab:8181" }\n`],
    ['issuers[0].jwksUri', `${minimal}issuers: [{ name: ci, issuer: "https://gitlab.example.com", audiences: [x], jwksUri: "\${URL}" }]\n`],
    ['issuers[0].issuer', `${minimal}issuers: [{ name: ci, issuer: "\${URL}", audiences: [x] }]\n`],
    ['entra.authority', `${minimal}entra: { tenantId: 6c0bd1d2-0000-4000-8000-000000000001, clientId: c, authority: "\${URL}" }\n`],
    ['entra.graphUrl', `${minimal}entra: { tenantId: 6c0bd1d2-0000-4000-8000-000000000001, clientId: c, graphUrl: "\${URL}" }\n`],
  ])('%s: user:password@ is refused without quoting it', (key, text) => {
    const err = errorOf(text, { URL: 'http://root:PASSsecret@127.0.0.1:8181' })
    expect(err.code).toBe('IAP_ERR_CONFIG_INVALID')
    expect(err.message).toMatch(new RegExp(`^${key.replace(/[[\].]/g, '\\$&')}: .*user name or password`))
    expect(err.message).not.toMatch(/PASSsecret|root/)
  })

  it('still accepts ordinary URLs, ${VAR} references and the defaults', () => {
    const config = parseConfig(
      `server: { publicUrl: "\${PUBLIC}" }\nupstream: { url: "\${UPSTREAM}" }\nentra: { tenantId: 6c0bd1d2-0000-4000-8000-000000000001, clientId: c }\nissuers: [{ name: ci, issuer: "https://gitlab.example.com", audiences: [x], jwksUri: "https://gitlab.example.com/oauth/discovery/keys" }]\n`,
      { PUBLIC: 'https://gitlab.example.com', UPSTREAM: 'http://gitlab-webservice:8181' },
    )
    expect(config.upstream.url).toBe('http://gitlab-webservice:8181')
    expect(config.entra?.authority).toBe('https://login.microsoftonline.com')
    expect(config.entra?.graphUrl).toBe('https://graph.microsoft.com')
    // explain: an unset variable still stands in as a URL.
    expect(parseConfig(`server: { publicUrl: "https://g.example.com" }\nupstream: { url: "\${UPSTREAM}" }\n`, {}, 'config', { missingEnv: 'placeholder' }).upstream.url).toBe('https://unset.invalid')
  })
})
