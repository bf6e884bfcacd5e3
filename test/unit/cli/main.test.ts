import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { main } from '../../../src/cli/main.ts'

async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ''
  let err = ''
  stdout.on('data', (d) => (out += d))
  stderr.on('data', (d) => (err += d))
  const code = await main(argv, { stdout, stderr, stdin: new PassThrough(), env: {} })
  return { code, stdout: out, stderr: err }
}

describe('gitlab-iap (argument handling shared by every command)', () => {
  it('schema refuses unknown flags and extra arguments like every other command (one line, exit 2)', async () => {
    for (const argv of [['schema', '--bogus'], ['schema', 'extra']]) {
      const result = await cli(argv)
      expect(result.code).toBe(2)
      expect(result.stdout).toBe('')
      expect(result.stderr.trim().split('\n')).toHaveLength(1)
      expect(result.stderr).toMatch(/^gitlab-iap: /)
    }
    const schema = await cli(['schema'])
    expect(schema.code).toBe(0)
    expect(JSON.parse(schema.stdout)).toMatchObject({ title: 'gitlab-iap config.yaml' })
    expect((await cli(['schema', '--help'])).stdout).toContain('Usage: gitlab-iap schema')
  })

  it('no command is a usage error: the help on stderr, exit 2; --help is not', async () => {
    const bare = await cli([])
    expect(bare.code).toBe(2)
    expect(bare.stdout).toBe('')
    expect(bare.stderr).toContain('Usage: gitlab-iap <command>')
    const help = await cli(['--help'])
    expect([help.code, help.stderr]).toEqual([0, ''])
    expect(help.stdout).toContain('Usage: gitlab-iap <command>')
  })
})
