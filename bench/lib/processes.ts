/** Starting and stopping the processes a benchmark measures, each on its own free loopback port. */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

export const ROOT = new URL('../..', import.meta.url).pathname

export interface Proc {
  readonly child: ChildProcess
  readonly pid: number
  stop(): Promise<void>
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** Spawns a command; resolves once `ready(output)` returns a value (or rejects on exit/timeout). */
export function startProcess<T>(command: string, args: string[], ready: (output: string) => T | undefined, options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Proc & { value: T }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${command} did not become ready: ${output.slice(-2000)}`))
    }, options.timeoutMs ?? 20_000)
    const onData = (chunk: Buffer) => {
      if (output.length < 1_000_000) output += chunk.toString()
      const value = ready(output)
      if (value !== undefined) {
        clearTimeout(timer)
        child.stdout!.removeListener('data', onData)
        child.stderr!.removeListener('data', onData)
        child.stdout!.resume()
        child.stderr!.resume()
        resolve({ child, pid: child.pid!, value, stop: () => stopProcess(child) })
      }
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    // Servers that print nothing (nginx, apache): ready at once; callers then poll them over HTTP.
    queueMicrotask(() => onData(Buffer.alloc(0)))
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${command} exited with ${code}: ${output.slice(-2000)}`))
    })
  })
}

export function stopProcess(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000)
    child.once('exit', () => {
      clearTimeout(kill)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

/** Resident set size of a process (and its children, for multi-process servers), in MiB. */
export function rssMiB(pid: number): number {
  let kib = 0
  const visit = (p: number) => {
    try {
      kib += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0)
      const children = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim()
      for (const c of children ? children.split(' ') : []) visit(Number(c))
    } catch {
      // the process ended
    }
  }
  visit(pid)
  return kib / 1024
}

/** Samples a process's RSS every `everyMs` until stopped; returns the peak. */
export function sampleRss(pid: number, everyMs = 25): { stop(): number } {
  let peak = rssMiB(pid)
  const timer = setInterval(() => (peak = Math.max(peak, rssMiB(pid))), everyMs)
  return {
    stop() {
      clearInterval(timer)
      return Math.max(peak, rssMiB(pid))
    },
  }
}

export const nodeBin = process.execPath

/**
 * V8 flags of the Node proxies under test (gitlab-iap, bare http-proxy-3, the undici floor), from
 * `BENCH_NODE_FLAGS` (e.g. `--single-threaded-gc`, docs/deploy.md); none by default, as the image
 * runs gitlab-iap. The upstream always runs with Node's defaults.
 */
export const proxyNodeFlags: readonly string[] = (process.env.BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean)

export const jsonPort = (output: string): number | undefined => {
  const match = /\{"port":(\d+)\}/.exec(output)
  return match ? Number(match[1]) : undefined
}
