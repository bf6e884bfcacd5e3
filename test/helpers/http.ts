/** Raw HTTP helpers for tests that must send bytes fetch() would normalise (paths, headers, framing). */
import { connect, type Socket } from 'node:net'
import { request, type IncomingHttpHeaders } from 'node:http'

export interface RawResponse {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

/** An HTTP/1.1 request with the request-target sent exactly as given (no URL normalisation). */
export function rawRequest(base: string, method: string, target: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<RawResponse> {
  const url = new URL(base)
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path: target, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** Writes raw bytes on a TCP connection and returns everything the server sent until it closed (or timeout). */
export function rawSocket(base: string, bytes: string | Buffer, timeoutMs = 3000): Promise<string> {
  const url = new URL(base)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname)
    let received = ''
    const timer = setTimeout(() => socket.destroy(), timeoutMs)
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => (received += d))
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(received)
    })
    socket.on('error', (err) => {
      clearTimeout(timer)
      if (received) resolve(received)
      else reject(err)
    })
    socket.write(bytes)
  })
}

/**
 * A TCP client that keeps everything the server sends (latin1) and the request id of its answer;
 * `allowHalfOpen` keeps its own side open after the server's FIN, as a stubborn client would.
 */
export function rawClient(base: string, options: { allowHalfOpen?: boolean } = {}): { socket: Socket; received(): string; requestId(): string | undefined } {
  const url = new URL(base)
  const socket = connect({ port: Number(url.port), host: url.hostname, allowHalfOpen: options.allowHalfOpen ?? false })
  let received = ''
  socket.setEncoding('latin1')
  socket.on('data', (d: string) => (received += d))
  return { socket, received: () => received, requestId: () => /x-request-id: (\S+)/i.exec(received)?.[1] }
}
