import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../../src/config/load.ts'
import { configWarnings } from '../../../src/config/warnings.ts'

const base = `
server: { publicUrl: "https://gitlab.example.com" }
upstream: { url: "http://gitlab:8181" }
`
const entra = (extra = '') => `entra: { tenantId: "00000000-0000-0000-0000-000000000000", clientId: "11111111-1111-1111-1111-111111111111"${extra} }\n`

describe('IAP_WARN_SIGN_IN_OFF', () => {
  it('warns on entra.clientSecret when Entra is configured without a client secret (browser sign-in off)', () => {
    const warnings = configWarnings(parseConfig(`${base}${entra()}`, {}))
    expect(warnings.map((w) => [w.code, w.key])).toEqual([['IAP_WARN_SIGN_IN_OFF', 'entra.clientSecret']])
    expect(warnings[0]!.message).toMatch(/browser sign-in is off.*401/)
    expect(warnings[0]!.message).toMatch(/API.*git/)
  })

  it('also when the secret is an empty ${VAR} (the key is then unset)', () => {
    const warnings = configWarnings(parseConfig(`${base}${entra(', clientSecret: "${ENTRA_CLIENT_SECRET}"')}`, { ENTRA_CLIENT_SECRET: '' }))
    expect(warnings.map((w) => w.code)).toEqual(['IAP_WARN_SIGN_IN_OFF'])
  })

  it('is silent with a client secret (and session secret), and without any entra section', () => {
    const withSecret = `${base}${entra(', clientSecret: "s3cret"')}session: { secret: "${'x'.repeat(32)}" }\n`
    expect(configWarnings(parseConfig(withSecret, {}))).toEqual([])
    expect(configWarnings(parseConfig(base, {}))).toEqual([])
  })
})
