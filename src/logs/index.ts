/**
 * The access log: one record per request (or websocket connection), written when it ends, through
 * the writer (pino destination, rotation) and, with `accessLog.integrity.key`, sealed into a chain.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs'
import type { Config } from '../config/schema.ts'
import type { RequestContext } from '../server/context.ts'
import { ECS_VERSION, toAccessRecord } from './access-record.ts'
import { CHAIN_START_ACTION, createChain, FILE_START_ACTION, unseal, type ChainState } from './chain.ts'
import { createLogWriter, type LogWriter } from './writer.ts'

export interface AccessLog {
  /** Called exactly once per request (or websocket connection), when it ends. Never throws. */
  write(ctx: RequestContext, endNs: bigint): void
  /** False while the destination cannot be written (see `accessLog.onError`). */
  readonly healthy: boolean
  /** Flush and close. */
  close(): Promise<void>
}

export interface AccessLogOptions {
  /** Names this process in every record and at the start of its integrity chain. */
  readonly instanceId: string
  readonly onWriteError?: (err: Error) => void
}

/** The last sealed line of an existing log file, so a restarted process continues its chain. */
function chainTail(path: string): ChainState | undefined {
  let fd: number | undefined
  try {
    const size = statSync(path).size
    if (size === 0) return undefined
    const length = Math.min(size, 256 * 1024)
    const buffer = Buffer.alloc(length)
    fd = openSync(path, 'r')
    readSync(fd, buffer, 0, length, size - length)
    const lines = buffer.toString('utf8').split('\n').filter(Boolean)
    const sealed = lines.length ? unseal(lines[lines.length - 1]!) : undefined
    return sealed ? { seq: sealed.seq, mac: sealed.mac } : undefined
  } catch {
    return undefined
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

export function createAccessLog(config: Config['accessLog'], options: AccessLogOptions): AccessLog {
  const key = config.integrity?.key
  const chain = key ? createChain(key, config.output === 'stdout' ? undefined : chainTail(config.output)) : undefined
  const instanceId = options.instanceId
  const stateLine = (action: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      '@timestamp': new Date().toISOString(),
      'ecs.version': ECS_VERSION,
      'event.kind': 'state',
      'event.action': action,
      'service.name': 'gitlab-iap',
      'iap.instance.id': instanceId,
      ...extra,
    })
  const writer: LogWriter = createLogWriter({
    output: config.output,
    rotate: config.rotate,
    onError: options.onWriteError,
    // Each rotated-to file begins with a sealed mark, so `logs verify` can tell a file whose older
    // neighbours were rotated away from one whose first lines were cut.
    ...(chain && { firstLine: () => chain.seal(stateLine(FILE_START_ACTION)) }),
  })

  const emit = (line: string) => writer.write(chain ? chain.seal(line) : line)

  if (chain) {
    // Each process announces itself in its chain, so a verifier can tell where a process took over.
    emit(stateLine(CHAIN_START_ACTION, chain.state().seq > 0 ? { 'iap.chain.continues': chain.state().seq } : {}))
  }

  return {
    write(ctx, endNs) {
      try {
        const record = toAccessRecord(ctx, endNs)
        record['iap.instance.id'] = instanceId
        emit(JSON.stringify(record))
      } catch (err) {
        options.onWriteError?.(err as Error)
      }
    },
    get healthy() {
      return writer.healthy
    },
    close: () => writer.close(),
  }
}
