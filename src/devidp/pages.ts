/**
 * HTML pages of the dev IdP (pure string builders). Self-contained: no external fonts, scripts or
 * images, so a browser driven by a test never leaves loopback (oidc-provider's defaults import web fonts).
 */

/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

const STYLE = 'body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}'
  + 'label,input,button{display:block;width:100%;margin:.4rem 0}input,button{padding:.5rem;font-size:1rem}'
  + '.error{color:#a00}.hint{color:#555;font-size:.9rem}'

function page(title: string, body: string): string {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>`
    + `<meta name="viewport" content="width=device-width, initial-scale=1"><style>${STYLE}</style></head>`
    + `<body>${body}</body></html>`
}

/** What the login page shows. */
export interface LoginPageInput {
  readonly action: string
  readonly tenantId: string
  readonly clientId?: string
  readonly loginHint?: string
  readonly error?: string
  /** Demo user names listed under the form (development only). */
  readonly knownUsers?: readonly string[]
}

/** The interactive sign-in form: a `login` field, an optional (ignored) password and a submit button. */
export function loginPage(input: LoginPageInput): string {
  const users = input.knownUsers?.length
    ? `<p class="hint">Development users: ${input.knownUsers.map(escapeHtml).join(', ')}. Any password works.</p>`
    : ''
  const error = input.error ? `<p class="error" role="alert">${escapeHtml(input.error)}</p>` : ''
  return page('Sign in - development identity provider', `<h1>Sign in</h1>`
    + `<p class="hint">Development tenant ${escapeHtml(input.tenantId)}${input.clientId ? `, app ${escapeHtml(input.clientId)}` : ''}</p>`
    + error
    + `<form method="post" action="${escapeHtml(input.action)}" autocomplete="off">`
    + `<label for="login">User name</label>`
    + `<input id="login" name="login" type="text" required autofocus value="${escapeHtml(input.loginHint ?? '')}">`
    + `<label for="password">Password</label>`
    + `<input id="password" name="password" type="password">`
    + `<button type="submit" id="submit">Sign in</button>`
    + `</form>${users}`)
}

/**
 * The RP-initiated logout step: oidc-provider's confirmation form (with its xsrf field), submitted at once
 * with `logout=yes` (Entra asks nothing when the hint names the signed-in account).
 */
export function logoutPage(form: string): string {
  // The provider's form has id "op.logoutForm"; the hidden field signs the user out of the IdP too.
  const withLogout = form.replace('</form>', '<input type="hidden" name="logout" value="yes"><noscript><button type="submit">Sign out</button></noscript></form>')
  return page('Signing out', `<h1>Signing out...</h1>${withLogout}<script>document.forms[0].submit()</script>`)
}

/** Shown after logout when no `post_logout_redirect_uri` was given. */
export function loggedOutPage(): string {
  return page('Signed out', '<h1>You signed out of your account</h1>')
}

/** An OAuth error shown to the browser (never echoes tokens: only the error code and description). */
export function errorPage(error: string, description?: string): string {
  return page('Sign-in error', `<h1>Sign-in error</h1><p class="error">${escapeHtml(error)}</p>`
    + (description ? `<p>${escapeHtml(description)}</p>` : ''))
}
