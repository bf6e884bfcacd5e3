import type { IncomingMessage } from 'node:http'
import { describe, expect, it } from 'vitest'
import { createCidrSet } from '../../../src/net/cidr.ts'
import { clientAddress } from '../../../src/server/request-context.ts'

const trusted = createCidrSet(['10.0.0.0/8', 'fd00::/8'])
/** A request from a trusted proxy (10.0.0.5) carrying `xff`. */
const from = (xff: string) => ({ socket: { remoteAddress: '10.0.0.5' }, headers: { 'x-forwarded-for': xff } }) as unknown as IncomingMessage

describe('clientAddress: X-Forwarded-For entries with a port', () => {
  it.each([
    ['203.0.113.7:50123', '203.0.113.7'],
    // Azure Application Gateway v2 appends `IP:port`; trusted hops with ports are skipped like any other.
    ['198.51.100.1, 203.0.113.7:443, 10.0.0.9:8080', '203.0.113.7'],
    ['[2001:db8::1]:50123', '2001:db8::1'],
    ['[2001:db8::1]', '2001:db8::1'],
    ['203.0.113.7, [fd00::1]:1234', '203.0.113.7'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
  ])('%s → %s', (xff, ip) => {
    expect(clientAddress(from(xff), trusted, true)).toBe(ip)
  })

  it.each([['unknown'], ['203.0.113.7:port'], ['203.0.113.999:80'], ['[zz::1]:80']])('%s is no IP: untrusted, kept as it came (matches no sourceIps)', (xff) => {
    expect(clientAddress(from(`${xff}, 10.0.0.9`), trusted, true)).toBe(xff)
  })

  it('from an untrusted peer the header is ignored', () => {
    expect(clientAddress(from('203.0.113.7:1'), trusted, false)).toBe('10.0.0.5')
  })
})
