import { describe, expect, it } from 'vitest'
import { ANONYMOUS, type Identity } from '../../../src/auth/identity.ts'
import { parseConfig } from '../../../src/config/load.ts'
import { attribute } from '../../../src/gitlab/attribute.ts'
import { IapError } from '../../../src/errors.ts'
import { checkCanonicalPath, matchPath } from '../../../src/http/canonical-path.ts'
import { compilePolicy, decide, projectCandidates } from '../../../src/policy/index.ts'

const ADMINS = '6c0bd1d2-0000-4000-8000-000000000001'
const ENG = '6c0bd1d2-0000-4000-8000-000000000002'
const CONTR = '6c0bd1d2-0000-4000-8000-000000000003'
const config = parseConfig(`
server: { publicUrl: "https://gitlab.example.com" }
upstream: { url: "http://gitlab:8181" }
issuers: [ { name: gitlab-ci, issuer: "https://gitlab.example.com", audiences: [x] } ]
groups: { admins: "${ADMINS}", engineering: "${ENG}", contractors: "${CONTR}", ci-platform: "gitlab-ci:platform" }
policy:
  rules:
    - { name: gitlab-health, paths: ["/-/health", "/-/readiness"], public: true }
    - { name: runners, paths: ["/api/v4/jobs/**", "/api/v4/runners/**"], sourceIps: ["10.0.0.0/8", "fd00::/8"], public: true }
    - { name: blocked, paths: ["/-/blocked/**"], deny: true }
    - { name: admin-area, paths: ["/admin", "/admin/**", "/api/v4/admin/**"], groups: [admins] }
    - { name: secret-projects, projects: ["secret-group/**"], groups: [admins] }
    - { name: alice-only, paths: ["/alice/**"], users: ["oid-alice", "Alice@Example.com"] }
    - { name: deploy-app, paths: ["/api/v4/deploy/**"], apps: ["app-client-1"], roles: ["GitLab.Deploy"] }
    - { name: ci, paths: ["/api/v4/ci/**"], groups: [ci-platform] }
    - { name: read-everything, paths: ["/**"], methods: [GET, HEAD], groups: [engineering, contractors] }
    - { name: engineering, paths: ["/**"], groups: [engineering] }
`, {})
const policy = compilePolicy(config)
const user = (groups: string[], extra: Partial<Identity> = {}): Identity => ({ kind: 'user', id: 'oid-x', name: 'x@example.com', email: 'alice@example.com', groups, roles: [], issuer: 'entra', ...extra })
const app: Identity = { kind: 'app', id: 'sp-1', appId: 'app-client-1', groups: [ENG], roles: [], issuer: 'entra' }

function run(method: string, path: string, who: Identity, clientIp = '203.0.113.9', extra: { projectUnresolved?: boolean; project?: string } = {}) {
  expect(checkCanonicalPath(path)).toBeUndefined()
  const attr = attribute(method, path)
  return decide(policy, { method, path, route: attr.route, project: extra.project ?? attr.project, projectUnresolved: extra.projectUnresolved, clientIp }, who)
}

describe('decide', () => {
  it.each([
    ['public rule, anonymous', 'GET', '/-/health', ANONYMOUS, '203.0.113.9', { result: 'allow', rule: 'gitlab-health', reason: 'public' }],
    ['sourceIps match (v4)', 'POST', '/api/v4/jobs/request', ANONYMOUS, '10.2.3.4', { result: 'allow', rule: 'runners', reason: 'public' }],
    ['sourceIps match (v6)', 'POST', '/api/v4/jobs/request', ANONYMOUS, 'fd00::1', { result: 'allow', rule: 'runners' }],
    ['sourceIps miss falls to the next rule', 'POST', '/api/v4/jobs/request', ANONYMOUS, '203.0.113.9', { result: 'challenge', rule: 'engineering', reason: 'login-required' }],
    ['deny rule', 'GET', '/-/blocked/x', user([ADMINS]), '203.0.113.9', { result: 'deny', rule: 'blocked', reason: 'deny-rule' }],
    ['admin with group', 'GET', '/admin/users', user([ADMINS]), '203.0.113.9', { result: 'allow', rule: 'admin-area', reason: 'group-match' }],
    ['first match decides: engineer denied at admin-area', 'GET', '/admin/users', user([ENG]), '203.0.113.9', { result: 'deny', rule: 'admin-area', reason: 'no-group-match' }],
    // git reads with POSTs: a GET/HEAD rule listing who may read lets them clone and fetch LFS, never push.
    ['a reader may clone (POST git-upload-pack)', 'POST', '/group/project.git/git-upload-pack', user([CONTR]), '203.0.113.9', { result: 'allow', rule: 'read-everything', reason: 'group-match' }],
    ['a reader may fetch LFS objects (POST batch)', 'POST', '/group/project.git/info/lfs/objects/batch', user([CONTR]), '203.0.113.9', { result: 'allow', rule: 'read-everything', reason: 'group-match' }],
    ['a reader may not push (POST git-receive-pack)', 'POST', '/group/project.git/git-receive-pack', user([CONTR]), '203.0.113.9', { result: 'deny', rule: 'engineering', reason: 'no-group-match' }],
    ['a reader may not upload LFS objects (PUT)', 'PUT', '/group/project.git/gitlab-lfs/objects/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/3', user([CONTR]), '203.0.113.9', { result: 'deny', rule: 'engineering', reason: 'no-group-match' }],
    ['a POST elsewhere is no read', 'POST', '/group/project/-/issues', user([CONTR]), '203.0.113.9', { result: 'deny', rule: 'engineering', reason: 'no-group-match' }],
    ['/admin itself', 'GET', '/admin', user([ENG]), '203.0.113.9', { result: 'deny', rule: 'admin-area' }],
    ['case-insensitive paths', 'GET', '/ADMIN/Users', user([ENG]), '203.0.113.9', { result: 'deny', rule: 'admin-area' }],
    ['Rails format suffix', 'GET', '/admin.json', user([ENG]), '203.0.113.9', { result: 'deny', rule: 'admin-area' }],
    ['trailing slash', 'GET', '/admin/', user([ENG]), '203.0.113.9', { result: 'deny', rule: 'admin-area' }],
    ['anonymous on a group rule → challenge', 'GET', '/admin/users', ANONYMOUS, '203.0.113.9', { result: 'challenge', rule: 'admin-area', reason: 'login-required' }],
    ['project rule: web path', 'GET', '/secret-group/vault/-/issues', user([ENG]), '203.0.113.9', { result: 'deny', rule: 'secret-projects' }],
    ['project rule: group page', 'GET', '/secret-group', user([ENG]), '203.0.113.9', { result: 'deny', rule: 'secret-projects' }],
    ['project rule: case', 'GET', '/Secret-Group/Vault', user([ENG]), '203.0.113.9', { result: 'deny', rule: 'secret-projects' }],
    ['project rule: encoded REST id', 'GET', '/api/v4/projects/secret-group%2Fvault/issues', user([ENG]), '203.0.113.9', { result: 'deny', rule: 'secret-projects' }],
    ['project rule: git', 'POST', '/secret-group/vault.git/git-upload-pack', user([ENG]), '203.0.113.9', { result: 'deny', rule: 'secret-projects' }],
    ['project rule: lfs', 'POST', '/secret-group/sub/vault.git/info/lfs/objects/batch', user([ENG]), '203.0.113.9', { result: 'deny', rule: 'secret-projects' }],
    ['project rule: dumb HTTP below .git', 'GET', '/secret-group/vault.git/HEAD', user([ENG]), '203.0.113.9', { result: 'deny', rule: 'secret-projects' }],
    ['project rule: group API', 'GET', '/api/v4/groups/secret-group%2Fsub', user([ENG]), '203.0.113.9', { result: 'deny', rule: 'secret-projects' }],
    ['project rule: admin allowed', 'GET', '/secret-group/vault', user([ADMINS]), '203.0.113.9', { result: 'allow', rule: 'secret-projects' }],
    ['users by oid', 'GET', '/alice/x', user([], { id: 'oid-alice' }), '203.0.113.9', { result: 'allow', rule: 'alice-only', reason: 'user-match' }],
    ['users by upn, any case', 'GET', '/alice/x', user([], { name: 'alice@example.com' }), '203.0.113.9', { result: 'allow', rule: 'alice-only' }],
    ['a guest never by its home-chosen name', 'GET', '/alice/x', user([], { name: 'alice@example.com', guest: true }), '203.0.113.9', { result: 'deny', rule: 'alice-only' }],
    ['a guest by its oid', 'GET', '/alice/x', user([], { id: 'oid-alice', guest: true }), '203.0.113.9', { result: 'allow', rule: 'alice-only', reason: 'user-match' }],
    ['users never by email', 'GET', '/alice/x', user([], { email: 'Alice@Example.com' }), '203.0.113.9', { result: 'deny', rule: 'alice-only' }],
    ['apps by client id', 'POST', '/api/v4/deploy/x', app, '203.0.113.9', { result: 'allow', rule: 'deploy-app', reason: 'app-match' }],
    ['app roles', 'POST', '/api/v4/deploy/x', { ...app, appId: 'other', roles: ['GitLab.Deploy'] }, '203.0.113.9', { result: 'allow', rule: 'deploy-app', reason: 'role-match' }],
    ['app identities are never granted by groups', 'GET', '/group/project', app, '203.0.113.9', { result: 'deny', rule: 'read-everything' }],
    ['issuer-qualified group alias', 'GET', '/api/v4/ci/x', { kind: 'ci', id: 'ada', groups: ['gitlab-ci:platform'], roles: [], issuer: 'gitlab-ci' } as Identity, '203.0.113.9', { result: 'allow', rule: 'ci' }],
    // An Entra groups claim carrying the string (a group named so, where the claim holds names) is no CI group.
    ['an Entra group that spells a CI group is not one', 'GET', '/api/v4/ci/x', user(['gitlab-ci:platform']), '203.0.113.9', { result: 'deny', rule: 'ci', reason: 'no-group-match' }],
    // An extra issuer's app is named qualified: its id equal to an Entra client id grants nothing of that client's.
    ['an extra issuer\'s app cannot pose as an Entra client id', 'GET', '/api/v4/deploy/x', { kind: 'app', id: 'app-client-1', groups: [], roles: [], issuer: 'gitlab-ci' } as Identity, '203.0.113.9', { result: 'deny', rule: 'deploy-app' }],
    ['an Entra group named like a CI group does not count', 'GET', '/api/v4/ci/x', user(['platform']), '203.0.113.9', { result: 'deny', rule: 'ci' }],
    ['methods: contractors read', 'GET', '/group/project', user([CONTR]), '203.0.113.9', { result: 'allow', rule: 'read-everything' }],
    ['methods: contractors cannot write', 'POST', '/group/project/-/issues', user([CONTR]), '203.0.113.9', { result: 'deny', rule: 'engineering' }],
    ['raw group ids and case', 'POST', '/group/project/-/issues', user([ENG.toUpperCase()]), '203.0.113.9', { result: 'allow', rule: 'engineering' }],
  ] as const)('%s', (_name, method, path, who, ip, expected) => {
    expect(run(method, path, who as Identity, ip)).toMatchObject(expected)
  })

  it('denies a numeric project id that could not be resolved, whatever the identity', () => {
    expect(run('GET', '/api/v4/projects/42', user([ADMINS]), '203.0.113.9', { projectUnresolved: true })).toEqual({ result: 'deny', rule: null, reason: 'project-unresolved' })
    expect(run('GET', '/api/v4/projects/42/issues', user([ENG]), '203.0.113.9', { project: 'secret-group/vault' })).toMatchObject({ result: 'deny', rule: 'secret-projects' })
  })

  it('challenges a request without credentials wherever signing in may help (redirect or 401)', () => {
    expect(run('GET', '/admin/users', ANONYMOUS)).toEqual({ result: 'challenge', rule: 'admin-area', reason: 'login-required' })
    expect(run('GET', '/api/v4/projects/42', ANONYMOUS, '203.0.113.9', { projectUnresolved: true })).toEqual({ result: 'challenge', rule: null, reason: 'login-required' })
    const closed = compilePolicy(parseConfig(`server: { publicUrl: "https://g.example.com" }\nupstream: { url: "http://g:1" }\npolicy: { rules: [ { name: a, paths: ["/a"], public: true } ] }\n`, {}))
    expect(decide(closed, { method: 'GET', path: '/b', route: 'web', clientIp: '1.1.1.1' }, ANONYMOUS)).toEqual({ result: 'challenge', rule: null, reason: 'login-required' })
    // An identity still gets the refusal itself.
    expect(run('GET', '/-/blocked/x', user([ENG]))).toEqual({ result: 'deny', rule: 'blocked', reason: 'deny-rule' })
    expect(decide(closed, { method: 'GET', path: '/b', route: 'web', clientIp: '1.1.1.1' }, user([ENG]))).toEqual({ result: 'deny', rule: null, reason: 'no-rule-matched' })
    // Public rules and the default still allow without credentials.
    expect(decide(closed, { method: 'GET', path: '/a', route: 'web', clientIp: '1.1.1.1' }, ANONYMOUS)).toEqual({ result: 'allow', rule: 'a', reason: 'public' })
  })

  it('a deny rule refuses a request without credentials outright (403), as it refuses everyone: signing in cannot help', () => {
    for (const method of ['GET', 'HEAD', 'POST']) {
      expect(run(method, '/-/blocked/x', ANONYMOUS), method).toEqual({ result: 'deny', rule: 'blocked', reason: 'deny-rule' })
    }
    expect(run('GET', '/-/blocked/x', user([ADMINS]))).toEqual({ result: 'deny', rule: 'blocked', reason: 'deny-rule' })
  })

  it('falls back to policy.default', () => {
    const open = compilePolicy(parseConfig(`server: { publicUrl: "https://g.example.com" }\nupstream: { url: "http://g:1" }\npolicy: { default: allow, rules: [ { name: a, paths: ["/a"], deny: true } ] }\n`, {}))
    expect(decide(open, { method: 'GET', path: '/b', route: 'web', clientIp: '1.1.1.1' }, ANONYMOUS)).toEqual({ result: 'allow', rule: null, reason: 'default-allow' })
    const closed = compilePolicy(parseConfig(`server: { publicUrl: "https://g.example.com" }\nupstream: { url: "http://g:1" }\n`, {}))
    expect(decide(closed, { method: 'GET', path: '/b', route: 'web', clientIp: '1.1.1.1' }, user([ENG]))).toEqual({ result: 'deny', rule: null, reason: 'no-rule-matched' })
  })
})

describe('the reason of a refusal names what the identity lacks', () => {
  const reasons = compilePolicy(parseConfig(`
server: { publicUrl: "https://gitlab.example.com" }
upstream: { url: "http://gitlab:8181" }
groups: { engineering: "${ENG}" }
policy:
  rules:
    - { name: by-user, paths: ["/u/**"], users: ["alice@example.com"] }
    - { name: by-role, paths: ["/r/**"], roles: ["GitLab.Admin"] }
    - { name: by-app, paths: ["/a/**"], apps: ["app-client-1"] }
    - { name: group-and-user, paths: ["/gu/**"], users: ["alice@example.com"], groups: [engineering] }
    - { name: user-and-role, paths: ["/ur/**"], roles: ["GitLab.Admin"], users: ["alice@example.com"] }
    - { name: role-and-app, paths: ["/ra/**"], apps: ["app-client-1"], roles: ["GitLab.Deploy"] }
    - { name: by-group, paths: ["/g/**"], groups: [engineering] }
`, {}))
  const bob = user([], { id: 'oid-bob', name: 'bob@example.com' })
  const overage = user([], { groupsSource: 'overage-unresolved' })
  const otherApp: Identity = { kind: 'app', id: 'sp-2', appId: 'app-client-2', groups: [], roles: [], issuer: 'entra' }
  const ask = (path: string, who: Identity) => decide(reasons, { method: 'GET', path, route: 'web', clientIp: '127.0.0.1' }, who)

  it.each([
    ['/u/x', 'bob', 'by-user', 'no-user-match'],
    ['/r/x', 'bob', 'by-role', 'no-role-match'],
    ['/a/x', 'otherApp', 'by-app', 'no-app-match'],
    ['/a/x', 'bob', 'by-app', 'no-app-match'],
    ['/g/x', 'bob', 'by-group', 'no-group-match'],
    // Several kinds: groups when the rule lists any, else the first of users, roles, apps.
    ['/gu/x', 'bob', 'group-and-user', 'no-group-match'],
    ['/ur/x', 'bob', 'user-and-role', 'no-user-match'],
    ['/ra/x', 'otherApp', 'role-and-app', 'no-role-match'],
    // Groups that could not be read matter only to a rule that lists groups.
    ['/g/x', 'overage', 'by-group', 'groups-unresolved'],
    ['/gu/x', 'overage', 'group-and-user', 'groups-unresolved'],
    ['/u/x', 'overage', 'by-user', 'no-user-match'],
  ] as const)('%s refused to %s by %s: %s', (path, who, rule, reason) => {
    expect(ask(path, { bob, otherApp, overage }[who])).toEqual({ result: 'deny', rule, reason })
  })

  it('control: each rule still grants whom it names', () => {
    expect(ask('/u/x', user([], { name: 'alice@example.com' }))).toMatchObject({ result: 'allow', reason: 'user-match' })
    expect(ask('/r/x', user([], { roles: ['GitLab.Admin'] }))).toMatchObject({ result: 'allow', reason: 'role-match' })
    expect(ask('/a/x', { ...otherApp, appId: 'app-client-1' })).toMatchObject({ result: 'allow', reason: 'app-match' })
  })
})

describe('rule conditions', () => {
  const compile = (rules: string) => compilePolicy(parseConfig(`server: { publicUrl: "https://g.example.com" }\nupstream: { url: "http://g:1" }\ngroups: { engineering: "${ENG}" }\npolicy:\n  rules:\n${rules}`, {}))
  const engineer = user([ENG])
  const at = (p: ReturnType<typeof compile>, method: string, path: string) => {
    expect(checkCanonicalPath(path)).toBeUndefined()
    const attr = attribute(method, path)
    return decide(p, { method, path, route: attr.route, project: attr.project, clientIp: '127.0.0.1' }, engineer)
  }
  const open = '    - { name: rest, paths: ["/**"], groups: [engineering] }\n'

  it('a rule with GET in methods also covers HEAD (Rails answers HEAD with the GET action)', () => {
    const p = compile(`    - { name: no-export, paths: ["/export/**"], methods: [GET], deny: true }\n${open}`)
    expect(at(p, 'GET', '/export/all')).toMatchObject({ result: 'deny', rule: 'no-export' })
    expect(at(p, 'HEAD', '/export/all')).toMatchObject({ result: 'deny', rule: 'no-export' })
    expect(at(p, 'POST', '/export/all')).toMatchObject({ result: 'allow', rule: 'rest' })
    // HEAD alone does not cover GET.
    const head = compile(`    - { name: no-head, paths: ["/export/**"], methods: [HEAD], deny: true }\n${open}`)
    expect(at(head, 'GET', '/export/all')).toMatchObject({ result: 'allow', rule: 'rest' })
    expect(at(head, 'HEAD', '/export/all')).toMatchObject({ result: 'deny', rule: 'no-head' })
  })

  it.each([
    ['/caf%C3%A9/**', ['/caf%C3%A9', '/caf%c3%a9/x', '/CAF%C3%A9/x/y']],
    ['/café/**', ['/caf%C3%A9/x']],
    ['/t/', ['/t', '/t/']],
    ['/t/*/', ['/t/x', '/t/x/']],
    ['/%61dmin', ['/admin', '/ADMIN']],
    ['/api/v4/projects/g%2Fp/**', ['/api/v4/projects/g%2Fp/issues', '/api/v4/projects/G%2fP']],
    ['/a%2Ab', ['/a*b']],
  ])('the pattern %s is read in the request form and matches %j', (pattern, paths) => {
    const p = compile(`    - { name: pattern, paths: ["${pattern}"], deny: true }\n${open}`)
    for (const path of paths) expect(at(p, 'GET', path), path).toMatchObject({ result: 'deny', rule: 'pattern' })
  })

  it.each([
    ['/api/v4/projects/g%2Fp/**', '/api/v4/projects/g/p/issues'],
    ['/a%2Ab', '/axb'],
    ['/', '/x'],
    ['/t/', '/tt'],
  ])('the pattern %s does not match %s', (pattern, path) => {
    const p = compile(`    - { name: pattern, paths: ["${pattern}"], deny: true }\n${open}`)
    expect(at(p, 'GET', path)).toMatchObject({ result: 'allow', rule: 'rest' })
  })

  it('project patterns are decoded like the projects they match', () => {
    const p = compile(`    - { name: vault, projects: ["secret-group%2Fvault"], deny: true }\n${open}`)
    expect(at(p, 'GET', '/secret-group/vault/-/issues')).toMatchObject({ result: 'deny', rule: 'vault' })
    expect(at(p, 'GET', '/api/v4/projects/secret-group%2Fvault')).toMatchObject({ result: 'deny', rule: 'vault' })
  })

  it('a pattern with a malformed escape is a config error naming every bad key', () => {
    const bad = () => compile(`    - { name: a, paths: ["/ok", "/caf%C3"], deny: true }\n    - { name: b, paths: ["/x"], projects: ["g/%zz"], deny: true }\n${open}`)
    expect(bad).toThrow(IapError)
    try {
      bad()
    } catch (err) {
      expect((err as IapError).code).toBe('IAP_ERR_CONFIG_INVALID')
      expect((err as IapError).message).toMatch(/^policy\.rules\[0\]\.paths\[1\]: bad percent-encoding in "\/caf%C3".*; policy\.rules\[1\]\.projects\[0\]: bad percent-encoding in "g\/%zz"/)
    }
  })
})

describe('case folding', () => {
  // PostgreSQL's lower() maps İ (U+0130) to i, as GitLab compares names; JavaScript would add a combining dot.
  it('a dotted capital I in a project or path is matched as i', () => {
    expect(projectCandidates('%C4%B0nternal/Vault')).toEqual(['internal', 'internal/vault'])
    expect(matchPath('/%C4%B0nternal/Vault')).toBe('/internal/vault')
    const internal = compilePolicy(parseConfig(`
server: { publicUrl: "https://gitlab.example.com" }
upstream: { url: "http://gitlab:8181" }
groups: { admins: "${ADMINS}", engineering: "${ENG}" }
policy:
  rules:
    - { name: internal, projects: ["internal/**"], groups: [admins] }
    - { name: rest, paths: ["/**"], groups: [engineering] }
`, {}))
    const path = '/api/v4/projects/%C4%B0nternal%2Fvault/issues'
    const attr = attribute('GET', path)
    expect(decide(internal, { method: 'GET', path, route: attr.route, project: attr.project, clientIp: '203.0.113.9' }, user([ENG]))).toMatchObject({ result: 'deny', rule: 'internal' })
  })
})

describe('group-wide endpoints and projects rules below their group', () => {
  const wide = compilePolicy(parseConfig(`
server: { publicUrl: "https://gitlab.example.com" }
upstream: { url: "http://gitlab:8181" }
groups: { admins: "${ADMINS}", engineering: "${ENG}" }
policy:
  rules:
    - { name: exception, paths: ["/api/v4/groups/parent/projects"], groups: [engineering] }
    - { name: parent-secret, projects: ["parent/secret/**"], groups: [admins] }
    - { name: parent-docs, projects: ["parent/docs/**"], public: true }
    - { name: frozen, projects: ["parent/frozen/**"], methods: [POST, PUT, DELETE], deny: true }
    - { name: read-everything, paths: ["/**"], groups: [engineering] }
`, {}))
  const ask = (method: string, target: string, who: Identity, project?: string) => {
    const [path, query = ''] = target.split('?') as [string, string?]
    const attr = attribute(method, path, query)
    return decide(wide, { method, path, route: attr.route, project: project ?? attr.project, ...(attr.groupWide && { groupWide: true }), clientIp: '203.0.113.9' }, who)
  }

  it.each([
    // A group's search, issues, merge requests and packages reach parent/secret: its rule refuses them.
    ['GET', '/api/v4/groups/parent/search', user([ENG]), { result: 'deny', rule: 'parent-secret', reason: 'no-group-match' }],
    ['GET', '/api/v4/groups/Parent/merge_requests', user([ENG]), { result: 'deny', rule: 'parent-secret' }],
    ['GET', '/groups/parent/-/issues', user([ENG]), { result: 'deny', rule: 'parent-secret' }],
    ['GET', '/api/v4/group/parent/-/packages/composer/packages', user([ENG]), { result: 'deny', rule: 'parent-secret' }],
    ['GET', '/api/v4/packages/npm/@parent%2Flib', user([ENG]), { result: 'deny', rule: 'parent-secret' }],
    // The group's activity feed carries the events of every project below it (Rails takes the format from the query too).
    ['GET', '/parent.atom', user([ENG]), { result: 'deny', rule: 'parent-secret' }],
    ['GET', '/groups/parent.atom', user([ENG]), { result: 'deny', rule: 'parent-secret' }],
    ['GET', '/parent?format=atom', user([ENG]), { result: 'deny', rule: 'parent-secret' }],
    ['GET', '/groups/parent.json', user([ENG]), { result: 'deny', rule: 'parent-secret' }],
    ['GET', '/parent?format=html&sort=name', user([ENG]), { result: 'allow', rule: 'read-everything' }],
    ['GET', '/api/v4/groups/parent/search', ANONYMOUS, { result: 'challenge', rule: 'parent-secret', reason: 'login-required' }],
    // A rule below that would let the identity in never allows by itself: the rules after it decide.
    ['GET', '/api/v4/groups/parent/search', user([ADMINS, ENG]), { result: 'allow', rule: 'read-everything' }],
    ['GET', '/api/v4/groups/parent/search', user([ADMINS]), { result: 'deny', rule: 'read-everything', reason: 'no-group-match' }],
    // A rule below counts with its methods: the frozen projects refuse the group's writes, not its reads.
    ['POST', '/api/v4/groups/parent/issues', user([ADMINS, ENG]), { result: 'deny', rule: 'frozen', reason: 'deny-rule' }],
    ['GET', '/api/v4/groups/parent/issues', user([ADMINS, ENG]), { result: 'allow', rule: 'read-everything' }],
    // A rule listed before decides first, as always: the way to open one group endpoint again.
    ['GET', '/api/v4/groups/parent/projects', user([ENG]), { result: 'allow', rule: 'exception' }],
    // Not group-wide: a project's own endpoints, another subgroup, the group's own page.
    ['GET', '/api/v4/projects/parent%2Fopen%2Fapp/issues', user([ENG]), { result: 'allow', rule: 'read-everything' }],
    ['GET', '/api/v4/groups/parent%2Fopen/search', user([ENG]), { result: 'allow', rule: 'read-everything' }],
    ['GET', '/parent', user([ENG]), { result: 'allow', rule: 'read-everything' }],
    ['GET', '/api/v4/namespaces/parent', user([ENG]), { result: 'allow', rule: 'read-everything' }],
  ] as const)('%s %s', (method, path, who, expected) => {
    expect(ask(method, path, who)).toMatchObject(expected)
  })

  it('a deny rule below the group refuses its group-wide requests without credentials outright, as it refuses everyone', () => {
    const frozen = compilePolicy(parseConfig(`
server: { publicUrl: "https://gitlab.example.com" }
upstream: { url: "http://gitlab:8181" }
groups: { engineering: "${ENG}" }
policy:
  rules:
    - { name: frozen, projects: ["parent/frozen/**"], methods: [POST], deny: true }
    - { name: read-everything, paths: ["/**"], groups: [engineering] }
`, {}))
    const anonymous = (method: string, path: string) => decide(frozen, { method, path, route: 'api', project: 'parent', groupWide: true, clientIp: '203.0.113.9' }, ANONYMOUS)
    expect(anonymous('POST', '/api/v4/groups/parent/issues')).toEqual({ result: 'deny', rule: 'frozen', reason: 'deny-rule' })
    expect(anonymous('GET', '/api/v4/groups/parent/issues')).toEqual({ result: 'challenge', rule: 'read-everything', reason: 'login-required' })
  })

  it('a numeric group id resolved to the group above counts the same', () => {
    expect(ask('GET', '/api/v4/groups/99/search', user([ENG]), 'parent')).toMatchObject({ result: 'deny', rule: 'parent-secret' })
    expect(ask('GET', '/api/v4/groups/99/search', user([ENG]), 'other')).toMatchObject({ result: 'allow', rule: 'read-everything' })
  })

  it('a grant below the group never lets a group-wide request past a stricter rule above the subgroup', () => {
    const nested = compilePolicy(parseConfig(`
server: { publicUrl: "https://gitlab.example.com" }
upstream: { url: "http://gitlab:8181" }
groups: { admins: "${ADMINS}", contractors: "${CONTR}" }
policy:
  rules:
    - { name: open-for-contractors, projects: ["parent/open/**"], groups: [contractors] }
    - { name: parent-admins, projects: ["parent/**"], groups: [admins] }
    - { name: read-everything, paths: ["/**"], groups: [contractors] }
`, {}))
    const facts = (path: string) => ({ method: 'GET', path, route: attribute('GET', path).route, project: attribute('GET', path).project, clientIp: '203.0.113.9' })
    expect(decide(nested, facts('/api/v4/groups/parent/search'), user([CONTR]))).toMatchObject({ result: 'deny', rule: 'parent-admins' })
    expect(decide(nested, facts('/api/v4/projects/parent%2Fopen%2Fapp/issues'), user([CONTR]))).toMatchObject({ result: 'allow', rule: 'open-for-contractors' })
  })
})

describe('attribution', () => {
  it.each([
    ['/group/sub/project/-/merge_requests/1', { route: 'web', project: 'group/sub/project' }],
    ['/groups/group/sub/-/epics', { route: 'web', project: 'group/sub', groupWide: true }],
    ['/api/v4/projects/group%2Fsub%2Fproject/repository/files/a%2Fb.rb', { route: 'api', project: 'group/sub/project', followsRedirects: true }],
    ['/api/v4/projects/42/issues', { route: 'api', numericId: { resource: 'projects', id: '42' } }],
    ['/api/v4/projects/42.json', { route: 'api', numericId: { resource: 'projects', id: '42' } }],
    ['/api/v4/groups/99/projects', { route: 'api', numericId: { resource: 'groups', id: '99' }, groupWide: true }],
    ['/api/v4/namespaces/99', { route: 'api', numericId: { resource: 'namespaces', id: '99' } }],
    ['/projects/42', { route: 'web', numericId: { resource: 'projects', id: '42' } }],
    ['/projects/new', { route: 'web' }],
    // Rails casts `/projects/:id` to an integer: a suffix or sign still names project 42.
    ['/projects/42.json', { route: 'web', numericId: { resource: 'projects', id: '42' } }],
    ['/projects/42-anything', { route: 'web', numericId: { resource: 'projects', id: '42' } }],
    ['/projects/%2B042', { route: 'web', numericId: { resource: 'projects', id: '42' } }],
    // Instance routes that name a project or group by id: redirects and attachments.
    ['/-/p/42', { route: 'web', numericId: { resource: 'projects', id: '42' } }],
    ['/-/g/7', { route: 'web', numericId: { resource: 'groups', id: '7' } }],
    ['/-/project/42/uploads/0123abcd/secret.pdf', { route: 'web', numericId: { resource: 'projects', id: '42' } }],
    ['/-/group/7/uploads/0123abcd/logo.png', { route: 'web', numericId: { resource: 'groups', id: '7' } }],
    ['/-/p/new', { route: 'web' }],
    ['/-/organizations/default/projects/secret-group/vault/edit', { route: 'web', project: 'secret-group/vault' }],
    ['/-/organizations/default/groups/secret-group/edit', { route: 'web', project: 'secret-group' }],
    // GitLab Geo's git routes carry a repository path after the node id.
    ['/-/push_from_secondary/2/secret-group/vault.git/git-receive-pack', { route: 'git', project: 'secret-group/vault', followsRedirects: true }],
    ['/-/from_secondary/2/secret-group/vault.git/info/refs', { route: 'git', project: 'secret-group/vault', followsRedirects: true }],
    ['/-/from_secondary/2/secret-group/vault.git/info/lfs/objects/batch', { route: 'lfs', project: 'secret-group/vault', followsRedirects: true }],
    ['/-/push_from_secondary/2/secret-group/vault', { route: 'git', project: 'secret-group/vault' }],
    ['/api/graphql.json', { route: 'graphql' }],
    // REST routes elsewhere that take a project or group (GitLab's lib/api).
    ['/api/v4/group/secret-group%2Fsub/-/packages/composer/packages', { route: 'api', project: 'secret-group/sub', groupWide: true }],
    ['/api/v4/group/42/-/packages/composer/p2/vendor/pkg.json', { route: 'api', numericId: { resource: 'groups', id: '42' }, groupWide: true }],
    ['/api/v4/security/projects/secret-group%2Fp/vulnerability_exports', { route: 'api', project: 'secret-group/p', followsRedirects: true }],
    ['/api/v4/security/groups/7/vulnerability_exports', { route: 'api', numericId: { resource: 'groups', id: '7' }, groupWide: true }],
    ['/api/v4/error_tracking/collector/api/secret-group%2Fhidden/envelope', { route: 'api', project: 'secret-group/hidden', followsRedirects: true }],
    ['/api/v4/error_tracking/collector/api/42/store', { route: 'api', numericId: { resource: 'projects', id: '42' } }],
    ['/api/v4/feature_flags/unleash/secret-group%2Fp/client/features', { route: 'api', project: 'secret-group/p', followsRedirects: true }],
    // Jira DVCS's GitHub-shaped API: `@` for `/`; a project segment with `@` is the whole path.
    ['/api/v3/repos/secret-group/p/commits/abc', { route: 'api', project: 'secret-group/p', followsRedirects: true }],
    ['/api/v3/repos/secret-group@sub/p/pulls', { route: 'api', project: 'secret-group/sub/p', followsRedirects: true }],
    ['/api/v3/repos/anything/secret-group@p/branches', { route: 'api', project: 'secret-group/p', followsRedirects: true }],
    ['/api/v3/users/secret-group/repos', { route: 'api', project: 'secret-group', groupWide: true }],
    ['/v2/secret-group/dependency_proxy/containers/alpine/manifests/latest', { route: 'web', project: 'secret-group' }],
    ['/admin/projects/secret-group/p/transfer', { route: 'web', project: 'secret-group/p' }],
    ['/admin/groups/secret-group/edit', { route: 'web', project: 'secret-group' }],
    ['/admin/projects', { route: 'web' }],
    ['/uploads/-/system/project/avatar/42/a.png', { route: 'web', numericId: { resource: 'projects', id: '42' } }],
    ['/uploads/-/system/note/attachment/1234/x.png', { route: 'web' }],
    ['/-/ide/project/group/sub/project/edit/main/-/a.rb', { route: 'web', project: 'group/sub/project' }],
    ['/-/ide/project/group/project/merge_requests/1', { route: 'web', project: 'group/project' }],
    ['/-/ide/project/group/project', { route: 'web', project: 'group/project' }],
    // GitLab moved this route under /-/ and freed the name: a group may be called `sent_notifications` now (F5).
    ['/sent_notifications/abc/unsubscribe', { route: 'web', project: 'sent_notifications/abc/unsubscribe' }],
    ['/group/project.git/git-receive-pack', { route: 'git', project: 'group/project', followsRedirects: true }],
    ['/group/project.git/info/lfs/objects/batch', { route: 'lfs', project: 'group/project', followsRedirects: true }],
    ['/group/project/-/blob/main/lib/foo.git/x', { route: 'web', project: 'group/project' }],
    ['/group/project/-/raw/main/x.git', { route: 'web', project: 'group/project' }],
    // Other paths below `<project>.git/` (dumb HTTP) name the project too: no namespace may end in `.git`.
    ['/group/project.git/HEAD', { route: 'web', project: 'group/project' }],
    ['/group/project.git/objects/info/packs', { route: 'web', project: 'group/project' }],
    // Below a reserved top-level route it is that route's: `/groups/secret/p.git/HEAD` is the group path.
    ['/groups/secret/p.git/HEAD', { route: 'web', project: 'secret/p.git/HEAD' }],
    // Wiki, design and snippet repositories keep their suffix; project-ids.ts resolves them as GitLab does.
    ['/old-ns/vault.wiki.git/info/refs', { route: 'git', project: 'old-ns/vault.wiki', followsRedirects: true }],
    ['/old-ns/vault.design.git/git-upload-pack', { route: 'git', project: 'old-ns/vault.design', followsRedirects: true }],
    ['/old-ns/vault/snippets/7.git/info/refs', { route: 'git', project: 'old-ns/vault/snippets/7', followsRedirects: true }],
    ['/old-group.wiki.git/info/refs', { route: 'git', project: 'old-group.wiki', followsRedirects: true }],
    // GitLab's find_project follows former paths of projects (a path with a "/"), never of groups.
    ['/api/v4/projects/vault/issues', { route: 'api', project: 'vault' }],
    ['/api/v4/groups/secret-group%2Fsub/search', { route: 'api', project: 'secret-group/sub', groupWide: true }],
    ['/api/v4/namespaces/secret-group', { route: 'api', project: 'secret-group' }],
    ['/groups/secret-group', { route: 'web', project: 'secret-group' }],
    // Names GitLab reserved once and freed since can be groups today (TOP_LEVEL_ROUTES is the list).
    ['/ide/vault/-/raw/main/secret.txt', { route: 'web', project: 'ide/vault' }],
    ['/manifest.json/vault/-/issues', { route: 'web', project: 'manifest.json/vault' }],
    ['/abuse_reports/vault', { route: 'web', project: 'abuse_reports/vault' }],
    ['/ide/vault/info/refs', { route: 'git', project: 'ide/vault', followsRedirects: true }],
    ['/users/sign_in', { route: 'web' }],
    ['/sitemap.xml.gz', { route: 'web' }],
    ['/V2/x', { route: 'web' }],
    // Instance-level package registries: the npm scope and a Terraform namespace are namespaces, a Conan user a project.
    ['/api/v4/packages/npm/@secret-group%2Fpkg', { route: 'api', project: 'secret-group', groupWide: true }],
    ['/api/v4/packages/npm/@secret-group/pkg', { route: 'api', project: 'secret-group', groupWide: true }],
    ['/api/v4/packages/npm/-/package/@secret-group%2Fpkg/dist-tags/latest', { route: 'api', project: 'secret-group', groupWide: true }],
    ['/api/v4/packages/npm/unscoped', { route: 'api' }],
    ['/api/v4/packages/npm/-/npm/v1/security/advisories/bulk', { route: 'api' }],
    ['/api/v4/packages/conan/v1/conans/pkg/1.0/secret-group+sub+p/stable/digest', { route: 'api', project: 'secret-group/sub/p', followsRedirects: true }],
    ['/api/v4/packages/conan/v1/files/pkg/1.0/secret-group+p/stable/0/export/conanfile.py', { route: 'api', project: 'secret-group/p', followsRedirects: true }],
    ['/api/v4/packages/conan/v1/conans/search', { route: 'api' }],
    ['/api/v4/packages/terraform/modules/v1/secret-group/net/aws/versions', { route: 'api', project: 'secret-group', groupWide: true }],
    ['/api/v4/packages/terraform/modules/v1/99/net/aws/1.0.0/download', { route: 'api', numericId: { resource: 'namespaces', id: '99' }, groupWide: true }],
    ['/api/v4/packages/maven/com/secret/app/1.0/app-1.0.jar', { route: 'api' }],
    ['/api/graphql', { route: 'graphql' }],
    ['/group/project.git/info/refs', { route: 'git', project: 'group/project', followsRedirects: true }],
    ['/group/project/info/refs', { route: 'git', project: 'group/project', followsRedirects: true }],
    ['/group/project.git/gitlab-lfs/objects/abc/12', { route: 'lfs', project: 'group/project', followsRedirects: true }],
    ['/-/cable', { route: 'cable' }],
    ['/-/iap/login', { route: 'iap' }],
    ['/-/IAP/whoami', { route: 'iap' }],
    ['/-/Iap/whoami', { route: 'iap' }],
    ['/-/iAP', { route: 'iap' }],
    ['/-/iapx', { route: 'web' }],
    ['/search', { route: 'web' }],
    // A reserved route asked for in another format is that route (Rails' `search(.:format)`), not a namespace.
    ['/search.json', { route: 'web' }],
    ['/search.json/', { route: 'web' }],
    ['/admin.json', { route: 'web' }],
    ['/dashboard.json', { route: 'web' }],
    ['/explore.json', { route: 'web' }],
    ['/help.json', { route: 'web' }],
    ['/users.json', { route: 'web' }],
    ['/groups.json', { route: 'web' }],
    ['/projects.json', { route: 'web' }],
    ['/explore.atom', { route: 'web' }],
    ['/Search.XML', { route: 'web' }],
    ['/help.html', { route: 'web' }],
    // Rails reads the format on the last segment only: below it, the suffix is part of a namespace's name.
    ['/search.json/vault', { route: 'web', project: 'search.json/vault' }],
    ['/admin.json/vault/-/issues', { route: 'web', project: 'admin.json/vault' }],
    // Not a reserved name with a suffix: a namespace's feed, as before.
    ['/searchable.json', { route: 'web', project: 'searchable', groupWide: true }],
    ['/api/v4/search', { route: 'api' }],
  ] as const)('%s', (path, expected) => {
    expect(attribute('GET', path)).toEqual(expected)
  })
})
