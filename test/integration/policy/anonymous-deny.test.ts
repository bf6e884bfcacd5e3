/**
 * A `deny: true` rule refuses outright, through a real serve with browser sign-in: a request without
 * credentials gets the same 403 as a signed-in user (signing in cannot help), never a sign-in redirect
 * or a 401; a rule the identity lacks and `policy.default: deny` still send a browser to sign-in.
 * A `projects` deny rule is decided on the project GitLab serves, for a request without credentials too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_CLIENT_ID } from '../../../src/devidp/index.ts'
import { rawRequest, rawSocket } from '../../helpers/http.ts'
import { baseConfig, startServe, type ServeHandle } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'
import { ADMIN_TOKEN, createBrowser, DEMO_GROUP_ALIASES, freePort, startStack, type Stack } from '../session/stack.ts'

let stack: Stack
let proxy: ServeHandle

beforeAll(async () => {
  stack = await startStack()
  const port = await freePort()
  const publicUrl = `http://127.0.0.1:${port}`
  stack.idp.registerClient({ clientId: DEMO_CLIENT_ID, clientSecret: stack.clientSecret, redirectUris: [`${publicUrl}/-/iap/callback`], postLogoutRedirectUris: [`${publicUrl}/`] })
  proxy = await startServe({
    server: { listen: `127.0.0.1:${port}`, publicUrl },
    admin: { listen: '127.0.0.1:0', token: ADMIN_TOKEN },
    upstream: { url: stack.upstream.url, timeoutSeconds: 30 },
    entra: { tenantId: stack.idp.tenantId, clientId: DEMO_CLIENT_ID, clientSecret: stack.clientSecret, authority: stack.idp.authority, graphUrl: stack.idp.graphUrl, audiences: ['api://gitlab-iap'] },
    session: { store: 'memory', secret: stack.sessionSecret, cookieName: '__Host-gitlab-iap' },
    groups: DEMO_GROUP_ALIASES,
    policy: {
      default: 'deny',
      rules: [
        { name: 'blocked', paths: ['/-/blocked/**'], deny: true },
        { name: 'engineering', paths: ['/group/**'], groups: ['engineering'] },
      ],
    },
    accessLog: { output: 'stdout' },
  })
})
afterAll(async () => {
  await proxy?.stop()
  await stack?.close()
})

const BROWSER = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' }

async function recordOf(id: unknown): Promise<Record<string, unknown>> {
  await expect.poll(() => proxy.records().find((r) => r['http.request.id'] === id)).toBeDefined()
  return proxy.records().find((r) => r['http.request.id'] === id)!
}

describe('a deny rule and a request without credentials', () => {
  it('a browser gets the 403 page (no sign-in redirect, no "Signed in as"), logged as a deny of that rule', async () => {
    const res = await rawRequest(proxy.url, 'GET', '/-/blocked/page', BROWSER)
    expect(res.status).toBe(403)
    expect(res.headers.location).toBeUndefined()
    expect(res.headers['www-authenticate']).toBeUndefined()
    expect(res.headers['content-type']).toMatch(/^text\/html/)
    expect(res.body).toContain('Access denied')
    expect(res.body).toContain('<code>blocked</code>')
    expect(res.body).toContain('<code>deny-rule</code>')
    expect(res.body).not.toContain('Signed in as')
    expect(res.body).not.toContain('/-/iap/logout')
    expect(await recordOf(res.headers['x-request-id'])).toMatchObject({
      'iap.decision.result': 'deny', 'iap.decision.rule': 'blocked', 'iap.decision.reason': 'deny-rule',
      'iap.identity.kind': 'anonymous', 'iap.auth.method': 'none', 'user.id': null, 'http.response.status_code': 403, 'event.outcome': 'failure',
    })
    expect(stack.upstream.requests.filter((r) => r.url.startsWith('/-/blocked'))).toHaveLength(0)
  })

  it('an API client and a websocket handshake get 403 too', async () => {
    const api = await rawRequest(proxy.url, 'POST', '/-/blocked/x', { accept: 'application/json' }, '')
    expect(api.status).toBe(403)
    expect(JSON.parse(api.body)).toMatchObject({ rule: 'blocked', reason: 'deny-rule' })
    const handshake = await rawSocket(proxy.url, 'GET /-/blocked/cable HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
    expect(handshake).toMatch(/^HTTP\/1\.1 403 /)
    expect(handshake).toContain('"reason":"deny-rule"')
  })

  it('a signed-in user gets the same 403, with who is signed in', async () => {
    const browser = createBrowser()
    expect((await browser.navigate(`${proxy.url}/group/project`, 'bob')).status).toBe(200)
    const page = await browser.navigate(`${proxy.url}/-/blocked/page`)
    expect(page.status).toBe(403)
    expect(page.body).toContain('<code>deny-rule</code>')
    expect(page.body).toContain('Signed in as')
  })

  it('control: a rule the identity lacks, and no rule (policy.default: deny), still send a browser to sign-in', async () => {
    for (const target of ['/group/project', '/elsewhere']) {
      const res = await rawRequest(proxy.url, 'GET', target, BROWSER)
      expect(res.status, target).toBe(302)
      expect(res.headers.location, target).toBe(`/-/iap/login?rd=${encodeURIComponent(target)}`)
      expect(await recordOf(res.headers['x-request-id'])).toMatchObject({ 'iap.decision.result': 'challenge', 'iap.decision.reason': 'login-required' })
      expect((await rawRequest(proxy.url, 'GET', target, { accept: 'application/json' })).status, target).toBe(401)
    }
  })
})

describe('a projects deny rule and a former path, without credentials', () => {
  let gitlab: Upstream
  let moved: ServeHandle
  beforeAll(async () => {
    // archive/tool moved to active/tool: GitLab still serves the old path, as active/tool.
    gitlab = await startUpstream({ projects: { '11': 'active/tool', '12': 'archive/old' }, redirects: { 'archive/tool': '11' }, apiToken: 'api-token-1' })
    moved = await startServe(baseConfig(gitlab.url, {
      upstream: { url: gitlab.url, apiToken: 'api-token-1', timeoutSeconds: 30 },
      groups: DEMO_GROUP_ALIASES,
      policy: { rules: [{ name: 'archived', projects: ['archive/**'], deny: true }, { name: 'engineering', paths: ['/**'], groups: ['engineering'] }] },
    }))
  })
  afterAll(async () => {
    await moved?.stop()
    await gitlab?.close()
  })

  it('the deny rule decides on the path as written, without asking GitLab: a project in the archive is refused (403)', async () => {
    const res = await rawRequest(moved.url, 'GET', '/archive/old.git/info/refs?service=git-upload-pack', { 'user-agent': 'git/2.45.1' })
    expect(res.status).toBe(403)
    expect(res.body).toContain('access denied by rule "archived" (deny-rule)')
  })

  it('so does a path that names no project, or a former one: the same 403, and GitLab\'s API is never asked (no oracle, no load)', async () => {
    for (const path of ['/archive/tool.git/info/refs?service=git-upload-pack', '/archive/no-such-project.wiki.git/info/refs?service=git-upload-pack']) {
      const res = await rawRequest(moved.url, 'GET', path, { 'user-agent': 'git/2.45.1' })
      expect(res.status, path).toBe(403)
      expect(res.body).toContain('access denied by rule "archived" (deny-rule)')
    }
    expect(gitlab.requests.filter((q) => q.url.startsWith('/api/'))).toHaveLength(0)
    expect(gitlab.requests.filter((q) => q.url.startsWith('/archive/'))).toHaveLength(0)
  })
})
