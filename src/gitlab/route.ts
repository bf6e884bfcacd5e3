/** What kind of GitLab traffic a request is (the access log's `iap.gitlab.route`). */
export type RouteClass = 'web' | 'api' | 'graphql' | 'git' | 'lfs' | 'cable' | 'iap' | 'other'
