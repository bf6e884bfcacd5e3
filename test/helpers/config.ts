import { parseConfig } from '../../src/config/load.ts'
import { isIapError, type IapError } from '../../src/errors.ts'

/** The smallest valid config.yaml; tests append the sections they are about. */
export const MINIMAL_CONFIG = `
server: { publicUrl: "https://gitlab.example.com" }
upstream: { url: "http://gitlab:8181" }
`

/** The error a config is refused with; fails the test when it is accepted. */
export function configErrorOf(text: string, env: NodeJS.ProcessEnv = {}): IapError {
  try {
    parseConfig(text, env)
  } catch (err) {
    if (isIapError(err)) return err
    throw err
  }
  throw new Error('expected the config to be rejected')
}
