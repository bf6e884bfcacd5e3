/**
 * Websockets whose peer went quiet: a sleeping laptop or a NAT that dropped its state sends no FIN, so
 * without a timeout both connections (and their file descriptors) would stay open and the record would
 * never be written. The proxy closes both when no byte moved either way for `upstream.timeoutSeconds`
 * (1 s here), and asks the kernel to probe both peers (TCP keep-alive).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { z } from 'zod'
import { baseConfig, ROOT, startServe, type ServeHandle } from '../helpers/serve.ts'

/** GitLab's end of one websocket: the proxy's port on that connection, and when it saw it close. */
interface Peer {
  readonly mode: string
  readonly proxyPort: number
  closedAt?: number
}

let gitlab: Server
let gitlabPort: number
let proxy: ServeHandle
const peers: Peer[] = []
const fds = () => readdirSync(`/proc/${proxy.process.pid}/fd`).length

beforeAll(async () => {
  // GitLab's side, by `?mode=`: `echo` answers each message, `sink` reads and never answers, `tick`
  // sends a message every 200 ms and reads nothing, `quiet` never sends.
  const wss = new WebSocketServer({ noServer: true })
  gitlab = createServer((_req, res) => res.end())
  gitlab.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const mode = new URL(req.url ?? '/', 'http://x').searchParams.get('mode') ?? 'quiet'
    wss.handleUpgrade(req, socket, head, (ws) => {
      const peer: Peer = { mode, proxyPort: socket.remotePort! }
      peers.push(peer)
      const tick = mode === 'tick' ? setInterval(() => ws.send('tick'), 200) : undefined
      ws.on('close', () => ((peer.closedAt = Date.now()), clearInterval(tick)))
      if (mode === 'echo') ws.on('message', (data) => ws.send(data))
    })
  })
  await new Promise<void>((resolve) => gitlab.listen(0, '127.0.0.1', () => resolve()))
  gitlabPort = (gitlab.address() as AddressInfo).port
  proxy = await startServe(baseConfig(`http://127.0.0.1:${gitlabPort}`, { upstream: { url: `http://127.0.0.1:${gitlabPort}`, timeoutSeconds: 1 } }))
})
afterAll(async () => {
  await proxy?.stop()
  gitlab?.closeAllConnections()
  await new Promise((resolve) => gitlab?.close(resolve))
})

interface Opened {
  readonly ws: WebSocket
  readonly id: string
  /** The client's local port: the proxy's socket for it is the one whose peer port this is. */
  readonly port: number
  readonly openedAt: number
  readonly peer: Peer
  /** Resolves with the close code and when the client saw its connection close. */
  readonly closed: Promise<{ code: number; at: number }>
}

async function open(mode: string): Promise<Opened> {
  const before = peers.length
  const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}/-/cable?mode=${mode}`)
  const closed = new Promise<{ code: number; at: number }>((resolve) => ws.once('close', (code) => resolve({ code, at: Date.now() })))
  ws.on('error', () => {})
  const { id, port } = await new Promise<{ id: string; port: number }>((resolve, reject) => {
    ws.once('upgrade', (res) => resolve({ id: String(res.headers['x-request-id']), port: (res.socket as Socket).localPort! }))
    ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)))
  })
  await new Promise<void>((resolve) => (ws.readyState === WebSocket.OPEN ? resolve() : ws.once('open', () => resolve())))
  await expect.poll(() => peers.length).toBeGreaterThan(before)
  return { ws, id, port, openedAt: Date.now(), peer: peers[before]!, closed }
}

/** `promise`, or a failure after `ms`: a websocket the proxy never closes fails the test, not its timeout. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`not within ${ms} ms`)), ms))])
}

const recordsOf = (id: string) => proxy.records().filter((r) => r['http.request.id'] === id)

async function closeCleanly(opened: Opened): Promise<Record<string, unknown>> {
  opened.ws.close()
  await opened.closed
  await expect.poll(() => recordsOf(opened.id).length, { timeout: 3000 }).toBe(1)
  return recordsOf(opened.id)[0]!
}

/** The TCP sockets of this network namespace (IPv4, as on loopback here), from /proc/net/tcp. */
function tcpSockets(): { localPort: number; remotePort: number; state: number; timer: number; ticks: number }[] {
  return readFileSync('/proc/net/tcp', 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when ...
      const [, local, remote, state, , timer] = line.trim().split(/\s+/)
      const [active, when] = timer!.split(':')
      return { localPort: parseInt(local!.split(':')[1]!, 16), remotePort: parseInt(remote!.split(':')[1]!, 16), state: parseInt(state!, 16), timer: parseInt(active!, 16), ticks: parseInt(when!, 16) }
    })
}

describe('websocket idle timeout (upstream.timeoutSeconds)', () => {
  it('an idle websocket is closed on both sides after the timeout, logged once with 101 and websocket-idle-timeout, its descriptors freed', async () => {
    const before = fds()
    const opened = await open('quiet')
    const { code, at } = await within(opened.closed, 6000).finally(() => opened.ws.terminate())
    // Closed by the proxy (no close frame: nothing is known to be at a frame boundary), not before the timeout.
    expect(code).toBe(1006)
    expect(at - opened.openedAt).toBeGreaterThanOrEqual(900)
    expect(at - opened.openedAt).toBeLessThan(4000)
    await expect.poll(() => opened.peer.closedAt, { timeout: 3000 }).toBeDefined()
    expect(opened.peer.closedAt! - opened.openedAt).toBeLessThan(4000)
    await expect.poll(() => recordsOf(opened.id).length, { timeout: 3000 }).toBe(1)
    const record = recordsOf(opened.id)[0]!
    expect(record).toMatchObject({ 'url.path': '/-/cable', 'iap.websocket': true, 'http.response.status_code': 101, 'error.code': 'websocket-idle-timeout', 'event.outcome': 'failure' })
    // The code is one the published record schema names.
    const schema = JSON.parse(readFileSync(join(ROOT, 'docs/access-log.schema.json'), 'utf8')) as Parameters<typeof z.fromJSONSchema>[0]
    expect(z.fromJSONSchema(schema).safeParse(record).success).toBe(true)
    // A quiet websocket is routine, not a GitLab failure: no operator warning.
    expect(proxy.stderr()).not.toContain('websocket-idle-timeout')
    await expect.poll(fds, { timeout: 3000 }).toBeLessThanOrEqual(before)
    await new Promise((r) => setTimeout(r, 300))
    expect(recordsOf(opened.id)).toHaveLength(1)
  })

  it('a websocket that keeps exchanging messages stays open past the timeout', async () => {
    const opened = await open('echo')
    const echoed: string[] = []
    opened.ws.on('message', (data) => echoed.push(String(data)))
    for (let i = 0; i < 12; i++) {
      opened.ws.send(`m${i}`)
      await new Promise((r) => setTimeout(r, 200))
    }
    await expect.poll(() => echoed.length).toBe(12)
    expect(opened.ws.readyState).toBe(WebSocket.OPEN)
    expect(opened.peer.closedAt).toBeUndefined()
    const record = await closeCleanly(opened)
    expect(record['http.response.status_code']).toBe(101)
    expect(record['error.code']).toBeUndefined()
  })

  it.each([
    ['the client to GitLab', 'sink'],
    ['GitLab to the client (as ActionCable pings)', 'tick'],
  ])('bytes only from %s keep it open', async (_direction, mode) => {
    const opened = await open(mode)
    let received = 0
    opened.ws.on('message', () => received++)
    const started = Date.now()
    while (Date.now() - started < 2400) {
      if (mode === 'sink') opened.ws.send('keystroke')
      await new Promise((r) => setTimeout(r, 200))
    }
    if (mode === 'tick') expect(received).toBeGreaterThan(8)
    else expect(received).toBe(0)
    expect(opened.ws.readyState).toBe(WebSocket.OPEN)
    expect(opened.peer.closedAt).toBeUndefined()
    const record = await closeCleanly(opened)
    expect(record['error.code']).toBeUndefined()
  })
})

describe('websocket TCP keep-alive', () => {
  it('both of the proxy\'s sockets of a websocket probe their peer after a minute of silence, not the kernel\'s two hours', async () => {
    // Quiet, so that no retransmission timer hides the keep-alive one; read before the idle timeout.
    const opened = await open('quiet')
    // The proxy's socket for this client, and its socket to GitLab for it.
    const mine = () =>
      tcpSockets().filter((s) => s.state === 1 && ((s.localPort === proxy.port && s.remotePort === opened.port) || (s.localPort === opened.peer.proxyPort && s.remotePort === gitlabPort)))
    // Timer 2 is the keep-alive timer (1, retransmission, while sent bytes wait for their ACK); its expiry
    // is in clock ticks (USER_HZ, 100 a second).
    await expect.poll(() => mine().map((s) => ({ timer: s.timer, withinAMinute: s.ticks / 100 <= 60 }))).toEqual([
      { timer: 2, withinAMinute: true },
      { timer: 2, withinAMinute: true },
    ])
    opened.ws.close()
    await opened.closed
  })
})
