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
      `warning: server.tls.cert: cannot read ${join(dir, 'missing.crt')}: no such file on this machine (serve refuses to start without it)`,
      `warning: server.tls.key: cannot read ${join(dir, 'missing.key')}: no such file on this machine (serve refuses to start without it)`,
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
