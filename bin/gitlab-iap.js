#!/usr/bin/env node
// Two ways to run: a checkout runs the TypeScript sources directly (Node's type stripping, Node >= 22.18,
// on by default in 24); the published package and the image run the JavaScript that `npm run build`
// compiled into dist/ (Node refuses to strip types under node_modules). A checkout prefers its sources
// even when a dist/ is lying around (left by `npm pack`), so what runs is never older than what you edit.
import { existsSync } from 'node:fs'

const sources = new URL('../src/cli/main.ts', import.meta.url)
const compiled = new URL('../dist/cli/main.js', import.meta.url)
const runSources = existsSync(sources) && (!existsSync(compiled) || (process.features.typescript && !sources.pathname.includes('/node_modules/')))
if (runSources && !process.features.typescript) {
  process.stderr.write(`gitlab-iap: Node ${process.version} cannot run TypeScript sources; use Node 24 LTS (or 22.18+): in a checkout, \`npx gitlab-iap …\` runs the Node 24 that \`npm ci\` installed\n`)
  process.exit(1)
}
// A reader that stops early (`gitlab-iap logs … | head`) closes the pipe: stop quietly, as Unix tools do.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0)
  throw err
})
const { main } = await import(runSources ? sources.href : compiled.href)
process.exitCode = await main(process.argv.slice(2))
