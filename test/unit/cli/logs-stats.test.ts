import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { runLogsCommand } from '../../helpers/records.ts'

const dir = mkdtempSync(join(tmpdir(), 'iap-logs-stats-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const logs = runLogsCommand

const record = (id: string, project: string | undefined, user: string | null, path = '/x') =>
  JSON.stringify({
    '@timestamp': '2026-11-28T10:00:00.000Z', 'http.request.id': id, 'http.request.method': 'GET', 'url.path': path, 'http.response.status_code': 200,
    'user.id': null, 'user.name': user, 'iap.decision.result': 'allow', 'iap.auth.method': 'session', ...(project !== undefined && { 'iap.gitlab.project': project }),
  })

const file = join(dir, 'access.log')
writeFileSync(
  file,
  [
    record('r1', 'Secret-Group/vault', 'Ada@contoso.com', '/Secret-Group/vault'),
    record('r2', 'SECRET-GROUP/vault', 'ada@contoso.com', '/SECRET-GROUP/vault'),
    record('r3', 'secret-group/Vault', 'ADA@CONTOSO.COM', '/secret-group/vault'),
    record('r4', 'other/project', 'bob@contoso.com'),
    record('r5', undefined, null),
  ].join('\n') + '\n',
)

describe('logs --stats', () => {
  it('project groups ignore case, as --project does, and show the first spelling seen', async () => {
    const json = await logs([file, '--stats', 'project', '--output', 'json'])
    expect(json.code).toBe(0)
    expect(json.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([
      { project: 'Secret-Group/vault', count: 3 },
      { project: null, count: 1 },
      { project: 'other/project', count: 1 },
    ])
    // The same three records --project selects.
    const filtered = await logs([file, '--project', 'secret-group/vault', '--output', 'json'])
    expect(filtered.stdout.trim().split('\n')).toHaveLength(3)
    const table = await logs([file, '--stats', 'project'])
    expect(table.stdout.split('\n')[1]).toMatch(/^\s+3  Secret-Group\/vault\s*$/)
    const csv = await logs([file, '--stats', 'project', '--output', 'csv'])
    expect(csv.stdout).toBe('project,count\nSecret-Group/vault,3\n,1\nother/project,1\n')
  })

  it('user groups ignore case, as --user does; path groups keep it', async () => {
    const users = await logs([file, '--stats', 'user', '--output', 'json'])
    expect(users.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([
      { user: 'Ada@contoso.com', count: 3 },
      { user: null, count: 1 },
      { user: 'bob@contoso.com', count: 1 },
    ])
    const paths = await logs([file, '--stats', 'path', '--output', 'json'])
    expect(paths.stdout.trim().split('\n').map((l) => JSON.parse(l) as { count: number })).toHaveLength(4)
  })
})
