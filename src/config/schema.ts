/**
 * The config.yaml schema (config.example.yaml shows every key). Unknown keys are errors everywhere (`strictObject`).
 * Cross-field rules live in `superRefine` so they report with a key path like any other issue.
 * `z.input` is what users write (and what config.schema.json describes); `z.output` is what the
 * program reads: durations in milliseconds, sizes in bytes, defaults filled in.
 */
import { z } from 'zod'
import { parseRedisUrl } from '../auth/session/redis-url.ts'
import { HTTP_METHODS } from '../http/methods.ts'
import { checkCidr } from '../net/cidr.ts'
import { parseDurationMs, parseSizeBytes } from './units.ts'

const duration = (description: string, options: { zero?: boolean } = {}) =>
  z
    .union([z.string(), options.zero ? z.number().nonnegative() : z.number().positive()])
    .describe(`${description} A duration such as "90s", "10m", "1h30m", "12h" or "7d"; a number is seconds.`)
    .transform((value, ctx) => {
      const ms = typeof value === 'number' ? Math.round(value * 1000) : parseDurationMs(value)
      if (ms === undefined || ms < 0 || (ms === 0 && !options.zero)) {
        ctx.addIssue({ code: 'custom', message: `invalid duration "${value}" (use e.g. "90s", "10m", "1h30m", "12h")` })
        return z.NEVER
      }
      return ms
    })

const size = (description: string) =>
  z
    .union([z.string(), z.number().int().positive()])
    .describe(`${description} A size such as "100MiB", "1GiB", "100M" (decimal) or a number of bytes.`)
    .transform((value, ctx) => {
      const bytes = typeof value === 'number' ? value : parseSizeBytes(value)
      if (bytes === undefined || bytes <= 0) {
        ctx.addIssue({ code: 'custom', message: `invalid size "${value}" (use e.g. "100MiB")` })
        return z.NEVER
      }
      return bytes
    })

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+)?:\d{1,5}$/, 'must be "host:port", e.g. "0.0.0.0:8080", "[::]:8080" or ":8080"')
  .refine((text) => Number(text.slice(text.lastIndexOf(':') + 1)) <= 65535, 'port must be at most 65535')
  // ":8080" (Go's spelling) listens on every IPv4 interface, like the default "0.0.0.0:8080".
  .transform((text) => (text.startsWith(':') ? `0.0.0.0${text}` : text))

const cidr = z.string().superRefine((text, ctx) => {
  const problem = checkCidr(text)
  if (problem) ctx.addIssue({ code: 'custom', message: problem })
})

const httpUrl = z
  .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
  // The proxy never sends URL credentials; kept, they would only be printed (check, logs, /readyz).
  .refine((url) => {
    const parsed = URL.parse(url)
    return parsed === null || (parsed.username === '' && parsed.password === '')
  }, 'must not hold a user name or password (user:password@): the proxy never sends them; remove them from the URL')

/** Checked by the parser `serve` connects with, so `check` refuses exactly what `serve` would (its messages never quote the URL). */
const redisUrl = z
  .string()
  .regex(/^(rediss?|redis-sentinel|redis-cluster):\/\//, 'must be a redis://, rediss://, redis-sentinel:// or redis-cluster:// URL')
  .superRefine((url, ctx) => {
    try {
      parseRedisUrl(url)
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: err instanceof TypeError ? err.message : 'is not a valid Redis URL' })
    }
  })

const nonEmpty = z.string().min(1, 'must not be empty')

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Entra writes GUIDs in lower case in every claim (`tid`, `aud`, `groups`); a GUID pasted in upper case is folded to match. */
const lowerGuid = (value: string) => (GUID.test(value) ? value.toLowerCase() : value)

const jwsAlgorithm = z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'], {
  error: 'must be an asymmetric JWS algorithm (RS256, PS256, ES256, ...); "none" and HMAC are never accepted',
})

const server = z.strictObject({
  listen: hostPort.default('0.0.0.0:8080').describe('Main listener, host:port.'),
  publicUrl: httpUrl.describe('What users type; the login redirect URI and cookie scope derive from it.'),
  trustedProxies: z.array(cidr).default([]).describe('Only peers in these CIDRs may set X-Forwarded-For / -Proto / -Host and X-Request-Id.'),
  tls: z
    .strictObject({ cert: nonEmpty.describe('PEM certificate chain file.'), key: nonEmpty.describe('PEM private key file.') })
    .optional()
    .describe('Serve HTTPS on the main listener.'),
  shutdownGraceSeconds: z.number().int().min(0).max(3600).default(25).describe('On SIGTERM, how long in-flight requests may finish.'),
  headersTimeoutSeconds: z.number().int().min(1).max(600).default(30).describe('A client must send its full request headers within this time (slowloris guard).'),
  maxHeaderBytes: z.number().int().min(8192).max(1048576).default(32768).describe('Largest request header block accepted (431 beyond).'),
})

const admin = z.strictObject({
  listen: hostPort.default('0.0.0.0:9090').describe('Admin listener: /metrics, /healthz, /readyz, /admin/*.'),
  token: nonEmpty.optional().describe('Bearer token for the admin API; the admin API is disabled without it.'),
})

const upstream = z.strictObject({
  // An origin only: requests go out with their own path, byte for byte, as the policy saw it (a path
  // here would be prefixed to some of them and not others).
  url: httpUrl
    .refine((url) => {
      const parsed = URL.parse(url)
      return parsed === null || (parsed.pathname === '/' && parsed.search === '' && parsed.hash === '')
    }, 'must be an origin (scheme://host:port), without a path or query: requests keep their own path')
    .describe('GitLab (Workhorse) origin, e.g. http://gitlab-webservice:8181.'),
  timeoutSeconds: z.number().int().min(1).max(86400).default(3600).describe('Idle timeout towards GitLab, for a client whose upload stalls or that stops reading the answer, and for an open websocket with no byte either way; long git operations and runner long-polls need it high.'),
  connectTimeoutSeconds: z.number().int().min(1).max(300).default(10).describe('TCP connect timeout towards GitLab.'),
  apiToken: z.string().min(1).optional().describe('Optional read_api token of an admin or auditor user (it must see every project): resolves numeric project and group ids for `projects` rules.'),
})

const entra = z.strictObject({
  tenantId: z.string().regex(GUID, 'must be the tenant GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)').transform(lowerGuid),
  clientId: nonEmpty.transform(lowerGuid).describe('Application (client) id of the proxy app registration.'),
  clientSecret: z.string().min(1).optional().describe('Client secret for the browser login (code flow).'),
  authority: httpUrl
    // `https://login.microsoftonline.com/<tenant>/v2.0` pasted from a portal gives a discovery URL that 404s at start-up.
    .refine((url) => ['', '/'].includes(URL.parse(url)?.pathname ?? ''), 'give the host only (https://login.microsoftonline.com): the tenant goes in entra.tenantId, and the proxy adds the rest')
    .default('https://login.microsoftonline.com')
    .describe('Entra authority, host only; the tenant id is appended.'),
  scopes: z.array(nonEmpty).default(['openid', 'profile', 'email', 'offline_access']),
  audiences: z.array(nonEmpty).default([]).describe('Accepted `aud` for bearer access tokens (clientId is always accepted).'),
  graphUrl: httpUrl.default('https://graph.microsoft.com').describe('Microsoft Graph base URL, for groups overage.'),
  algorithms: z.array(jwsAlgorithm).min(1).default(['RS256']).describe('Accepted JWS algorithms.'),
  acceptV1Tokens: z.boolean().default(true).describe('Also accept v1 access tokens (iss https://sts.windows.net/{tid}/).'),
})

const claimName = z.string().min(1)

const issuer = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'must be lower-case letters, digits and dashes').describe('Short name; qualifies this issuer\'s groups ("name:group").'),
  issuer: httpUrl.describe('Exact `iss` value.'),
  jwksUri: httpUrl.optional().describe('JWKS URL; from OpenID discovery when absent.'),
  audiences: z.array(nonEmpty).min(1, 'list at least one accepted audience'),
  kind: z.enum(['ci', 'user', 'app']).default('ci').describe('Identity kind of its tokens: GitLab CI id_tokens are "ci".'),
  algorithms: z.array(jwsAlgorithm).min(1).default(['RS256']),
  claims: z
    .strictObject({
      user: claimName.default('sub'),
      email: claimName.optional(),
      groups: z.union([claimName, z.array(claimName)]).optional(),
    })
    .prefault({}),
})

const session = z.strictObject({
  store: z.enum(['memory', 'redis']).default('memory').describe('memory: one replica; redis: several.'),
  redis: z
    .strictObject({
      url: redisUrl,
      keyPrefix: z.string().default('gitlab-iap:'),
      password: z.string().optional(),
    })
    .optional(),
  secret: z.string().min(32, 'must be at least 32 bytes; generate one with `openssl rand -base64 48`').optional(),
  cookieName: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'must be a valid cookie name').default('__Host-gitlab-iap'),
  absoluteTimeout: duration('Sessions end this long after sign-in.').prefault('12h'),
  idleTimeout: duration('Sessions end after this long without a request.').prefault('1h'),
  refreshInterval: duration('Re-check identity and groups with the refresh token this often.').prefault('10m'),
  refreshGrace: duration(
    'When Entra ID cannot be reached for a due refresh, keep serving the session as it was last refreshed for at most this long past the interval, retrying every 30 s; a refusal from Entra (invalid_grant) still ends the session. 0: refuse with 503 at once.',
    { zero: true },
  ).prefault('15m'),
  maxSessions: z.number().int().min(100).default(100_000).describe('memory store: most sessions kept (oldest evicted).'),
  maxSessionMemory: size('memory store: about how much memory all sessions may take (oldest evicted first; a typical session is about 5 KB).').prefault('128MiB'),
})

/** The methods GitLab (Rails, Workhorse, Grape) routes; anything else can only be a typo in a rule. */

const rule = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be letters, digits, ".", "_" or "-"'),
  paths: z.array(nonEmpty.regex(/^\//, 'must start with "/"')).min(1).optional(),
  projects: z.array(nonEmpty).min(1).optional(),
  methods: z
    .array(
      z
        .string()
        .transform((m) => m.toUpperCase())
        .refine((m) => HTTP_METHODS.has(m), { error: (issue) => `unknown HTTP method "${String(issue.input)}" (GitLab serves ${[...HTTP_METHODS].join(', ')})` }),
    )
    .min(1)
    .optional(),
  sourceIps: z.array(cidr).min(1).optional(),
  public: z.literal(true).optional(),
  deny: z.literal(true).optional(),
  groups: z.array(nonEmpty.transform(lowerGuid)).min(1, 'an empty list never allows anyone: name a group, or use `deny: true`').optional(),
  users: z.array(nonEmpty).min(1, 'an empty list never allows anyone').optional(),
  roles: z.array(nonEmpty).min(1, 'an empty list never allows anyone').optional(),
  apps: z.array(nonEmpty.transform(lowerGuid)).min(1, 'an empty list never allows anyone').optional(),
})

const policy = z.strictObject({
  default: z.enum(['allow', 'deny']).default('deny').describe('Decision when no rule matches.'),
  rules: z.array(rule).default([]),
})

export const accessLogSchema = z.strictObject({
  output: z.string().min(1).default('stdout').describe('"stdout" or a file path.'),
  rotate: z
    .strictObject({
      size: size('Rotate the file when it reaches this size.').prefault('100MiB'),
      keep: z.number().int().min(1).max(1000).default(10),
      compress: z.boolean().default(true),
    })
    .prefault({}),
  integrity: z.strictObject({ key: nonEmpty }).optional(),
  onError: z.enum(['serve', 'deny']).default('serve').describe('When the log cannot be written: keep serving (and alert in metrics) or refuse requests with 503.'),
})

export const configSchema = z
  .strictObject({
    server,
    admin: admin.prefault({}),
    upstream,
    entra: entra.optional(),
    issuers: z.array(issuer).default([]),
    session: session.prefault({}),
    groups: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'alias must be letters, digits, ".", "_" or "-"'), nonEmpty.transform(lowerGuid)).default({}),
    policy: policy.prefault({}),
    accessLog: accessLogSchema.prefault({}),
  })
  .superRefine((config, ctx) => {
    const seenRules = new Set<string>()
    config.policy.rules.forEach((rule, index) => {
      const at = (...path: (string | number)[]) => ['policy', 'rules', index, ...path]
      if (seenRules.has(rule.name)) ctx.addIssue({ code: 'custom', path: at('name'), message: `duplicate rule name "${rule.name}"` })
      seenRules.add(rule.name)
      if (!rule.paths && !rule.projects) ctx.addIssue({ code: 'custom', path: at(), message: 'a rule needs `paths` or `projects`' })
      const grants = ['groups', 'users', 'roles', 'apps'].filter((key) => (rule as Record<string, unknown>)[key] !== undefined)
      const outcomes = (rule.public ? 1 : 0) + (rule.deny ? 1 : 0) + (grants.length > 0 ? 1 : 0)
      if (outcomes !== 1) {
        ctx.addIssue({ code: 'custom', path: at(), message: 'a rule needs exactly one outcome: `public: true`, `deny: true`, or any of groups/users/roles/apps' })
      }
      rule.groups?.forEach((group, g) => {
        if (!(group in config.groups) && !isGroupId(group, config.issuers.map((i) => i.name))) {
          ctx.addIssue({ code: 'custom', path: at('groups', g), message: `unknown group alias "${group}"` })
        }
      })
    })
    const seenIssuers = new Set<string>(['entra'])
    config.issuers.forEach((iss, index) => {
      if (seenIssuers.has(iss.name)) ctx.addIssue({ code: 'custom', path: ['issuers', index, 'name'], message: `duplicate or reserved issuer name "${iss.name}"` })
      seenIssuers.add(iss.name)
    })
    if (config.admin.listen === config.server.listen && !config.server.listen.endsWith(':0')) {
      ctx.addIssue({ code: 'custom', path: ['admin', 'listen'], message: `same address as server.listen (${config.server.listen}): the admin listener needs its own port` })
    }
    if (config.session.store === 'redis' && !config.session.redis) {
      ctx.addIssue({ code: 'custom', path: ['session', 'redis'], message: '`session.store: redis` needs `session.redis.url`' })
    }
    if (config.entra?.clientSecret && !config.session.secret) {
      ctx.addIssue({ code: 'custom', path: ['session', 'secret'], message: 'browser sign-in (entra.clientSecret) needs `session.secret`' })
    }
    // An unparsable publicUrl has its own error already (and `new URL` would throw here). Cookies are
    // set only by browser sign-in (entra.clientSecret; it needs session.secret, checked above): a
    // bearer-only proxy on plain http sets none, whatever cookieName says.
    const publicUrl = URL.parse(config.server.publicUrl)
    const signIn = Boolean(config.entra?.clientSecret)
    if (signIn && publicUrl && config.session.cookieName.startsWith('__Host-') && publicUrl.protocol !== 'https:' && !isLoopbackHost(publicUrl.hostname)) {
      ctx.addIssue({ code: 'custom', path: ['session', 'cookieName'], message: '`__Host-` cookies need an https publicUrl (or a cookie name without `__Host-`, for a plain-http test setup)' })
    }
  })

/** A raw group value in a rule: an Entra object id (GUID) or an issuer-qualified value ("gitlab-ci:group"). */
export function isGroupId(value: string, issuerNames: string[]): boolean {
  if (GUID.test(value)) return true
  const colon = value.indexOf(':')
  return colon > 0 && issuerNames.includes(value.slice(0, colon))
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '127.0.0.1' || host === '[::1]'
}

export type ConfigInput = z.input<typeof configSchema>
export type Config = z.output<typeof configSchema>
export type RuleConfig = Config['policy']['rules'][number]
export type IssuerConfig = Config['issuers'][number]
export type EntraConfig = NonNullable<Config['entra']>
