/** What a command may touch: its output streams and environment. Tests pass their own. */
export interface CliIo {
  readonly stdout: NodeJS.WritableStream & { columns?: number; isTTY?: boolean }
  readonly stderr: NodeJS.WritableStream
  readonly stdin: NodeJS.ReadableStream
  readonly env: NodeJS.ProcessEnv
}

export const processIo: CliIo = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env }

/** A one-line error for the user: `gitlab-iap: <message>`; never a stack trace. */
export function fail(io: CliIo, message: string, exitCode = 1): number {
  io.stderr.write(`gitlab-iap: ${message.split('\n')[0]}\n`)
  return exitCode
}
