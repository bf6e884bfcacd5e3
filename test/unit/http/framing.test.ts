import { describe, expect, it } from 'vitest'
import { checkRequestFraming } from '../../../src/http/framing.ts'

/** A request as Node's parser hands it over: the raw header lines, names spelled as the client sent them. */
const request = (rawHeaders: string[], method = 'POST') => ({ method, rawHeaders, httpVersionMajor: 1, httpVersionMinor: 1 })

describe('checkRequestFraming', () => {
  it.each([
    ['Transfer_Encoding', 'chunked'],
    ['transfer_encoding', 'chunked'],
    ['TRANSFER_ENCODING', 'gzip'],
    ['Content_Length', '5'],
    ['CONTENT_LENGTH', '0'],
  ])('refuses a framing header spelled with underscores (%s: %s), which Puma would frame by', (name, value) => {
    expect(checkRequestFraming(request(['Host', 'x', 'Content-Length', '5', name, value]))).toEqual({ status: 400, reason: 'framing-header-underscore' })
    // Before any Host problem, and on a bodyless GET (a websocket handshake) too.
    expect(checkRequestFraming(request([name, value], 'GET'))).toEqual({ status: 400, reason: 'framing-header-underscore' })
  })

  it('takes the exact spellings in any case, and other underscore headers of the same lengths', () => {
    expect(checkRequestFraming(request(['Host', 'x', 'CONTENT-LENGTH', '5']))).toBeUndefined()
    expect(checkRequestFraming(request(['Host', 'x', 'transfer-ENCODING', 'chunked']))).toBeUndefined()
    expect(checkRequestFraming(request(['Host', 'x', 'Accept_Charset', 'utf-8', 'X_Request_Count__', '1']))).toBeUndefined()
  })

  it.each(['PROPFIND', 'PURGE', 'SEARCH', 'MKCOL', 'TRACE', 'TRACK', 'LINK'])('refuses %s, a method GitLab does not serve (a rule listing methods could not name it)', (method) => {
    expect(checkRequestFraming(request(['Host', 'x'], method))).toEqual({ status: 405, reason: 'method-not-allowed' })
  })

  it.each(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])('takes %s', (method) => {
    expect(checkRequestFraming(request(['Host', 'x'], method))).toBeUndefined()
  })
})
