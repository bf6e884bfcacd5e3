/**
 * `GET …/info/refs?service=git-receive-pack` starts a push: attribution tells the policy to read it as
 * the `POST …/git-receive-pack` that follows (`policyMethod`), so a GET/HEAD reading rule does not
 * cover it. So are the websocket handshakes of job and environment terminals and the job service proxy:
 * GETs that give a shell. Everything else keeps the request's own method.
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

describe('attribute: terminal and service proxy websockets', () => {
  it.each([
    ['GET', '/group/project/-/jobs/42/terminal.ws'],
    ['HEAD', '/group/project/-/jobs/42/terminal.ws'],
    ['GET', '/group/project/-/jobs/42/proxy.ws'],
    ['GET', '/group/project/-/environments/7/terminal.ws'],
    ['GET', '/group/sub/deeper/project/-/jobs/1/terminal.ws'],
    ['GET', '/group/project/-/jobs/007/terminal.ws'],
    // Any case: what is not GitLab's spelling only refuses more.
    ['GET', '/group/project/-/JOBS/42/Terminal.WS'],
    ['GET', '/Group/Project/-/Environments/7/terminal.ws'],
  ])('%s %s is read as POST of its project', (method, path) => {
    expect(attribute(method, path)).toEqual({ route: 'web', project: path.slice(1, path.indexOf('/-/')), policyMethod: 'POST' })
  })

  it.each([
    ['GET', '/group/project/-/jobs/42'],
    // The terminal's page: HTML, the shell is only behind its websocket.
    ['GET', '/group/project/-/jobs/42/terminal'],
    ['GET', '/group/project/-/jobs/42/terminal.ws/x'],
    ['GET', '/group/project/-/jobs/42/terminal.wss'],
    ['GET', '/group/project/-/jobs/x42/terminal.ws'],
    ['GET', '/group/project/-/jobs/42/raw.ws'],
    ['GET', '/group/project/-/environments/7/proxy.ws'],
    ['GET', '/group/project/-/pipelines/1/terminal.ws'],
    // Files named so in a repository: the project's first `/-/` is the blob route.
    ['GET', '/group/project/-/blob/main/-/jobs/1/terminal.ws'],
    ['GET', '/group/project/-/raw/main/-/environments/1/terminal.ws'],
    ['GET', '/group/project/-/tree/main/-/jobs/1/proxy.ws'],
    ['GET', '/-/cable'],
    ['POST', '/group/project/-/jobs/42/terminal.ws'],
  ])('%s %s keeps its own method', (method, path) => {
    expect(attribute(method, path)).not.toHaveProperty('policyMethod')
  })

  it('the blob of a file named terminal.ws stays a read of its project', () => {
    expect(attribute('GET', '/group/project/-/blob/main/-/jobs/1/terminal.ws')).toEqual({ route: 'web', project: 'group/project' })
  })
})
