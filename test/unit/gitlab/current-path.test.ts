/**
 * `currentPath`: which project (or group) GitLab serves for a repository path as written, as
 * Gitlab::RepoPath finds it: the path as a project first (former paths followed), then for a wiki
 * the project or group without `.wiki`, for a design repository the project without `.design`, for a
 * snippet the project before `/snippets/<id>`.
 */
import { describe, expect, it } from 'vitest'
import { createProjectResolver, MAX_CONCURRENT_LOOKUPS } from '../../../src/gitlab/project-ids.ts'

/** GitLab's API as the resolver asks it: projects by path (former paths answered with the moved project), groups by path (current only). */
const PROJECTS: Record<string, string> = {
  'secret-group/vault': 'secret-group/vault',
  'old-ns/vault': 'secret-group/vault',
  'group/project': 'group/project',
  'group/odd.wiki': 'group/odd.wiki',
  'group/project/snippets/9': 'group/project/snippets/9',
}
const GROUPS = ['secret-group', 'parent/sub']

function gitlab(options: { failing?: boolean } = {}) {
  const asked: string[] = []
  const fetch = (async (url: string) => {
    const { pathname, search } = new URL(url)
    asked.push(pathname + search)
    if (options.failing) return new Response('{}', { status: 502 })
    const [, resource, id] = /^\/api\/v4\/(projects|groups)\/(.+)$/.exec(pathname) ?? []
    const key = decodeURIComponent(id ?? '')
    const found = resource === 'projects' ? PROJECTS[key] : GROUPS.includes(key) ? key : undefined
    if (found === undefined) return new Response('{"message":"404 Not Found"}', { status: 404 })
    return new Response(JSON.stringify(resource === 'projects' ? { path_with_namespace: found } : { full_path: found }), { status: 200 })
  }) as typeof globalThis.fetch
  return { asked, resolver: createProjectResolver({ upstreamUrl: 'http://gitlab.invalid', apiToken: 't', fetch }) }
}

describe('currentPath of repositories', () => {
  it.each([
    ['old-ns/vault', 'secret-group/vault'],
    ['old-ns/vault.wiki', 'secret-group/vault.wiki'],
    ['OLD-NS/Vault.wiki', 'secret-group/vault.wiki'],
    ['old-ns/vault.design', 'secret-group/vault.design'],
    ['old-ns/vault/snippets/7', 'secret-group/vault/snippets/7'],
    ['group/project.wiki', 'group/project.wiki'],
    // A project whose own name ends in .wiki is that project (GitLab tries the project first).
    ['group/odd.wiki', 'group/odd.wiki'],
    ['group/project/snippets/9', 'group/project/snippets/9'],
    // Group wikis: `group.wiki.git`, `parent/sub.wiki.git`.
    ['secret-group.wiki', 'secret-group.wiki'],
    ['parent/sub.wiki', 'parent/sub.wiki'],
  ])('%s → %s', async (written, current) => {
    expect(await gitlab().resolver.currentPath(written)).toBe(current)
  })

  it('a wiki of no project or group GitLab knows is refused: it may be a group\'s former path, which the API does not follow', async () => {
    await expect(gitlab().resolver.currentPath('old-group.wiki')).rejects.toThrow()
    await expect(gitlab().resolver.currentPath('old-parent/sub.wiki')).rejects.toThrow()
  })

  it('a design or snippet repository, or a project, GitLab does not know is no project (GitLab answers 404 itself)', async () => {
    const { resolver } = gitlab()
    expect(await resolver.currentPath('nowhere/thing.design')).toBeUndefined()
    expect(await resolver.currentPath('nowhere/thing/snippets/3')).toBeUndefined()
    expect(await resolver.currentPath('nowhere/thing')).toBeUndefined()
  })

  it('asks as GitLab finds: the project first, then the container; a path without "/" is never a project', async () => {
    const first = gitlab()
    await first.resolver.currentPath('old-ns/vault.wiki')
    expect(first.asked).toEqual(['/api/v4/projects/old-ns%2Fvault.wiki', '/api/v4/projects/old-ns%2Fvault'])
    const group = gitlab()
    await group.resolver.currentPath('secret-group.wiki')
    expect(group.asked).toEqual(['/api/v4/groups/secret-group?with_projects=false'])
    const single = gitlab()
    expect(await single.resolver.currentPath('vault')).toBeUndefined()
    expect(single.asked).toEqual([])
  })

  it('rejects when GitLab cannot be asked (the request is denied), for every kind of repository', async () => {
    for (const path of ['old-ns/vault', 'old-ns/vault.wiki', 'old-ns/vault.design', 'old-ns/vault/snippets/7', 'secret-group.wiki']) {
      await expect(gitlab({ failing: true }).resolver.currentPath(path), path).rejects.toThrow()
    }
  })
})

describe('lookups GitLab is asked at once', () => {
  it(`are at most ${MAX_CONCURRENT_LOOKUPS}: a client naming a new path in every request queues, it does not flood GitLab`, async () => {
    let inFlight = 0
    let most = 0
    const release: (() => void)[] = []
    const fetch = (async (url: string) => {
      inFlight++
      most = Math.max(most, inFlight)
      await new Promise<void>((resolve) => release.push(resolve))
      inFlight--
      const id = decodeURIComponent(new URL(url).pathname.split('/').pop()!)
      return new Response(JSON.stringify({ path_with_namespace: id }), { status: 200 })
    }) as typeof globalThis.fetch
    const resolver = createProjectResolver({ upstreamUrl: 'http://gitlab.invalid', apiToken: 'token', fetch })
    const lookups = Array.from({ length: 100 }, (_, i) => resolver.currentPath(`ns/project-${i}`))
    await expect.poll(() => release.length).toBe(MAX_CONCURRENT_LOOKUPS)
    // Let them answer a few at a time; every lookup still completes.
    while (release.length > 0) {
      release.splice(0).forEach((answer) => answer())
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
    expect(await Promise.all(lookups)).toEqual(Array.from({ length: 100 }, (_, i) => `ns/project-${i}`))
    expect(most).toBe(MAX_CONCURRENT_LOOKUPS)
  })
})
