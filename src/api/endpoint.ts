import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AccountState, User, UserRole } from '../management/index.js';
import type { Decision, Resource } from './access.js';
import type { Principal } from './auth.js';
import type { Schema } from './schema.js';

/**
 * The endpoint table's types and the error handlers throw: shared by the router (app.ts), the
 * endpoint definitions (routes.ts) and the OpenAPI builder (openapi.ts), so none of them imports
 * another for its types.
 */

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** What an endpoint needs from its caller. */
export type Access =
  | { kind: 'public' }
  /** Any authenticated user; the handler checks ownership. */
  | { kind: 'authenticated' }
  | { kind: 'resource'; resource: Resource; write: boolean; ownerOnly?: boolean; list?: boolean };

export interface Ctx {
  req: FastifyRequest;
  reply: FastifyReply;
  params: Record<string, string>;
  query: Record<string, string | undefined>;
  body: Record<string, unknown>;
  now: number;
  /** Set for every endpoint but the public ones. */
  principal: Principal | undefined;
  decision: Decision;
}

export interface AuthedCtx extends Ctx {
  principal: Principal;
  state: AccountState;
  accountId: string;
  user: User;
  role: UserRole;
}

export interface Endpoint {
  method: HttpMethod;
  /** OpenAPI-style path: /api/peers/{peerId}. */
  path: string;
  summary: string;
  tag: string;
  access: Access;
  body?: Schema;
  handler: (ctx: AuthedCtx) => Promise<unknown>;
}

/** Thrown by handlers: answered with this HTTP status and `{ message, code }`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

