/**
 * The small part of oidc-provider v9 the dev IdP uses (the package ships no type declarations).
 * Loose on purpose: configuration is checked by oidc-provider itself at construction.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http'

  export interface InteractionPrompt {
    readonly name: string
    readonly reasons: readonly string[]
    readonly details: {
      readonly missingOIDCScope?: readonly string[]
      readonly missingOIDCClaims?: readonly string[]
      readonly missingResourceScopes?: Readonly<Record<string, readonly string[]>>
      readonly [key: string]: unknown
    }
  }

  export interface Interaction {
    readonly uid: string
    readonly prompt: InteractionPrompt
    readonly params: Readonly<Record<string, unknown>>
    readonly session?: { readonly accountId?: string; readonly uid?: string }
    readonly grantId?: string
  }

  export interface Grant {
    addOIDCScope(scope: string): void
    addOIDCClaims(claims: readonly string[]): void
    addResourceScope(resource: string, scope: string): void
    save(): Promise<string>
    readonly accountId?: string
    readonly clientId?: string
  }

  export interface GrantModel {
    new (init: { accountId?: string; clientId?: string }): Grant
    find(id: string): Promise<Grant | undefined>
  }

  export default class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>)
    readonly issuer: string
    readonly Grant: GrantModel
    callback(): (req: IncomingMessage, res: ServerResponse) => void
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>
    interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, options?: { mergeWithLastSubmission?: boolean }): Promise<void>
    on(event: string, listener: (...args: unknown[]) => void): this
  }

  export const errors: {
    readonly InvalidTarget: new (description?: string) => Error
    readonly InvalidGrant: new (description?: string) => Error
  }
}
