/** Thin wrapper over node:util parseArgs that turns its errors into one-line usage errors. */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { IapError } from '../errors.ts'

export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true })
  } catch (err) {
    const message = (err as Error).message.replace(/\. To specify a positional.*$/s, '').replace(/\n.*/s, '')
    throw new IapError('IAP_ERR_CLI_USAGE', message)
  }
}
