/**
 * Sign-in of a user with a groups overage while Microsoft Graph fails, through `serve`: the refusal
 * (503 login-groups-unavailable) is logged with Graph's status and error code, a missing permission
 * apart from an outage, and the first sign-in after Graph recovers works (no remembered failure).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_CLIENT_ID, DEMO_USERS } from '../../../src/devidp/index.ts'
import type { ServeHandle } from '../../helpers/serve.ts'
import { createBrowser, startStack, type Stack } from './stack.ts'

let stack: Stack
let proxy: ServeHandle

beforeAll(async () => {
  stack = await startStack()
  proxy = await stack.startProxy()
})
afterAll(async () => {
  await stack?.close()
})

/** The app registration as the stack registers it, with these Graph application permissions. */
const register = (graphRoles?: string[]) =>
  stack.idp.registerClient({
    clientId: DEMO_CLIENT_ID,
    clientSecret: stack.clientSecret,
    redirectUris: [`${proxy.url}/-/iap/callback`],
    postLogoutRedirectUris: [`${proxy.url}/`],
    ...(graphRoles && { graphRoles }),
  })

/** The operator log lines (JSON on stderr) with this code. */
const opsLines = (code: string) =>
  proxy
    .stderr()
    .split('\n')
    .filter((line) => line.includes(`"${code}"`))
    .map((line) => JSON.parse(line) as Record<string, unknown>)

async function signIn(login: string) {
  const browser = createBrowser()
  const page = await browser.navigate(`${proxy.url}/-/iap/login?rd=%2F-%2Fiap%2Fwhoami`, login)
  return { page, browser }
}

describe('groups overage sign-in while Graph fails', () => {
  it('no admin consent (403): refused, logged as IAP_ERR_GRAPH_FORBIDDEN; once consent is granted the next sign-in works', async () => {
    register([])
    try {
      const { page } = await signIn('erin')
      expect(page.status).toBe(503)
      expect(page.body).toContain('login-groups-unavailable')
      const [line] = opsLines('IAP_ERR_GRAPH_FORBIDDEN')
      expect(line).toMatchObject({ level: 40, status: 403, graphError: 'Authorization_RequestDenied' })
      expect(String(line!.hint)).toContain('GroupMember.Read.All')
    } finally {
      register()
    }
    const { page } = await signIn('erin')
    expect(page.status).toBe(200)
    expect((JSON.parse(page.body) as { groups: string[] }).groups).toHaveLength(DEMO_USERS.erin.groups.length)
  })

  it('Graph down (503): refused and logged; the first sign-in after it recovers works', async () => {
    stack.idp.setGraphFault('down')
    try {
      const { page } = await signIn('erin')
      expect(page.status).toBe(503)
      expect(page.body).toContain('login-groups-unavailable')
      expect(opsLines('IAP_ERR_GRAPH_UNAVAILABLE')).toEqual([expect.objectContaining({ status: 503, graphError: 'serviceNotAvailable' })])
    } finally {
      stack.idp.setGraphFault(null)
    }
    const { page } = await signIn('erin')
    expect(page.status).toBe(200)
    expect((JSON.parse(page.body) as { groupsSource: string }).groupsSource).toBe('graph')
    expect(proxy.stderr()).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./)
  })
})
