import { createServer, type Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createProjectResolver } from '../../../src/gitlab/project-ids.ts'

const project = (id: string) => ({ resource: 'projects' as const, id })

let server: Server
let base: string
let hits = 0
let failing = false

beforeAll(async () => {
  server = createServer((req, res) => {
    hits++
    if (req.headers['private-token'] !== 'tok') return void res.writeHead(401).end('{}')
    if (failing) return void res.writeHead(500).end('{}')
    const [, resource, id, query] = /\/api\/v4\/(projects|groups|namespaces)\/(\d+)(\?.*)?$/.exec(req.url ?? '') ?? []
    if (resource === 'groups' && query !== '?with_projects=false') return void res.writeHead(400).end('{}')
    const json = (body: object) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body))
    // Answer slowly, so concurrent lookups overlap.
    setTimeout(() => {
      if (resource === 'projects' && id === '42') json({ id: 42, path_with_namespace: 'secret-group/vault' })
      else if (resource === 'groups' && id === '42') json({ id: 42, full_path: 'other-group' })
      else if (resource === 'namespaces' && id === '9') json({ id: 9, full_path: 'secret-group/sub' })
      else res.writeHead(404).end('{}')
    }, 100)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
})
afterAll(() => new Promise<void>((r) => server.close(() => r())))

describe('numeric project ids', () => {
  it('coalesces concurrent lookups of one id into one GitLab request, then serves it from cache', async () => {
    hits = 0
    const resolver = createProjectResolver({ upstreamUrl: base, apiToken: 'tok' })
    const results = await Promise.all(Array.from({ length: 20 }, () => resolver.resolve(project('42'))))
    expect(new Set(results)).toEqual(new Set(['secret-group/vault']))
    expect(hits).toBe(1)
    expect(await resolver.resolve(project('42'))).toBe('secret-group/vault')
    expect(hits).toBe(1)
  })

  it('resolves a missing project, a GitLab error or a missing token to undefined (which the policy denies)', async () => {
    expect(await createProjectResolver({ upstreamUrl: base, apiToken: 'tok' }).resolve(project('7'))).toBeUndefined()
    expect(await createProjectResolver({ upstreamUrl: base, apiToken: 'wrong' }).resolve(project('42'))).toBeUndefined()
    expect(await createProjectResolver({ upstreamUrl: base }).resolve(project('42'))).toBeUndefined()
    failing = true
    try {
      expect(await createProjectResolver({ upstreamUrl: base, apiToken: 'tok' }).resolve(project('42'))).toBeUndefined()
    } finally {
      failing = false
    }
  })

  it('resolves group and namespace ids to their full path, each resource in its own namespace of ids', async () => {
    const resolver = createProjectResolver({ upstreamUrl: base, apiToken: 'tok' })
    expect(await resolver.resolve({ resource: 'groups', id: '42' })).toBe('other-group')
    expect(await resolver.resolve(project('42'))).toBe('secret-group/vault')
    expect(await resolver.resolve({ resource: 'namespaces', id: '9' })).toBe('secret-group/sub')
    expect(await resolver.resolve({ resource: 'groups', id: '9' })).toBeUndefined()
  })

  it('forgets a resolved id after its TTL', async () => {
    hits = 0
    const resolver = createProjectResolver({ upstreamUrl: base, apiToken: 'tok', ttlMs: 50 })
    await resolver.resolve(project('42'))
    await new Promise((r) => setTimeout(r, 120))
    await resolver.resolve(project('42'))
    expect(hits).toBe(2)
  })
})
