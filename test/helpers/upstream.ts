/** The GitLab-shaped upstream lives in src/upstream (the demo and benchmarks use it too). */
export { startUpstream, createBareRepo, type Upstream, type UpstreamOptions, type RecordedRequest } from '../../src/upstream/index.ts'
