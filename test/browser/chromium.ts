/** Headless Debian Chromium through playwright-core, isolated (fresh profile, no network beyond loopback services). */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'

/** Whether the Debian chromium is installed; tests skip (visibly) without it unless CI=true, where they fail. */
export const hasChromium = existsSync(CHROMIUM)

export function requireChromiumInCi(file: string): void {
  if (hasChromium) return
  if (process.env.CI === 'true') throw new Error('chromium is required in CI (apt-get install -y chromium)')
  console.warn(`SKIPPED ${file}: ${CHROMIUM} is not installed (apt-get install -y chromium)`)
}

export interface Chromium {
  readonly context: BrowserContext
  close(): Promise<void>
}

/** Launches Chromium with a fresh user-data dir (launchPersistentContext is how playwright passes one). */
export async function launchChromium(): Promise<Chromium> {
  const profile = mkdtempSync(join(tmpdir(), 'gitlab-iap-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  return {
    context,
    async close() {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    },
  }
}
