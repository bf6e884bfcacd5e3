/**
 * Configured http(s) URLs as they may be shown in `check` output, logs and the unauthenticated
 * `/readyz`: a token can ride in a query string (`?private_token=glpat-...`), credentials in userinfo.
 */

/**
 * The URL unchanged when it holds no userinfo, query or fragment; otherwise its origin and path only.
 * @example displayUrl('https://idp.example/keys?private_token=x') // 'https://idp.example/keys'
 */
export function displayUrl(url: string): string {
  const parsed = URL.parse(url)
  if (parsed === null) return '(invalid URL)'
  const clean = parsed.username === '' && parsed.password === '' && parsed.search === '' && parsed.hash === '' && !url.includes('@')
  return clean ? url : `${parsed.origin}${parsed.pathname}`
}

/** Every http(s) URL quoted in `text` (a fetch error says "Failed to parse URL from <url>") through `displayUrl`. */
export function redactUrlsIn(text: string): string {
  return text.replace(/\bhttps?:\/\/[^\s"'<>]+/gi, (url) => displayUrl(url))
}
