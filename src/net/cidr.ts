import { BlockList, isIP } from 'node:net'

/** A set of CIDR ranges (IPv4 and IPv6) answering "is this address inside?" without allocation. */
export interface CidrSet {
  readonly size: number
  has(address: string): boolean
}

/** `::ffff:10.1.2.3` (how a dual-stack socket reports IPv4 peers) → `10.1.2.3`. */
export function unmapIPv4(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address
}

/** Returns an error message for an invalid CIDR (or bare address), or `undefined` when valid. */
export function checkCidr(text: string): string | undefined {
  const [address = '', bits, extra] = text.split('/')
  const family = isIP(address)
  if (family === 0 || extra !== undefined) return `"${text}" is not an IP address or CIDR range`
  if (bits === undefined) return undefined
  const max = family === 4 ? 32 : 128
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return `"${text}" has an invalid prefix length (0-${max})`
  return undefined
}

export function createCidrSet(ranges: readonly string[]): CidrSet {
  const list = new BlockList()
  for (const range of ranges) {
    if (checkCidr(range)) throw new TypeError(checkCidr(range))
    const [address = '', bits] = range.split('/')
    const family = isIP(address) === 4 ? 'ipv4' : 'ipv6'
    if (bits === undefined) list.addAddress(address, family)
    else list.addSubnet(address, Number(bits), family)
  }
  return {
    size: ranges.length,
    has(address: string): boolean {
      if (ranges.length === 0) return false
      const plain = unmapIPv4(address)
      const family = isIP(plain)
      if (family === 0) return false
      return list.check(plain, family === 4 ? 'ipv4' : 'ipv6')
    },
  }
}
