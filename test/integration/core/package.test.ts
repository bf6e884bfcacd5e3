/**
 * The npm package runs once installed: `npm pack` (its prepack compiles src/ into dist/), the tarball
 * unpacked as `node_modules/gitlab-iap`, and the bin run from there. Node refuses to strip types under
 * node_modules, so this only passes when the package ships and loads compiled JavaScript.
 * No network: the pack happens in a copy of the repo, and the installed package's dependencies are
 * links to this repo's node_modules (devDependencies left out, so a runtime import of one fails here).
 */
import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { baseConfig, ROOT, writeConfig } from '../../helpers/serve.ts'

const run = promisify(execFile)
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string> }
/** Top-level entries of the repo not copied for packing: installed or generated, never packed from. */
const NOT_COPIED = new Set(['node_modules', '.git', 'dist', '.tmp', 'coverage'])

let tmp: string
let installed: string
let tarball: string[]

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(installed, 'bin/gitlab-iap.js'), ...args], { cwd: tmp, timeout: 15_000 })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

/** Links every package of the repo's node_modules into `into`, except the devDependencies. */
function linkDependencies(into: string): void {
  const source = join(ROOT, 'node_modules')
  for (const name of readdirSync(source)) {
    if (name.startsWith('.')) continue
    if (name.startsWith('@')) {
      mkdirSync(join(into, name), { recursive: true })
      for (const child of readdirSync(join(source, name))) {
        if (!(`${name}/${child}` in pkg.devDependencies)) symlinkSync(join(source, name, child), join(into, name, child))
      }
    } else if (!(name in pkg.devDependencies) && name !== 'gitlab-iap') {
      symlinkSync(join(source, name), join(into, name))
    }
  }
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'gitlab-iap-pack-'))
  const checkout = join(tmp, 'checkout')
  cpSync(ROOT, checkout, { recursive: true, filter: (path) => !NOT_COPIED.has(relative(ROOT, path).split('/')[0]!) })
  symlinkSync(join(ROOT, 'node_modules'), join(checkout, 'node_modules'))
  // npm runs prepack (the build) with node_modules/.bin first on PATH: tsc on the pinned Node 24.
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', tmp], {
    cwd: checkout,
    env: { ...process.env, npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' },
    timeout: 60_000,
  })
  const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[]
  tarball = packed!.files.map((f) => f.path)
  const app = join(tmp, 'app')
  installed = join(app, 'node_modules/gitlab-iap')
  mkdirSync(installed, { recursive: true })
  await run('tar', ['-xzf', join(tmp, packed!.filename), '-C', installed, '--strip-components=1'])
  linkDependencies(join(app, 'node_modules'))
}, 90_000)

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true })
})

describe('the packed npm package, installed under node_modules', () => {
  it('ships the compiled JavaScript and the bin, not the TypeScript sources', () => {
    expect(tarball).toEqual(expect.arrayContaining(['package.json', 'bin/gitlab-iap.js', 'dist/cli/main.js', 'dist/config/schema.js', 'config.schema.json']))
    expect(tarball.filter((path) => path.endsWith('.ts'))).toEqual([])
    expect(tarball.filter((path) => !/^(bin|dist)\/|^[^/]+$/.test(path))).toEqual([])
  })

  it('gitlab-iap --help and --version', async () => {
    const help = await cli(['--help'])
    expect(help.stderr).toBe('')
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('Usage: gitlab-iap <command>')
    const version = await cli(['--version'])
    expect(version.stdout.trim()).toBe(`gitlab-iap ${pkg.version}`)
  })

  it('gitlab-iap check --config accepts a valid config', async () => {
    const file = writeConfig(baseConfig('http://127.0.0.1:9'))
    try {
      const result = await cli(['check', '--config', file.path])
      expect(result.stderr).toBe('')
      expect(result.code).toBe(0)
      expect(result.stdout).toContain('valid')
    } finally {
      file.cleanup()
    }
  })

  it('a lazily loaded command (explain) resolves from dist too', async () => {
    const file = writeConfig(baseConfig('http://127.0.0.1:9'))
    try {
      const result = await cli(['explain', '--config', file.path, '--path', '/explore', '--anonymous'])
      expect(result.stderr).toBe('')
      expect(result.code).toBe(0)
      expect(result.stdout).toContain('everything-public')
    } finally {
      file.cleanup()
    }
  })
})
