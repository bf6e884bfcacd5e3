import { describe, expect, it } from 'vitest'
import { addLfsGrants, isLfsBatch } from '../../../src/gitlab/lfs-batch.ts'

const origins = new Set(['https://gitlab.example.com'])
const batch = (actions: Record<string, { href: string; header?: Record<string, string> }>) =>
  Buffer.from(JSON.stringify({ transfer: 'basic', objects: [{ oid: 'a'.repeat(64), size: 3, actions }] }))
const grantFor = (action: string, path: string) => (action === 'delete' ? undefined : `Bearer grant:${action}:${path}`)

describe('LFS batch answers', () => {
  it('only the batch call of an LFS route is read', () => {
    expect(isLfsBatch('lfs', 'POST', '/group/project.git/info/lfs/objects/batch')).toBe(true)
    expect(isLfsBatch('lfs', 'GET', '/group/project.git/info/lfs/objects/batch')).toBe(false)
    expect(isLfsBatch('web', 'POST', '/group/project/info/lfs/objects/batch')).toBe(false)
    expect(isLfsBatch('lfs', 'PUT', '/group/project.git/gitlab-lfs/objects/abc/3')).toBe(false)
  })

  it('each action on this proxy gets a grant for its own name and path; GitLab\'s own header stays', () => {
    const body = batch({
      upload: { href: 'https://gitlab.example.com/group/project.git/gitlab-lfs/objects/aa/3', header: { Authorization: 'Basic Z2w=' } },
      verify: { href: 'https://gitlab.example.com/group/project.git/info/lfs/objects/verify?x=1' },
    })
    const out = JSON.parse(addLfsGrants(body, origins, grantFor).toString())
    expect(out.objects[0].actions.upload.header).toEqual({ Authorization: 'Basic Z2w=', 'X-IAP-Authorization': 'Bearer grant:upload:/group/project.git/gitlab-lfs/objects/aa/3' })
    expect(out.objects[0].actions.verify.header).toEqual({ 'X-IAP-Authorization': 'Bearer grant:verify:/group/project.git/info/lfs/objects/verify' })
  })

  it('never adds a grant for another origin (object storage), a look-alike host, a relative href or an action without one; other bodies pass unchanged', () => {
    for (const href of ['https://objects.s3.example.com/bucket/aa?sig=x', 'https://gitlab.example.com.evil.example/x', 'http://gitlab.example.com/x', '/group/project.git/gitlab-lfs/objects/aa']) {
      const body = batch({ download: { href } })
      expect(addLfsGrants(body, origins, grantFor)).toBe(body)
    }
    const unknownAction = batch({ delete: { href: 'https://gitlab.example.com/x' } })
    expect(addLfsGrants(unknownAction, origins, grantFor)).toBe(unknownAction)
    for (const text of ['not json', '{"objects":3}', 'null', '{"objects":[null,{"actions":null},{"actions":{"download":null}}]}']) {
      const body = Buffer.from(text)
      expect(addLfsGrants(body, origins, grantFor)).toBe(body)
    }
  })
})
