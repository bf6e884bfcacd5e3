/**
 * A minimal Entra-shaped issuer for benchmarks: discovery and JWKS at Entra's paths, tokens minted
 * locally with RS256 (the Entra default) or ES256 (cheap to mint in bulk). Counts JWKS fetches, so the
 * report can show that a cached token costs no network I/O.
 */
import { createServer, type Server } from 'node:http'
import { randomUUID } from 'node:crypto'
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from 'jose'

export const TENANT = '9b1e5a3c-0000-4000-8000-00000000be7c'
export const CLIENT = 'b3c1e2d4-0000-4000-8000-00000000c11e'
export const GROUP = '6c0bd1d2-0000-4000-8000-00000000be7c'

export interface BenchIdp {
  readonly authority: string
  readonly issuer: string
  readonly jwksUri: string
  /** The RS256 signing key's public half as PEM (for peers that take a key file). */
  readonly rsaPublicPem: string
  readonly rsaKid: string
  jwksFetches(): number
  mint(opts?: { groups?: string[]; alg?: 'RS256' | 'ES256'; oid?: string }): Promise<string>
  close(): Promise<void>
}

export async function startBenchIdp(): Promise<BenchIdp> {
  const rsa = await generateKeyPair('RS256', { extractable: true })
  const ec = await generateKeyPair('ES256', { extractable: true })
  const keys = [
    { ...(await exportJWK(rsa.publicKey)), kid: 'bench-rsa', alg: 'RS256', use: 'sig' },
    { ...(await exportJWK(ec.publicKey)), kid: 'bench-ec', alg: 'ES256', use: 'sig' },
  ]
  let fetches = 0
  let authority = ''
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/'
    if (path.endsWith('/.well-known/openid-configuration')) {
      // Entra serves a v1 document too (issuer `{authority}/{tid}/`), which gitlab-iap fetches for v1 tokens.
      const v2 = path.includes('/v2.0/')
      const issuer = v2 ? `${authority}/${TENANT}/v2.0` : `${authority}/${TENANT}/`
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ issuer, jwks_uri: `${authority}/${TENANT}/discovery/${v2 ? 'v2.0/' : ''}keys`, authorization_endpoint: `${authority}/${TENANT}/oauth2/v2.0/authorize`, token_endpoint: `${authority}/${TENANT}/oauth2/v2.0/token`, id_token_signing_alg_values_supported: ['RS256'], response_types_supported: ['code'], subject_types_supported: ['pairwise'] }))
      return
    }
    if (path.includes('/discovery/')) {
      fetches++
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ keys }))
      return
    }
    res.statusCode = 404
    res.end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  authority = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  const issuer = `${authority}/${TENANT}/v2.0`
  return {
    authority,
    issuer,
    jwksUri: `${authority}/${TENANT}/discovery/v2.0/keys`,
    rsaPublicPem: await exportSPKI(rsa.publicKey),
    rsaKid: 'bench-rsa',
    jwksFetches: () => fetches,
    async mint({ groups = [GROUP], alg = 'RS256', oid = randomUUID() } = {}) {
      const key: CryptoKey = alg === 'RS256' ? rsa.privateKey : ec.privateKey
      return new SignJWT({ tid: TENANT, oid, preferred_username: `${oid.slice(0, 8)}@bench.example`, name: 'Bench User', groups, scp: 'access_as_user', azp: CLIENT, ver: '2.0' })
        .setProtectedHeader({ alg, kid: alg === 'RS256' ? 'bench-rsa' : 'bench-ec', typ: 'JWT' })
        .setIssuer(issuer)
        .setAudience('api://gitlab-iap')
        .setSubject(oid)
        .setIssuedAt()
        .setNotBefore('0s')
        .setExpirationTime('2h')
        .sign(key)
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
