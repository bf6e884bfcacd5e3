/**
 * `session.redis.url` → ioredis connection settings. Forms:
 * `redis://[user:pass@]host:port[/db]`, `rediss://...` (TLS),
 * `redis-sentinel://[user:pass@]host:port[,host:port...]/masterName[/db]`,
 * `redis-cluster://[user:pass@]host:port[,host:port...]`.
 */
export interface RedisNode {
  readonly host: string
  readonly port: number
}

export type RedisTarget =
  | { readonly mode: 'standalone'; readonly node: RedisNode; readonly tls: boolean; readonly db: number; readonly username?: string; readonly password?: string }
  | { readonly mode: 'sentinel'; readonly sentinels: readonly RedisNode[]; readonly name: string; readonly db: number; readonly username?: string; readonly password?: string }
  | { readonly mode: 'cluster'; readonly nodes: readonly RedisNode[]; readonly tls: boolean; readonly username?: string; readonly password?: string }

const URL_SHAPE = /^(rediss?|redis-sentinel|redis-cluster):\/\/(?:([^@/]*)@)?([^/?#]+)(\/[^?#]*)?$/

function parseNodes(list: string, defaultPort: number): RedisNode[] {
  return list.split(',').map((item) => {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+)(?::(\d{1,5}))?$/.exec(item.trim())
    if (!match) throw new TypeError(`invalid redis host "${item}"`)
    const port = match[2] === undefined ? defaultPort : Number(match[2])
    if (port < 1 || port > 65535) throw new TypeError(`invalid redis port in "${item}"`)
    return { host: match[1]!.replace(/^\[(.*)\]$/, '$1'), port }
  })
}

function parseDb(text: string | undefined): number {
  if (text === undefined || text === '') return 0
  if (!/^\d{1,2}$/.test(text)) throw new TypeError(`invalid redis database "${text}"`)
  return Number(text)
}

/** Parses a Redis URL; throws a TypeError naming the problem. `password` (config) wins over one in the URL. */
export function parseRedisUrl(url: string, password?: string): RedisTarget {
  const match = URL_SHAPE.exec(url)
  if (!match) throw new TypeError('must be a redis://, rediss://, redis-sentinel:// or redis-cluster:// URL')
  const [, scheme, userinfo, hosts, rest] = match as unknown as [string, string, string | undefined, string, string | undefined]
  let username: string | undefined
  let pass: string | undefined
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':')
    const user = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(0, colon))
    if (user !== '') username = user
    if (colon !== -1) pass = decodeURIComponent(userinfo.slice(colon + 1))
  }
  if (password !== undefined) pass = password
  const auth = { ...(username !== undefined && { username }), ...(pass !== undefined && { password: pass }) }
  const segments = (rest ?? '').split('/').filter((s) => s !== '')
  if (scheme === 'redis-sentinel') {
    const [name, db] = segments
    if (!name) throw new TypeError('a redis-sentinel:// URL needs the master name as its path, e.g. redis-sentinel://s1:26379,s2:26379/mymaster')
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
