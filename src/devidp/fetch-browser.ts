/**
 * A minimal browser for tests without Chromium: plain fetch plus a cookie jar. It follows the dev IdP's
 * redirects, fills the login form, submits auto-posting forms (form_post responses, the logout step)
 * and stops as soon as the next hop leaves the IdP, returning that hop (e.g. the RP's callback with
 * `code` and `state`) without calling it.
 */

/** Cookies by origin, honouring Path and deletion (Max-Age=0 / past Expires). */
export interface CookieJar {
  /** The Cookie header value for a request to `url` ('' when none). */
  cookieHeader(url: string | URL): string
  /** Stores the Set-Cookie headers of a response from `url`. */
  store(url: string | URL, setCookies: readonly string[]): void
  /** Cookie names held for an origin (for assertions). */
  names(origin: string): string[]
}

interface StoredCookie {
  readonly value: string
  readonly path: string
}

/** Creates an empty cookie jar. */
export function createCookieJar(): CookieJar {
  const byOrigin = new Map<string, Map<string, StoredCookie>>()
  return {
    cookieHeader(url) {
      const u = new URL(url)
      const cookies = byOrigin.get(u.origin)
      if (!cookies) return ''
      return [...cookies.entries()]
        .filter(([, c]) => u.pathname === c.path || u.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
        .map(([name, c]) => `${name}=${c.value}`)
        .join('; ')
    },
    store(url, setCookies) {
      const u = new URL(url)
      const cookies = byOrigin.get(u.origin) ?? new Map<string, StoredCookie>()
      byOrigin.set(u.origin, cookies)
      for (const line of setCookies) {
        const [pair = '', ...attrs] = line.split(';').map((s) => s.trim())
        const eq = pair.indexOf('=')
        if (eq <= 0) continue
        const name = pair.slice(0, eq)
        const attr = (key: string) => attrs.find((a) => a.toLowerCase().startsWith(`${key}=`))?.slice(key.length + 1)
        const maxAge = attr('max-age')
        const expires = attr('expires')
        const gone = (maxAge !== undefined && Number(maxAge) <= 0) || (expires !== undefined && Date.parse(expires) <= Date.now())
        if (gone) cookies.delete(name)
        else cookies.set(name, { value: pair.slice(eq + 1), path: attr('path') ?? '/' })
      }
    },
    names: (origin) => [...(byOrigin.get(new URL(origin).origin)?.keys() ?? [])],
  }
}

/** The hop that leaves the IdP: where a browser would go next. */
export interface NextHop {
  readonly url: string
  readonly method: 'GET' | 'POST'
  /** Form fields for a POST hop (`response_mode=form_post`). */
  readonly form?: Readonly<Record<string, string>>
}

const decodeEntities = (s: string) =>
  s.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n))).replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')

function attribute(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\s${name}\\s*=\\s*("([^"]*)"|'([^']*)')`, 'i').exec(tag)
  return m ? decodeEntities(m[2] ?? m[3] ?? '') : undefined
}

interface ParsedForm {
  readonly action: string
  readonly fields: Record<string, string>
  readonly hasLogin: boolean
}

/** The first form of a page with its (hidden and visible) input values. */
export function parseForm(html: string, base: string): ParsedForm | undefined {
  const open = /<form\b[^>]*>/i.exec(html)
  if (!open) return undefined
  const end = html.indexOf('</form>', open.index)
  const inner = html.slice(open.index, end === -1 ? undefined : end)
  const fields: Record<string, string> = {}
  let hasLogin = false
  for (const tag of inner.match(/<input\b[^>]*>/gi) ?? []) {
    const name = attribute(tag, 'name')
    if (!name) continue
    if (name === 'login') hasLogin = true
    fields[name] = attribute(tag, 'value') ?? ''
  }
  return { action: new URL(attribute(open[0], 'action') ?? base, base).href, fields, hasLogin }
}

function errorText(html: string): string {
  const m = /<p class="error"[^>]*>([^<]*)<\/p>/.exec(html)
  return m?.[1] ? decodeEntities(m[1]) : 'no error shown'
}

export interface BrowseOptions {
  readonly jar?: CookieJar
  /** Fills the login form with this user name when the IdP asks. */
  readonly login?: string
  readonly password?: string
  readonly maxSteps?: number
}

/**
 * Follows the IdP from `startUrl` until the next hop leaves its origin; returns that hop.
 * Throws when the IdP stops on a page (an error, or the login form rejecting the user).
 */
export async function browseIdp(startUrl: string, options: BrowseOptions = {}): Promise<NextHop | { readonly url: string; readonly status: number; readonly html: string }> {
  const jar = options.jar ?? createCookieJar()
  const origin = new URL(startUrl).origin
  let url = startUrl
  let method: 'GET' | 'POST' = 'GET'
  let body: URLSearchParams | undefined
  let loginTries = 0
  for (let step = 0; step < (options.maxSteps ?? 20); step++) {
    const cookie = jar.cookieHeader(url)
    const res = await fetch(url, { method, body, redirect: 'manual', headers: { accept: 'text/html', ...(cookie ? { cookie } : {}) } })
    jar.store(url, res.headers.getSetCookie())
    const location = res.headers.get('location')
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel()
      const next = new URL(location, url)
      if (next.origin !== origin) return { url: next.href, method: 'GET' }
      url = next.href
      method = 'GET'
      body = undefined
      continue
    }
    const html = await res.text()
    const form = parseForm(html, url)
    if (form?.hasLogin) {
      if (options.login === undefined) throw new Error('devidp: the IdP asks for a login but no login was given')
      if (loginTries++ > 0) throw new Error(`devidp: sign-in as "${options.login}" refused: ${errorText(html)}`)
      form.fields.login = options.login
      form.fields.password = options.password ?? ''
    }
    if (!form) return { url, status: res.status, html }
    if (new URL(form.action).origin !== origin) return { url: form.action, method: 'POST', form: form.fields }
    url = form.action
    method = 'POST'
    body = new URLSearchParams(form.fields)
  }
  throw new Error('devidp: too many steps at the IdP')
}

/** Signs in at the IdP as `login` starting from an authorization URL; returns the redirect back to the client. */
export async function signIn(authorizeUrl: string, login: string, options: Omit<BrowseOptions, 'login'> = {}): Promise<NextHop> {
  const result = await browseIdp(authorizeUrl, { ...options, login })
  if ('status' in result) throw new Error(`devidp: sign-in stopped at ${result.url} (HTTP ${result.status}): ${errorText(result.html)}`)
  return result
}

/** Follows an RP-initiated logout (the end_session URL); returns the post-logout redirect, or the final page. */
export async function signOut(endSessionUrl: string, options: Omit<BrowseOptions, 'login'> = {}): Promise<NextHop | { readonly url: string; readonly status: number; readonly html: string }> {
  return browseIdp(endSessionUrl, options)
}
