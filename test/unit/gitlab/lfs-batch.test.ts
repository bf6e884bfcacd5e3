import { describe, expect, it } from 'vitest'
import { addIapCredential, isLfsBatch } from '../../../src/gitlab/lfs-batch.ts'

const origins = new Set(['https://gitlab.example.com'])
const batch = (href: string, header?: Record<string, string>) =>
  Buffer.from(JSON.stringify({ transfer: 'basic', objects: [{ oid: 'a'.repeat(64), size: 3, actions: { download: { href, ...(header && { header }), expires_in: 3600 } } }] }))

describe('LFS batch answers', () => {
  it('only the batch call of an LFS route is read', () => {
    expect(isLfsBatch('lfs', 'POST', '/group/project.git/info/lfs/objects/batch')).toBe(true)
    expect(isLfsBatch('lfs', 'GET', '/group/project.git/info/lfs/objects/batch')).toBe(false)
    expect(isLfsBatch('web', 'POST', '/group/project/info/lfs/objects/batch')).toBe(false)
    expect(isLfsBatch('lfs', 'PUT', '/group/project.git/gitlab-lfs/objects/abc/3')).toBe(false)
  })

  it('adds the IAP token to actions on this proxy, keeping GitLab\'s own header', () => {
    const out = JSON.parse(addIapCredential(batch('https://gitlab.example.com/group/project.git/gitlab-lfs/objects/aa', { Authorization: 'Basic Z2w=' }), 'T0K', origins).toString())
    expect(out.objects[0].actions.download.header).toEqual({ Authorization: 'Basic Z2w=', 'X-IAP-Authorization': 'Bearer T0K' })
  })

  it('never hands the token to another origin (object storage), a look-alike host, or a relative href; other bodies pass unchanged', () => {
    for (const href of ['https://objects.s3.example.com/bucket/aa?sig=x', 'https://gitlab.example.com.evil.example/x', 'http://gitlab.example.com/x', '/group/project.git/gitlab-lfs/objects/aa']) {
      const body = batch(href)
      expect(addIapCredential(body, 'T0K', origins)).toBe(body)
    }
    for (const text of ['not json', '{"objects":3}', 'null', '{"objects":[null,{"actions":null},{"actions":{"download":null}}]}']) {
      const body = Buffer.from(text)
      expect(addIapCredential(body, 'T0K', origins)).toBe(body)
    }
  })
})
