/** The outcome of authentication + policy for one request: a value, applied by the pipeline and printed by logs and `explain`. */
export type DecisionResult = 'allow' | 'deny' | 'challenge'

export interface Decision {
  readonly result: DecisionResult
  /** Name of the rule that decided; `null` when `policy.default` decided or the request never reached the policy. */
  readonly rule: string | null
  /** Stable kebab-case reason (docs/errors.md lists them all). */
  readonly reason: string
}
