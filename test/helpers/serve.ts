/**
 * Starts a real `gitlab-iap serve` child process (Node 24, the bin script) from a config object,
 * on free loopback ports, and waits until it is ready. Access-log lines (stdout) are collected.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

export const ROOT = resolve(import.meta.dirname, '../..')
export const BIN = join(ROOT, 'bin/gitlab-iap.js')

export interface ServeHandle {
  /** Main listener base URL, e.g. http://127.0.0.1:41234 */
  readonly url: string
  readonly port: number
  readonly adminUrl: string
  readonly process: ChildProcess
  readonly configPath: string
  /** Parsed access-log records written to stdout so far. */
  records(): Record<string, unknown>[]
  /** Raw stderr so far (operational log). */
  stderr(): string
  /** Waits until `n` access-log records exist (records are written when responses end). */
  waitForRecords(n: number, timeoutMs?: number): Promise<Record<string, unknown>[]>
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

export type ConfigObject = Record<string, unknown>

/** A minimal valid config forwarding to `upstreamUrl`, with free ports; `extra` keys replace top-level sections. */
export function baseConfig(upstreamUrl: string, extra: ConfigObject = {}): ConfigObject {
  return {
    server: { listen: '127.0.0.1:0', publicUrl: 'http://127.0.0.1:8080' },
    admin: { listen: '127.0.0.1:0', token: 'admin-token-for-tests-0123456789' },
    upstream: { url: upstreamUrl, timeoutSeconds: 30 },
    policy: { rules: [{ name: 'everything-public', paths: ['/**'], public: true }] },
    ...extra,
  }
}

export function writeConfig(config: ConfigObject | string): { path: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'gitlab-iap-test-'))
  const path = join(dir, 'config.yaml')
  writeFileSync(path, typeof config === 'string' ? config : JSON.stringify(config, null, 2))
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

export interface StartServeOptions {
  readonly env?: NodeJS.ProcessEnv
  readonly args?: readonly string[]
  readonly readyTimeoutMs?: number
  /** Wait for /readyz 200 (default) or only for the listeners. */
  readonly waitForReady?: boolean
}

export async function startServe(config: ConfigObject | string, options: StartServeOptions = {}): Promise<ServeHandle> {
  const file = writeConfig(config)
  const child = spawn(process.execPath, [BIN, 'serve', '--config', file.path, ...(options.args ?? [])], {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text))
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text))
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)))

  const deadline = Date.now() + (options.readyTimeoutMs ?? 15_000)
  let main: string | undefined
  let admin: string | undefined
  while (!main) {
    const match = /"main":"([^"]+)","admin":"([^"]+)"/.exec(stderr)
    if (match) {
      main = match[1]!
      admin = match[2]!
      break
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      file.cleanup()
      throw new Error(`serve did not start (exit ${child.exitCode}): ${stderr.slice(0, 2000)}`)
    }
    await new Promise((r) => setTimeout(r, 25))
  }
  const hostPort = (addr: string) => {
    const port = addr.slice(addr.lastIndexOf(':') + 1)
    return { port: Number(port), base: `http://127.0.0.1:${port}` }
  }
  const mainAddr = hostPort(main)
  const adminAddr = hostPort(admin!)
  if (options.waitForReady !== false) {
    for (;;) {
      const ok = await fetch(`${adminAddr.base}/readyz`).then((r) => r.ok, () => false)
      if (ok) break
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL')
        file.cleanup()
        throw new Error(`serve not ready: ${stderr.slice(0, 2000)}`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  const records = () =>
    stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
  return {
    url: mainAddr.base,
    port: mainAddr.port,
    adminUrl: adminAddr.base,
    process: child,
    configPath: file.path,
    records,
    stderr: () => stderr,
    async waitForRecords(n, timeoutMs = 5000) {
      const end = Date.now() + timeoutMs
      while (records().length < n) {
        if (Date.now() > end) throw new Error(`expected ${n} access-log records, got ${records().length}`)
        await new Promise((r) => setTimeout(r, 20))
      }
      return records()
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      const code = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 10_000))])
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      file.cleanup()
      return code
    },
  }
}

/** `gitlab-iap explain` on `config` (written to a temporary file) in a child process: its exit code and stdout. */
export function explainWith(config: ConfigObject, args: readonly string[]): Promise<{ code: number; stdout: string }> {
  const file = writeConfig(config)
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'explain', '--config', file.path, ...args], { cwd: ROOT })
    let stdout = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.on('close', (code) => {
      file.cleanup()
      resolve({ code: code ?? -1, stdout })
    })
  })
}
