/** gitlab-iap with browser sessions (memory and Redis stores) as benchmark contenders, signed in through the dev IdP. */
import { randomBytes } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createDemoClientSecret, DEMO_GROUPS, startDevIdp, type DevIdp } from '../../src/devidp/index.ts'
import { startIapProcess, type IapContender, type IapProcess } from './iap.ts'
import { freePort, ROOT, type Proc } from './processes.ts'

export interface SessionContenders {
  readonly contenders: IapContender[]
  readonly procs: Record<string, Proc>
  /** Signs `count` more browser sessions into a contender (16 at a time), stopping at `deadline` (epoch ms); returns how many. */
  signInMany(contender: string, count: number, deadline: number): Promise<number>
  stop(): Promise<void>
}

const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0'

/** True when something accepts TCP connections at the URL's host and port (Redis before using it). */
export function reachable(url: string): Promise<boolean> {
  const u = new URL(url)
  return new Promise((resolve) => {
    const socket = connect(Number(u.port || 6379), u.hostname)
    socket.once('connect', () => (socket.destroy(), resolve(true)))
    socket.once('error', () => (socket.destroy(), resolve(false)))
  })
}

/** Signs bob in through the proxy and the dev IdP (fetch-driven); returns the Cookie header value. */
export async function signIn(proxyUrl: string, idp: DevIdp): Promise<string> {
  const start = await fetch(`${proxyUrl}/-/iap/login?rd=%2Fbench%2Fx`, { redirect: 'manual' })
  const tx = start.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ')
  const hop = await idp.signIn(start.headers.get('location')!, 'bob')
  const callback = await fetch(hop.url, { redirect: 'manual', headers: { cookie: tx } })
  const session = callback.headers.getSetCookie().find((c) => c.startsWith('__Host-gitlab-iap='))
  if (callback.status !== 302 || !session) throw new Error(`sign-in failed (HTTP ${callback.status})`)
  return session.split(';')[0]!
}

/** `root`: the checkout to run (an earlier commit's worktree for before/after); `env`: extra process environment. */
export async function startSessionContenders(upstreamUrl: string, root = ROOT, env: (store: string) => NodeJS.ProcessEnv = () => ({})): Promise<SessionContenders> {
  const idp = await startDevIdp({ showUsersOnLoginPage: false })
  const procs: IapProcess[] = []
  const contenders: IapContender[] = []
  const stores: [string, Record<string, unknown>][] = [['memory', { store: 'memory' }]]
  if (await reachable(REDIS_URL)) stores.push(['redis', { store: 'redis', redis: { url: REDIS_URL, keyPrefix: `gitlab-iap-bench-${randomBytes(4).toString('hex')}:` } }])
  else console.warn(`Redis at ${REDIS_URL} not reachable: the Redis session contender is skipped`)
  for (const [name, session] of stores) {
    // One client per proxy: the dev IdP ties a client's redirect URIs to one origin.
    const port = await freePort()
    const clientId = `bench-${name}-client`
    const clientSecret = createDemoClientSecret()
    idp.registerClient({ clientId, clientSecret, redirectUris: [`http://127.0.0.1:${port}/-/iap/callback`] })
    const proc = await startIapProcess({
      server: { listen: `127.0.0.1:${port}`, publicUrl: `http://127.0.0.1:${port}` },
      admin: { listen: '127.0.0.1:0', token: 'bench-admin-token-0123456789' },
      upstream: { url: upstreamUrl },
      entra: { tenantId: idp.tenantId, clientId, clientSecret, authority: idp.authority, graphUrl: idp.graphUrl },
      session: { secret: randomBytes(48).toString('base64url'), ...session },
      groups: { engineering: DEMO_GROUPS.engineering.id },
      policy: { rules: [{ name: 'bench', paths: ['/bench/**'], groups: ['engineering'] }] },
      accessLog: { output: join(mkdtempSync(join(tmpdir(), 'bench-session-')), 'access.log') },
    }, env(name), root)
    procs.push(proc)
    const cookie = await signIn(proc.url, idp)
    contenders.push({ name: `iap-session-${name}`, note: `gitlab-iap, browser session cookie, ${name} store, group rule`, url: proc.url, path: '/bench/x', headers: { cookie }, expectStatus: 200 })
  }
  return {
    contenders,
    procs: Object.fromEntries(contenders.map((c, i) => [c.name, procs[i]!])),
    async signInMany(contender, count, deadline) {
      const url = contenders.find((c) => c.name === contender)?.url
      if (!url) throw new Error(`no session contender ${contender}`)
      let started = 0
      let done = 0
      const worker = async () => {
        while (started < count && Date.now() < deadline) {
          started++
          await signIn(url, idp)
          done++
        }
      }
      await Promise.all(Array.from({ length: 16 }, worker))
      return done
    },
    async stop() {
      for (const p of procs) await p.stop()
      await idp.close()
    },
  }
}
