/**
 * Tamper evidence for the access log: every line ends with `"iap.chain.seq":N,"iap.chain.mac":"…"`, where
 * mac = HMAC-SHA256(key, previous mac + the line without its chain fields). A changed, removed,
 * reordered or inserted line breaks the chain at that line; without the key it cannot be re-sealed.
 */
import { createHash, createHmac } from 'node:crypto'

export const CHAIN_SEQ = 'iap.chain.seq'
export const CHAIN_MAC = 'iap.chain.mac'
/**
 * On the first record a process writes (`process`) and on the first record of each file after a
 * rotation (`file`). A log may begin mid-chain only at a `file` one, which also carries its
 * predecessor's mac (`iap.chain.prev`), so that it is checked like any other line.
 */
export const CHAIN_START = 'iap.chain.start'
export const CHAIN_PREV = 'iap.chain.prev'
/**
 * On a process's first record when the file it continues ended in a line the previous process left
 * half-written: that fragment's digest (`cutDigest`), so that `logs verify` excuses it and no other line.
 */
export const CHAIN_CUT = 'iap.chain.cut'
export type ChainStart = 'process' | 'file'
/** The separate start records earlier versions wrote (`event.kind: state`): still a chain's first line when verifying old logs. */
const LEGACY_START_ACTIONS = ['chain-start', 'chain-file-start']

/** The chain fields as written at the very end of a line. */
const CHAIN_SUFFIX = /,"iap\.chain\.seq":(\d+),"iap\.chain\.mac":"([0-9a-f]{64})"\}$/

export interface ChainState {
  readonly seq: number
  readonly mac: string
}

/** SHA-256 (hex) of a line's text as read back (UTF-8): how a start record names a half-written line. */
export function cutDigest(line: string): string {
  return createHash('sha256').update(line).digest('hex')
}

export function macOf(key: string, previousMac: string, body: string): string {
  return createHmac('sha256', key).update(previousMac).update(body).digest('hex')
}

/** Seals JSON-object lines in order; `from` continues an existing chain (rotation, restart on the same file). */
export function createChain(key: string, from: ChainState = { seq: 0, mac: '' }) {
  let seq = from.seq
  let mac = from.mac
  return {
    /** `{"a":1}` → `{"a":1,"iap.chain.seq":7,"iap.chain.mac":"…"}` */
    seal(body: string): string {
      seq += 1
      mac = macOf(key, mac, body)
      return `${body.slice(0, -1)},"${CHAIN_SEQ}":${seq},"${CHAIN_MAC}":"${mac}"}`
    },
    state: (): ChainState => ({ seq, mac }),
  }
}

/** Splits a sealed line into its body (as it was before sealing) and chain fields; `undefined` if unsealed. */
export function unseal(line: string): { body: string; seq: number; mac: string } | undefined {
  const match = CHAIN_SUFFIX.exec(line)
  if (!match) return undefined
  return { body: `${line.slice(0, match.index)}}`, seq: Number(match[1]), mac: match[2]! }
}

export type ChainProblem = 'changed' | 'removed' | 'reordered' | 'inserted' | 'unsealed' | 'duplicated'

/** Where a chain (re)starts in what was verified: the log's first line, or a process that began a fresh chain. */
export interface ChainStartSeen {
  readonly source: string
  readonly line: number
  readonly seq: number
  /** `iap.instance.id` of the process that wrote it, when the line names one. */
  readonly instance?: string
}

export interface ChainVerdict {
  readonly ok: boolean
  readonly lines: number
  /** Every place a chain begins: more than one means several processes' logs (or a log restarted). */
  readonly starts: readonly ChainStartSeen[]
  /** Lines a process left half-written when it died; the next process continued the chain past them. */
  readonly cut: readonly { readonly source: string; readonly line: number }[]
  /** The first bad line: where it is and what happened. */
  readonly problem?: { readonly source: string; readonly line: number; readonly kind: ChainProblem; readonly detail: string }
}

/** `"iap.chain.start":"file"` (or `process`) in a sealed body: a member, not text inside a value (a value's quotes are escaped). */
const START_MEMBER = /"iap\.chain\.start":"(process|file)"/
/** The predecessor's mac an anchor line carries in its body (empty at a chain's first line). */
const PREV_MEMBER = /"iap\.chain\.prev":"([0-9a-f]{64})?"/
const INSTANCE_MEMBER = /"iap\.instance\.id":"([^"\\]{1,200})"/
const CUT_MEMBER = /"iap\.chain\.cut":"([0-9a-f]{64})"/

/** True for a complete JSON text: a line a process left half-written never is one. */
function parses(line: string): boolean {
  try {
    JSON.parse(line)
    return true
  } catch {
    return false
  }
}

/** A chain's first line in logs of earlier versions: a separate start record (covered by its mac). */
const isLegacyStart = (body: string) => LEGACY_START_ACTIONS.some((action) => body.includes(`"event.action":"${action}"`))

/** What most likely went wrong when not even the first line checks out. */
const FIRST_LINE_HINT: Partial<Record<ChainProblem, string>> = {
  unsealed: 'no line before it was sealed either: was accessLog.integrity.key set when this log was written?',
  changed: 'no line verified before it: either it was changed, or this is not the key the log was written with (accessLog.integrity.key of that time)',
}

/**
 * A streaming verifier: feed lines in order (across rotated files), read the verdict at the end.
 *
 * Where it may begin: at a chain's first line (sequence 1, a process's first record), or, when older
 * files were rotated away, at the first line of a file (`"iap.chain.start":"file"`), which carries its
 * predecessor's mac (`iap.chain.prev`) so that it is checked like any other line. Nowhere else: a log
 * whose head was cut, even up to a process's restart, fails at its first line.
 * A chain may start again at sequence 1 only on a process's first record, and each process only once:
 * a log replayed or concatenated twice is caught. A line a dying process left half-written is passed
 * over (and reported) only when the next line is the next process continuing the chain from the line
 * before it and naming that fragment's digest (`iap.chain.cut`) under its mac: nobody without the key
 * can make that line, and it excuses no other.
 */
export function createChainVerifier(key: string) {
  let previous: ChainState | undefined
  let count = 0
  let problem: ChainVerdict['problem']
  const starts: ChainStartSeen[] = []
  const cut: { source: string; line: number }[] = []
  const instances = new Set<string>()
  // An unsealed line held until the next one says whether it was a crash's half-written line.
  let halfWritten: { source: string; line: number; digest: string } | undefined

  // Lines verified so far: a log whose very first line fails is most likely unsealed or checked with another key.
  let verified = 0
  const fail = (source: string, line: number, kind: ChainProblem, detail: string) => {
    problem = { source, line, kind, detail: verified > 0 ? detail : `${detail}; ${FIRST_LINE_HINT[kind] ?? ''}`.replace(/; $/, '') }
    return false
  }

  return {
    /** Returns false once the chain is broken (later lines are not checked). */
    push(line: string, source: string, lineNumber: number): boolean {
      if (problem) return false
      if (line === '') return true
      count += 1
      const sealed = unseal(line)
      if (!sealed) {
        // A whole record without chain fields was inserted or edited; only a cut one (not JSON) may be a crash's.
        if (halfWritten || parses(line)) return fail(halfWritten?.source ?? source, halfWritten?.line ?? lineNumber, 'unsealed', 'line has no chain fields (inserted or edited by hand)')
        halfWritten = { source, line: lineNumber, digest: cutDigest(line) }
        return true
      }
      const start = START_MEMBER.exec(sealed.body)?.[1]
      const prevMember = PREV_MEMBER.exec(sealed.body)
      let prevMac: string
      if (halfWritten) {
        // Only the next process excuses it: its first record names that very fragment (under its mac,
        // checked below) and continues the chain from the line before it.
        const continues = previous !== undefined && sealed.seq === previous.seq + 1 && macOf(key, previous.mac, sealed.body) === sealed.mac
        if (start === undefined || CUT_MEMBER.exec(sealed.body)?.[1] !== halfWritten.digest || !continues) {
          return fail(halfWritten.source, halfWritten.line, 'unsealed', 'line has no chain fields (inserted or edited by hand)')
        }
        cut.push(halfWritten)
        halfWritten = undefined
      }
      if (sealed.seq === 1) {
        // A chain begins: only a process's first record (or a new file's, which a process began with) starts one.
        if (start === undefined && !isLegacyStart(sealed.body)) return fail(source, lineNumber, 'inserted', 'sequence 1 on a line that does not begin a chain')
        prevMac = ''
      } else if (previous === undefined) {
        // The chain began in files not given (rotated away): only a file's first line may begin the log.
        if (start !== 'file') return fail(source, lineNumber, 'removed', `sequence ${sealed.seq} begins the log, not where a log file begins (the lines before it were removed)`)
        if (!prevMember?.[1]) return fail(source, lineNumber, 'removed', `sequence ${sealed.seq} begins the log at a line that does not carry its predecessor's mac (iap.chain.prev): it cannot be checked`)
        prevMac = prevMember[1]
      } else if (sealed.seq !== previous.seq + 1) {
        const expectedSeq = previous.seq + 1
        const kind: ChainProblem = sealed.seq > expectedSeq ? 'removed' : sealed.seq === previous.seq ? 'inserted' : 'reordered'
        const what = kind === 'removed' ? ' (lines before it were removed or moved)' : ''
        return fail(source, lineNumber, kind, `sequence ${sealed.seq} where ${expectedSeq} was expected${what}`)
      } else {
        prevMac = previous.mac
      }
      if (macOf(key, prevMac, sealed.body) !== sealed.mac) return fail(source, lineNumber, 'changed', 'mac does not match the line and its predecessor')
      // Verified from here on: the members read below are the writer's.
      if (start === 'process' || sealed.seq === 1) {
        const instance = INSTANCE_MEMBER.exec(sealed.body)?.[1]
        if (instance !== undefined) {
          if (instances.has(instance)) return fail(source, lineNumber, 'duplicated', `process ${instance} begins a second time (the log was replayed or concatenated twice)`)
          instances.add(instance)
        }
        if (sealed.seq === 1 || previous === undefined) starts.push({ source, line: lineNumber, seq: sealed.seq, ...(instance !== undefined && { instance }) })
      } else if (previous === undefined) {
        starts.push({ source, line: lineNumber, seq: sealed.seq })
      }
      previous = { seq: sealed.seq, mac: sealed.mac }
      verified += 1
      return true
    },
    verdict(): ChainVerdict {
      // A half-written line at the very end: the tail of the log was cut mid-line (or a process died there).
      const last = halfWritten ? { source: halfWritten.source, line: halfWritten.line, kind: 'unsealed' as const, detail: 'the last line has no chain fields (cut, or left half-written by a process that died)' } : undefined
      const found = problem ?? last
      return found ? { ok: false, lines: count, starts, cut, problem: found } : { ok: true, lines: count, starts, cut }
    },
  }
}
