import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { BIN, ROOT, writeConfig } from '../../helpers/serve.ts'

const run = promisify(execFile)
async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, timeout: 15_000 })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

const broken = `
server: { publicUrl: "https://gitlab.example.com", listen: "127.0.0.1:0" }
admin: { listen: "127.0.0.1:0" }
upstream: { url: "http://127.0.0.1:9" }
groups: { admins: "6c0bd1d2-0000-4000-8000-000000000001" }
policy:
  rules:
    - { name: health, paths: ["/-/health"], public: true }
    - { name: api, paths: ["/api/**"], groups: [admins] }
    - { name: admin-area, paths: ["/admin/**"], groups: [admns] }
`

describe('gitlab-iap check / serve on bad input', () => {
  it('check exits 1 and names the key path of the problem', async () => {
    const file = writeConfig(broken)
    const result = await cli(['check', '--config', file.path])
    file.cleanup()
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe('gitlab-iap: policy.rules[2].groups[0]: unknown group alias "admns"')
    expect(result.stderr).not.toMatch(/\n\s+at /)
  })

  it('serve refuses to start on the same config', async () => {
    const file = writeConfig(broken)
    const result = await cli(['serve', '--config', file.path])
    file.cleanup()
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('policy.rules[2].groups[0]: unknown group alias "admns"')
  })

  it('says which environment variable is missing', async () => {
    const file = writeConfig(broken.replace('listen: "127.0.0.1:0" }\nupstream', 'listen: "127.0.0.1:0", token: "${IAP_ADMIN_TOKEN_NOT_SET}" }\nupstream'))
    const result = await cli(['check', '--config', file.path])
    file.cleanup()
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe('gitlab-iap: admin.token: environment variable IAP_ADMIN_TOKEN_NOT_SET is not set')
  })

  it('check names every missing variable at once; an empty $GITLAB_IAP_CONFIG falls back to ./config.yaml', async () => {
    const file = writeConfig(broken.replace('groups: [admns]', 'groups: [admins]').replace('listen: "127.0.0.1:0" }\nupstream', 'listen: "127.0.0.1:0", token: "${IAP_T_UNSET_1}" }\nsession: { secret: "${IAP_T_UNSET_2}" }\nupstream'))
    const result = await cli(['check', '--config', file.path])
    file.cleanup()
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe('gitlab-iap: admin.token: environment variable IAP_T_UNSET_1 is not set; session.secret: environment variable IAP_T_UNSET_2 is not set')
    const fallback = await cli(['check'], { GITLAB_IAP_CONFIG: '' })
    expect(fallback.stderr.trim()).toBe('gitlab-iap: cannot read config config.yaml: no such file (pass --config FILE or set GITLAB_IAP_CONFIG; config.example.yaml lists every key)')
  })

  it('check warns when the access-log file could not be written on this machine', async () => {
    const file = writeConfig(broken.replace('groups: [admns]', 'groups: [admins]') + `accessLog: { output: "${BIN}/sub/access.log" }\n`)
    const result = await cli(['check', '--config', file.path])
    file.cleanup()
    expect(result.code).toBe(0)
    expect(result.stderr).toContain(`warning: accessLog.output: ${BIN} is not a directory on this machine (serve would run without its access log) (IAP_WARN_LOG_OUTPUT_UNWRITABLE)\n`)
  })

  it('finds the config through $GITLAB_IAP_CONFIG and prints a summary', async () => {
    const file = writeConfig(broken.replace('groups: [admns]', 'groups: [admins]'))
    const result = await cli(['check'], { GITLAB_IAP_CONFIG: file.path })
    file.cleanup()
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('valid')
    expect(result.stdout).toMatch(/1\. health.*public/)
    expect(result.stdout).toMatch(/3\. admin-area.*groups admins/)
  })

  it('reports an unreadable file in one line', async () => {
    const result = await cli(['check', '--config', '/nonexistent/config.yaml'])
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe('gitlab-iap: cannot read config /nonexistent/config.yaml: no such file')
  })

  it.each(['serve', 'check'])('%s --help prints usage', async (command) => {
    const result = await cli([command, '--help'])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(`Usage: gitlab-iap ${command}`)
  })

  it("SPEC's example config passes check, which warns about the TLS files it cannot read here; serve refuses to start without them", async () => {
    // The example block of SPEC.md's Configuration section, verbatim; its certificate paths exist nowhere.
    const spec = join(ROOT, 'test/fixtures/spec-example.yaml')
    const env = { IAP_ADMIN_TOKEN: 'a'.repeat(32), GITLAB_API_TOKEN: 'glpat-example', ENTRA_CLIENT_SECRET: 'example-secret', IAP_SESSION_SECRET: 's'.repeat(48), IAP_LOG_KEY: 'k'.repeat(48) }
    const check = await cli(['check', '--config', spec], env)
    expect(check.code).toBe(0)
    expect(check.stdout).toContain(`config ${spec}: valid`)
    expect(check.stderr).toContain('warning: server.tls.cert: cannot read /path/tls.crt: no such file on this machine (serve refuses to start without it) (IAP_WARN_FILE_UNREADABLE)\n')
    expect(check.stderr).toContain('warning: server.tls.key: cannot read /path/tls.key: no such file on this machine (serve refuses to start without it) (IAP_WARN_FILE_UNREADABLE)\n')
    const serve = await cli(['serve', '--config', spec], env)
    expect(serve.code).toBe(1)
    expect(serve.stderr.trim()).toBe('gitlab-iap: server.tls.cert: cannot read /path/tls.crt: no such file')
  })

  it('rejects an unknown flag with a one-line error', async () => {
    const result = await cli(['check', '--frobnicate'])
    expect(result.code).toBe(2)
    expect(result.stderr.trim()).toBe("gitlab-iap: Unknown option '--frobnicate'")
  })
})
