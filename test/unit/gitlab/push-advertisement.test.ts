/**
 * `GET …/info/refs?service=git-receive-pack` starts a push: attribution tells the policy to read it as
 * the `POST …/git-receive-pack` that follows (`policyMethod`), so a GET/HEAD reading rule does not
 * cover it. Everything else keeps the request's own method.
 */
import { describe, expect, it } from 'vitest'
import { attribute } from '../../../src/gitlab/attribute.ts'

describe('attribute: the receive-pack advertisement', () => {
  it.each([
    ['GET', '/group/project.git/info/refs', 'service=git-receive-pack'],
    ['HEAD', '/group/project.git/info/refs', 'service=git-receive-pack'],
    ['GET', '/group/sub/project.git/info/refs', 'service=git-receive-pack'],
    ['GET', '/group/project/info/refs', 'service=git-receive-pack'],
    ['GET', '/group/project.wiki.git/info/refs', 'service=git-receive-pack'],
    ['GET', '/-/push_from_secondary/2/group/project.git/info/refs', 'service=git-receive-pack'],
    // Every spelling a server could read as that service: encoded names and values, any order, duplicates.
    ['GET', '/group/project.git/info/refs', 'service=git%2Dreceive%2Dpack'],
    ['GET', '/group/project.git/info/refs', '%73ervice=git-receive-pack'],
    ['GET', '/group/project.git/info/refs', 'x=1&service=git-receive-pack'],
    ['GET', '/group/project.git/info/refs', 'service=git-upload-pack&service=git-receive-pack'],
    ['GET', '/group/project.git/info/refs', 'x=1;service=git-receive-pack'],
    ['GET', '/group/project.git/info/refs', 'service=GIT-RECEIVE-PACK'],
  ])('%s %s?%s is read as POST', (method, path, query) => {
    expect(attribute(method, path, query)).toMatchObject({ route: 'git', policyMethod: 'POST' })
  })

  it.each([
    ['GET', '/group/project.git/info/refs', 'service=git-upload-pack'],
    ['GET', '/group/project.git/info/refs', ''],
    ['GET', '/group/project.git/info/refs', 'service=git-receive-packs'],
    ['GET', '/group/project.git/info/refs', 'xservice=git-receive-pack'],
    ['POST', '/group/project.git/git-receive-pack', ''],
    ['POST', '/group/project.git/git-upload-pack', ''],
    ['DELETE', '/group/project.git/info/refs', 'service=git-receive-pack'],
    ['GET', '/group/project/-/blob/main/info/refs', 'service=git-receive-pack'],
    ['GET', '/group/project.git/info/lfs/objects/batch', 'service=git-receive-pack'],
    ['GET', '/api/v4/projects/1/info/refs', 'service=git-receive-pack'],
  ])('%s %s?%s keeps its own method', (method, path, query) => {
    expect(attribute(method, path, query)).not.toHaveProperty('policyMethod')
  })
})
