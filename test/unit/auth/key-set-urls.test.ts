/** What /readyz and the log say about an issuer's keys: where they come from, never a secret in the URL. */
import { describe, expect, it } from 'vitest'
import { createIssuerKeys } from '../../../src/auth/bearer/key-set.ts'
import type { IssuerSpec } from '../../../src/auth/bearer/issuers.ts'

const spec = (jwksUri: string): IssuerSpec =>
  ({ label: 'ci', iss: 'https://gitlab.example.com', discoveryUrl: 'https://gitlab.example.com/.well-known/openid-configuration', jwksUri, audiences: ['x'], algorithms: ['RS256'], kind: 'ci' }) as unknown as IssuerSpec

describe('issuer key status', () => {
  it('shows the JWKS URL without its query, and a fetch error without the URL it quotes', async () => {
    const url = 'https://idp.example.com/keys?private_token=glpat-Secret'
    const logged: unknown[] = []
    // undici quotes the URL in some errors ("Failed to parse URL from ...").
    const failing = (async (target: string) => {
      throw Object.assign(new TypeError(`Failed to parse URL from ${target}`), { cause: { code: 'ERR_INVALID_URL' } })
    }) as unknown as typeof fetch
    const keys = createIssuerKeys(spec(url), { metrics: { jwksFetch: () => {} }, fetch: failing, retryMs: 60_000, log: { warn: (obj) => logged.push(obj), info: () => {} } })
    await keys.start()
    keys.close()
    const status = keys.status()
    expect(status.jwksUri).toBe('https://idp.example.com/keys')
    expect(status.lastError).toMatch(/https:\/\/idp\.example\.com\/keys/)
    expect(JSON.stringify([status, logged])).not.toMatch(/glpat|Secret/)
  })
})
