/**
 * The policy decides the receive-pack advertisement as the GET it is and as the push it starts, as `serve`
 * and `explain` do (`decideAlsoAs`): a GET/HEAD rule lets readers clone and fetch (upload-pack
 * advertisement and POST, LFS batch) but not start a push; a rule that allows POST does; a rule that
 * denies GETs still stops it. The same for the websocket handshakes of terminals and the job service proxy.
 */
import { describe, expect, it } from 'vitest'
import { ANONYMOUS, type Identity } from '../../../src/auth/identity.ts'
import { parseConfig } from '../../../src/config/load.ts'
import { attribute } from '../../../src/gitlab/attribute.ts'
import { compilePolicy, decideAlsoAs } from '../../../src/policy/index.ts'

const ENG = '6c0bd1d2-0000-4000-8000-000000000002'
const CONTR = '6c0bd1d2-0000-4000-8000-000000000003'

const policy = compilePolicy(parseConfig(`
server: { publicUrl: "https://gitlab.example.com" }
upstream: { url: "http://gitlab:8181" }
groups: { engineering: "${ENG}", contractors: "${CONTR}" }
policy:
  rules:
    - { name: read-everything, paths: ["/**"], methods: [GET, HEAD], groups: [engineering, contractors] }
    - { name: pushers, paths: ["/pushers/**"], methods: [POST], groups: [contractors] }
    - { name: engineering, paths: ["/**"], groups: [engineering] }
`, {}))

const user = (groups: string[]): Identity => ({ kind: 'user', id: 'u', groups, roles: [], issuer: 'entra' })

function decideFor(method: string, target: string, groups: string[], p = policy) {
  const [path = '', query = ''] = target.split('?')
  const attr = attribute(method, path, query)
  return decideAlsoAs(p, { method, path, route: attr.route, project: attr.project, clientIp: '127.0.0.1' }, user(groups), attr.policyMethod)
}

describe('git push under a GET/HEAD reading rule', () => {
  it.each([
    ['GET', '/group/project.git/info/refs?service=git-upload-pack', 'read-everything'],
    ['POST', '/group/project.git/git-upload-pack', 'read-everything'],
    ['POST', '/group/project.git/info/lfs/objects/batch', 'read-everything'],
    ['GET', '/group/project.git/info/refs', 'read-everything'],
  ])('a reader may %s %s (rule %s)', (method, target, rule) => {
    expect(decideFor(method, target, [CONTR])).toEqual({ result: 'allow', rule, reason: 'group-match' })
  })

  it.each([
    ['GET', '/group/project.git/info/refs?service=git-receive-pack'],
    ['HEAD', '/group/project.git/info/refs?service=git-receive-pack'],
    ['GET', '/group/project/info/refs?service=git-receive-pack'],
    ['POST', '/group/project.git/git-receive-pack'],
  ])('a reader may not %s %s: the writers rule refuses it', (method, target) => {
    expect(decideFor(method, target, [CONTR])).toEqual({ result: 'deny', rule: 'engineering', reason: 'no-group-match' })
  })

  it('a writer starts and finishes the push', () => {
    expect(decideFor('GET', '/group/project.git/info/refs?service=git-receive-pack', [ENG])).toEqual({ result: 'allow', rule: 'engineering', reason: 'group-match' })
    expect(decideFor('POST', '/group/project.git/git-receive-pack', [ENG])).toEqual({ result: 'allow', rule: 'engineering', reason: 'group-match' })
  })

  it('a rule that allows POST to the repository allows the advertisement', () => {
    expect(decideFor('GET', '/pushers/tool.git/info/refs?service=git-receive-pack', [CONTR])).toEqual({ result: 'allow', rule: 'pushers', reason: 'group-match' })
    expect(decideFor('POST', '/pushers/tool.git/git-receive-pack', [CONTR])).toEqual({ result: 'allow', rule: 'pushers', reason: 'group-match' })
  })
})

describe('terminals and the job service proxy under a GET/HEAD reading rule', () => {
  it.each(['/group/project/-/jobs/42/terminal.ws', '/group/project/-/jobs/42/proxy.ws', '/group/project/-/environments/7/terminal.ws'])(
    'a reader may not open %s: the writers rule refuses it; a writer may',
    (path) => {
      expect(decideFor('GET', path, [CONTR])).toEqual({ result: 'deny', rule: 'engineering', reason: 'no-group-match' })
      expect(decideFor('GET', path, [ENG])).toEqual({ result: 'allow', rule: 'engineering', reason: 'group-match' })
    },
  )

  it('a reader still reads the job, its terminal page, a file named terminal.ws and the cable', () => {
    for (const path of ['/group/project/-/jobs/42', '/group/project/-/jobs/42/terminal', '/group/project/-/blob/main/-/jobs/1/terminal.ws', '/-/cable']) {
      expect(decideFor('GET', path, [CONTR])).toEqual({ result: 'allow', rule: 'read-everything', reason: 'group-match' })
    }
  })

  it('a rule that allows POST there opens it', () => {
    expect(decideFor('GET', '/pushers/tool/-/jobs/1/terminal.ws', [CONTR])).toEqual({ result: 'allow', rule: 'pushers', reason: 'group-match' })
  })
})

describe('a rule that denies GETs', () => {
  const guarded = compilePolicy(parseConfig(`
server: { publicUrl: "https://gitlab.example.com" }
upstream: { url: "http://gitlab:8181" }
groups: { engineering: "${ENG}" }
policy:
  rules:
    - { name: no-reads-of-secret, paths: ["/secret/**"], methods: [GET, HEAD], deny: true }
    - { name: engineering, paths: ["/**"], groups: [engineering] }
`, {}))

  it.each([
    '/secret/vault.git/info/refs?service=git-upload-pack',
    '/secret/vault.git/info/refs?service=git-receive-pack',
    '/secret/vault.git/info/refs?service=git-receive-pack&service=git-upload-pack',
  ])('still stops the advertisement GET %s (it lists every ref), push or not', (target) => {
    expect(decideFor('GET', target, [ENG], guarded)).toEqual({ result: 'deny', rule: 'no-reads-of-secret', reason: 'deny-rule' })
  })

  it('still stops a terminal handshake there', () => {
    expect(decideFor('GET', '/secret/vault/-/jobs/1/terminal.ws', [ENG], guarded)).toEqual({ result: 'deny', rule: 'no-reads-of-secret', reason: 'deny-rule' })
  })
})

describe('without credentials', () => {
  const frozen = compilePolicy(parseConfig(`
server: { publicUrl: "https://gitlab.example.com" }
upstream: { url: "http://gitlab:8181" }
groups: { engineering: "${ENG}" }
policy:
  rules:
    - { name: frozen, paths: ["/frozen/**"], methods: [POST], deny: true }
    - { name: engineering, paths: ["/**"], groups: [engineering] }
`, {}))
  const anonymous = (method: string, target: string) => {
    const [path = '', query = ''] = target.split('?')
    const attr = attribute(method, path, query)
    return decideAlsoAs(frozen, { method, path, route: attr.route, project: attr.project, clientIp: '127.0.0.1' }, ANONYMOUS, attr.policyMethod)
  }

  it('a push advertisement whose push a deny rule refuses is refused outright: signing in cannot help', () => {
    expect(anonymous('GET', '/frozen/tool.git/info/refs?service=git-receive-pack')).toEqual({ result: 'deny', rule: 'frozen', reason: 'deny-rule' })
  })

  it('control: elsewhere, and for a clone, it is challenged', () => {
    expect(anonymous('GET', '/frozen/tool.git/info/refs?service=git-upload-pack')).toEqual({ result: 'challenge', rule: 'engineering', reason: 'login-required' })
    expect(anonymous('GET', '/group/tool.git/info/refs?service=git-receive-pack')).toEqual({ result: 'challenge', rule: 'engineering', reason: 'login-required' })
  })
})
