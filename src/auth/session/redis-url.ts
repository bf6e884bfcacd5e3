/**
 * `session.redis.url` → ioredis connection settings. Forms:
 * `redis://[user:pass@]host:port[/db]`, `rediss://...` (TLS),
 * `redis-sentinel://[user:pass@]host:port[,host:port...]/masterName[/db]`,
 * `redis-cluster://[user:pass@]host:port[,host:port...]`.
 * The URL usually holds the Redis password: no message here quotes any of its text (they reach
 * `check` output, serve's log and `/readyz`); `redactRedisUrl` is the only way to show it.
 */
export interface RedisNode {
  readonly host: string
  readonly port: number
}

export type RedisTarget =
  | { readonly mode: 'standalone'; readonly node: RedisNode; readonly tls: boolean; readonly db: number; readonly username?: string; readonly password?: string }
  | { readonly mode: 'sentinel'; readonly sentinels: readonly RedisNode[]; readonly name: string; readonly db: number; readonly username?: string; readonly password?: string }
  | { readonly mode: 'cluster'; readonly nodes: readonly RedisNode[]; readonly tls: boolean; readonly username?: string; readonly password?: string }

const SCHEME = /^(rediss?|redis-sentinel|redis-cluster):\/\//

const ENCODING_HINT = 'percent-encode it (`/` → %2F, `@` → %40, `?` → %3F, `#` → %23, `%` → %25), or put the password in `session.redis.password`'

function parseNodes(list: string, defaultPort: number): RedisNode[] {
  const items = list.split(',')
  return items.map((item, i) => {
    const which = items.length === 1 ? 'the host' : `host ${i + 1} of the list`
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+)(?::(\d{1,5}))?$/.exec(item.trim())
    if (!match) throw new TypeError(`${which} is not "host" or "host:port" (an IPv6 address goes in brackets: [::1]:6379)`)
    const port = match[2] === undefined ? defaultPort : Number(match[2])
    if (port < 1 || port > 65535) throw new TypeError(`the port of ${which} must be 1-65535`)
    return { host: match[1]!.replace(/^\[(.*)\]$/, '$1'), port }
  })
}

function parseDb(text: string | undefined): number {
  if (text === undefined || text === '') return 0
  if (!/^\d{1,2}$/.test(text)) throw new TypeError('the database (the path) must be a number, e.g. /0')
  return Number(text)
}

function decodeUserinfo(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    throw new TypeError('the user name or password has a `%` that starts no percent-encoding: write `%` as %25')
  }
}

/**
 * Splits `[userinfo@]hosts[/path]` (the text after `scheme://`). Everything before the first `@` is
 * userinfo; a second `@`, or a `/ ? #` inside the userinfo, means a password that was not encoded.
 */
function splitAuthority(rest: string): { userinfo?: string; hosts: string; path: string } {
  const at = rest.indexOf('@')
  const userinfo = at === -1 ? undefined : rest.slice(0, at)
  const after = at === -1 ? rest : rest.slice(at + 1)
  if (userinfo !== undefined && /[/?#]/.test(userinfo)) throw new TypeError(`the user name or password has a character that must be percent-encoded: ${ENCODING_HINT}`)
  const second = after.indexOf('@')
  if (second !== -1) {
    if (after.slice(0, second).includes(',')) {
      throw new TypeError('credentials go once, before the first host (redis-sentinel://:password@s1:26379,s2:26379/mymaster), not per host; an `@` in a password must be percent-encoded (%40)')
    }
    throw new TypeError(`the user name or password has an \`@\` that must be percent-encoded: ${ENCODING_HINT}`)
  }
  if (/[?#]/.test(after)) throw new TypeError(`a Redis URL has no query string or fragment; a \`?\` or \`#\` in the password must be percent-encoded: ${ENCODING_HINT}`)
  const slash = after.indexOf('/')
  const hosts = slash === -1 ? after : after.slice(0, slash)
  if (hosts === '') throw new TypeError('the URL names no host')
  return { ...(userinfo !== undefined && { userinfo }), hosts, path: slash === -1 ? '' : after.slice(slash) }
}

/** Parses a Redis URL; throws a TypeError naming the problem (never quoting the URL). `password` (config) wins over one in the URL. */
export function parseRedisUrl(url: string, password?: string): RedisTarget {
  const scheme = SCHEME.exec(url)?.[1]
  if (scheme === undefined) throw new TypeError('must be a redis://, rediss://, redis-sentinel:// or redis-cluster:// URL')
  const { userinfo, hosts, path } = splitAuthority(url.slice(scheme.length + 3))
  let username: string | undefined
  let pass: string | undefined
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':')
    const user = decodeUserinfo(colon === -1 ? userinfo : userinfo.slice(0, colon))
    if (user !== '') username = user
    if (colon !== -1) pass = decodeUserinfo(userinfo.slice(colon + 1))
  }
  if (password !== undefined) pass = password
  const auth = { ...(username !== undefined && { username }), ...(pass !== undefined && { password: pass }) }
  const segments = path.split('/').filter((s) => s !== '')
  if (scheme === 'redis-sentinel') {
    const [name, db, ...extra] = segments
    if (!name) throw new TypeError('a redis-sentinel:// URL needs the master name as its path, e.g. redis-sentinel://s1:26379,s2:26379/mymaster')
    if (extra.length > 0) throw new TypeError('a redis-sentinel:// URL path is the master name and the database number only')
    return { mode: 'sentinel', sentinels: parseNodes(hosts, 26379), name, db: parseDb(db), ...auth }
  }
  if (scheme === 'redis-cluster') {
    if (segments.length > 0) throw new TypeError('a redis-cluster:// URL has no database path (cluster mode uses db 0)')
    return { mode: 'cluster', nodes: parseNodes(hosts, 6379), tls: false, ...auth }
  }
  const nodes = parseNodes(hosts, 6379)
  if (nodes.length !== 1) throw new TypeError('a redis:// URL names one host; use redis-sentinel:// or redis-cluster:// for several')
  if (segments.length > 1) throw new TypeError('a redis:// URL path is only the database number')
  return { mode: 'standalone', node: nodes[0]!, tls: scheme === 'rediss', db: parseDb(segments[0]), ...auth }
}

const formatNode = (node: RedisNode) => `${node.host.includes(':') ? `[${node.host}]` : node.host}:${node.port}`

/**
 * The URL as it may be shown (check, logs): rebuilt from what was parsed, every credential as `***`.
 * @example redactRedisUrl('redis-sentinel://:pw@s1,s2:26380/m') // 'redis-sentinel://***@s1:26379,s2:26380/m/0'
 */
export function redactRedisUrl(url: string): string {
  let target: RedisTarget
  try {
    target = parseRedisUrl(url)
  } catch {
    const scheme = SCHEME.exec(url)?.[0] ?? ''
    return `${scheme}(invalid URL)`
  }
  const auth = target.username !== undefined || target.password !== undefined ? '***@' : ''
  switch (target.mode) {
    case 'standalone':
      return `${target.tls ? 'rediss' : 'redis'}://${auth}${formatNode(target.node)}/${target.db}`
    case 'sentinel':
      return `redis-sentinel://${auth}${target.sentinels.map(formatNode).join(',')}/${target.name}/${target.db}`
    case 'cluster':
      return `redis-cluster://${auth}${target.nodes.map(formatNode).join(',')}`
  }
}

/** Shortest secret replaced literally: a shorter one would mangle ordinary words of the message. */
const MIN_LITERAL_SECRET = 4

/**
 * A Redis client error message fit for the log and `/readyz`: anything shaped like userinfo
 * (`…@host`, as a misparsed URL yields in `getaddrinfo ENOTFOUND pass@host`) and the password itself
 * become `***`.
 */
export function redactRedisError(message: string, password?: string): string {
  let text = message
  if (password !== undefined && password.length >= MIN_LITERAL_SECRET) {
    text = text.replaceAll(password, '***').replaceAll(encodeURIComponent(password), '***')
  }
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)?[^\s@]+@(?=[^\s@])/gi, (_whole, scheme: string | undefined) => `${scheme ?? ''}***@`)
}
