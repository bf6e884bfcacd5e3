/**
 * Authentication: find the first credential in SPEC order and turn it into an Identity.
 * STUB until the bearer issue lands: every request is anonymous.
 */
import type { IncomingMessage } from 'node:http'
import type { RequestContext, AuthMethod } from '../server/context.ts'
import { ANONYMOUS, type Identity } from './identity.ts'

export type AuthOutcome =
  | {
      readonly ok: true
      readonly method: AuthMethod
      readonly identity: Identity
      /** Replacement for the `Authorization` header sent to GitLab: a string replaces it, `null` removes it, `undefined` leaves it. */
      readonly forwardAuthorization?: string | null
    }
  | {
      readonly ok: false
      readonly method: AuthMethod
      /** Stable kebab-case reason (logs, metrics). */
      readonly reason: string
      /** Safe, human-readable description for the client; never echoes the credential. */
      readonly description: string
      /** 401 for a bad credential, 503 when a dependency (session store, Graph) is down. */
      readonly status: 401 | 503
    }

export interface Authenticator {
  /** Synchronous for cached credentials: the hot path awaits nothing. */
  authenticate(req: IncomingMessage, ctx: RequestContext): AuthOutcome | Promise<AuthOutcome>
  /** Keys fetched, stores reachable. */
  isReady(): boolean
  /** Details for /readyz. */
  readiness(): Record<string, unknown>
  close(): Promise<void>
}

const ANONYMOUS_OUTCOME: AuthOutcome = Object.freeze({ ok: true, method: 'none', identity: ANONYMOUS })

export function createAuthenticator(): Authenticator {
  return {
    authenticate: () => ANONYMOUS_OUTCOME,
    isReady: () => true,
    readiness: () => ({}),
    close: async () => {},
  }
}
