/**
 * An in-memory storage adapter for oidc-provider, owned by one dev IdP.
 * Owned (not oidc-provider's module-wide default) so that two IdPs in one process never share state, and
 * so the provider can be rebuilt on key rotation or client registration without losing sessions and grants.
 */

type Payload = Record<string, unknown>

interface Entry {
  readonly payload: Payload
  readonly expiresAt: number
}

/** The adapter contract oidc-provider calls (one instance per model name). */
export interface ProviderAdapter {
  upsert(id: string, payload: Payload, expiresIn?: number): Promise<void>
  find(id: string): Promise<Payload | undefined>
  findByUid(uid: string): Promise<Payload | undefined>
  findByUserCode(userCode: string): Promise<Payload | undefined>
  consume(id: string): Promise<void>
  destroy(id: string): Promise<void>
  revokeByGrantId(grantId: string): Promise<void>
}

/** Models that belong to a grant and die with it (`revokeByGrantId`). */
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest', 'ClientCredentials'])

/** Returns an adapter factory for oidc-provider's `adapter` option, with its own store. */
export function createMemoryAdapter(now: () => number = Date.now): (model: string) => ProviderAdapter {
  const entries = new Map<string, Entry>()
  const sessionByUid = new Map<string, string>()
  const byUserCode = new Map<string, string>()
  const grants = new Map<string, Set<string>>()

  const live = (key: string): Payload | undefined => {
    const entry = entries.get(key)
    if (!entry) return undefined
    if (entry.expiresAt <= now()) {
      entries.delete(key)
      return undefined
    }
    return entry.payload
  }

  return (model) => {
    const keyOf = (id: string) => `${model}:${id}`
    return {
      async upsert(id, payload, expiresIn) {
        const key = keyOf(id)
        entries.set(key, { payload, expiresAt: typeof expiresIn === 'number' ? now() + expiresIn * 1000 : Infinity })
        if (model === 'Session' && typeof payload.uid === 'string') sessionByUid.set(payload.uid, id)
        if (typeof payload.userCode === 'string') byUserCode.set(payload.userCode, id)
        if (GRANTABLE.has(model) && typeof payload.grantId === 'string') {
          const members = grants.get(payload.grantId) ?? new Set<string>()
          members.add(key)
          grants.set(payload.grantId, members)
        }
      },
      async find(id) {
        return live(keyOf(id))
      },
      async findByUid(uid) {
        const id = sessionByUid.get(uid)
        return id === undefined ? undefined : live(keyOf(id))
      },
      async findByUserCode(userCode) {
        const id = byUserCode.get(userCode)
        return id === undefined ? undefined : live(keyOf(id))
      },
      async consume(id) {
        const payload = live(keyOf(id))
        if (payload) payload.consumed = Math.floor(now() / 1000)
      },
      async destroy(id) {
        const key = keyOf(id)
        const payload = entries.get(key)?.payload
        entries.delete(key)
        if (payload && typeof payload.uid === 'string' && sessionByUid.get(payload.uid) === id) sessionByUid.delete(payload.uid)
      },
      async revokeByGrantId(grantId) {
        for (const key of grants.get(grantId) ?? []) entries.delete(key)
        grants.delete(grantId)
      },
    }
  }
}
