#!/usr/bin/env node
// The sources are TypeScript run directly by Node's type stripping (Node >= 22.18, default in 24).
if (!process.features.typescript) {
  process.stderr.write(`gitlab-iap: Node ${process.version} cannot run TypeScript sources; use Node 24 LTS (or 22.18+)\n`)
  process.exit(1)
}
// A reader that stops early (`gitlab-iap logs … | head`) closes the pipe: stop quietly, as Unix tools do.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0)
  throw err
})
const { main } = await import('../src/cli/main.ts')
process.exitCode = await main(process.argv.slice(2))
