import { describe, expect, it } from 'vitest'
import { checkRequestFraming } from '../../../src/http/framing.ts'

const withHost = (host: string) => ({ method: 'GET', rawHeaders: ['Host', host], httpVersionMajor: 1, httpVersionMinor: 1 })

describe('checkRequestFraming: the Host port', () => {
  it.each(['a:99999', 'a:65536', '[::1]:70000', '127.0.0.1:99999'])('refuses %s (a port over 65535)', (host) => {
    expect(checkRequestFraming(withHost(host))).toEqual({ status: 400, reason: 'host-invalid' })
  })

  it.each(['a', 'a:', 'a:0', 'a:65535', 'gitlab.example.test:443', '[::1]:8080', '127.0.0.1:00080'])('takes %s', (host) => {
    expect(checkRequestFraming(withHost(host))).toBeUndefined()
  })
})
