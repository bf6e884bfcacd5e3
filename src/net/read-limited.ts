/**
 * Reads a fetch response's body as text, refusing one larger than `limit` bytes before it is all in
 * memory: what an IdP, Graph or GitLab answers is small, and a broken or hostile server must not
 * make the proxy hold hundreds of megabytes for one lookup.
 */
export async function readLimited(res: Response, limit: number): Promise<string> {
  const declared = Number(res.headers.get('content-length'))
  if (declared > limit) {
    await res.body?.cancel()
    throw new Error(`response larger than ${limit} bytes`)
  }
  if (!res.body) return ''
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > limit) {
      await reader.cancel()
      throw new Error(`response larger than ${limit} bytes`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}
