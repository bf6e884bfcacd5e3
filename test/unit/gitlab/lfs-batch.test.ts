import { describe, expect, it } from 'vitest'
import { addLfsGrants, isLfsBatch, lfsPathPrefix, MAX_GRANTS_PER_BATCH } from '../../../src/gitlab/lfs-batch.ts'

const origins = new Set(['https://gitlab.example.com'])
const batch = (actions: Record<string, { href: string; header?: Record<string, string> }>) =>
  Buffer.from(JSON.stringify({ transfer: 'basic', objects: [{ oid: 'a'.repeat(64), size: 3, actions }] }))
const PREFIX = '/group/project.git/'
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
      verify: { href: 'https://gitlab.example.com/group/project.git/info/lfs/objects/verify' },
    })
    const out = JSON.parse(addLfsGrants(body, origins, PREFIX, grantFor).toString())
    expect(out.objects[0].actions.upload.header).toEqual({ Authorization: 'Basic Z2w=', 'X-IAP-Authorization': 'Bearer grant:upload:/group/project.git/gitlab-lfs/objects/aa/3' })
    expect(out.objects[0].actions.verify.header).toEqual({ 'X-IAP-Authorization': 'Bearer grant:verify:/group/project.git/info/lfs/objects/verify' })
  })

  it('never adds a grant for another origin (object storage), a look-alike host, a relative href or an action without one; other bodies pass unchanged', () => {
    for (const href of [
      'https://objects.s3.example.com/bucket/aa?sig=x',
      'https://gitlab.example.com.evil.example/group/project.git/gitlab-lfs/objects/aa',
      'http://gitlab.example.com/group/project.git/gitlab-lfs/objects/aa',
      '/group/project.git/gitlab-lfs/objects/aa',
      // Not plain, or not this batch's project: never a grant.
      'https://gitlab.example.com/group/project.git/gitlab-lfs/objects/x/../../../../-/iap/whoami',
      'https://gitlab.example.com/group/project.git/gitlab-lfs/objects/%2e%2e/x',
      'https://gitlab.example.com/group/project.git/gitlab-lfs/objects/aa?x=1',
      'https://gitlab.example.com/group/project.git/gitlab-lfs/objects/aa#f',
      'https://user:pw@gitlab.example.com/group/project.git/gitlab-lfs/objects/aa',
      'https://gitlab.example.com/group/other.git/gitlab-lfs/objects/aa',
      'https://gitlab.example.com/-/iap/whoami',
    ]) {
      const body = batch({ download: { href } })
      expect(addLfsGrants(body, origins, PREFIX, grantFor)).toBe(body)
    }
    const unknownAction = batch({ delete: { href: 'https://gitlab.example.com/group/project.git/x' } })
    expect(addLfsGrants(unknownAction, origins, PREFIX, grantFor)).toBe(unknownAction)
    for (const text of ['not json', '{"objects":3}', 'null', '{"objects":[null,{"actions":null},{"actions":{"download":null}}]}']) {
      const body = Buffer.from(text)
      expect(addLfsGrants(body, origins, PREFIX, grantFor)).toBe(body)
    }
  })

  it('the project of the batch path bounds the grants, in any case; past MAX_GRANTS_PER_BATCH the answer passes unchanged', () => {
    expect(lfsPathPrefix('/group/project.git/info/lfs/objects/batch')).toBe('/group/project.git/')
    const mixedCase = batch({ download: { href: 'https://gitlab.example.com/Group/Project.git/gitlab-lfs/objects/aa' } })
    expect(JSON.parse(addLfsGrants(mixedCase, origins, PREFIX, grantFor).toString()).objects[0].actions.download.header['X-IAP-Authorization']).toBe('Bearer grant:download:/Group/Project.git/gitlab-lfs/objects/aa')
    const many = Buffer.from(JSON.stringify({
      objects: Array.from({ length: MAX_GRANTS_PER_BATCH + 1 }, (_, i) => ({ oid: String(i), size: 1, actions: { download: { href: `https://gitlab.example.com/group/project.git/gitlab-lfs/objects/${i}` } } })),
    }))
    expect(addLfsGrants(many, origins, PREFIX, grantFor)).toBe(many)
  })
})
