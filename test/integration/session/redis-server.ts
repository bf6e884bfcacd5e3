/** A private `redis-server` on a free loopback port (AOF on, so a restart keeps what was written). */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './stack.ts'

/** Whether `redis-server` is installed; tests skip (visibly) without it unless CI=true, where they fail. */
export const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0

export interface RedisServer {
  readonly port: number
  readonly url: string
  /** SIGKILL: no shutdown save, like a crash. */
  kill(): Promise<void>
  /** Starts again on the same port and data directory. */
  restart(): Promise<void>
  /** SIGSTOP / SIGCONT: a hung Redis whose connections stay open (the "slow" case). */
  pause(): void
  resume(): void
  close(): Promise<void>
}

function waitForPort(port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => {
        socket.destroy()
        resolve()
      })
      socket.once('error', () => {
        socket.destroy()
        if (Date.now() > deadline) reject(new Error(`redis-server did not listen on ${port}`))
        else setTimeout(attempt, 50)
      })
    }
    attempt()
  })
}

export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-iap-redis-'))
  let child: ChildProcess | undefined
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir], { stdio: 'ignore' })
    await waitForPort(port)
  }
  const stop = async (signal: NodeJS.Signals) => {
    const c = child
    if (!c || c.exitCode !== null || c.signalCode !== null) return
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve())
      c.kill(signal)
    })
  }
  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    kill: () => stop('SIGKILL'),
    restart: start,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    async close() {
      child?.kill('SIGCONT')
      await stop('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
