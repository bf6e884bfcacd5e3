/**
 * `node bench/policy.bench.ts`: policy decisions per second for 50 rules (pure `decide`, in process),
 * across a mix of paths that hit early, late and no rule. Not part of npm test.
 */
import { ANONYMOUS, type Identity } from '../src/auth/identity.ts'
import { parseConfig } from '../src/config/load.ts'
import { attribute } from '../src/gitlab/attribute.ts'
import { compilePolicy, decide } from '../src/policy/index.ts'

const G = (n: number) => `6c0bd1d2-0000-4000-8000-${String(n).padStart(12, '0')}`
const rules = Array.from({ length: 48 }, (_, i) => ({ name: `team-${i}`, ...(i % 3 === 0 ? { projects: [`team${i}/**`] } : { paths: [`/team${i}/**`, `/api/v4/team${i}/*`] }), ...(i % 4 === 0 && { methods: ['GET', 'HEAD'] }), groups: [G(i)] }))
const config = parseConfig(JSON.stringify({
  server: { publicUrl: 'https://gitlab.example.com' },
  upstream: { url: 'http://gitlab:8181' },
  policy: { rules: [{ name: 'health', paths: ['/-/health'], public: true }, ...rules, { name: 'everyone', paths: ['/**'], groups: [G(999)] }] },
}), {})
const policy = compilePolicy(config)
const who: Identity = { kind: 'user', id: 'oid', name: 'u@example.com', groups: [G(7), G(999)], roles: [], issuer: 'entra' }
const paths = ['/-/health', '/team3/project/-/issues', '/team40/x', '/api/v4/team45/x', '/other/project/-/merge_requests/7', '/api/v4/projects/team30%2Fsub/issues', '/team47/a.git/info/refs']
const facts = paths.map((path) => ({ method: 'GET', path, route: attribute('GET', path).route, project: attribute('GET', path).project, clientIp: '10.0.0.1' }))

let sink = 0
const N = 2_000_000
for (let i = 0; i < 200_000; i++) sink += decide(policy, facts[i % facts.length]!, i % 5 ? who : ANONYMOUS).result.length
const t = process.hrtime.bigint()
for (let i = 0; i < N; i++) sink += decide(policy, facts[i % facts.length]!, i % 5 ? who : ANONYMOUS).result.length
const ns = Number(process.hrtime.bigint() - t)
console.log(`${policy.rules.length} rules: ${((N / ns) * 1e9).toFixed(0)} decisions/s (${(ns / N).toFixed(0)} ns each) [${sink > 0 ? 'ok' : ''}]`)
