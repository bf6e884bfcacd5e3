/**
 * A job's web terminal, its service proxy and an environment's terminal open with a websocket GET, yet
 * give a shell: through the real proxy, a member of only a `methods: [GET, HEAD]` rule is refused
 * before GitLab sees the handshake, a writer gets through, the access log keeps `GET`, and `explain`
 * agrees with `serve`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { explainWith, startServe, type ConfigObject, type ServeHandle } from '../../helpers/serve.ts'
import { startUpstream, type Upstream } from '../../helpers/upstream.ts'
import { startJwksServer, type JwksServer } from '../../helpers/jwks-server.ts'
import { CONTRACTORS, ENGINEERING, readersAndWritersConfig } from '../../helpers/readers-writers.ts'

const INTERACTIVE = ['/group/project/-/jobs/42/terminal.ws', '/group/project/-/jobs/42/proxy.ws', '/group/project/-/environments/7/terminal.ws']

let idp: JwksServer
let upstream: Upstream
let proxy: ServeHandle
let config: ConfigObject

/** Opens a websocket through the proxy: the first message (the upstream's welcome) or the refusal's status. */
function open(path: string, token: string): Promise<{ status: number; welcome?: { url: string } }> {
  const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}${path}`, { headers: { 'x-iap-authorization': `Bearer ${token}` } })
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      res.resume()
      resolve({ status: res.statusCode ?? 0 })
      ws.terminate()
    })
    ws.once('message', (data) => {
      resolve({ status: 101, welcome: JSON.parse(String(data)) as { url: string } })
      ws.close()
    })
    ws.once('error', reject)
  })
}

const explain = (args: string[]) => explainWith(config, args)

beforeAll(async () => {
  idp = await startJwksServer()
  upstream = await startUpstream()
  config = readersAndWritersConfig(upstream.url, idp.authority)
  proxy = await startServe(config)
})

afterAll(async () => {
  await proxy?.stop()
  await upstream?.close()
  await idp?.close()
})

const recordsOf = (path: string) => proxy.records().filter((r) => r['url.path'] === path)

describe('terminal and service proxy websockets are writes', () => {
  it.each(INTERACTIVE)('a reader is refused %s before GitLab sees the handshake, logged as the GET it is', async (path) => {
    const token = await idp.mint({ groups: [CONTRACTORS] })
    expect(await open(path, token)).toEqual({ status: 403 })
    await expect.poll(() => recordsOf(path).length, { timeout: 3000 }).toBe(1)
    expect(recordsOf(path)[0]).toMatchObject({
      'http.request.method': 'GET',
      'http.response.status_code': 403,
      'iap.websocket': true,
      'iap.decision.result': 'deny',
      'iap.decision.rule': 'engineering',
      'iap.decision.reason': 'no-group-match',
    })
    expect(upstream.reached(path)).toHaveLength(0)
  })

  it.each(INTERACTIVE)('a writer opens %s', async (path) => {
    const token = await idp.mint({ groups: [ENGINEERING] })
    const opened = await open(`${path}?x=1`, token)
    expect(opened).toMatchObject({ status: 101, welcome: { url: `${path}?x=1` } })
    const allowed = () => recordsOf(path).filter((r) => r['iap.decision.result'] === 'allow')
    await expect.poll(() => allowed().length, { timeout: 3000 }).toBe(1)
    expect(allowed()[0]).toMatchObject({ 'http.request.method': 'GET', 'http.response.status_code': 101, 'iap.websocket': true, 'iap.decision.rule': 'engineering' })
  })

  it('a reader still opens the ActionCable websocket', async () => {
    const token = await idp.mint({ groups: [CONTRACTORS] })
    expect(await open('/-/cable', token)).toMatchObject({ status: 101 })
    await expect.poll(() => recordsOf('/-/cable').find((r) => r['iap.decision.result'] === 'allow')?.['iap.decision.rule'], { timeout: 3000 }).toBe('read-everything')
  })

  it('explain agrees with serve', async () => {
    const path = '/group/project/-/jobs/1/terminal.ws'
    const reader = JSON.parse((await explain(['--path', path, '--group', 'contractors', '--json'])).stdout)
    expect(reader).toMatchObject({ decision: 'deny', rule: 'engineering', reason: 'no-group-match', status: 403, method: 'GET', policyMethod: 'POST', project: 'group/project' })
    const writer = JSON.parse((await explain(['--path', path, '--group', 'engineering', '--json'])).stdout)
    expect(writer).toMatchObject({ decision: 'allow', rule: 'engineering', reason: 'group-match' })
    const page = JSON.parse((await explain(['--path', '/group/project/-/jobs/1/terminal', '--group', 'contractors', '--json'])).stdout)
    expect(page).toMatchObject({ decision: 'allow', rule: 'read-everything' })
    expect(page).not.toHaveProperty('policyMethod')
    const text = (await explain(['--path', path, '--group', 'contractors'])).stdout
    expect(text).toMatch(/^rule:\s+engineering \(rule 2 of 2\)$/m)
    expect(text).toMatch(/^request:\s+GET \/group\/project\/-\/jobs\/1\/terminal\.ws \(it opens a terminal or a job's services: decided as GET and as POST\)$/m)
  })
})
