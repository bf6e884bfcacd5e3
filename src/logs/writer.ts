/**
 * Where access-log lines go: pino's asynchronous destination (SonicBoom) on stdout or on a file.
 * File output rotates by size: the full file is renamed to `<file>.<UTC timestamp>` (gzip-compressed
 * to `.gz` when `compress`), the destination reopens the path, and the oldest beyond `keep` are removed.
 * The rename waits until every line before the rotation is on disk, and later lines wait for the rename:
 * each line lands in the file it was counted for (its first line is the first after the rotation),
 * none is lost or written twice, and order is kept. A rename that fails or is given up leaves the
 * lines in the current file; `seal` hears of a new file only once the rename is done.
 *
 * Lines are batched: one write per 25 ms or per 64 KiB, whichever comes first, instead
 * of one write syscall per request, which cost more CPU than the rest of the pipeline at moderate
 * rates. What is batched is written on close, on rotation and when the process exits.
 * Each line is encoded to UTF-8 once, into the batch buffer; the destination takes the bytes as they
 * are (a string batch was measured, encoded and copied again at every step on its way to the file).
 *
 * What the destination holds is bounded: a reader that stops reading stdout (a stuck log shipper) or a
 * file that stops taking writes (a hung network disk) would otherwise make every record wait in memory.
 * Beyond `maxPendingBytes` handed and not yet written, records are dropped and each is reported as a
 * failed write (unhealthy, `onError`), until the destination has written down to half of it again.
 */
import { closeSync, createReadStream, createWriteStream, fstatSync, openSync, readdirSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import pino from 'pino'
import { compareRotated, parseRotatedName } from './rotated-name.ts'

export interface LogWriterOptions {
  /** `stdout` or a file path. */
  readonly output: string
  readonly rotate: { readonly size: number; readonly keep: number; readonly compress: boolean }
  /** Called on every failed write or rotation (the destination may recover later). */
  readonly onError?: (err: Error) => void
  /**
   * Turns a line into what is written (the access log seals it into its chain): called once per line, in
   * order, when the file it goes to is known; `fileStart` on the first line of a file a rotation began.
   * Lines that come while a rotation waits for its rename are held unsealed until it is done or given up,
   * so that a rotation that does not happen leaves no file start in the middle of a file.
   */
  readonly seal?: (line: string, fileStart: boolean) => string
  /** Called after a rotation finished (compression included), with the rotated file's final path. */
  readonly onRotated?: (path: string) => void
  /** Most bytes handed to the destination and not yet written before records are dropped (default `MAX_PENDING_BYTES`). */
  readonly maxPendingBytes?: number
}

export interface LogWriter {
  /**
   * True when a line written now would be dropped (the destination is unavailable or too far behind),
   * reported as `write` would report it: lets a caller skip what it would have done for the line.
   */
  refuses(): boolean
  /** Appends one line (without its newline). Never throws. */
  write(line: string): void
  /** False after a write error, or while the destination is too far behind, until a later write succeeds. */
  readonly healthy: boolean
  /** Bytes in the current file (file output). */
  readonly size: number
  close(): Promise<void>
}

/** Opened with `contentMode: 'buffer'`: it takes the batch's bytes (pino's type names only strings). */
type Destination = Omit<ReturnType<typeof pino.destination>, 'write'> & { write(chunk: Buffer): boolean }

/**
 * Drops a destination. SonicBoom's destroy() of a file that never opened (a missing directory, a
 * permission error) waits for a 'ready' that never comes, and pino's exit hook then throws
 * "sonic boom is not ready yet" with a stack trace on the way out: such a stream is marked destroyed here.
 */
function discard(d: Destination): void {
  const stream = d as Destination & { fd: number; destroyed: boolean }
  if (stream.fd === -1) stream.destroyed = true
  else d.destroy()
}

/** Marks a destination done without closing its descriptor: pino's exit hook then leaves it alone. */
function abandon(d: Destination): void {
  const stream = d as Destination & { destroyed: boolean }
  stream.destroyed = true
}

const REOPEN_DELAY_MS = 1000
/** Longest a line waits in the batch before it is written. */
const BATCH_MS = 25
const BATCH_BYTES = 64 * 1024
/** Room in the batch buffer: a line of up to 16 Ki characters fits after any batch short of BATCH_BYTES. */
const BATCH_CAPACITY = 2 * BATCH_BYTES
/** Most held back while a rotation waits for its rename; beyond it the rotation is given up. */
const HOLD_LIMIT_BYTES = 8 * 1024 * 1024
/** Most bytes waiting for a destination that does not keep up (a stalled stdout reader, a hung disk); beyond it records are dropped. */
const MAX_PENDING_BYTES = 16 * 1024 * 1024
/** At most this long, on the way out, for a full pipe to take the last batch (a reader that stopped would hold the exit forever). */
const EXIT_FLUSH_MS = 2000
const DROPPED = Object.assign(new Error('access log unavailable: record dropped'), { code: 'IAP_LOG_DROPPED' })
const BACKLOGGED = Object.assign(new Error('access log destination is not keeping up (its reader stalled?): record dropped'), { code: 'IAP_LOG_BACKLOG' })

/**
 * Ends the last line of a file that stops mid-line (a process killed during a write, a full disk), so
 * the next record starts a line of its own instead of being glued to the cut one.
 */
function endWithNewline(path: string): void {
  let fd: number | undefined
  try {
    fd = openSync(path, 'r+')
    const size = fstatSync(fd).size
    if (size === 0) return
    const last = Buffer.alloc(1)
    readSync(fd, last, 0, 1, size - 1)
    if (last[0] !== 0x0a) writeSync(fd, '\n', size)
  } catch {
    // No file yet, or one that cannot be opened: the destination reports that itself.
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/** `access.log.20261128T203000123Z-001`: sortable by name, unique within a process. */
function rotatedName(path: string, counter: number): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('.', '')
  return `${path}.${stamp}-${String(counter).padStart(3, '0')}`
}

/** Rotated siblings of `path`, oldest first. */
export function rotatedFiles(path: string): string[] {
  const dir = dirname(path)
  const base = basename(path)
  try {
    return readdirSync(dir)
      .map((name) => ({ name, rotated: parseRotatedName(name) }))
      .filter((entry): entry is { name: string; rotated: NonNullable<ReturnType<typeof parseRotatedName>> } => entry.rotated?.log === base)
      .sort((a, b) => compareRotated(a.rotated, b.rotated))
      .map((entry) => join(dir, entry.name))
  } catch {
    return []
  }
}

export function createLogWriter(options: LogWriterOptions): LogWriter {
  const toFile = options.output !== 'stdout'
  let healthy = true
  let size = 0
  let rotating = false
  let counter = 0
  let closed = false
  const pending = new Set<Promise<void>>()
  // The lines not yet handed to the destination: batch[0, batchLength), newline-terminated UTF-8.
  let batch = Buffer.allocUnsafe(BATCH_CAPACITY)
  let batchLength = 0
  let batchTimer: NodeJS.Timeout | undefined
  // Bytes handed to the destination and bytes it reports written: equal when nothing is in flight.
  let handedBytes = 0
  let writtenBytes = 0
  const maxPending = options.maxPendingBytes ?? MAX_PENDING_BYTES
  // Set once more than maxPending waits in the destination; cleared when it is down to half (records are dropped meanwhile).
  let backlogged = false
  // Set on the way out: a pipe that stays full is given EXIT_FLUSH_MS, not forever.
  let exitDeadline: number | undefined
  // A rotation decided and waiting for the destination to finish the old file's lines before the rename.
  let renamePending = false
  // The lines that came meanwhile, not yet sealed: which file they go to depends on the rename.
  let held: string[] = []
  let heldBytes = 0
  // The rename is done: the next line sealed is the new file's first.
  let fileStart = false
  const seal = options.seal

  const open = (): Destination => {
    if (toFile) endWithNewline(options.output)
    const d = (toFile
      ? pino.destination({ dest: options.output, sync: false, mkdir: true, append: true, minLength: 0, contentMode: 'buffer', retryEAGAIN })
      : pino.destination({ fd: 1, sync: false, minLength: 0, contentMode: 'buffer', retryEAGAIN })) as unknown as Destination
    handedBytes = 0
    writtenBytes = 0
    backlogged = false
    d.on('error', fail)
    d.on('write', (bytes: number) => {
      writtenBytes += bytes
      if (backlogged && handedBytes - writtenBytes <= maxPending / 2) backlogged = false
      if (!backlogged) healthy = true
      if (renamePending && writtenBytes >= handedBytes) renameAndReopen()
    })
    return d
  }
  // A full non-blocking pipe (EAGAIN) is retried, as SonicBoom does, except on the way out past EXIT_FLUSH_MS.
  const retryEAGAIN = (): boolean => exitDeadline === undefined || Date.now() < exitDeadline
  // A destination that failed (disk full, permissions) is dropped with what it buffered and reopened
  // after a pause: memory stays bounded, and SonicBoom never retries an impossible write forever.
  let reopenTimer: NodeJS.Timeout | undefined
  const fail = (err: Error): void => {
    healthy = false
    options.onError?.(err)
    // A rotation waiting on this destination is given up; the lines it held go where the next write goes.
    const gaveUp = renamePending
    if (renamePending) {
      renamePending = false
      rotating = false
    }
    if (!reopenTimer && !closed) {
      try {
        discard(dest)
      } catch {
        // already destroyed
      }
      reopenTimer = setTimeout(() => {
        reopenTimer = undefined
        if (!closed) dest = open()
      }, REOPEN_DELAY_MS)
      reopenTimer.unref()
    }
    if (gaveUp) {
      release()
      writeBatch()
    }
  }
  let dest: Destination = open()
  // Only regular files rotate: /dev/stdout, a FIFO or /dev/null must never be renamed.
  let rotatable = toFile
  if (toFile) {
    try {
      const st = statSync(options.output)
      size = st.size
      rotatable = st.isFile()
    } catch {
      size = 0
    }
  }

  function prune(): void {
    const old = rotatedFiles(options.output)
    for (const file of old.slice(0, Math.max(0, old.length - options.rotate.keep))) {
      try {
        unlinkSync(file)
      } catch (err) {
        options.onError?.(err as Error)
      }
    }
  }

  function rotate(): void {
    writeBatch()
    rotating = true
    renamePending = true
    size = 0
    if (writtenBytes >= handedBytes) renameAndReopen()
  }

  function renameAndReopen(): void {
    renamePending = false
    const target = rotatedName(options.output, ++counter)
    try {
      renameSync(options.output, target)
    } catch (err) {
      // The lines stay in this file: sealed as its own, with no file start among them.
      rotating = false
      options.onError?.(err as Error)
      release()
      writeBatch()
      return
    }
    dest.reopen()
    fileStart = true
    release()
    writeBatch()
    const done = new Promise<void>((resolve) => {
      // 'ready' fires when the new file is open and the old descriptor is being closed.
      dest.once('ready', () => {
        const finish = (final: string) => {
          rotating = false
          prune()
          options.onRotated?.(final)
          resolve()
        }
        if (!options.rotate.compress) return finish(target)
        // Let the old descriptor close before reading the rotated file back.
        setImmediate(() => {
          pipeline(createReadStream(target), createGzip(), createWriteStream(`${target}.gz`)).then(
            () => {
              unlinkSync(target)
              finish(`${target}.gz`)
            },
            (err: Error) => {
              options.onError?.(err)
              finish(target)
            },
          )
        })
      })
    })
    pending.add(done)
    void done.then(() => pending.delete(done))
  }

  /** Seals `line` (see `seal`) and appends it to the batch, counting its bytes in the file's size. */
  function add(line: string): void {
    let sealed = line
    if (seal) {
      sealed = seal(line, fileStart)
      fileStart = false
    }
    const bytes = append(sealed)
    if (rotatable) size += bytes
  }

  /** Adds the lines held for a rotation, in order, now that the file they go to is known. */
  function release(): void {
    const lines = held
    held = []
    heldBytes = 0
    for (const line of lines) add(line)
  }

  /** Appends `line` and a newline to the batch; returns the bytes added. */
  function append(line: string): number {
    // At most 3 bytes per UTF-16 unit: a line that may not fit goes into a larger buffer (held lines, huge lines).
    const needed = batchLength + line.length * 3 + 1
    if (needed > batch.length) {
      const larger = Buffer.allocUnsafe(Math.max(needed, 2 * batch.length))
      batch.copy(larger, 0, 0, batchLength)
      batch = larger
    }
    const n = batch.write(line, batchLength)
    batch[batchLength + n] = 0x0a
    batchLength += n + 1
    return n + 1
  }

  /** The batch's bytes, in a buffer of their own (the destination keeps it until written); the batch is emptied. */
  function takeBatch(): Buffer {
    const chunk = Buffer.from(batch.subarray(0, batchLength))
    batchLength = 0
    // A batch that grew while lines were held goes back to its usual size.
    if (batch.length > BATCH_CAPACITY) batch = Buffer.allocUnsafe(BATCH_CAPACITY)
    return chunk
  }

  /** Hands the batch to the destination (kept while a failed destination waits to reopen). */
  function writeBatch(): void {
    clearTimeout(batchTimer)
    batchTimer = undefined
    if (batchLength === 0 || closed) return
    // Nothing more goes to the old file once its rotation is decided (later lines are held until the rename).
    if (renamePending) return
    if (reopenTimer) {
      batchTimer = setTimeout(writeBatch, REOPEN_DELAY_MS).unref()
      return
    }
    const chunk = takeBatch()
    handedBytes += chunk.length
    try {
      dest.write(chunk)
    } catch (err) {
      healthy = false
      options.onError?.(err as Error)
    }
  }
  /** Why a line written now would be dropped, or undefined when it would be taken. */
  const refusal = (): Error | undefined => {
    if (reopenTimer) return DROPPED
    // The destination is too far behind: records are lost, and said so, rather than held without bound.
    if (backlogged || handedBytes - writtenBytes > maxPending) {
      backlogged = true
      healthy = false
      return BACKLOGGED
    }
    return undefined
  }
  // A crash or process.exit() must not lose the batch: write it synchronously on the way out, with what
  // the destination holds. A pipe that stays full gets EXIT_FLUSH_MS, then the destination counts as done,
  // so pino's own exit hook (which retries a full pipe without end) skips it: this one runs first.
  const onExit = (): void => {
    if (closed || reopenTimer) return
    exitDeadline = Date.now() + EXIT_FLUSH_MS
    // A rotation still waiting for its rename will not have it: its lines stay in this file.
    if (renamePending) {
      renamePending = false
      release()
    }
    try {
      if (batchLength > 0 && !backlogged) dest.write(takeBatch())
      dest.flushSync()
    } catch {
      // nothing more can be done while exiting
    }
    abandon(dest)
  }
  process.prependListener('exit', onExit)

  return {
    refuses(): boolean {
      const refused = refusal()
      if (refused) options.onError?.(refused)
      return refused !== undefined
    },
    write(line: string): void {
      const refused = refusal()
      if (refused) {
        options.onError?.(refused)
        return
      }
      if (renamePending) {
        // Sealed once the rename is done or given up: only then is it known whether this starts a file.
        held.push(line)
        heldBytes += Buffer.byteLength(line) + 1
        if (heldBytes <= HOLD_LIMIT_BYTES) return
        // A destination that never finishes the old file's lines must not make the held ones grow without end.
        renamePending = false
        rotating = false
        release()
      } else {
        add(line)
      }
      if (batchLength >= BATCH_BYTES) writeBatch()
      else batchTimer ??= setTimeout(writeBatch, BATCH_MS)
      if (rotatable && size >= options.rotate.size && !rotating) rotate()
    },
    get healthy() {
      return healthy
    },
    get size() {
      return size
    },
    async close() {
      await Promise.all(pending)
      if (closed) return
      // A rotation still waiting for its rename is given up: its lines stay in the current file.
      if (renamePending) {
        renamePending = false
        release()
      }
      writeBatch()
      closed = true
      process.off('exit', onExit)
      clearTimeout(reopenTimer)
      if (reopenTimer || !healthy) {
        discard(dest)
        return
      }
      // A destination that cannot be written (disk full) never drains: do not let it hold shutdown.
      let done = false
      const giveUp = new Promise<void>((resolve) => setTimeout(resolve, healthy ? 5000 : 250).unref())
      const ended = new Promise<void>((resolve) => {
        const finish = () => {
          done = true
          resolve()
        }
        dest.once('close', finish)
        dest.once('error', finish)
        if (toFile) dest.end()
        else dest.flush(finish)
      })
      await Promise.race([ended, giveUp])
      // Not drained (a stdout reader that stopped): the process must still be able to exit.
      if (!done) abandon(dest)
    },
  }
}
