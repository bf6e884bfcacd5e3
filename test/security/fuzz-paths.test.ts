/**
 * Property tests of the parsers that see untrusted paths (issue: hardening, fuzzing).
 * FUZZ_RUNS (default 1000) sets the cases per property; run longer on demand: FUZZ_RUNS=200000 npm test -- fuzz
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ANONYMOUS, type Identity } from '../../src/auth/identity.ts'
import { parseConfig } from '../../src/config/load.ts'
import { attribute } from '../../src/gitlab/attribute.ts'
import { checkCanonicalPath, matchPath } from '../../src/http/canonical-path.ts'
import { compilePolicy, decide } from '../../src/policy/index.ts'

const runs = Number(process.env.FUZZ_RUNS ?? 1000)

/** Path-ish strings built from the pieces attacks are made of. */
const piece = fc.constantFrom('/', '//', '.', '..', '%2e', '%2E', '%2f', '%2F', '%5c', '\\', '%00', '%25', ';', '%3b', '#', '?', 'admin', 'api', 'v4', 'projects', '-', 'group', 'secret-group', '.git', 'info', 'refs', '%c0%ae', '%e2%80%ae', '%ff', 'A', 'é', ' ', '\t', '%20', '~', '@', ':', '*')
const attackPath = fc.array(piece, { minLength: 1, maxLength: 12 }).map((parts) => `/${parts.join('')}`)
const anyPath = fc.oneof(attackPath, fc.string({ maxLength: 60 }).map((s) => `/${s}`), fc.webPath())

/** How a server that percent-decodes and resolves dot segments would route the path. */
function serverView(path: string): string {
  const decoded = decodeURIComponent(path)
  const out: string[] = []
  for (const seg of decoded.split('/')) {
    if (seg === '..') out.pop()
    else if (seg !== '.') out.push(seg)
  }
  return out.join('/')
}

describe('canonical paths', () => {
  it('never throws, whatever the input', () => {
    fc.assert(fc.property(fc.oneof(anyPath, fc.string()), (p) => {
      checkCanonicalPath(p)
    }), { numRuns: runs })
  })

  it('an accepted path routes the same for a dot-resolving server and for the policy', () => {
    fc.assert(
      fc.property(anyPath, (p) => {
        if (checkCanonicalPath(p) !== undefined) return
        // No dot segment, backslash, NUL, control character or fragment survives decoding.
        const decoded = decodeURIComponent(p)
        expect(decoded.split('/').some((s) => s === '.' || s === '..')).toBe(false)
        expect(/[\\\u0000-\u001f#]/.test(decoded)).toBe(false)
        // What a normalising server routes is what the policy matched (up to %2F, which GitLab keeps encoded).
        expect(serverView(p).toLowerCase()).toBe(matchPath(p).replaceAll('%2f', '/'))
        // And http-proxy-3's WHATWG parsing would not move it to another path either.
        expect(decodeURIComponent(new URL(p, 'http://x').pathname)).toBe(decoded)
      }),
      { numRuns: runs },
    )
  })

  it('still refuses an encoded slash or dot in the routing part before a ref marker', () => {
    for (const p of ['/g%2Fp/-/branches/x', '/g/p%2E/-/tags/x', '/g/p/-/branches/feature%2F..%2Fx']) expect(checkCanonicalPath(p)).toBeDefined()
  })

  it.each([
    '/api/v4/%70rojects/secret-group%2Fvault/issues', '/%70rojects/42', '/api/v4/%70rojects/42', '/team/vault.git/info/%72efs',
    '/%73ecret-group/vault', '/api/v4/groups/%39%39', '/secret%2Dgroup/vault', '/secret-group/vault%5Fx', '/-/%69ap/whoami',
    '/api/v4/projects/secret-group%2F%76ault', '/g/p/-/%62lob/main/x',
    // The REST API's file markers mean nothing on a web path: `repository` is a namespace name there.
    '/group/repository/tree/vault.git/info/%72efs', '/group/repository/files/x/vault.git/info/%72efs',
  ])('refuses the encoded unreserved characters of %s (RFC 3986 §6.2.2.2)', (p) => {
    expect(checkCanonicalPath(p)).toBe('path-encoded-unreserved')
  })

  it('keeps %7E, and encoded letters in file and ref names, as they are', () => {
    for (const p of ['/%7Euser/project', '/g/p/-/blob/main/%61.rb', '/g/p/-/tree/feature%2D1', '/api/v4/projects/1/repository/files/%61%2Fb.rb/raw', '/api/v4/projects/g%2Fp/repository/branches/%66eature']) {
      expect(checkCanonicalPath(p), p).toBeUndefined()
    }
  })

  it('an accepted path is attributed as its RFC 3986 normalised form (encoded unreserved characters decoded) is', () => {
    const unreserved = fc.constantFrom('%70', '%50', '%72', '%65', '%66', '%73', '%34', '%32', '%2D', '%5F', '%7E', '%69', '%61', '%67', '%2e')
    const part = fc.constantFrom('/', 'projects', 'rojects', 'api/v4/', 'p', 'secret-group', 'vault', '.git', '/info/', 'refs', 'git-upload-pack', '-/', 'iap/', 'blob/', 'lfs/', 'repository/', 'tree', 'groups/', '42', '%2F', 'ide/project/', 'admin')
    const normalise = (p: string) => p.replace(/%([0-9A-Fa-f]{2})/g, (m, hex: string) => (/[A-Za-z0-9\-_.~]/.test(String.fromCharCode(parseInt(hex, 16))) ? String.fromCharCode(parseInt(hex, 16)) : m))
    fc.assert(
      fc.property(fc.array(fc.oneof(part, unreserved), { minLength: 1, maxLength: 12 }).map((parts) => `/${parts.join('')}`), (p) => {
        if (checkCanonicalPath(p) !== undefined) return
        const n = normalise(p)
        if (checkCanonicalPath(n) !== undefined) return
        const raw = attribute('GET', p)
        const normal = attribute('GET', n)
        expect(raw.route).toBe(normal.route)
        expect(raw.numericId).toEqual(normal.numericId)
        expect(raw.project === undefined ? undefined : matchPath(raw.project)).toBe(normal.project === undefined ? undefined : matchPath(normal.project))
      }),
      { numRuns: runs },
    )
  })

  it('accepts what GitLab itself sends', () => {
    for (const p of ['/', '/group/project', '/group/sub/project/-/merge_requests/1', '/api/v4/projects/group%2Fsub%2Fproject/repository/files/app%2Fmodels%2Fkey%2Erb/raw', '/group/project.git/info/refs', '/-/cable', '/.well-known/openid-configuration', '/group/project/-/blob/main/dir/file%20name.md', '/api/v4/projects/1/repository/branches/feature%2Fx',
      // GitLab's web UI puts a ref with a slash into one encoded segment.
      '/g/p/-/branches/feature%2Fx', '/g/p/-/compare/main...feature%2Fx', '/g/p/-/tags/release%2F1.0', '/g/p/-/network/feature%2Fx',
      '/g/p/-/graphs/feature%2Fx/charts', '/g/p/-/refs/feature%2Fx/logs_tree/src', '/g/p/-/jobs/artifacts/feature%2Fx/download',
      '/g/p/-/blame_page/main/a%23b.rb', '/g/p/-/update/feature%2Fx/a.rb']) {
      expect(checkCanonicalPath(p)).toBeUndefined()
    }
  })
})

describe('attribution and decisions', () => {
  const config = parseConfig(`
server: { publicUrl: "https://gitlab.example.com" }
upstream: { url: "http://gitlab:8181" }
groups: { admins: "6c0bd1d2-0000-4000-8000-000000000001", engineering: "6c0bd1d2-0000-4000-8000-000000000002" }
policy:
  rules:
    - { name: health, paths: ["/-/health"], public: true }
    - { name: admin-area, paths: ["/admin", "/admin/**", "/api/v4/admin/**"], groups: [admins] }
    - { name: secret, projects: ["secret-group/**"], groups: [admins] }
    - { name: read, paths: ["/**"], methods: [GET, HEAD], groups: [engineering] }
`, {})
  const policy = compilePolicy(config)
  const engineer: Identity = { kind: 'user', id: 'e1', name: 'eve@example.com', groups: ['6c0bd1d2-0000-4000-8000-000000000002'], roles: [], issuer: 'entra' }

  it('attribute and decide never throw', () => {
    fc.assert(
      fc.property(anyPath, fc.constantFrom('GET', 'POST', 'HEAD', 'DELETE', 'get'), fc.constantFrom(ANONYMOUS, engineer), (p, method, who) => {
        const attr = attribute(method, p)
        decide(policy, { method, path: p, route: attr.route, project: attr.project, clientIp: '127.0.0.1' }, who)
      }),
      { numRuns: runs },
    )
  })

  it('no accepted path lets an engineer reach the admin area or the secret group', () => {
    fc.assert(
      fc.property(anyPath, (p) => {
        if (checkCanonicalPath(p) !== undefined) return
        const routed = serverView(p).toLowerCase().replace(/\.(json|html|xml|atom)$/, '').replace(/\/$/, '')
        const attr = attribute('GET', p)
        const decision = decide(policy, { method: 'GET', path: p, route: attr.route, project: attr.project, clientIp: '127.0.0.1' }, engineer)
        if (routed === '/admin' || routed.startsWith('/admin/') || routed.startsWith('/api/v4/admin/') || routed === '/secret-group' || routed.startsWith('/secret-group/')) {
          expect(decision.result).not.toBe('allow')
        }
      }),
      { numRuns: runs },
    )
  })
})
