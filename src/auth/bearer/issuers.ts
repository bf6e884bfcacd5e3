/**
 * The table of trusted bearer issuers, derived from the config once (pure). Entra contributes its
 * v2 issuer and, unless `entra.acceptV1Tokens` is false, its v1 issuer; each extra `issuers:` entry
 * contributes one. Every issuer has its own key set: a `kid` known to one never counts for another.
 */
import type { Config, EntraConfig, IssuerConfig } from '../../config/schema.ts'

export type IssuerFlavor = 'entra' | 'extra'

export interface IssuerSpec {
  /** Label in metrics, readiness and logs: "entra", "entra/v1", or the extra issuer's `name`. */
  readonly label: string
  /** "entra" or the extra issuer's `name` (goes to `Identity.issuer` and qualifies groups). */
  readonly name: string
  readonly flavor: IssuerFlavor
  /** The exact `iss` value accepted. */
  readonly iss: string
  readonly audiences: readonly string[]
  readonly algorithms: readonly string[]
  /** OpenID discovery document; used when `jwksUri` is absent. */
  readonly discoveryUrl: string
  readonly jwksUri?: string
  /** Extra issuers only. */
  readonly kind?: IssuerConfig['kind']
  readonly claims?: IssuerConfig['claims']
  /**
   * Entra only: a JWKS key carrying an `issuer` property (Entra's v2 keys document:
   * https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens) is used only
   * when that property, with `{tenantid}` replaced, is one of these.
   */
  readonly keyIssuers?: readonly string[]
  readonly tenantId?: string
  /** Username that replaces the JWT when a Basic password is forwarded to GitLab (docs/bearer.md, credential 3). */
  readonly basicUsername: 'gitlab-ci-token' | 'oauth2'
  /**
   * Entra v1 only: its keys not (yet) fetched does not hold readiness. v1 tokens are refused until they
   * are; v2 and the extra issuers carry the proxy (a provider that speaks only v2 has no v1 discovery).
   */
  readonly optional?: boolean
}

const PUBLIC_ENTRA = 'https://login.microsoftonline.com'

const trimSlash = (url: string) => url.replace(/\/+$/, '')

/**
 * Entra v1 access tokens: for the public cloud authority the issuer is `https://sts.windows.net/{tid}/`
 * (https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens); for any other authority
 * (sovereign clouds, the loopback dev provider) we expect
 * `{authority}/{tid}/`, which is what such a provider's v1 discovery document names.
 */
export function entraV1Issuer(authority: string, tenantId: string): string {
  const base = trimSlash(authority)
  return base === PUBLIC_ENTRA ? `https://sts.windows.net/${tenantId}/` : `${base}/${tenantId}/`
}

/** Entra v2 tokens: `{authority}/{tid}/v2.0`. */
export function entraV2Issuer(authority: string, tenantId: string): string {
  return `${trimSlash(authority)}/${tenantId}/v2.0`
}

function entraIssuers(entra: EntraConfig): IssuerSpec[] {
  const base = trimSlash(entra.authority)
  const audiences = [...new Set([...entra.audiences, entra.clientId])]
  const keyIssuers = [entraV2Issuer(base, entra.tenantId), entraV1Issuer(base, entra.tenantId)]
  const common = { name: 'entra', flavor: 'entra' as const, audiences, algorithms: entra.algorithms, basicUsername: 'oauth2' as const, keyIssuers, tenantId: entra.tenantId }
  const specs: IssuerSpec[] = [
    { ...common, label: 'entra', iss: entraV2Issuer(base, entra.tenantId), discoveryUrl: `${base}/${entra.tenantId}/v2.0/.well-known/openid-configuration` },
  ]
  if (entra.acceptV1Tokens) {
    specs.push({ ...common, label: 'entra/v1', iss: entraV1Issuer(base, entra.tenantId), discoveryUrl: `${base}/${entra.tenantId}/.well-known/openid-configuration`, optional: true })
  }
  return specs
}

function extraIssuer(cfg: IssuerConfig): IssuerSpec {
  return {
    label: cfg.name,
    name: cfg.name,
    flavor: 'extra',
    iss: cfg.issuer,
    audiences: cfg.audiences,
    algorithms: cfg.algorithms,
    discoveryUrl: `${trimSlash(cfg.issuer)}/.well-known/openid-configuration`,
    ...(cfg.jwksUri ? { jwksUri: cfg.jwksUri } : {}),
    kind: cfg.kind,
    claims: cfg.claims,
    basicUsername: cfg.kind === 'ci' ? 'gitlab-ci-token' : 'oauth2',
  }
}

/** Every trusted issuer, in config order (Entra first). */
export function trustedIssuers(config: Pick<Config, 'entra' | 'issuers'>): IssuerSpec[] {
  return [...(config.entra ? entraIssuers(config.entra) : []), ...config.issuers.map(extraIssuer)]
}
