import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { MAX_CONFIG_VALUES, parseConfig } from '../../../src/config/load.ts'
import { parseDurationMs, parseSizeBytes } from '../../../src/config/units.ts'
import { configJsonSchema } from '../../../src/cli/main.ts'
import { configWarnings, restartRequiredKeys } from '../../../src/config/warnings.ts'
import { configErrorOf, MINIMAL_CONFIG } from '../../helpers/config.ts'

const minimal = MINIMAL_CONFIG
const errorOf = configErrorOf

describe('config loading', () => {
  it('fills defaults and freezes the result', () => {
    const config = parseConfig(minimal, {})
    expect(config.server.listen).toBe('0.0.0.0:8080')
    expect(config.upstream.timeoutSeconds).toBe(3600)
    expect(config.session.absoluteTimeout).toBe(12 * 3600_000)
    expect(config.session.refreshInterval).toBe(600_000)
    expect(config.accessLog.rotate.size).toBe(100 * 1024 * 1024)
    expect(config.session.maxSessionMemory).toBe(128 * 1024 * 1024)
    expect(parseConfig(`${minimal}session: { maxSessionMemory: 1GiB }\n`, {}).session.maxSessionMemory).toBe(1024 ** 3)
    expect(config.policy.default).toBe('deny')
    expect(Object.isFrozen(config.server)).toBe(true)
  })

  it('expands ${VAR} and names a missing variable with its key path', () => {
    const text = `${minimal}admin: { token: "\${ADMIN_TOKEN}" }\n`
    expect(parseConfig(text, { ADMIN_TOKEN: 'a-long-admin-token-value' }).admin.token).toBe('a-long-admin-token-value')
    const err = errorOf(text)
    expect(err.code).toBe('IAP_ERR_CONFIG_ENV_MISSING')
    expect(err.message).toBe('admin.token: environment variable ADMIN_TOKEN is not set')
  })

  it('names every missing variable at once; explain-style loading stands in placeholders and names a variable only where its placeholder fails', () => {
    const text = `${minimal}admin: { token: "\${ADMIN_TOKEN}" }\nsession: { secret: "\${SESSION_SECRET}" }\n`
    expect(errorOf(text).message).toBe('admin.token: environment variable ADMIN_TOKEN is not set; session.secret: environment variable SESSION_SECRET is not set')
    expect(parseConfig(text, {}, 'config', { missingEnv: 'placeholder' }).policy.default).toBe('deny')
    // A URL, GUID or address gets a stand-in of its shape; a key no stand-in fits (a duration) names its variable, once.
    expect(parseConfig(`server: { publicUrl: "https://g.example.com" }\nupstream: { url: "\${UPSTREAM}" }\nentra: { tenantId: "\${TENANT}", clientId: x }\n`, {}, 'config', { missingEnv: 'placeholder' }).upstream.url).toBe('https://unset.invalid')
    expect(() => parseConfig(`${minimal}session: { idleTimeout: "\${IDLE}" }\n`, {}, 'config', { missingEnv: 'placeholder' })).toThrow(
      /^session\.idleTimeout: environment variable IDLE is not set$/,
    )
  })

  it('${VAR:-default} falls back when VAR is unset or empty; a whole-value variable can be a number or a boolean', () => {
    const text = `${minimal}admin: { token: "\${ADMIN_TOKEN:-fallback-token-0123456789}" }\n`
    expect(parseConfig(text, {}).admin.token).toBe('fallback-token-0123456789')
    expect(parseConfig(text, { ADMIN_TOKEN: '' }).admin.token).toBe('fallback-token-0123456789')
    expect(parseConfig(text, { ADMIN_TOKEN: 'from-env-token-0123456789' }).admin.token).toBe('from-env-token-0123456789')
    const typed = parseConfig(`server: { publicUrl: "https://g.example.com" }\nupstream: { url: "http://gitlab:8181", timeoutSeconds: "\${TIMEOUT}" }\naccessLog: { rotate: { compress: "\${COMPRESS}" } }\n`, { TIMEOUT: '60', COMPRESS: 'false' })
    expect(typed.upstream.timeoutSeconds).toBe(60)
    expect(typed.accessLog.rotate.compress).toBe(false)
    // Only a whole value is read as a number: text around a variable keeps it a string (and the key then rejects it).
    expect(errorOf(`server: { publicUrl: "https://g.example.com" }\nupstream: { url: "http://gitlab:8181", timeoutSeconds: "1\${TIMEOUT}" }\n`, { TIMEOUT: '0' }).message).toMatch(/^upstream\.timeoutSeconds: /)
    // A variable's text never becomes structure: it is expanded after YAML parsing.
    expect(parseConfig(`${minimal}admin: { token: "\${T}" }\n`, { T: 'x\nbogus: 1 0123456789' }).admin.token).toBe('x\nbogus: 1 0123456789')
  })

  it('reads YAML merge keys, ":8080" listeners, and refuses an admin listener on the main port', () => {
    const config = parseConfig(`${minimal}policy:\n  rules:\n    - &base { name: a, paths: ["/a"], public: true }\n    - { <<: *base, name: b, paths: ["/b"] }\n`, {})
    expect(config.policy.rules.map((r) => [r.name, r.paths, r.public])).toEqual([['a', ['/a'], true], ['b', ['/b'], true]])
    expect(parseConfig(`server: { publicUrl: "https://g.example.com", listen: ":8080" }\nupstream: { url: "http://gitlab:8181" }\n`, {}).server.listen).toBe('0.0.0.0:8080')
    expect(errorOf(`server: { publicUrl: "https://g.example.com", listen: "0.0.0.0:9090" }\nupstream: { url: "http://gitlab:8181" }\n`).message).toMatch(/^admin\.listen: same address as server\.listen/)
  })

  it('YAML errors name the line and column; a second document is refused in plain words', () => {
    expect(errorOf('server:\n  a: 1\n   b: 2\n').message).toMatch(/^config:\d+:\d+: invalid YAML: /)
    expect(errorOf(`${minimal}---\nother: 1\n`).message).toMatch(/^config:\d+:1: invalid YAML: a config file holds one YAML document; a second one starts here$/)
  })

  it('refuses rules that can never allow anyone and methods GitLab never serves', () => {
    expect(errorOf(`${minimal}policy: { rules: [ { name: a, paths: ["/x"], groups: [] } ] }\n`).message).toMatch(/^policy\.rules\[0\]\.groups: an empty list never allows anyone/)
    expect(errorOf(`${minimal}policy: { rules: [ { name: a, paths: ["/x"], public: true, methods: [GETT] } ] }\n`).message).toBe('policy.rules[0].methods[0]: unknown HTTP method "GETT" (GitLab serves GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)')
    expect(parseConfig(`${minimal}policy: { rules: [ { name: a, paths: ["/x"], public: true, methods: [get, Head] } ] }\n`, {}).policy.rules[0]!.methods).toEqual(['GET', 'HEAD'])
  })

  it('an optional key whose only ${VAR} is empty is unset; a required one is reported as required', () => {
    expect(parseConfig(`${minimal}admin: { token: "\${ADMIN_TOKEN}" }\n`, { ADMIN_TOKEN: '' }).admin.token).toBeUndefined()
    expect(errorOf(`server: { publicUrl: "https://g.example.com" }\nupstream: { url: "\${UPSTREAM}" }\n`, { UPSTREAM: '' }).message).toMatch(/^upstream\.url: /)
    // Only a value that is exactly one variable: text around it stays (and an empty result is still an error).
    expect(errorOf(`${minimal}admin: { token: "\${A}\${B}" }\n`, { A: '', B: '' }).message).toMatch(/^admin\.token: /)
  })

  it('accepts short admin tokens and log keys, and warns about them', () => {
    const config = parseConfig(`${minimal}admin: { token: "short" }\naccessLog: { integrity: { key: "k" } }\n`, {})
    expect(configWarnings(config).map((w) => w.key)).toEqual(['admin.token', 'accessLog.integrity.key'])
    expect(configWarnings(parseConfig(`${minimal}admin: { token: "${'t'.repeat(16)}" }\naccessLog: { integrity: { key: "${'k'.repeat(32)}" } }\n`, {}))).toEqual([])
  })

  it('warns about a group alias that is neither an object id nor issuer-qualified', () => {
    const config = parseConfig(`${minimal}groups: { ok: "6c0bd1d2-0000-4000-8000-000000000001", typo: "admins" }\n`, {})
    expect(configWarnings(config).map((w) => [w.code, w.key])).toEqual([['IAP_WARN_GROUP_NOT_AN_ID', 'groups.typo']])
  })

  it('warns about a projects pattern that lies below every top-level group (its rule restricts every group-wide endpoint)', () => {
    const config = parseConfig(
      `${minimal}policy: { rules: [\n` +
        `  { name: everywhere, projects: ["**/secret/**"], groups: ["6c0bd1d2-0000-4000-8000-000000000001"] },\n` +
        `  { name: anygroup, projects: ["ok/**", "*/vault"], deny: true },\n` +
        `  { name: named, projects: ["parent/**/secret/**", "parent/*"], deny: true },\n` +
        `  { name: open, projects: ["**/docs/**"], public: true } ] }\n`,
      {},
    )
    expect(configWarnings(config).map((w) => [w.code, w.key])).toEqual([
      ['IAP_WARN_PROJECTS_EVERY_GROUP', 'policy.rules[0].projects[0]'],
      ['IAP_WARN_PROJECTS_EVERY_GROUP', 'policy.rules[1].projects[1]'],
    ])
    expect(configWarnings(config)[0]!.message).toMatch(/below every top-level group.*rule "everywhere"/)
  })

  it('refuses an Entra authority with a path (the portal\'s https://login.microsoftonline.com/<tenant>/v2.0): the host only', () => {
    const entra = (authority: string) => `${minimal}entra: { tenantId: "00000000-0000-4000-8000-000000000001", clientId: "00000000-0000-4000-8000-000000000002", authority: "${authority}" }\n`
    expect(errorOf(entra('https://login.microsoftonline.com/00000000-0000-4000-8000-000000000001/v2.0'), {}).message).toMatch(/^entra\.authority: give the host only/)
    expect(parseConfig(entra('https://login.microsoftonline.com/'), {}).entra!.authority).toBe('https://login.microsoftonline.com/')
    expect(parseConfig(entra('https://login.microsoftonline.us'), {}).entra!.authority).toBe('https://login.microsoftonline.us')
  })

  it('names the changed keys a reload cannot apply (policy, groups and trusted proxies it can)', () => {
    const running = parseConfig(`${minimal}groups: { a: "x" }\n`, {})
    const next = parseConfig(
      `server: { publicUrl: "https://gitlab.example.com", trustedProxies: ["10.0.0.0/8"], listen: "0.0.0.0:8443" }\nupstream: { url: "http://other:8181" }\ngroups: { a: "y" }\npolicy: { default: allow }\n`,
      {},
    )
    expect(restartRequiredKeys(running, next)).toEqual(['server.listen', 'upstream'])
    expect(restartRequiredKeys(running, running)).toEqual([])
  })

  it('folds GUIDs to lower case, as Entra writes them in tokens', () => {
    const config = parseConfig(
      `${minimal}entra: { tenantId: "72F988BF-86F1-41AF-91AB-2D7CD011DB47", clientId: "B3C1E2D4-0000-4000-8000-00000000C11E" }\ngroups: { eng: "6C0BD1D2-0000-4000-8000-000000000001" }\npolicy: { rules: [ { name: r, paths: ["/"], groups: [eng, "6C0BD1D2-0000-4000-8000-000000000002"] } ] }\n`,
      {},
    )
    expect(config.entra!.tenantId).toBe('72f988bf-86f1-41af-91ab-2d7cd011db47')
    expect(config.entra!.clientId).toBe('b3c1e2d4-0000-4000-8000-00000000c11e')
    expect(config.groups.eng).toBe('6c0bd1d2-0000-4000-8000-000000000001')
    expect(config.policy.rules[0]!.groups).toEqual(['eng', '6c0bd1d2-0000-4000-8000-000000000002'])
  })

  it('keeps $$ as a literal dollar', () => {
    expect(parseConfig(`${minimal}admin: { token: "pa$$word-0123456789" }\n`, {}).admin.token).toBe('pa$word-0123456789')
    expect(parseConfig(`${minimal}admin: { token: "$\${NOT_A_VAR}-0123456789" }\n`, {}).admin.token).toBe('${NOT_A_VAR}-0123456789')
    expect(parseConfig(`${minimal}admin: { token: "\${T:-pa$$word-0123456789}" }\n`, {}).admin.token).toBe('pa$word-0123456789')
  })

  it('${VAR-default} falls back only when VAR is unset; an empty VAR stays empty', () => {
    const text = `${minimal}admin: { token: "\${ADMIN_TOKEN-fallback-token-0123456789}" }\n`
    expect(parseConfig(text, {}).admin.token).toBe('fallback-token-0123456789')
    expect(parseConfig(text, { ADMIN_TOKEN: '' }).admin.token).toBeUndefined()
    expect(parseConfig(text, { ADMIN_TOKEN: 'from-env-token-0123456789' }).admin.token).toBe('from-env-token-0123456789')
    expect(parseConfig(`server: { publicUrl: "https://g.example.com" }\nupstream: { url: "http://gitlab:8181", timeoutSeconds: "\${TIMEOUT-60}" }\n`, {}).upstream.timeoutSeconds).toBe(60)
  })

  it('${VAR:?message} and ${VAR?message} refuse an unset (and, with the colon, empty) VAR with the key path and the message', () => {
    const required = `${minimal}admin: { token: "\${ADMIN_TOKEN:?set it from the admin-token Secret}" }\n`
    expect(parseConfig(required, { ADMIN_TOKEN: 'from-env-token-0123456789' }).admin.token).toBe('from-env-token-0123456789')
    expect(errorOf(required)).toMatchObject({ code: 'IAP_ERR_CONFIG_ENV_MISSING', message: 'admin.token: environment variable ADMIN_TOKEN is not set: set it from the admin-token Secret' })
    expect(errorOf(required, { ADMIN_TOKEN: '' }).message).toBe('admin.token: environment variable ADMIN_TOKEN is empty: set it from the admin-token Secret')
    const unsetOnly = `${minimal}admin: { token: "\${ADMIN_TOKEN?}" }\n`
    expect(errorOf(unsetOnly).message).toBe('admin.token: environment variable ADMIN_TOKEN is not set')
    expect(parseConfig(unsetOnly, { ADMIN_TOKEN: '' }).admin.token).toBeUndefined()
    // explain needs no secrets: a required variable stands in like any unset one.
    expect(parseConfig(required, {}, 'config', { missingEnv: 'placeholder' }).policy.default).toBe('deny')
  })

  it.each([
    ['${ ADMIN_TOKEN }', 1, ''],
    ['${ADMIN_TOKEN', 1, ', no closing "}"'],
    ['prefix-${ADMIN_TOKEN:+x}', 8, ''],
    ['${ADMIN_TOKEN#x}', 1, ''],
    ['${}', 1, ''],
    ['${1TOKEN}', 1, ''],
    ['${ADMIN_TOKEN:-${OTHER}}', 1, ''],
    // A literal secret that happens to hold `${`: named by key and place, never quoted.
    ['p4ss${w0rd!LITERALSECRET}', 5, ''],
  ] as const)('never keeps %j as literal text: an unsupported form is an error naming the key and the place, never the text or a value', (reference, at, unclosed) => {
    const err = errorOf(`${minimal}admin: { token: "${reference}" }\n`, { ADMIN_TOKEN: 'the-secret-value-0123456789', OTHER: 'other-secret-value' })
    expect(err.code).toBe('IAP_ERR_CONFIG_INVALID')
    expect(err.message.startsWith(`admin.token: unsupported variable syntax at character ${at}${unclosed} (supported: `)).toBe(true)
    expect(err.message).not.toMatch(/secret-value|LITERALSECRET|ADMIN_TOKEN|p4ss/)
    expect(err.message).not.toContain('\n')
  })

  it('refuses a YAML alias that refers to its own anchor, with the key path, in one line', () => {
    for (const [text, path] of [
      [`${minimal}policy: { rules: &r [*r] }\n`, 'policy.rules[0]'],
      [`${minimal}x: &x { y: [ { z: *x } ] }\n`, 'x.y[0].z'],
    ] as const) {
      const err = errorOf(text)
      expect(err.code).toBe('IAP_ERR_CONFIG_INVALID')
      expect(err.message).toBe(`${path}: invalid YAML: an alias refers to an anchor that contains it (a cycle)`)
    }
    // An anchor used several times, not inside itself, is fine.
    expect(parseConfig(`${minimal}groups: { a: &g "6c0bd1d2-0000-4000-8000-000000000001", b: *g }\n`, {}).groups.b).toBe('6c0bd1d2-0000-4000-8000-000000000001')
  })

  it('refuses a large anchor aliased often (within the parser\'s alias limit) by its size, before copying it', () => {
    // 20,000 values, 99 aliases of them: a 130 KB file that would become two million values.
    const items = Array.from({ length: 20_000 }, (_, i) => `x${i}`).join(',')
    const text = `${minimal}x: &a [${items}]\ny: [${Array(99).fill('*a').join(',')}]\n`
    expect(errorOf(text).message).toBe(`config: invalid YAML: more than ${MAX_CONFIG_VALUES} values once aliases are expanded`)
  })

  it.each([
    [`${minimal}bogus: 1\n`, 'bogus: unknown key'],
    [`upstream: { url: "http://gitlab:8181" }\nserver: { publicUrl: "https://g.example.com", bogus: 1 }\n`, 'server.bogus: unknown key'],
    [`${minimal}policy: { rules: [ { name: a, paths: ["/x"], public: true, method: [GET] } ] }\n`, 'policy.rules[0].method: unknown key'],
    [`${minimal}session: { store: redis }\n`, 'session.redis: `session.store: redis` needs `session.redis.url`'],
    [`${minimal}session: { idleTimeout: 5x }\n`, 'session.idleTimeout: invalid duration "5x"'],
    [`${minimal}accessLog: { rotate: { size: lots } }\n`, 'accessLog.rotate.size: invalid size "lots"'],
    [`upstream: { url: "http://gitlab:8181" }\nserver: { publicUrl: "https://g.example.com", trustedProxies: ["10.0.0.0/33"] }\n`, 'server.trustedProxies[0]: "10.0.0.0/33" has an invalid prefix length'],
    [`${minimal}entra: { tenantId: "nope", clientId: "x" }\n`, 'entra.tenantId: must be the tenant GUID'],
    [`${minimal}entra: { tenantId: "00000000-0000-0000-0000-000000000000", clientId: "x", algorithms: [HS256] }\n`, 'entra.algorithms[0]'],
    [`${minimal}policy: { rules: [ { name: a, paths: ["/x"] } ] }\n`, 'policy.rules[0]: a rule needs exactly one outcome'],
    [`${minimal}policy: { rules: [ { name: a, public: true } ] }\n`, 'policy.rules[0]: a rule needs `paths` or `projects`'],
    [`${minimal}policy: { rules: [ { name: a, paths: ["/x"], public: true }, { name: a, paths: ["/y"], deny: true } ] }\n`, 'policy.rules[1].name: duplicate rule name "a"'],
    [
      `${minimal}groups: { admins: "6c0bd1d2-0000-4000-8000-000000000001" }\npolicy: { rules: [ { name: x, paths: ["/"], public: true }, { name: y, paths: ["/"], public: true }, { name: admin-area, paths: ["/admin"], groups: [admns] } ] }\n`,
      'policy.rules[2].groups[0]: unknown group alias "admns"',
    ],
    [`upstream: { url: "http://gitlab:8181" }\nserver: { publicUrl: "https://g.example.com", listen: "8080" }\n`, 'server.listen: must be "host:port"'],
    [`server: { publicUrl: "https://g.example.com" }\n`, 'upstream: is required'],
    // A host without a scheme (a common slip) names its key, never "unexpected error: Invalid URL".
    ...['gitlab.example.com', 'http://', ''].map((url) => [`upstream: { url: "http://gitlab:8181" }\nserver: { publicUrl: "${url}" }\n`, 'server.publicUrl: must be an http(s) URL'] as [string, string]),
    ['server: [\n', 'invalid YAML'],
    // Alias expansion past the parser's limit ("billion laughs"), and a document that is no mapping.
    [`a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n`, 'invalid YAML: Excessive alias count'],
    ['"just a string"\n', 'a config is a YAML mapping of keys (server:, upstream:, ...), not a string'],
    ['- a\n- b\n', 'not a list'],
    // A path on the upstream would be prefixed to websocket handshakes only: the policy decided on another path.
    [`server: { publicUrl: "https://g.example.com" }\nupstream: { url: "http://gitlab:8181/prefix" }\n`, 'upstream.url: must be an origin (scheme://host:port), without a path or query'],
    [`server: { publicUrl: "https://g.example.com" }\nupstream: { url: "http://gitlab:8181?x=1" }\n`, 'upstream.url: must be an origin'],
  ])('rejects %j with the key path', (text, message) => {
    const err = errorOf(text)
    expect(err.code).toBe('IAP_ERR_CONFIG_INVALID')
    expect(err.message).toContain(message)
  })

  it('a __Host- cookie needs an https publicUrl only when browser sign-in sets cookies', () => {
    const entra = 'entra: { tenantId: "00000000-0000-0000-0000-000000000000", clientId: "x"'
    const plain = 'server: { publicUrl: "http://gitlab.internal.example" }\nupstream: { url: "http://gitlab:8181" }\n'
    // Bearer only (no client secret): no cookie is ever set, so plain http is fine.
    expect(parseConfig(`${plain}${entra} }\n`, {}).server.publicUrl).toBe('http://gitlab.internal.example')
    expect(parseConfig(plain, {}).session.cookieName).toBe('__Host-gitlab-iap')
    // Browser sign-in configured: the check stays.
    const signIn = `${plain}${entra}, clientSecret: s }\nsession: { secret: "${'s'.repeat(32)}" }\n`
    expect(errorOf(signIn).message).toBe('session.cookieName: `__Host-` cookies need an https publicUrl (or a cookie name without `__Host-`, for a plain-http test setup)')
    expect(parseConfig(signIn.replace('http://gitlab.internal', 'https://gitlab.internal'), {}).entra!.clientSecret).toBe('s')
    expect(parseConfig(signIn.replace('http://gitlab.internal.example', 'http://127.0.0.1:8080'), {}).entra!.clientSecret).toBe('s')
  })

  it('names each unknown key by its full path, in one line', () => {
    const err = errorOf(`upstream: { url: "http://gitlab:8181", extra: 1 }\nserver: { publicUrl: "https://g.example.com", bogus: 1, other: 2 }\nextra: 1\n`)
    expect(err.message.split('; ').sort()).toEqual(['extra: unknown key', 'server.bogus: unknown key', 'server.other: unknown key', 'upstream.extra: unknown key'])
    expect(err.message).not.toContain('\n')
  })

  it('accepts the shipped config.example.yaml', () => {
    const env = { IAP_ADMIN_TOKEN: 'x'.repeat(20), GITLAB_API_TOKEN: 't', ENTRA_CLIENT_SECRET: 's', IAP_SESSION_SECRET: 's'.repeat(32), IAP_LOG_KEY: 'k'.repeat(32) }
    const config = parseConfig(readFileSync(new URL('../../../config.example.yaml', import.meta.url), 'utf8'), env)
    expect(config.policy.rules.map((r) => r.name)).toContain('secret-projects')
  })

  it('ships a config.schema.json identical to the schema the code exports', () => {
    const shipped = JSON.parse(readFileSync(new URL('../../../config.schema.json', import.meta.url), 'utf8'))
    expect(shipped).toEqual(JSON.parse(JSON.stringify(configJsonSchema())))
    expect(shipped.additionalProperties).toBe(false)
    expect(Object.keys(shipped.properties)).toEqual(['server', 'admin', 'upstream', 'entra', 'issuers', 'session', 'groups', 'policy', 'accessLog'])
  })

  it('the editor schema takes a ${VAR} wherever the loader does, and a tenant id in any case', () => {
    const schema = configJsonSchema() as { properties: Record<string, { properties: Record<string, { anyOf?: { pattern?: string }[] }> }> }
    const takesReference = (node: { anyOf?: { pattern?: string }[] } | undefined, text: string) =>
      (node?.anyOf ?? []).some((alternative) => alternative.pattern !== undefined && new RegExp(alternative.pattern).test(text))
    // A secret with a minimum length, a number and a GUID, each given as a variable (config.example.yaml does).
    expect(takesReference(schema.properties.session!.properties.secret, '${IAP_SESSION_SECRET}')).toBe(true)
    expect(takesReference(schema.properties.upstream!.properties.timeoutSeconds, '${TIMEOUT:-3600}')).toBe(true)
    expect(takesReference(schema.properties.upstream!.properties.timeoutSeconds, '${TIMEOUT-3600}')).toBe(true)
    expect(takesReference(schema.properties.session!.properties.secret, '${IAP_SESSION_SECRET:?set the session Secret}')).toBe(true)
    expect(takesReference(schema.properties.session!.properties.secret, '${IAP_SESSION_SECRET?}')).toBe(true)
    expect(takesReference(schema.properties.session!.properties.secret, '${ IAP_SESSION_SECRET }')).toBe(false)
    expect(takesReference(schema.properties.entra!.properties.tenantId, '${TENANT_ID}')).toBe(true)
    expect(takesReference(schema.properties.entra!.properties.tenantId, '9B1E5A3C-0000-4000-8000-00000000BE7C')).toBe(true)
    expect(takesReference(schema.properties.session!.properties.secret, 'not a reference')).toBe(false)
  })
})

describe('units', () => {
  it.each([
    ['90s', 90_000],
    ['10m', 600_000],
    ['12h', 43_200_000],
    ['7d', 604_800_000],
    ['250ms', 250],
    ['1.5h', 5_400_000],
    // Go's compound form, and a bare number read as seconds (like upstream.timeoutSeconds).
    ['1h30m', 5_400_000],
    ['2m30s', 150_000],
    ['10', 10_000],
  ])('duration %s', (text, ms) => expect(parseDurationMs(text)).toBe(ms))
  it.each(['', 'h', '10 minutes', '-5m', '1h 30m', '1hm', '30x'])('rejects duration %j', (text) => expect(parseDurationMs(text)).toBeUndefined())
  it.each([
    ['100MiB', 104_857_600],
    ['1GiB', 1_073_741_824],
    ['512KiB', 524_288],
    ['10MB', 10_000_000],
    ['4096', 4096],
    // Kubernetes' spellings (M decimal, Mi binary) and any case.
    ['100M', 100_000_000],
    ['1Gi', 1_073_741_824],
    ['100mb', 100_000_000],
    ['1TiB', 1_099_511_627_776],
  ])('size %s', (text, bytes) => expect(parseSizeBytes(text)).toBe(bytes))
  it.each(['lots', '-1MiB', '1i', '5 PiB'])('rejects size %j', (text) => expect(parseSizeBytes(text)).toBeUndefined())
})
