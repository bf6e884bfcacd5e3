import { PassThrough } from 'node:stream'
import type { CliIo } from '../../src/cli/io.ts'

/** Runs a command in-process with captured output streams (no environment, empty stdin). */
export async function withCapturedIo(run: (io: CliIo) => Promise<number>): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ''
  let err = ''
  stdout.on('data', (d) => (out += d))
  stderr.on('data', (d) => (err += d))
  const code = await run({ stdout, stderr, stdin: new PassThrough(), env: {} })
  return { code, stdout: out, stderr: err }
}
