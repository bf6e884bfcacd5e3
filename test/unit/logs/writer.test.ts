import { execFileSync, spawn } from 'node:child_process'
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createLogWriter, rotatedFiles } from '../../../src/logs/writer.ts'

const cleanups: (() => void | Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A FIFO with a reader that reads only when told: a log shipper that stalls, then resumes. */
function stalledPipe() {
  const dir = mkdtempSync(join(tmpdir(), 'iap-writer-'))
  const path = join(dir, 'pipe')
  execFileSync('mkfifo', [path])
  // Opened first (non-blocking), so the writer's open does not wait for a reader.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  cleanups.push(() => {
    closeSync(fd)
    rmSync(dir, { recursive: true, force: true })
  })
  let received = ''
  const chunk = Buffer.alloc(1 << 20)
  return {
    path,
    /** Reads what is there now; returns everything read so far. */
    drain(): string {
      for (;;) {
        let n: number
        try {
          n = readSync(fd, chunk, 0, chunk.length, null)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break
          throw err
        }
        if (n === 0) break
        received += chunk.toString('latin1', 0, n)
      }
      return received
    },
  }
}

describe('a destination that does not keep up', () => {
  it('holds at most maxPendingBytes: beyond it records are dropped as failed writes, and it recovers once drained', { timeout: 20_000 }, async () => {
    const pipe = stalledPipe()
    const errors: string[] = []
    const maxPendingBytes = 1024 * 1024
    const writer = createLogWriter({ output: pipe.path, rotate: { size: 1e12, keep: 1, compress: false }, maxPendingBytes, onError: (err) => errors.push((err as NodeJS.ErrnoException).code ?? err.message) })
    cleanups.push(() => writer.close())
    const line = (n: number) => `{"n":${n},"pad":"${'x'.repeat(10_000)}"}`
    // 4 MiB of records into a pipe nobody reads (it takes 64 KiB).
    let n = 0
    for (; n < 400; n++) writer.write(line(n))
    await new Promise((r) => setTimeout(r, 100))
    expect(writer.healthy).toBe(false)
    expect(errors.length).toBeGreaterThan(0)
    expect(new Set(errors)).toEqual(new Set(['IAP_LOG_BACKLOG']))
    const dropped = errors.length

    // The reader resumes: what was held arrives whole and in order; nothing beyond the bound was kept.
    let got = ''
    await expect.poll(() => {
      got = pipe.drain()
      return writer.healthy
    }, { timeout: 10_000, interval: 20 }).toBe(true)
    // Complete lines only: what follows the last newline may still be arriving.
    const records = () => pipe.drain().split('\n').slice(0, -1)
    await expect.poll(() => records().length + dropped, { timeout: 5000, interval: 20 }).toBe(400)
    got = pipe.drain()
    const delivered = records()
    expect(got.endsWith('\n')).toBe(true)
    expect(got.length).toBeLessThan(maxPendingBytes + 3 * 64 * 1024 + 64 * 1024)
    expect(delivered.map((l) => (JSON.parse(l) as { n: number }).n)).toEqual(Array.from({ length: delivered.length }, (_, i) => i))

    // Healthy again: new records go through.
    writer.write(line(n))
    await expect.poll(() => pipe.drain().endsWith(`${line(n)}\n`), { timeout: 5000, interval: 20 }).toBe(true)
    expect(errors.length).toBe(dropped)
  })
})

describe('the way out', () => {
  it('a stdout nobody reads does not hold the process on exit forever', { timeout: 20_000 }, async () => {
    const script = [
      `import { createLogWriter } from ${JSON.stringify(join(import.meta.dirname, '../../../src/logs/writer.ts'))}`,
      `const w = createLogWriter({ output: 'stdout', rotate: { size: 1e12, keep: 1, compress: false } })`,
      // More than a pipe holds, less than the backlog bound; the last lines still batched when the process exits.
      `for (let i = 0; i < 600; i++) w.write(JSON.stringify({ n: i, pad: 'x'.repeat(1000) }))`,
      `process.exit(0)`,
    ].join('\n')
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    child.stdout!.pause()
    const started = Date.now()
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        resolve(null)
      }, 10_000)
      child.once('exit', (c) => {
        clearTimeout(timer)
        resolve(c)
      })
    })
    expect(code).toBe(0)
    expect(Date.now() - started).toBeLessThan(8000)
  })
})

describe('rotated files', () => {
  it('lists a process\'s 1,000th rotation and later ones too (rotate.keep prunes them, logs verify reads them), oldest first', () => {
    const dir = mkdtempSync(join(tmpdir(), 'iap-rotated-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const names = ['access.log.20261128T100000000Z-1000.gz', 'access.log.20261128T100000000Z-999.gz', 'access.log.20261128T090000000Z-001', 'other.log.20261128T080000000Z-001', 'access.log']
    for (const name of names) writeFileSync(join(dir, name), '')
    expect(rotatedFiles(join(dir, 'access.log'))).toEqual(['access.log.20261128T090000000Z-001', 'access.log.20261128T100000000Z-999.gz', 'access.log.20261128T100000000Z-1000.gz'].map((n) => join(dir, n)))
  })
})

describe('rotation and sealing', () => {
  /** Lines written across several rotations; `seal` marks a line it is told starts a file. */
  async function writeAcross(name: string) {
    const dir = mkdtempSync(join(tmpdir(), 'iap-sealing-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const output = join(dir, name)
    const errors: string[] = []
    const writer = createLogWriter({
      output, rotate: { size: 1000, keep: 50, compress: false },
      seal: (line, fileStart) => (fileStart ? `${line} start` : line),
      onError: (err) => errors.push((err as NodeJS.ErrnoException).code ?? err.message),
    })
    const written = Array.from({ length: 60 }, (_, n) => `line ${n} ${'x'.repeat(90)}`)
    const onDisk = () => [...rotatedFiles(output), output].flatMap((file) => readFileSync(file, 'utf8').split('\n').filter(Boolean)).length
    for (const [n, line] of written.entries()) {
      writer.write(line)
      // Every line so far on disk: a rotation decided meanwhile has had its rename (or its failure).
      if (n % 5 === 4) await expect.poll(onDisk, { timeout: 10_000, interval: 10 }).toBe(n + 1)
    }
    await writer.close()
    const files = [...rotatedFiles(output), output].map((file) => readFileSync(file, 'utf8').split('\n').filter(Boolean))
    return { written, files, errors }
  }

  it('a line is sealed as a file start only when the rename was done: the first line of each new file, no other', async () => {
    const { written, files } = await writeAcross('access.log')
    expect(files.length).toBeGreaterThan(2)
    expect(files.flat().map((line) => line.replace(/ start$/, ''))).toEqual(written)
    for (const [i, lines] of files.entries()) expect(lines.map((line) => line.endsWith(' start'))).toEqual(lines.map((_, n) => i > 0 && n === 0))
  })

  it('a rename that fails leaves every line in the file, in order, and none sealed as a file start', async () => {
    // Not a name with a rotation's suffix added (ENAMETOOLONG): every rename fails, whoever runs the test.
    const { written, files, errors } = await writeAcross('a'.repeat(240))
    expect(errors.filter((code) => code === 'ENAMETOOLONG').length).toBeGreaterThan(1)
    expect(files).toEqual([written])
  })
})
