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

  it('help <command> prints that command\'s help (as <command> --help does); help alone the general help', async () => {
    for (const command of ['serve', 'check', 'explain', 'logs', 'schema']) {
      const help = await cli(['help', command])
      expect([help.code, help.stderr]).toEqual([0, ''])
      expect(help.stdout).toBe((await cli([command, '--help'])).stdout)
      expect(help.stdout).toContain(`Usage: gitlab-iap ${command}`)
    }
    expect((await cli(['help', 'logs', 'verify'])).stdout).toContain('Usage: gitlab-iap logs verify')
    for (const argv of [['help'], ['help', 'help'], ['help', '--help']]) {
      const general = await cli(argv)
      expect([general.code, general.stderr]).toEqual([0, ''])
      expect(general.stdout).toContain('Usage: gitlab-iap <command>')
    }
  })

  it('an unknown command is a usage error, also after help, and also when its name is an object property', async () => {
    for (const [argv, name] of [[['nosuch'], 'nosuch'], [['help', 'nosuch'], 'nosuch'], [['toString'], 'toString'], [['help', 'constructor'], 'constructor']] as const) {
      const result = await cli([...argv])
      expect(result.code).toBe(2)
      expect(result.stdout).toBe('')
      expect(result.stderr).toBe(`gitlab-iap: unknown command "${name}" (see gitlab-iap --help)\n`)
    }
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
