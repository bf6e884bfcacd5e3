import { TEST_AUDIENCE, TEST_CLIENT, TEST_TENANT } from './jwks-server.ts'
import { baseConfig, type ConfigObject } from './serve.ts'

export const ENGINEERING = '6c0bd1d2-0000-4000-8000-000000000002'
export const CONTRACTORS = '6c0bd1d2-0000-4000-8000-000000000003'

/**
 * The policy of SPEC's example, in short: engineering and contractors may read (a `methods: [GET, HEAD]`
 * rule), only engineering may write; bearer tokens from the test IdP at `authority`.
 */
export function readersAndWritersConfig(upstreamUrl: string, authority: string): ConfigObject {
  return baseConfig(upstreamUrl, {
    entra: { tenantId: TEST_TENANT, clientId: TEST_CLIENT, authority, audiences: [TEST_AUDIENCE] },
    groups: { engineering: ENGINEERING, contractors: CONTRACTORS },
    policy: {
      rules: [
        { name: 'read-everything', paths: ['/**'], methods: ['GET', 'HEAD'], groups: ['engineering', 'contractors'] },
        { name: 'engineering', paths: ['/**'], groups: ['engineering'] },
      ],
    },
  })
}
