/**
 * The interactive part of the dev IdP: the sign-in form (`GET|POST /{tenant}/login/{uid}`) and automatic
 * consent. Any password is accepted; unknown and disabled users are refused on the form itself.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type Provider from 'oidc-provider'
import type { Interaction } from 'oidc-provider'
import { parseLoginHint } from './claims.ts'
import type { Directory } from './directory.ts'
import { errorPage, loginPage } from './pages.ts'

export interface InteractionDeps {
  readonly tenantId: string
  readonly directory: Directory
  readonly provider: () => Provider
  /** List the directory's users under the form (development convenience). */
  readonly showUsers: boolean
}

const FORM_LIMIT_BYTES = 16 * 1024

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(html), 'cache-control': 'no-store' })
  res.end(html)
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > FORM_LIMIT_BYTES) throw new Error('form too large')
    chunks.push(chunk as Buffer)
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
}

/** The login field's initial value: the UPN behind an opaque `login_hint`, or the hint as typed. */
function prefill(deps: InteractionDeps, hint: unknown): string | undefined {
  if (typeof hint !== 'string' || !hint) return undefined
  const parsed = parseLoginHint(hint)
  return parsed ? deps.directory.getUser(parsed.oid)?.upn : hint
}

/** Grants whatever the client asked for (no consent screen) and resumes the authorization. */
async function autoConsent(deps: InteractionDeps, req: IncomingMessage, res: ServerResponse, interaction: Interaction): Promise<void> {
  const provider = deps.provider()
  const { details } = interaction.prompt
  const accountId = interaction.session?.accountId
  const clientId = String(interaction.params.client_id ?? '')
  const existing = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined
  const grant = existing ?? new provider.Grant({ accountId, clientId })
  if (details.missingOIDCScope?.length) grant.addOIDCScope(details.missingOIDCScope.join(' '))
  if (details.missingOIDCClaims?.length) grant.addOIDCClaims(details.missingOIDCClaims)
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '))
  const grantId = await grant.save()
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true })
}

/** Handles `/{tenant}/login/{uid}`. */
export async function handleInteraction(deps: InteractionDeps, req: IncomingMessage, res: ServerResponse, uid: string): Promise<void> {
  const provider = deps.provider()
  const form = req.method === 'POST' ? await readForm(req) : undefined
  let interaction: Interaction
  try {
    interaction = await provider.interactionDetails(req, res)
  } catch {
    return sendHtml(res, 400, errorPage('invalid_request', 'The sign-in session expired or the cookie is missing. Start again from the application.'))
  }
  if (interaction.uid !== uid) return sendHtml(res, 400, errorPage('invalid_request', 'This sign-in page does not belong to the current sign-in.'))
  if (interaction.prompt.name === 'consent') return autoConsent(deps, req, res, interaction)
  if (interaction.prompt.name !== 'login') return sendHtml(res, 400, errorPage('interaction_required', `Unsupported prompt ${interaction.prompt.name}.`))

  const page = (status: number, error?: string, login?: string) =>
    sendHtml(res, status, loginPage({
      action: `/${deps.tenantId}/login/${uid}`,
      tenantId: deps.tenantId,
      clientId: String(interaction.params.client_id ?? ''),
      loginHint: login ?? prefill(deps, interaction.params.login_hint),
      error,
      knownUsers: deps.showUsers ? deps.directory.listUsers().map((u) => u.upn) : undefined,
    }))

  if (!form) return page(200)
  const login = (form.get('login') ?? '').trim()
  const user = deps.directory.getUser(login)
  if (!user) return page(401, `AADSTS50034: The user account ${login} does not exist in this directory.`, login)
  if (user.disabled) return page(401, 'AADSTS50057: The user account is disabled.', login)
  await provider.interactionFinished(req, res, { login: { accountId: user.oid, amr: ['pwd'] } }, { mergeWithLastSubmission: false })
}
