import { describe, expect, it } from 'vitest'
import type { Identity } from '../../../src/auth/identity.ts'
import { createLfsGrants, LFS_GRANT_PREFIX } from '../../../src/auth/lfs-grant.ts'

const SECRET = 'a-session-secret-of-at-least-32-bytes!!'
const AUDIENCE = 'https://gitlab.example.com'
const PATH = `/group/project.git/gitlab-lfs/objects/${'a'.repeat(64)}`
const ada: Identity = Object.freeze({ kind: 'user', id: 'oid-ada', name: 'ada@example.test', email: 'ada@example.test', groups: ['g-eng'], roles: [], issuer: 'entra', tenantId: 't', issuedAt: 1_000, expiresAt: 4_000_000_000 })

function clock(startMs = 10_000) {
  let at = startMs
  return { now: () => at, advance: (ms: number) => (at += ms) }
}

describe('LFS grants', () => {
  it('a grant carries its identity for exactly its action and path', () => {
    const grants = createLfsGrants({ audience: AUDIENCE, secret: SECRET })
    const download = grants.mint(ada, 'download', PATH)!
    expect(download.startsWith(LFS_GRANT_PREFIX)).toBe(true)
    const ok = grants.verify(download, 'GET', PATH)
    expect(ok.ok && ok.identity).toMatchObject({ id: 'oid-ada', name: 'ada@example.test', groups: ['g-eng'], issuer: 'entra', issuedAt: 1_000 })
    expect(grants.verify(download, 'HEAD', PATH).ok).toBe(true)
    expect(grants.verify(download, 'PUT', PATH)).toEqual({ ok: false, reason: 'lfs-grant-out-of-scope' })
    expect(grants.verify(download, 'GET', `${PATH}0`)).toEqual({ ok: false, reason: 'lfs-grant-out-of-scope' })
    expect(grants.verify(download, 'GET', '/group/other.git/gitlab-lfs/objects/' + 'a'.repeat(64))).toEqual({ ok: false, reason: 'lfs-grant-out-of-scope' })
    const upload = grants.mint(ada, 'upload', `${PATH}/3`)!
    expect(grants.verify(upload, 'PUT', `${PATH}/3`).ok).toBe(true)
    expect(grants.verify(upload, 'GET', `${PATH}/3`)).toEqual({ ok: false, reason: 'lfs-grant-out-of-scope' })
    const verify = grants.mint(ada, 'verify', '/group/project.git/info/lfs/objects/verify')!
    expect(grants.verify(verify, 'POST', '/group/project.git/info/lfs/objects/verify').ok).toBe(true)
  })

  it('no grant for an unknown action or an anonymous identity', () => {
    const grants = createLfsGrants({ audience: AUDIENCE, secret: SECRET })
    expect(grants.mint(ada, 'delete', PATH)).toBeUndefined()
    expect(grants.mint(ada, '__proto__', PATH)).toBeUndefined()
    expect(grants.mint({ kind: 'anonymous', id: '', groups: [], roles: [], issuer: '' }, 'download', PATH)).toBeUndefined()
  })

  it('expires after its lifetime, and never outlives the credential it was minted from', () => {
    const c = clock()
    const grants = createLfsGrants({ audience: AUDIENCE, secret: SECRET, now: c.now, ttlSeconds: 3600 })
    const grant = grants.mint(ada, 'download', PATH)!
    expect(grants.verify(grant, 'GET', PATH).ok).toBe(true) // cached from here on
    c.advance(3599_000)
    expect(grants.verify(grant, 'GET', PATH).ok).toBe(true)
    c.advance(1_000)
    expect(grants.verify(grant, 'GET', PATH)).toEqual({ ok: false, reason: 'lfs-grant-expired' })

    const shortLived = { ...ada, expiresAt: Math.floor(c.now() / 1000) + 60 }
    const capped = grants.mint(shortLived, 'download', PATH)!
    const ok = grants.verify(capped, 'GET', PATH)
    expect(ok.ok && ok.identity.expiresAt).toBe(shortLived.expiresAt)
    c.advance(60_000)
    expect(grants.verify(capped, 'GET', PATH)).toEqual({ ok: false, reason: 'lfs-grant-expired' })
  })

  it('refuses grants it did not mint: another key, another deployment with the same secret, an altered grant, other shapes', () => {
    const grants = createLfsGrants({ audience: AUDIENCE, secret: SECRET })
    const grant = grants.mint(ada, 'download', PATH)!
    expect(createLfsGrants({ audience: AUDIENCE, secret: `${SECRET}-other` }).verify(grant, 'GET', PATH)).toEqual({ ok: false, reason: 'lfs-grant-invalid' })
    expect(createLfsGrants({ audience: AUDIENCE }).verify(grant, 'GET', PATH)).toEqual({ ok: false, reason: 'lfs-grant-invalid' })
    expect(createLfsGrants({ audience: 'https://staging.example.com', secret: SECRET }).verify(grant, 'GET', PATH)).toEqual({ ok: false, reason: 'lfs-grant-invalid' })
    // Any byte changed anywhere (here in the middle of the ciphertext, and at the end of the tag-bearing text).
    const mid = Math.floor(grant.length / 2)
    const flip = (text: string, at: number) => text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1)
    expect(grants.verify(flip(grant, mid), 'GET', PATH)).toEqual({ ok: false, reason: 'lfs-grant-invalid' })
    expect(grants.verify(flip(grant, LFS_GRANT_PREFIX.length + 20), 'GET', PATH)).toEqual({ ok: false, reason: 'lfs-grant-invalid' })
    for (const bad of ['', LFS_GRANT_PREFIX, `${LFS_GRANT_PREFIX}v1.`, `${LFS_GRANT_PREFIX}v1.AAAA`, grant.slice(0, -10), 'eyJhbGciOiJub25lIn0.e30.']) {
      expect(grants.verify(bad, 'GET', PATH)).toEqual({ ok: false, reason: 'lfs-grant-invalid' })
    }
  })

  it('shows nothing of the identity to whoever holds it (object storage after a redirect)', () => {
    const grant = createLfsGrants({ audience: AUDIENCE, secret: SECRET }).mint(ada, 'download', PATH)!
    const text = Buffer.from(grant.slice(LFS_GRANT_PREFIX.length + 3), 'base64url').toString('latin1') + grant
    for (const secret of ['ada@example.test', 'oid-ada', 'g-eng', PATH]) expect(text).not.toContain(secret)
  })

  it('every replica sharing session.secret accepts every replica\'s grants', () => {
    const grant = createLfsGrants({ audience: AUDIENCE, secret: SECRET }).mint(ada, 'download', PATH)!
    expect(createLfsGrants({ audience: AUDIENCE, secret: SECRET }).verify(grant, 'GET', PATH).ok).toBe(true)
  })
})
