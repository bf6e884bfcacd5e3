/** `gitlab-iap check`'s summary shows where things are, never a secret held in a URL. */
import { describe, expect, it } from 'vitest'
import { summarizeConfig } from '../../../src/cli/check.ts'
import { parseConfig } from '../../../src/config/load.ts'

const summary = (text: string, env: NodeJS.ProcessEnv = {}) => summarizeConfig(parseConfig(text, env), 'config.yaml')
const minimal = `
server: { publicUrl: "https://gitlab.example.com" }
upstream: { url: "http://gitlab:8181" }
`

describe('check summary', () => {
  it.each([
    ['redis://:Pw%2FSecret%40@127.0.0.1:6379/0', 'redis://***@127.0.0.1:6379/0'],
    ['rediss://user:Secret@redis.example:6380/1', 'rediss://***@redis.example:6380/1'],
    ['redis-sentinel://:Secret@s1:26379,s2:26380/mymaster', 'redis-sentinel://***@s1:26379,s2:26380/mymaster/0'],
  ])('shows the Redis URL %s without its credentials', (url, shown) => {
    const text = summary(`${minimal}session: { store: redis, redis: { url: "\${REDIS_URL}" } }\n`, { REDIS_URL: url })
    expect(text).toContain(`sessions redis (${shown})`)
    expect(text).not.toMatch(/Secret|Pw/)
  })

  it('shows configured http(s) URLs without a query string', () => {
    const text = summary(`server: { publicUrl: "https://gitlab.example.com/?private_token=glpat-Secret" }\nupstream: { url: "http://gitlab:8181" }\n`)
    expect(text).toContain('public URL https://gitlab.example.com/')
    expect(text).toContain('upstream http://gitlab:8181 ')
    expect(text).not.toMatch(/glpat|Secret/)
  })
})
