/** The session cookie's attributes from the config, shared by the sessions (src/iap/index.ts) and the app's sign-in redirect. */
import { serializeCookie } from '../auth/session/cookies.ts'
import type { Config } from '../config/schema.ts'

/** `Secure` on the session cookies: `__Host-`/`__Secure-` cookies are only stored with it; plain-http loopback demos may drop it otherwise. */
export function sessionCookieSecure(config: Pick<Config, 'server' | 'session'>): boolean {
  const name = config.session.cookieName
  return config.server.publicUrl.startsWith('https:') || name.startsWith('__Host-') || name.startsWith('__Secure-')
}

/** `Set-Cookie` deleting the session cookie, as `Sessions.clearCookie()` writes it. */
export function clearSessionCookie(config: Pick<Config, 'server' | 'session'>): string {
  return serializeCookie(config.session.cookieName, '', { secure: sessionCookieSecure(config), maxAgeSeconds: 0 })
}
