/**
 * The sign-out pages of the sign-in endpoints (the confirmation, "not signed in"), and the next steps
 * their failure pages link to. They look like the proxy's status pages (src/http/respond.ts), whose
 * style they build on.
 */
import { createHash } from 'node:crypto'
import { escapeHtml, STATUS_PAGE_CSS, type StatusPage } from '../http/respond.ts'

/** What the confirmation's form adds: a button and a Cancel link side by side. */
const FORM_CSS = 'form{display:flex;gap:1rem;align-items:center}button{font:inherit;padding:.4rem 1rem;cursor:pointer}'

const PAGE_CSS = STATUS_PAGE_CSS + FORM_CSS

/** For a `style-src` that allows this page's one inline style and nothing else. */
export const PAGE_STYLE_HASH = `'sha256-${createHash('sha256').update(PAGE_CSS).digest('base64')}'`

function htmlDocument(title: string, body: string): string {
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">` +
    `<title>${escapeHtml(title)}</title><style>${PAGE_CSS}</style></head><body>${body}</body></html>\n`
  )
}

/** A link the user follows next: home, or the sign-in again for the page they wanted. */
export type NextStep = NonNullable<StatusPage['next']>

export const HOME: NextStep = Object.freeze({ href: '/', text: 'Go to GitLab' })

/** "Try again": a new sign-in for `target` (a validated same-origin path), or for the home page. */
export function tryAgain(target = '/'): NextStep {
  return { href: `/-/iap/login?rd=${encodeURIComponent(target)}`, text: 'Try again' }
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
