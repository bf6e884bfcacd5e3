/** gitlab-iap as benchmark contenders: public rule, cached bearer token, deny path (sessions when available). */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBenchIdp, CLIENT, GROUP, TENANT, type BenchIdp } from './idp.ts'
import { nodeBin, proxyNodeFlags, ROOT, startProcess, type Proc } from './processes.ts'
import type { Target } from './load.ts'

export interface IapContender extends Target {
  readonly name: string
  readonly note: string
}

export interface IapProcess extends Proc {
  readonly url: string
  readonly adminUrl: string
}

export interface IapContenders {
  readonly contenders: IapContender[]
  readonly procs: Record<string, Proc>
  readonly main: IapProcess
  readonly idp: BenchIdp
  /** A valid bearer token with the bench group, when gitlab-iap verifies bearer tokens. */
  readonly token?: { value: string; jwksUri: string; groupId: string; pem: string; kid: string }
  stop(): Promise<void>
}

export function iapConfig(upstreamUrl: string, idp: BenchIdp, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-iap-'))
  return {
    server: { listen: '127.0.0.1:0', publicUrl: 'http://127.0.0.1:8080' },
    admin: { listen: '127.0.0.1:0', token: 'bench-admin-token-0123456789' },
    upstream: { url: upstreamUrl },
    entra: { tenantId: TENANT, clientId: CLIENT, authority: idp.authority, audiences: ['api://gitlab-iap'], algorithms: ['RS256', 'ES256'] },
    groups: { bench: GROUP },
    policy: {
      rules: [
        { name: 'public', paths: ['/public/**'], public: true },
        { name: 'denied', paths: ['/denied/**'], deny: true },
        { name: 'bench', paths: ['/bench/**'], groups: ['bench'] },
      ],
    },
    accessLog: { output: join(dir, 'access.log'), rotate: { size: '1GiB', keep: 1, compress: false } },
    ...extra,
  }
}

/** Starts `gitlab-iap serve` (from `root`: another checkout to compare against) with a config object; resolves when /readyz answers 200. */
export async function startIapProcess(config: Record<string, unknown>, env: NodeJS.ProcessEnv = {}, root = ROOT): Promise<IapProcess & { readyMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-iap-cfg-'))
  const path = join(dir, 'config.yaml')
  writeFileSync(path, JSON.stringify(config))
  const t0 = performance.now()
  const proc = await startProcess(nodeBin, [...proxyNodeFlags, join(root, 'bin/gitlab-iap.js'), 'serve', '--config', path], (out) => {
    const m = /"main":"[^"]*:(\d+)","admin":"[^"]*:(\d+)"/.exec(out)
    return m ? { main: Number(m[1]), admin: Number(m[2]) } : undefined
  }, { env })
  const adminUrl = `http://127.0.0.1:${proc.value.admin}`
  for (;;) {
    if (await fetch(`${adminUrl}/readyz`).then((r) => r.ok, () => false)) break
    if (performance.now() - t0 > 20_000) {
      await proc.stop()
      throw new Error('gitlab-iap did not become ready')
    }
    await new Promise((r) => setTimeout(r, 10))
  }
  return { ...proc, url: `http://127.0.0.1:${proc.value.main}`, adminUrl, readyMs: performance.now() - t0 }
}

export async function startIap(upstreamUrl: string): Promise<IapContenders> {
  const idp = await startBenchIdp()
  const main = await startIapProcess(iapConfig(upstreamUrl, idp))
  const contenders: IapContender[] = [
    { name: 'iap-public', note: 'gitlab-iap, path under a `public: true` rule', url: main.url, path: '/public/x', expectStatus: 200 },
  ]
  const token = await idp.mint()
  const probe = await fetch(`${main.url}/bench/x`, { headers: { authorization: `Bearer ${token}` } })
  await probe.body?.cancel()
  let tokenInfo: IapContenders['token']
  if (probe.status === 200) {
    contenders.push({ name: 'iap-bearer', note: 'gitlab-iap, cached RS256 bearer token, group rule', url: main.url, path: '/bench/x', headers: { authorization: `Bearer ${token}` }, expectStatus: 200 })
    const outsider = await idp.mint({ groups: [] })
    contenders.push({ name: 'iap-deny', note: 'gitlab-iap, valid token without the group: 403, never reaches GitLab', url: main.url, path: '/bench/x', headers: { authorization: `Bearer ${outsider}` }, expectStatus: 403 })
    tokenInfo = { value: token, jwksUri: idp.jwksUri, groupId: GROUP, pem: idp.rsaPublicPem, kid: idp.rsaKid }
  } else {
    console.warn(`bearer tokens not accepted yet (status ${probe.status}): bearer contenders skipped`)
    contenders.push({ name: 'iap-deny', note: 'gitlab-iap, anonymous request to a `deny: true` rule: 403, never reaches GitLab', url: main.url, path: '/denied/x', expectStatus: 403 })
  }
  return {
    contenders,
    procs: Object.fromEntries(contenders.map((c) => [c.name, main])),
    main,
    idp,
    token: tokenInfo,
    async stop() {
      await main.stop()
      await idp.close()
    },
  }
}
