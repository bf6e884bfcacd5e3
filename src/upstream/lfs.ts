/**
 * Git LFS as GitLab serves it, for the test upstream: the batch API at
 * `/{project}.git/info/lfs/objects/batch` answers with object URLs under
 * `/{project}.git/gitlab-lfs/objects/{oid}[/{size}]` and GitLab's own short-lived
 * `Authorization: Basic` header for them, which the object requests must carry. Objects live in memory.
 * With `objectStoreUrl`, downloads are answered with a redirect there (`{objectStoreUrl}/{oid}?X-Amz-Signature=…`),
 * as GitLab with LFS in object storage and without `proxy_download` answers them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'

/** The credential GitLab's batch answer hands to git-lfs for the object transfers. */
export const LFS_OBJECT_AUTHORIZATION = `Basic ${Buffer.from('gitlab-lfs-user:lfs-token-from-gitlab').toString('base64')}`

const BATCH = /^\/(.+\.git)\/info\/lfs\/objects\/batch$/
const OBJECT = /^\/(.+\.git)\/gitlab-lfs\/objects\/([0-9a-f]{64})(?:\/(\d+))?$/

interface BatchRequest {
  readonly operation?: string
  readonly objects?: readonly { readonly oid: string; readonly size: number }[]
}

export interface LfsServer {
  /** Serves the request when it is an LFS route; false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean
  /** Stored objects by `{project}.git/{oid}`. */
  readonly objects: ReadonlyMap<string, Buffer>
}

export interface LfsServerOptions {
  /** Answer downloads with a 302 to this object store instead of the bytes. */
  readonly objectStoreUrl?: string
}

export function createLfsServer(options: LfsServerOptions = {}): LfsServer {
  const objects = new Map<string, Buffer>()
  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body)
    res.writeHead(status, { 'content-type': 'application/vnd.git-lfs+json', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  }
  const read = (req: IncomingMessage) =>
    new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => resolve(Buffer.concat(chunks)))
      req.on('error', reject)
    })

  return {
    objects,
    handle(req, res, path) {
      const batch = BATCH.exec(path)
      if (batch && req.method === 'POST') {
        void read(req).then((body) => {
          const request = JSON.parse(body.toString() || '{}') as BatchRequest
          // GitLab writes its external URL into the hrefs; behind the proxy that is the proxy's address.
          const base = `${String(req.headers['x-forwarded-proto'] ?? 'http')}://${req.headers.host}/${batch[1]}/gitlab-lfs/objects`
          const header = { Authorization: LFS_OBJECT_AUTHORIZATION }
          json(res, 200, {
            transfer: 'basic',
            objects: (request.objects ?? []).map(({ oid, size }) => {
              const stored = objects.has(`${batch[1]}/${oid}`)
              if (request.operation === 'upload') {
                return stored ? { oid, size, authenticated: true } : { oid, size, authenticated: true, actions: { upload: { href: `${base}/${oid}/${size}`, header, expires_in: 3600 } } }
              }
              return stored
                ? { oid, size, authenticated: true, actions: { download: { href: `${base}/${oid}`, header, expires_in: 3600 } } }
                : { oid, size, error: { code: 404, message: 'Object does not exist on the server' } }
            }),
          })
        })
        return true
      }
      const object = OBJECT.exec(path)
      if (!object) return false
      if (req.headers.authorization !== LFS_OBJECT_AUTHORIZATION) {
        req.resume()
        json(res, 401, { message: 'Access forbidden. Check your access level.' })
        return true
      }
      const key = `${object[1]}/${object[2]}`
      if (req.method === 'PUT') {
        void read(req).then((body) => {
          objects.set(key, body)
          res.writeHead(200, { 'content-length': 0 })
          res.end()
        })
        return true
      }
      const stored = objects.get(key)
      if (req.method !== 'GET' || !stored) {
        req.resume()
        json(res, 404, { message: 'Not found' })
        return true
      }
      if (options.objectStoreUrl) {
        res.writeHead(302, { location: `${options.objectStoreUrl}/${object[2]}?X-Amz-Signature=presigned`, 'content-length': 0 })
        res.end()
        return true
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': stored.length })
      res.end(stored)
      return true
    },
  }
}
