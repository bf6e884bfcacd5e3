import { describe, expect, it } from 'vitest'
import { main } from '../../../src/cli/main.ts'
import { withCapturedIo } from '../../helpers/cli-io.ts'

const cli = (argv: string[]) => withCapturedIo((io) => main(argv, io))

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
