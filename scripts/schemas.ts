/**
 * The JSON Schemas made from the zod config schema (src/config/schema.ts), so neither can drift from
 * what the proxy accepts:
 * - `config.schema.json`: config.yaml, for editors (the document `gitlab-iap schema` prints);
 * - the `config` property of `helm/gitlab-iap/values.schema.json`: the same schema in draft-07 (what
 *   Helm validates with), adjusted for what the chart owns: listeners and upstream URL are set by the
 *   chart, secrets are `${VAR}` references only (the chart writes them from `secrets.keys`), and the
 *   access log is stdout or an absolute path in the log volume. The rest of values.schema.json is
 *   written by hand; only `properties.config` is replaced.
 *
 * `npm run schema` writes both files; `node scripts/schemas.ts --check` exits 1 if either is stale.
 * test/integration/helm/chart.test.ts fails when they are out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { z } from 'zod'
import { configJsonSchema } from '../src/cli/main.ts'
import { configSchema } from '../src/config/schema.ts'

type Schema = { [key: string]: unknown; properties?: Record<string, Schema>; required?: string[] }

export const CONFIG_SCHEMA_PATH = fileURLToPath(new URL('../config.schema.json', import.meta.url))
export const VALUES_SCHEMA_PATH = fileURLToPath(new URL('../helm/gitlab-iap/values.schema.json', import.meta.url))

/** A whole-value `${VAR}` reference: how a secret may appear in the chart's config (expanded by the proxy at start). */
export const ENV_REFERENCE = '^\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}$'

/** Secret-bearing config keys → the `secrets.keys` entry (and environment variable) the chart fills them from. */
export const SECRET_KEYS = {
  'admin.token': ['adminToken', 'IAP_ADMIN_TOKEN'],
  'upstream.apiToken': ['gitlabApiToken', 'GITLAB_API_TOKEN'],
  'entra.clientSecret': ['entraClientSecret', 'ENTRA_CLIENT_SECRET'],
  'session.secret': ['sessionSecret', 'IAP_SESSION_SECRET'],
  'session.redis.password': ['redisPassword', 'REDIS_PASSWORD'],
  'accessLog.integrity.key': ['logIntegrityKey', 'IAP_LOG_KEY'],
} as const

/** Keys the chart sets itself (from other values); giving them in `config` is an error. */
const CHART_OWNED = {
  'server.listen': 'set by the chart from ports.http',
  'admin.listen': 'set by the chart from ports.admin',
  'upstream.url': 'set by the chart from gitlab.url (standalone) or gitlab.sidecarUrl (sidecar)',
} as const

/** A Redis URL whose password, if any, is a `${VAR}` reference (the username alone is not a secret). */
const REDIS_URL_WITHOUT_INLINE_PASSWORD = '^(rediss?|redis-sentinel|redis-cluster)://([^:@/]*(:\\$\\{[A-Za-z_][A-Za-z0-9_]*\\})?@)?[^@]*$'

/** zod writes a regex without its flags: the case-insensitive GUID comes out lower-case only. */
const GUID_LOWER = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
const GUID_ANY_CASE = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'

/** The node at a dotted key path; throws when the config schema no longer has it (rename it here too). */
function at(root: Schema, dotted: string): { parent: Schema; key: string; node: Schema } {
  const parts = dotted.split('.')
  let parent = root
  for (const part of parts.slice(0, -1)) {
    const next = parent.properties?.[part]
    if (!next) throw new Error(`config schema has no "${dotted}" (at "${part}")`)
    parent = next
  }
  const key = parts.at(-1)!
  const node = parent.properties?.[key]
  if (!node) throw new Error(`config schema has no "${dotted}"`)
  return { parent, key, node }
}

function replace(root: Schema, dotted: string, schema: Schema): void {
  const { parent, key } = at(root, dotted)
  parent.properties![key] = schema
}

function notRequired(parent: Schema, key: string): void {
  if (parent.required) parent.required = parent.required.filter((k) => k !== key)
}

/** The chart's schema for `values.config`. */
export function chartConfigSchema(): Schema {
  const schema = structuredClone(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any', target: 'draft-7' })) as Schema
  delete schema.$schema
  const text = JSON.stringify(schema).replaceAll(JSON.stringify(GUID_LOWER), JSON.stringify(GUID_ANY_CASE))
  const config = JSON.parse(text) as Schema

  config.description = 'config.yaml of the proxy, generated from its config schema (npm run schema): unknown keys are errors. Listeners and the upstream URL are set by the chart; secrets only as ${VAR} references, normally written by the chart from secrets.keys.'
  for (const [dotted, description] of Object.entries(CHART_OWNED)) {
    const { parent, key } = at(config, dotted)
    replace(config, dotted, { not: {}, description })
    notRequired(parent, key)
  }
  // `upstream` is filled in by the chart; `entra` (tenant and client id) is what the chart requires.
  config.required = [...(config.required ?? []).filter((k) => k !== 'upstream'), 'entra']

  for (const [dotted, [secretKey, env]] of Object.entries(SECRET_KEYS)) {
    replace(config, dotted, {
      type: 'string',
      pattern: ENV_REFERENCE,
      description: `a secret, never inline: set secrets.keys.${secretKey} (the chart writes \${${env}}), or give a \${VAR} reference to an environment variable you add with extraEnv from a Secret`,
    })
  }
  const redisUrl = at(config, 'session.redis.url').node
  replace(config, 'session.redis.url', {
    description: 'Redis URL without an inline password: use secrets.keys.redisPassword, or a ${VAR} reference for the password (redis://:${VAR}@host) or for the whole URL',
    anyOf: [
      { type: 'string', pattern: ENV_REFERENCE },
      { ...redisUrl, type: 'string', pattern: REDIS_URL_WITHOUT_INLINE_PASSWORD },
    ],
  })

  // Empty in values.yaml so that the chart's `required` says what is missing, in words.
  const tenantId = at(config, 'entra.tenantId').node
  tenantId.pattern = `^$|${GUID_ANY_CASE}`
  delete at(config, 'entra.clientId').node.minLength

  // The root filesystem is read-only: a file goes into the log volume, mounted at its directory.
  const output = at(config, 'accessLog.output').node
  output.pattern = '^(stdout|/.*[^/])$'
  output.description = '"stdout" or an absolute file path; the chart mounts the log volume (logVolume) at its directory'
  return config
}

/** Both files as they should be on disk. */
export function renderSchemas(valuesSchemaText = readFileSync(VALUES_SCHEMA_PATH, 'utf8')): { configSchema: string; valuesSchema: string } {
  const values = JSON.parse(valuesSchemaText) as Schema
  values.properties = { ...values.properties, config: chartConfigSchema() }
  return {
    configSchema: `${JSON.stringify(configJsonSchema(), null, 2)}\n`,
    valuesSchema: `${JSON.stringify(values, null, 2)}\n`,
  }
}

if (import.meta.main) {
  const { configSchema: configText, valuesSchema: valuesText } = renderSchemas()
  const files: [string, string][] = [[CONFIG_SCHEMA_PATH, configText], [VALUES_SCHEMA_PATH, valuesText]]
  if (process.argv.includes('--check')) {
    const stale = files.filter(([path, text]) => readFileSync(path, 'utf8') !== text).map(([path]) => path)
    if (stale.length > 0) {
      process.stderr.write(`out of date (run npm run schema): ${stale.join(', ')}\n`)
      process.exitCode = 1
    }
  } else {
    for (const [path, text] of files) writeFileSync(path, text)
  }
}
