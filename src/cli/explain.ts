/**
 * `gitlab-iap explain`: the policy decision for a hypothetical request, through the same functions
 * `serve` uses (canonical-path gate → GitLab attribution → decide), so what it says is what happens.
 */
import { isIP } from 'node:net'
import { ANONYMOUS, type Identity } from '../auth/identity.ts'
import { loadConfigFile, resolveConfigPath } from '../config/load.ts'
import { isGroupId } from '../config/schema.ts'
import { HTTP_METHODS } from '../http/methods.ts'
import { IapError } from '../errors.ts'
import { attribute } from '../gitlab/attribute.ts'
import { checkCanonicalPath } from '../http/canonical-path.ts'
import { browserSignInConfigured, IAP_ENDPOINT_METHODS, SIGN_IN_PATHS } from '../iap/routes.ts'
import type { Decision } from '../policy/decision.ts'
import { compilePolicy, decideAlsoAs, issuerOfGroup } from '../policy/index.ts'
import { parseCommandArgs } from './args.ts'
import type { CliIo } from './io.ts'

export const EXPLAIN_HELP = `Usage: gitlab-iap explain [--config FILE] --path P [--method M] [--group G]... [--user U | --app ID] [--role R]...
                          [--anonymous] [--ip ADDR] [--project P] [--json]

Print the policy decision for a hypothetical request: allow or deny (deny with challenge when the request has no
credential and signing in may help), the rule that decided, and why.
  --path P        request path as the client would send it (may include ?query), e.g. /admin/users
  --method M      HTTP method (default GET)
  --group G       a group the identity has: an alias from \`groups:\` or a raw group id (repeatable)
  --user U        the identity's object id / UPN (default: a user with only the given groups)
  --app ID        an app-only identity with this client id (roles from --role)
  --role R        an app role the identity has (repeatable)
  --anonymous     no credential at all (the default when no --user, --group or --app is given)
  --ip ADDR       client address for sourceIps conditions (default 127.0.0.1)
  --project P     pretend a numeric project id resolves to this path (no GitLab API call is made)
  --json          machine-readable output
`

export async function runExplain(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    config: { type: 'string', short: 'c' },
    path: { type: 'string' },
    method: { type: 'string' },
    group: { type: 'string', multiple: true },
    user: { type: 'string' },
    app: { type: 'string' },
    role: { type: 'string', multiple: true },
    anonymous: { type: 'boolean' },
    ip: { type: 'string' },
    project: { type: 'string' },
    json: { type: 'boolean' },
  })
  if (values.help) {
    io.stdout.write(EXPLAIN_HELP)
    return 0
  }
  if (!values.path) throw new IapError('IAP_ERR_CLI_USAGE', '--path is required (e.g. --path /admin/users)')
  // One identity per question: an answer for another one than asked about would mislead.
  const identityFlags = (['user', 'app', 'group', 'role'] as const).filter((flag) => values[flag] !== undefined)
  if (values.anonymous && identityFlags.length > 0) throw new IapError('IAP_ERR_CLI_USAGE', `--anonymous contradicts --${identityFlags[0]}: ask about one identity`)
  if (values.app !== undefined && (values.user !== undefined || values.group !== undefined)) {
    throw new IapError('IAP_ERR_CLI_USAGE', `--app contradicts --${values.user !== undefined ? 'user' : 'group'}: an app-only identity has no user and no groups (give its --role)`)
  }
  // A policy question needs no secrets: unset ${VAR}s stand in with placeholders.
  const { config } = loadConfigFile(resolveConfigPath(values.config, io.env), io.env, { missingEnv: 'placeholder' })
  const method = (values.method ?? 'GET').toUpperCase()
  if (!HTTP_METHODS.has(method)) throw new IapError('IAP_ERR_CLI_USAGE', `--method ${values.method}: unknown HTTP method (GitLab serves ${[...HTTP_METHODS].join(', ')})`)
  if (values.ip !== undefined && isIP(values.ip) === 0) throw new IapError('IAP_ERR_CLI_USAGE', `--ip ${values.ip}: not an IPv4 or IPv6 address`)
  const q = values.path.indexOf('?')
  const path = q === -1 ? values.path : values.path.slice(0, q)
  const groups = (values.group ?? []).map((g) => {
    if (config.groups[g] !== undefined) return config.groups[g]
    // The same test check applies to rules: a raw group id, or an alias it knows.
    if (!isGroupId(g, config.issuers.map((i) => i.name))) {
      const known = Object.keys(config.groups)
      throw new IapError('IAP_ERR_CLI_USAGE', `--group ${g}: unknown group alias${known.length ? ` (aliases: ${known.join(', ')})` : ''}; a raw group is an object id or "<issuer>:<group>"`)
    }
    // Entra writes object ids in lower case, as rules are folded.
    return isGroupId(g, []) ? g.toLowerCase() : g
  })
  const roles = values.role ?? []
  // Groups qualified by an extra issuer (`gitlab-ci:platform`) are that issuer's identity's: only its tokens carry them.
  const extraIssuers = new Set(config.issuers.map((i) => i.name.toLowerCase()))
  const groupIssuers = new Set(groups.map((g) => issuerOfGroup(g, extraIssuers) ?? 'entra'))
  if (groupIssuers.size > 1) throw new IapError('IAP_ERR_CLI_USAGE', `--group: groups of ${[...groupIssuers].join(' and ')} (one identity comes from one issuer)`)
  const issuer = [...groupIssuers][0] ?? 'entra'
  const identity: Identity = values.anonymous || (!values.user && !values.app && groups.length === 0 && roles.length === 0)
    ? ANONYMOUS
    : values.app
      ? { kind: 'app', id: values.app, appId: values.app, groups: [], roles, issuer: 'entra' }
      : { kind: 'user', id: values.user ?? 'explain-user', ...(values.user && { name: values.user }), groups, roles, issuer }

  const problem = checkCanonicalPath(path)
  const attr = problem ? { route: 'other' as const } : attribute(method, path, q === -1 ? '' : values.path.slice(q + 1))
  let project = attr.route === 'other' ? undefined : 'project' in attr ? attr.project : undefined
  const numericId = 'numericId' in attr ? attr.numericId : undefined
  // As serve: a push's ref advertisement and a terminal's handshake are also decided as POST (src/gitlab/attribute.ts).
  const policyMethod = 'policyMethod' in attr ? attr.policyMethod : undefined
  let note: string | undefined
  let decision: Decision
  let unresolved = false
  let iapStatus: number | undefined
  if (problem) {
    decision = { result: 'deny', rule: null, reason: problem }
    note = 'the path is not canonical: serve answers 400 and forwards nothing'
  } else if (attr.route === 'iap') {
    // The proxy's own endpoints: answered by serve itself, never forwarded; no rule applies.
    const methods = IAP_ENDPOINT_METHODS[path]
    const present = methods !== undefined
    // Without browser sign-in, login, callback and logout still answer: 503, saying sign-in is off.
    const signInOff = SIGN_IN_PATHS.has(path) && !browserSignInConfigured(config)
    // Another method gets 405 with `Allow`, on every endpoint (jwks.json too).
    const allowed = present && methods.includes(method)
    // whoami names the caller: without a credential it answers 401.
    const unidentified = allowed && path === '/-/iap/whoami' && identity.kind === 'anonymous'
    iapStatus = unidentified ? 401 : allowed ? (signInOff ? 503 : 200) : present ? 405 : 404
    decision = unidentified
      ? { result: 'challenge', rule: null, reason: 'credentials-missing' }
      : allowed
        ? signInOff ? { result: 'deny', rule: null, reason: 'sign-in-not-configured' } : { result: 'allow', rule: null, reason: 'iap-endpoint' }
        : { result: 'deny', rule: null, reason: iapStatus === 405 ? 'method-not-allowed' : 'iap-endpoint-unknown' }
    note = `/-/iap/ is gitlab-iap's own prefix: serve answers ${iapStatus === 200 ? 'this request' : iapStatus} itself and never forwards it; the policy does not apply`
  } else {
    const policy = compilePolicy(config)
    if (numericId !== undefined && policy.needsProjects) {
      if (values.project) project = values.project
      else {
        unresolved = true
        note = `numeric ${numericId.resource === 'projects' ? 'project' : numericId.resource === 'groups' ? 'group' : 'namespace'} id ${numericId.id}: serve resolves it through the GitLab API${config.upstream.apiToken ? '' : ' (no upstream.apiToken: it cannot, and denies)'}; pass --project to simulate`
      }
    }
    if (attr.followsRedirects && project !== undefined && policy.needsProjects && config.upstream.apiToken) {
      if (values.project) project = values.project
      else note = `serve first asks the GitLab API which project ${project} is now (a former path GitLab redirects names the project it moved to); pass --project to simulate`
    }
    decision = decideAlsoAs(policy, { method, path, route: attr.route, project, projectUnresolved: unresolved, ...(attr.groupWide && { groupWide: true }), clientIp: values.ip ?? '127.0.0.1' }, identity, policyMethod)
  }
  const ruleIndex = decision.rule === null ? -1 : config.policy.rules.findIndex((r) => r.name === decision.rule)
  // The status the proxy itself answers with (a challenge: 401, or 302 for a browser); null when GitLab answers.
  const status = problem ? 400 : iapStatus !== undefined ? iapStatus : decision.result === 'allow' ? null : decision.result === 'deny' ? 403 : 401
  // Why a challenge is answered 401 even to a browser, as serve's challenge branch (src/app.ts) decides it.
  const no302 = attr.route === 'iap'
    ? 'the endpoint answers it itself'
    : method !== 'GET' && method !== 'HEAD'
      ? 'only a GET or HEAD is sent to sign-in'
      : attr.route === 'api' || attr.route === 'git' || attr.route === 'lfs'
        ? `${attr.route === 'api' ? 'API' : attr.route === 'git' ? 'git' : 'LFS'} requests are never sent to sign-in`
        : !browserSignInConfigured(config) ? 'browser sign-in is not configured' : undefined
  const response = problem ? '400' : iapStatus === 200 ? 'answered by gitlab-iap' : iapStatus !== undefined ? String(iapStatus) : decision.result === 'allow' ? 'forwarded' : decision.result === 'deny' ? '403' : no302 ? '401' : '302 to sign-in (browsers) or 401'
  // Only allow or deny is shown: a challenged request is not let through either; `challenge` says why.
  const challenged = decision.result === 'challenge'
  const shown = decision.result === 'allow' ? 'allow' : 'deny'
  if (values.json) {
    io.stdout.write(
      JSON.stringify({
        decision: shown, ...(challenged && { challenge: true }), rule: decision.rule, ruleIndex: ruleIndex === -1 ? null : ruleIndex + 1, reason: decision.reason, status, response,
        route: attr.route, project: project ?? null, method, ...(policyMethod && { policyMethod }), path,
        identity: { kind: identity.kind, id: identity.id || null, groups: identity.groups, roles: identity.roles }, ...(note && { note }),
      }) + '\n',
    )
    return 0
  }
  const who = identity.kind === 'anonymous' ? 'anonymous' : `${identity.kind} ${identity.id}${identity.groups.length ? ` (groups: ${(values.group ?? []).map((g, i) => (g === groups[i] ? g : `${g}=${groups[i]}`)).join(', ')})` : ''}${roles.length ? ` (roles: ${roles.join(', ')})` : ''}`
  io.stdout.write(
    [
      `decision: ${shown}${challenged ? ` (challenged: no credential; ${no302 ? `answered 401: ${no302}` : 'browsers are sent to sign-in, other clients get 401'})` : ''}`,
      `rule:     ${decision.rule === null ? (problem ? '(none: rejected before the policy)' : iapStatus !== undefined ? "(none: the proxy's own endpoint)" : unresolved ? '(none: the project could not be resolved)' : `(none: policy.default is ${config.policy.default})`) : `${decision.rule} (rule ${ruleIndex + 1} of ${config.policy.rules.length})`}`,
      `reason:   ${decision.reason}`,
      `response: ${response}`,
      `request:  ${method} ${values.path}${policyMethod ? (attr.route === 'git' ? ` (it starts a git push: decided as ${method} and as the ${policyMethod} it announces)` : ` (it opens a terminal or a job's services: decided as ${method} and as ${policyMethod})`) : ''}`,
      `route:    ${attr.route}${project ? `, project ${project}` : ''}`,
      `identity: ${who}`,
      ...(note ? [`note:     ${note}`] : []),
    ].join('\n') + '\n',
  )
  return 0
}
