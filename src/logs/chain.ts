/**
 * Tamper evidence for the access log: every line ends with `"iap.chain.seq":N,"iap.chain.mac":"…"`, where
 * mac = HMAC-SHA256(key, previous mac + the line without its chain fields). A changed, removed,
 * reordered or inserted line breaks the chain at that line; without the key it cannot be re-sealed.
 */
import { createHmac } from 'node:crypto'

export const CHAIN_SEQ = 'iap.chain.seq'
export const CHAIN_MAC = 'iap.chain.mac'
/**
 * On the first record a process writes (`process`) and on the first record of each file after a
 * rotation (`file`): the only places a verification may begin mid-chain.
 */
export const CHAIN_START = 'iap.chain.start'
export type ChainStart = 'process' | 'file'
/** The separate start records earlier versions wrote (`event.kind: state`); still anchors when verifying old logs. */
const LEGACY_START_ACTIONS = ['chain-start', 'chain-file-start']

/** The chain fields as written at the very end of a line. */
const CHAIN_SUFFIX = /,"iap\.chain\.seq":(\d+),"iap\.chain\.mac":"([0-9a-f]{64})"\}$/

export interface ChainState {
  readonly seq: number
  readonly mac: string
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

export type ChainProblem = 'changed' | 'removed' | 'reordered' | 'inserted' | 'unsealed'

export interface ChainVerdict {
  readonly ok: boolean
  readonly lines: number
  /** The first bad line: where it is and what happened. */
  readonly problem?: { readonly source: string; readonly line: number; readonly kind: ChainProblem; readonly detail: string }
}

/** Lines a verification may start from when the chain's beginning is not among the files. */
function isAnchor(body: string): boolean {
  return body.includes(`"${CHAIN_START}":"`) || LEGACY_START_ACTIONS.some((action) => body.includes(`"event.action":"${action}"`))
}

/** A streaming verifier: feed lines in order (across rotated files), read the verdict at the end. */
export function createChainVerifier(key: string) {
  let previous: ChainState | undefined
  let count = 0
  let problem: ChainVerdict['problem']
  return {
    /** Returns false once the chain is broken (later lines are not checked). */
    push(line: string, source: string, lineNumber: number): boolean {
      if (problem) return false
      if (line === '') return true
      count += 1
      const sealed = unseal(line)
      if (!sealed) {
        problem = { source, line: lineNumber, kind: 'unsealed', detail: 'line has no chain fields (inserted or edited by hand)' }
        return false
      }
      // Only a chain's first line has sequence 1 (a new process on stdout, or a new log file): a fresh chain.
      const starts = sealed.seq === 1
      const prevMac = starts ? '' : (previous?.mac ?? '')
      const expectedSeq = starts ? 1 : previous ? previous.seq + 1 : sealed.seq
      if (!starts && previous && sealed.seq !== expectedSeq) {
        const kind: ChainProblem = sealed.seq > expectedSeq ? 'removed' : sealed.seq === previous.seq ? 'inserted' : 'reordered'
        const what = kind === 'removed' ? ' (lines before it were removed or moved)' : ''
        problem = { source, line: lineNumber, kind, detail: `sequence ${sealed.seq} where ${expectedSeq} was expected${what}` }
        return false
      }
      if (previous === undefined && !starts && sealed.seq !== 1) {
        // The first line we see continues a chain whose beginning is not among the files given (rotated
        // away): trust its mac as the anchor, but only where a process or a file began. Any other first
        // line means the lines before it were cut from the file.
        if (!isAnchor(sealed.body)) {
          problem = { source, line: lineNumber, kind: 'removed', detail: `sequence ${sealed.seq} begins the log, not where a chain or a log file begins (the lines before it were removed)` }
          return false
        }
        previous = { seq: sealed.seq, mac: sealed.mac }
        return true
      }
      if (macOf(key, prevMac, sealed.body) !== sealed.mac) {
        problem = { source, line: lineNumber, kind: previous && sealed.seq !== expectedSeq ? 'reordered' : 'changed', detail: 'mac does not match the line and its predecessor' }
        return false
      }
      previous = { seq: sealed.seq, mac: sealed.mac }
      return true
    },
    verdict(): ChainVerdict {
      return problem ? { ok: false, lines: count, problem } : { ok: true, lines: count }
    },
  }
}
