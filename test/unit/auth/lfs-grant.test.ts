import { describe, expect, it } from 'vitest'
import type { Identity } from '../../../src/auth/identity.ts'
import { createLfsGrants, LFS_GRANT_PREFIX } from '../../../src/auth/lfs-grant.ts'

const SECRET = 'a-session-secret-of-at-least-32-bytes!!'
const PATH = `/group/project.git/gitlab-lfs/objects/${'a'.repeat(64)}`
const ada: Identity = Object.freeze({ kind: 'user', id: 'oid-ada', name: 'ada@example.test', email: 'ada@example.test', groups: ['g-eng'], roles: [], issuer: 'entra', tenantId: 't', issuedAt: 1_000, expiresAt: 4_000_000_000 })

function clock(startMs = 10_000) {
  let at = startMs
  return { now: () => at, advance: (ms: number) => (at += ms) }
}

describe('LFS grants', () => {
  it('a grant carries its identity for exactly its action and path', () => {
    const grants = createLfsGrants({ secret: SECRET })
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
    const grants = createLfsGrants({ secret: SECRET })
    expect(grants.mint(ada, 'delete', PATH)).toBeUndefined()
    expect(grants.mint(ada, '__proto__', PATH)).toBeUndefined()
    expect(grants.mint({ kind: 'anonymous', id: '', groups: [], roles: [], issuer: '' }, 'download', PATH)).toBeUndefined()
  })

  it('expires after its lifetime, and never outlives the credential it was minted from', () => {
    const c = clock()
    const grants = createLfsGrants({ secret: SECRET, now: c.now, ttlSeconds: 3600 })
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

  it('refuses grants it did not mint: another key, an edited payload or MAC, other shapes', () => {
    const grants = createLfsGrants({ secret: SECRET })
    const grant = grants.mint(ada, 'download', PATH)!
    expect(createLfsGrants({ secret: `${SECRET}-other` }).verify(grant, 'GET', PATH)).toEqual({ ok: false, reason: 'lfs-grant-invalid' })
    expect(createLfsGrants().verify(grant, 'GET', PATH)).toEqual({ ok: false, reason: 'lfs-grant-invalid' })

    const [prefix, payload, mac] = grant.split('.')
    const edited = JSON.parse(Buffer.from(payload!, 'base64url').toString())
    edited.idn.groups = ['g-admins']
    const forged = `${prefix}.${Buffer.from(JSON.stringify(edited)).toString('base64url')}.${mac}`
    expect(grants.verify(forged, 'GET', PATH)).toEqual({ ok: false, reason: 'lfs-grant-invalid' })
    const flipped = `${prefix}.${payload}.${mac!.slice(0, -2)}${mac!.endsWith('AA') ? 'AB' : 'AA'}`
    expect(grants.verify(flipped, 'GET', PATH)).toEqual({ ok: false, reason: 'lfs-grant-invalid' })
    for (const bad of ['', LFS_GRANT_PREFIX, `${LFS_GRANT_PREFIX}.`, `${prefix}.${payload}`, `${prefix}.${payload}.`, 'eyJhbGciOiJub25lIn0.e30.']) {
      expect(grants.verify(bad, 'GET', PATH)).toEqual({ ok: false, reason: 'lfs-grant-invalid' })
    }
  })

  it('every replica sharing session.secret accepts every replica\'s grants', () => {
    const grant = createLfsGrants({ secret: SECRET }).mint(ada, 'download', PATH)!
    expect(createLfsGrants({ secret: SECRET }).verify(grant, 'GET', PATH).ok).toBe(true)
  })
})
