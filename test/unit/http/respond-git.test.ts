/**
 * git shows a `text/plain` error body to its user as `remote: ...` lines and nothing else, so status
 * pages for git itself (User-Agent `git/...`) are short plain text; git-lfs (`git-lfs/...`) reads JSON
 * `message` fields, and everyone else keeps the JSON or HTML chosen by `Accept`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { describe, expect, it } from 'vitest'
import { isGitClient, renderStatusPage, sendStatusPage, statusPageFormat, type StatusPage } from '../../../src/http/respond.ts'

const request = (headers: Record<string, string>, method = 'GET') => ({ method, headers }) as unknown as IncomingMessage

function captured(req: IncomingMessage, page: StatusPage, extra: Record<string, string | string[]> = {}) {
  const out: { status?: number; headers?: Record<string, unknown>; body?: string } = {}
  const res = {
    headersSent: false,
    writeHead(status: number, headers: Record<string, unknown>) {
      out.status = status
      out.headers = headers
    },
    end(body?: string) {
      out.body = body
    },
  } as unknown as ServerResponse
  sendStatusPage(req, res, page, extra)
  return out
}

const DENIED: StatusPage = { status: 403, title: 'Access denied', message: 'Your identity is not allowed to reach this page.', requestId: 'rid-403', rule: 'read-everything', reason: 'no-group-match' }

describe('isGitClient / statusPageFormat', () => {
  it.each([
    ['git/2.39.5', true],
    ['git/2.45.1.windows.1', true],
    ['git/2.0 (libgit2 1.7.1)', true],
    ['git-lfs/3.4.1 (GitHub; linux amd64; go 1.21.1)', false],
    ['JGit/6.8.0', false],
    ['curl/8.5.0', false],
    ['Mozilla/5.0 git/2.39', false],
    ['', false],
  ])('User-Agent %j → git %s', (ua, git) => {
    expect(isGitClient(request({ 'user-agent': ua }))).toBe(git)
  })

  it('no User-Agent is not git', () => {
    expect(isGitClient(request({}))).toBe(false)
  })

  it('git gets text whatever it accepts; others by Accept', () => {
    expect(statusPageFormat(request({ 'user-agent': 'git/2.39.5', accept: 'text/html' }))).toBe('text')
    expect(statusPageFormat(request({ 'user-agent': 'git-lfs/3.4.1', accept: 'application/vnd.git-lfs+json' }))).toBe('json')
    expect(statusPageFormat(request({ accept: 'text/html' }))).toBe('html')
    expect(statusPageFormat(request({}))).toBe('json')
  })
})

describe('status pages for git', () => {
  it('a 403 is one line naming the rule, the reason and the request id', () => {
    const out = captured(request({ 'user-agent': 'git/2.39.5' }), DENIED)
    expect(out.status).toBe(403)
    expect(out.headers).toMatchObject({ 'content-type': 'text/plain; charset=utf-8', 'x-request-id': 'rid-403', 'cache-control': 'no-store' })
    expect(out.body).toBe('gitlab-iap: access denied by rule "read-everything" (no-group-match); request id rid-403\n')
    expect(out.headers!['content-length']).toBe(Buffer.byteLength(out.body!))
  })

  it('a 403 without a rule (policy.default) names the reason', () => {
    expect(renderStatusPage({ ...DENIED, rule: null, reason: 'no-rule-matched' }, 'text').body).toBe('gitlab-iap: access denied (no-rule-matched); request id rid-403\n')
  })

  it('a 401 says what is wrong and how to send a token, one fact a line, and keeps its challenge', () => {
    const page: StatusPage = { status: 401, title: 'Sign-in required', message: 'The token has expired.', requestId: 'rid-401', reason: 'token-expired' }
    const out = captured(request({ 'user-agent': 'git/2.39.5' }), page, { 'www-authenticate': ['Bearer realm="gitlab-iap"', 'Basic realm="gitlab-iap"'] })
    expect(out.headers).toMatchObject({ 'content-type': 'text/plain; charset=utf-8', 'www-authenticate': ['Bearer realm="gitlab-iap"', 'Basic realm="gitlab-iap"'] })
    const lines = out.body!.trimEnd().split('\n')
    expect(lines[0]).toBe('gitlab-iap: authentication failed (token-expired): The token has expired.')
    expect(lines.some((l) => l.includes('X-IAP-Authorization: Bearer <token>'))).toBe(true)
    expect(lines.at(-1)).toBe('gitlab-iap: request id rid-401')
    for (const line of lines) expect(line).toMatch(/^gitlab-iap: /)
  })

  it('a 401 without any credential says one is missing', () => {
    const page: StatusPage = { status: 401, title: 'Sign-in required', message: 'This request needs a valid credential.', requestId: 'rid', reason: 'credentials-missing' }
    expect(renderStatusPage(page, 'text').body.split('\n')[0]).toBe('gitlab-iap: sign-in required (credentials-missing): This request needs a valid credential.')
  })

  it('other statuses: the message, the reason and the request id', () => {
    const page: StatusPage = { status: 400, title: 'Bad request', message: 'The request path is not in canonical form.', requestId: 'rid', reason: 'path-dot-segment' }
    expect(renderStatusPage(page, 'text').body).toBe('gitlab-iap: The request path is not in canonical form. (path-dot-segment); request id rid\n')
    expect(renderStatusPage({ status: 502, title: 'Bad gateway', message: 'GitLab cannot be reached.', requestId: 'rid' }, 'text').body).toBe('gitlab-iap: GitLab cannot be reached.; request id rid\n')
  })

  it('line breaks and control characters in a value never start a new line', () => {
    const body = renderStatusPage({ ...DENIED, rule: 'a\nremote: forged\r', requestId: 'r\u001b1' }, 'text').body
    expect(body.trimEnd().split('\n')).toHaveLength(1)
    expect(body).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/)
  })

  it('HEAD gets the headers only', () => {
    const out = captured(request({ 'user-agent': 'git/2.39.5' }, 'HEAD'), DENIED)
    expect(out.headers).toMatchObject({ 'content-type': 'text/plain; charset=utf-8' })
    expect(out.body).toBeUndefined()
  })
})

describe('everyone else keeps JSON or HTML', () => {
  it('git-lfs gets JSON with message, rule and reason', () => {
    const out = captured(request({ 'user-agent': 'git-lfs/3.4.1 (GitHub; linux amd64; go 1.21.1)', accept: 'application/vnd.git-lfs+json' }), DENIED)
    expect(out.headers).toMatchObject({ 'content-type': 'application/json; charset=utf-8' })
    expect(JSON.parse(out.body!)).toEqual({ error: 'Forbidden', message: DENIED.message, requestId: 'rid-403', rule: 'read-everything', reason: 'no-group-match' })
  })

  it('a browser gets HTML, a script JSON', () => {
    expect(captured(request({ accept: 'text/html' }), DENIED).headers).toMatchObject({ 'content-type': 'text/html; charset=utf-8' })
    expect(captured(request({ 'user-agent': 'curl/8.5.0' }), DENIED).headers).toMatchObject({ 'content-type': 'application/json; charset=utf-8' })
  })
})
