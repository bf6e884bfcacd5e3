/** Reads an ECS field from an access-log record whether it is written flat ("url.path") or nested ({url:{path}}). */
export function field(record: Record<string, unknown>, name: string): unknown {
  if (name in record) return record[name]
  let value: unknown = record
  for (const part of name.split('.')) {
    if (value === null || typeof value !== 'object') return undefined
    value = (value as Record<string, unknown>)[part]
  }
  return value
}

export function findRecord(records: Record<string, unknown>[], predicate: (r: Record<string, unknown>) => boolean): Record<string, unknown> | undefined {
  return records.find(predicate)
}
