/**
 * The methods GitLab serves. Any other is refused (405) before the policy: a rule can name only these,
 * so a method outside them (`PROPFIND`, `PURGE`, `TRACE`) would slip past a rule that lists methods.
 */
export const HTTP_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])
