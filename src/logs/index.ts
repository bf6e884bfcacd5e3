/**
 * The access log: one record per request (or websocket connection), written when it ends, through
 * the writer (pino destination, rotation) and, with `accessLog.integrity.key`, sealed into a chain.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs'
import type { Config } from '../config/schema.ts'
import type { RequestContext } from '../server/context.ts'
import { toAccessRecord } from './access-record.ts'
import { CHAIN_CUT, CHAIN_PREV, CHAIN_START, createChain, cutDigest, unseal, type ChainState } from './chain.ts'
import { createLogWriter, type LogWriter } from './writer.ts'

export interface AccessLog {
  /** Called exactly once per request (or websocket connection), when it ends. Never throws. */
  write(ctx: RequestContext, endNs: bigint): void
  /** False while the destination cannot be written (see `accessLog.onError`). */
  readonly healthy: boolean
  /** Flush and close. */
  close(): Promise<void>
}

/** On the first record written after records were dropped: how many (the destination could not take them). */
export const RECORDS_DROPPED = 'iap.records.dropped'

export interface AccessLogOptions {
  /** Names this process in every record and at the start of its integrity chain. */
  readonly instanceId: string
  readonly onWriteError?: (err: Error) => void
}

/**
 * The last sealed line of an existing log file, so a restarted process continues its chain. A last line
 * a dying process left half-written (no newline after it) is passed over: the chain continues from the
 * line before it, and `cut` is that fragment's SHA-256 (of its text as read back), which the next record
 * names under its mac, so that `logs verify` excuses that fragment and no other line.
 */
function chainTail(path: string): { state: ChainState; cut?: string } | undefined {
  let fd: number | undefined
  try {
    const size = statSync(path).size
    if (size === 0) return undefined
    const length = Math.min(size, 256 * 1024)
    const buffer = Buffer.alloc(length)
    fd = openSync(path, 'r')
    readSync(fd, buffer, 0, length, size - length)
    const text = buffer.toString('utf8')
    const lines = text.split('\n').filter(Boolean)
    const fragment = !text.endsWith('\n') && lines.length > 0 && unseal(lines[lines.length - 1]!) === undefined ? lines.pop() : undefined
    const sealed = lines.length ? unseal(lines[lines.length - 1]!) : undefined
    if (!sealed) return undefined
    return { state: { seq: sealed.seq, mac: sealed.mac }, ...(fragment !== undefined && { cut: cutDigest(fragment) }) }
  } catch {
    return undefined
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

export function createAccessLog(config: Config['accessLog'], options: AccessLogOptions): AccessLog {
  const key = config.integrity?.key
  const tail = key && config.output !== 'stdout' ? chainTail(config.output) : undefined
  const chain = key ? createChain(key, tail?.state) : undefined
  // The fragment a killed process left, named by the first record of this one.
  let cut = tail?.cut
  // Records dropped since the last one written (the destination could not take them): the next record says how many.
  let dropped = 0
  const instanceId = options.instanceId
  // With a chain, the first record a process writes, and the first record of each file after a
  // rotation, says so (`iap.chain.start`) and names the mac before it (`iap.chain.prev`, covered by its
  // own mac): `logs verify` may begin mid-chain only at a file's first record, and checks it like any
  // other, so lines cut from a file's beginning are caught while files rotated away are not mistaken
  // for tampering. The writer seals each record once the file it lands in is known, so `file` marks
  // only the first record of a file a rotation really began (a rename that failed marks nothing).
  let processStart = chain !== undefined
  const seal = chain
    ? (line: string, fileStart: boolean): string => {
        if (fileStart || processStart) {
          // A file's first record is a `file` start even when it is also the process's first. Appended as
          // JSON.stringify would (the record's last members), with the mac this record follows.
          const start = `,"${CHAIN_START}":"${fileStart ? 'file' : 'process'}","${CHAIN_PREV}":"${chain.state().mac}"${cut === undefined ? '' : `,"${CHAIN_CUT}":"${cut}"`}}`
          line = line.slice(0, -1) + start
          processStart = false
          cut = undefined
        }
        return chain.seal(line)
      }
    : undefined
  const writer: LogWriter = createLogWriter({
    output: config.output,
    rotate: config.rotate,
    onError: options.onWriteError,
    ...(seal && { seal }),
  })

  return {
    write(ctx, endNs) {
      try {
        // Not sealed when it cannot be written: the chain stays whole, and the next record counts the gap.
        if (writer.refuses()) {
          dropped++
          return
        }
        const record = toAccessRecord(ctx, endNs)
        record['iap.instance.id'] = instanceId
        if (dropped > 0) {
          record[RECORDS_DROPPED] = dropped
          dropped = 0
        }
        writer.write(JSON.stringify(record))
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
