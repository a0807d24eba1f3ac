/**
 * REST API of the management service (management-api.md): NetBird's paths and JSON shapes on
 * Fastify, PAT and JWT (OIDC) authentication with an embedded identity provider, role checks, and
 * the OpenAPI document. `createApi()` builds it; netbird-server mounts `api.handle` on its port and
 * passes `api.resolvePeerJwt` to the management gRPC Login.
 */
export { createApi } from './app.js';
export type { Api, ApiOptions, DeviceFlowConfig, PkceFlowConfig } from './app.js';
export { HttpError } from './endpoint.js';
export type { Endpoint, HttpMethod } from './endpoint.js';
export { AuthError, AuthFailureLimiter, Authenticator, JwtValidator } from './auth.js';
export type { OidcIssuerConfig, Principal, VerifiedJwt } from './auth.js';
export { EmbeddedIdp, IDP_BASE_PATH, IDP_SECRET_FILE, DEFAULT_CLIENT_ID, isAllowedRedirect } from './idp.js';
export type { AuthorizeParams, DeviceCodeResponse, DevicePoll, EmbeddedIdpOptions, TokenResponse } from './idp.js';
export { decide } from './access.js';
export type { Decision, Resource } from './access.js';
export { PasswordCheckBusyError, hashPassword, passwordCheckStats, verifyPassword } from './password.js';
export { activityText } from './json.js';
