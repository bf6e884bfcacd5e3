/**
 * A sign-in test stack on loopback: the Entra-shaped dev IdP, the GitLab-shaped upstream and one or
 * more real `gitlab-iap serve` processes with browser sign-in, plus a fetch-driven "browser" that
 * keeps cookies per origin. Shared by the session integration tests, the browser tests and the bench.
 */
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { startDevIdp, createCookieJar, DEMO_CLIENT_ID, DEMO_GROUPS, type CookieJar, type DevIdp } from '../../../src/devidp/index.ts'
import { startServe, type ServeHandle, type ConfigObject } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'

export const ADMIN_TOKEN = 'admin-token-for-session-tests-0123456789'

/** A free loopback port (the proxy's publicUrl must be known before it starts: it is the redirect URI). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** The demo policy: health public, /admin for admins, reads for engineering+contractors, the rest engineering. */
export const DEMO_POLICY = {
  rules: [
    { name: 'gitlab-health', paths: ['/-/health', '/-/readiness', '/-/liveness'], public: true },
    { name: 'admin-area', paths: ['/admin', '/admin/**', '/api/v4/admin/**'], groups: ['admins'] },
    { name: 'read-everything', paths: ['/**'], methods: ['GET', 'HEAD'], groups: ['engineering', 'contractors'] },
    { name: 'engineering', paths: ['/**'], groups: ['engineering'] },
  ],
}

export const DEMO_GROUP_ALIASES = { admins: DEMO_GROUPS.admins.id, engineering: DEMO_GROUPS.engineering.id, contractors: DEMO_GROUPS.contractors.id }

export interface ProxyOptions {
  readonly store?: 'memory' | 'redis'
  readonly redisUrl?: string
  readonly keyPrefix?: string
  readonly absoluteTimeout?: string
  readonly idleTimeout?: string
  readonly refreshInterval?: string
  readonly refreshGrace?: string
  /** Replicas behind one load balancer share one publicUrl (and redirect URI); default: the proxy's own URL. */
  readonly publicUrl?: string
}

export interface Stack {
  readonly idp: DevIdp
  readonly upstream: Upstream
  readonly clientSecret: string
  readonly sessionSecret: string
  /** Starts a proxy on its own port (registered as a redirect URI at the IdP). */
  startProxy(options?: ProxyOptions): Promise<ServeHandle>
  close(): Promise<void>
}

export async function startStack(): Promise<Stack> {
  const idp = await startDevIdp()
  const upstream = await startUpstream()
  const clientSecret = randomBytes(24).toString('base64url')
  const sessionSecret = randomBytes(36).toString('base64url')
  const redirectUris: string[] = []
  const postLogoutRedirectUris: string[] = []
  const proxies: ServeHandle[] = []
  // One Redis key prefix per stack: its replicas share sessions, other test files never see them.
  const keyPrefix = `gitlab-iap-test-${randomBytes(6).toString('hex')}:`
  const register = () => idp.registerClient({ clientId: DEMO_CLIENT_ID, clientSecret, redirectUris: [...redirectUris], postLogoutRedirectUris: [...postLogoutRedirectUris] })
  return {
    idp,
    upstream,
    clientSecret,
    sessionSecret,
    async startProxy(options = {}) {
      const port = await freePort()
      const publicUrl = options.publicUrl ?? `http://127.0.0.1:${port}`
      if (!redirectUris.includes(`${publicUrl}/-/iap/callback`)) {
        // One redirect URI per client: the dev IdP's pairwise subjects allow a single host per client.
        redirectUris.splice(0, redirectUris.length, `${publicUrl}/-/iap/callback`)
        postLogoutRedirectUris.splice(0, postLogoutRedirectUris.length, `${publicUrl}/`)
        register()
      }
      const config: ConfigObject = {
        server: { listen: `127.0.0.1:${port}`, publicUrl },
        admin: { listen: '127.0.0.1:0', token: ADMIN_TOKEN },
        upstream: { url: upstream.url, timeoutSeconds: 30 },
        entra: { tenantId: idp.tenantId, clientId: DEMO_CLIENT_ID, clientSecret, authority: idp.authority, graphUrl: idp.graphUrl, audiences: ['api://gitlab-iap'] },
        session: {
          store: options.store ?? 'memory',
          ...(options.store === 'redis' && { redis: { url: options.redisUrl ?? 'redis://127.0.0.1:6379/0', keyPrefix: options.keyPrefix ?? keyPrefix } }),
          secret: sessionSecret,
          cookieName: '__Host-gitlab-iap',
          absoluteTimeout: options.absoluteTimeout ?? '12h',
          idleTimeout: options.idleTimeout ?? '1h',
          refreshInterval: options.refreshInterval ?? '10m',
          ...(options.refreshGrace !== undefined && { refreshGrace: options.refreshGrace }),
        },
        groups: DEMO_GROUP_ALIASES,
        policy: DEMO_POLICY,
        accessLog: { output: 'stdout' },
      }
      const proxy = await startServe(config)
      proxies.push(proxy)
      return proxy
    },
    async close() {
      await Promise.all(proxies.map((p) => p.stop()))
      await upstream.close()
      await idp.close()
    },
  }
}

export interface FetchedPage {
  readonly status: number
  readonly url: string
  readonly headers: Headers
  readonly body: string
}

/** A fetch-driven browser: one cookie jar, follows redirects through the proxy and the IdP (signing in as `login` when asked). */
export function createBrowser(options: { jar?: CookieJar } = {}) {
  const jar = options.jar ?? createCookieJar()
  async function step(url: string, init: { method?: string; body?: URLSearchParams; accept?: string } = {}): Promise<Response> {
    const cookie = jar.cookieHeader(url)
    const res = await fetch(url, {
      method: init.method ?? 'GET',
      redirect: 'manual',
      headers: { accept: init.accept ?? 'text/html,application/xhtml+xml', ...(cookie && { cookie }), ...(init.body && { 'content-type': 'application/x-www-form-urlencoded' }) },
      ...(init.body && { body: init.body }),
    })
    jar.store(url, res.headers.getSetCookie())
    return res
  }
  return {
    jar,
    step,
    /** Follows redirects (and the IdP's login form as `login`) until a non-redirect answer. */
    async navigate(url: string, login?: string, maxSteps = 25): Promise<FetchedPage> {
      let current = url
      let method = 'GET'
      let body: URLSearchParams | undefined
      let loginTries = 0
      for (let i = 0; i < maxSteps; i++) {
        const res = await step(current, { method, ...(body && { body }) })
        const location = res.headers.get('location')
        if (res.status >= 300 && res.status < 400 && location) {
          await res.body?.cancel()
          current = new URL(location, current).href
          method = 'GET'
          body = undefined
          continue
        }
        const text = await res.text()
        const form = /<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(text)
        if (form && new URL(current).port !== '' && isIdpPage(text)) {
          const fields = new URLSearchParams()
          for (const input of form[2]!.matchAll(/<input[^>]*name="([^"]+)"[^>]*?(?:value="([^"]*)")?[^>]*>/gi)) fields.set(input[1]!, decodeEntities(input[2] ?? ''))
          if (fields.has('login')) {
            if (login === undefined || loginTries++ > 0) return { status: res.status, url: current, headers: res.headers, body: text }
            fields.set('login', login)
            fields.set('password', 'any')
          }
          current = new URL(decodeEntities(form[1]!), current).href
          method = 'POST'
          body = fields
          continue
        }
        return { status: res.status, url: current, headers: res.headers, body: text }
      }
      throw new Error(`too many redirects from ${url}`)
    },
  }
}

function isIdpPage(html: string): boolean {
  return /data-devidp|name="login"|devidp|oidc-provider|<form[^>]*method="post"/i.test(html)
}

function decodeEntities(text: string): string {
  return text.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>')
}

/** POST /admin/revoke on a proxy's admin listener. */
export async function revoke(proxy: ServeHandle, user: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${proxy.adminUrl}/admin/revoke`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ user }) })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}
