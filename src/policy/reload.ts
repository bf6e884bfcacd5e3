/**
 * Hot reload: on SIGHUP and when the config file changes, re-read and validate it; only a valid
 * file reaches `onConfig` (which swaps the policy atomically). An invalid file keeps the running
 * policy and is reported through `onError` with its key path.
 */
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import { loadConfigFile } from '../config/load.ts'
import type { Config } from '../config/schema.ts'

export interface PolicyReloaderOptions {
  readonly configPath: string
  readonly env?: NodeJS.ProcessEnv
  onConfig(config: Config, trigger: 'signal' | 'file'): void
  onError(err: Error, trigger: 'signal' | 'file'): void
  /** Quiet period after a file event before reading (editors write in several steps). */
  readonly debounceMs?: number
}

export interface PolicyReloader {
  /** Re-reads now (what SIGHUP does). */
  reload(trigger?: 'signal' | 'file'): void
  close(): void
}

export function createPolicyReloader(options: PolicyReloaderOptions): PolicyReloader {
  const file = basename(options.configPath)
  let timer: NodeJS.Timeout | undefined
  const reload = (trigger: 'signal' | 'file' = 'signal') => {
    try {
      options.onConfig(loadConfigFile(options.configPath, options.env ?? process.env).config, trigger)
    } catch (err) {
      options.onError(err as Error, trigger)
    }
  }
  // Watch the directory, not the file: editors and Kubernetes ConfigMap updates replace the file (new inode).
  let watcher: FSWatcher | undefined
  try {
    watcher = watch(dirname(options.configPath), (_event, name) => {
      if (name !== null && name !== file && !String(name).startsWith('..')) return
      clearTimeout(timer)
      timer = setTimeout(() => reload('file'), options.debounceMs ?? 200)
    })
    watcher.on('error', () => {})
  } catch {
    watcher = undefined // an unwatchable directory: SIGHUP still works
  }
  const onSignal = () => reload('signal')
  process.on('SIGHUP', onSignal)
  return {
    reload,
    close() {
      clearTimeout(timer)
      watcher?.close()
      process.off('SIGHUP', onSignal)
    },
  }
}
