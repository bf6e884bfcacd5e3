/** `check` may run where the files `serve` reads are not mounted: those it cannot read are warnings, unusable ones errors. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { main } from '../../../src/cli/main.ts'
import { parseConfig } from '../../../src/config/load.ts'
import { unreadableFileWarnings } from '../../../src/config/warnings.ts'
import { withCapturedIo } from '../../helpers/cli-io.ts'
import { MINIMAL_CONFIG } from '../../helpers/config.ts'

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gitlab-iap-check-files-'))
  writeFileSync(join(dir, 'not-pem'), 'hello\n')
  mkdirSync(join(dir, 'a-directory'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const withTls = (cert: string, key: string) =>
  `server: { publicUrl: "https://gitlab.example.com", tls: { cert: "${join(dir, cert)}", key: "${join(dir, key)}" } }\nupstream: { url: "http://gitlab:8181" }\n`
const check = (text: string) => {
  const path = join(dir, 'config.yaml')
  writeFileSync(path, text)
  return withCapturedIo((io) => main(['check', '--config', path], io))
}

describe('check and the files serve reads at start-up', () => {
  it('warns (exit 0) about TLS files missing on this machine, with a stable code naming key and path', async () => {
    const text = withTls('missing.crt', 'missing.key')
    const result = await check(text)
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(': valid')
    expect(result.stderr.trim().split('\n')).toEqual([
      `warning: server.tls.cert: cannot read ${join(dir, 'missing.crt')}: no such file on this machine (serve refuses to start without it) (IAP_WARN_FILE_UNREADABLE)`,
      `warning: server.tls.key: cannot read ${join(dir, 'missing.key')}: no such file on this machine (serve refuses to start without it) (IAP_WARN_FILE_UNREADABLE)`,
    ])
    expect(unreadableFileWarnings(parseConfig(text, {})).map((w) => [w.code, w.key])).toEqual([
      ['IAP_WARN_FILE_UNREADABLE', 'server.tls.cert'],
      ['IAP_WARN_FILE_UNREADABLE', 'server.tls.key'],
    ])
    expect(unreadableFileWarnings(parseConfig(MINIMAL_CONFIG, {}))).toEqual([])
  })

  it.each([
    ['not-pem', 'missing.key', /^gitlab-iap: server\.tls\.cert: \S+not-pem is not a PEM certificate: /],
    ['missing.crt', 'not-pem', /^gitlab-iap: server\.tls\.key: \S+not-pem is not a PEM private key: /],
    ['a-directory', 'missing.key', /^gitlab-iap: server\.tls\.cert: cannot read \S+a-directory: /],
    ['not-pem', 'not-pem', /^gitlab-iap: server\.tls: the certificate and key cannot be used: /],
  ])('refuses (exit 1) a file that is there but unusable: cert %s, key %s', async (cert, key, message) => {
    const result = await check(withTls(cert, key))
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(message)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
  })
})

describe('check prints each warning with its code', () => {
  it('as `warning: <key>: <message> (<code>)`, the code serve logs and docs/errors.md lists', async () => {
    const text =
      `server: { publicUrl: "https://gitlab.example.com" }\nupstream: { url: "http://gitlab:8181" }\n` +
      `admin: { token: "short" }\n` +
      `entra: { tenantId: "00000000-0000-0000-0000-000000000000", clientId: "11111111-1111-1111-1111-111111111111" }\n` +
      `policy:\n  rules:\n    - { name: vault, projects: ["**/vault"], deny: true }\n`
    const result = await check(text)
    expect(result.code).toBe(0)
    const lines = result.stderr.trim().split('\n')
    expect(lines).toHaveLength(3)
    expect(lines[0]).toMatch(/^warning: admin\.token: shorter than 16 bytes: .* \(IAP_WARN_ADMIN_TOKEN_SHORT\)$/)
    expect(lines[1]).toMatch(/^warning: entra\.clientSecret: not set: browser sign-in is off, .* \(IAP_WARN_SIGN_IN_OFF\)$/)
    expect(lines[2]).toMatch(/^warning: policy\.rules\[0\]\.projects\[0\]: "\*\*\/vault" lies below every top-level group: .* \(IAP_WARN_PROJECTS_EVERY_GROUP\)$/)
  })

  it('the access-log file serve could not write here too', async () => {
    const result = await check(`server: { publicUrl: "https://gitlab.example.com" }\nupstream: { url: "http://gitlab:8181" }\naccessLog: { output: "${join(dir, 'not-pem', 'access.log')}" }\n`)
    expect(result.code).toBe(0)
    expect(result.stderr).toBe(`warning: accessLog.output: ${join(dir, 'not-pem')} is not a directory on this machine (serve would run without its access log) (IAP_WARN_LOG_OUTPUT_UNWRITABLE)\n`)
  })
})
