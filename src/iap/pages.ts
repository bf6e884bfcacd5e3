/**
 * The HTML pages of the sign-in endpoints: their failures with the next step as a link, and the
 * sign-out confirmation. They look like the proxy's other status pages (src/http/respond.ts), whose
 * style they reuse; JSON and git clients get the ordinary status page.
 */
import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { escapeHtml, renderStatusPage, sendStatusPage, statusPageFormat, type StatusPage } from '../http/respond.ts'

/** The status pages' CSS, taken from their renderer so both stay alike (the fallback is a copy of it). */
const STATUS_CSS =
  /<style>([^<]*)<\/style>/.exec(renderStatusPage({ status: 500, title: '', message: '', requestId: '' }, 'html').body)?.[1] ??
  'body{font:16px system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}code{background:#f3f3f3;padding:0 .25rem}'

/** What the confirmation's form adds: a button and a Cancel link side by side. */
const FORM_CSS = 'form{display:flex;gap:1rem;align-items:center}button{font:inherit;padding:.4rem 1rem;cursor:pointer}'

const PAGE_CSS = STATUS_CSS + FORM_CSS

/** For a `style-src` that allows this page's one inline style and nothing else. */
export const PAGE_STYLE_HASH = `'sha256-${createHash('sha256').update(PAGE_CSS).digest('base64')}'`

function htmlDocument(title: string, body: string): string {
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">` +
    `<title>${escapeHtml(title)}</title><style>${PAGE_CSS}</style></head><body>${body}</body></html>\n`
  )
}

/** A link the user follows next: home, or the sign-in again for the page they wanted. */
export interface NextStep {
  readonly href: string
  readonly text: string
}

export const HOME: NextStep = Object.freeze({ href: '/', text: 'Go to GitLab' })

/** "Try again": a new sign-in for `target` (a validated same-origin path), or for the home page. */
export function tryAgain(target = '/'): NextStep {
  return { href: `/-/iap/login?rd=${encodeURIComponent(target)}`, text: 'Try again' }
}

/**
 * A failure of a sign-in endpoint: in a browser, the status page's content with the next step as a
 * link under the message; the reason and request id stay on it. Other clients get the status page.
 */
export function sendSignInFailure(req: IncomingMessage, res: ServerResponse, page: StatusPage, next: NextStep, headers: Record<string, string | string[]> = {}): void {
  if (res.headersSent || statusPageFormat(req) !== 'html') return sendStatusPage(req, res, page, headers)
  const body = htmlDocument(
    `${page.status} ${page.title}`,
    `<h1>${escapeHtml(page.title)}</h1><p>${escapeHtml(page.message)}</p>` +
      `<p><a href="${escapeHtml(next.href)}">${escapeHtml(next.text)}</a></p>` +
      (page.reason ? `<p>Reason: <code>${escapeHtml(page.reason)}</code></p>` : '') +
      `<p>Request id: <code>${escapeHtml(page.requestId)}</code></p>`,
  )
  res.writeHead(page.status, {
    ...headers,
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-request-id': page.requestId,
  })
  res.end(req.method === 'HEAD' ? undefined : body)
}

/** The question a sign-out another site started gets; `signedInAs` when the session could be read. */
export function logoutConfirmPage(signedInAs: string | undefined): string {
  return htmlDocument(
    'Sign out of GitLab?',
    `<h1>Sign out of GitLab?</h1>` +
      (signedInAs ? `<p>Signed in as <strong>${escapeHtml(signedInAs)}</strong>.</p>` : '') +
      `<p>Another site sent you here. Sign out only if you meant to.</p>` +
      `<form method="post" action="/-/iap/logout"><button type="submit" autofocus>Sign out</button><a href="/">Cancel</a></form>`,
  )
}

/** Such a sign-out in a browser with no live session: nothing to end, nothing to ask. */
export function notSignedInPage(): string {
  return htmlDocument(
    'Not signed in',
    `<h1>You are not signed in</h1><p>There is no GitLab session in this browser to sign out of.</p>` +
      `<p><a href="${HOME.href}">${HOME.text}</a></p>`,
  )
}
