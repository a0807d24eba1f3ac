import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { FlowQueryError, type FlowStore } from '../flow/index.js';
import { type GeoDatabase, geoDatabase } from '../geo/index.js';
import { type AccountManager, ManagementError } from '../management/index.js';
import { decide } from './access.js';
import { AUTH_FAILURE_MESSAGE, AuthError, AuthFailureLimiter, Authenticator, JwtValidator, type OidcIssuerConfig, type Principal, loginKey } from './auth.js';
import { type AuthedCtx, type Ctx, type Endpoint, HttpError } from './endpoint.js';
import { type AuthorizeParams, EmbeddedIdp, IDP_BASE_PATH, SESSION_COOKIE, isAllowedRedirect } from './idp.js';
import { buildOpenApi } from './openapi.js';
import { NO_CONTROL_CHARS } from './schema.js';
import { PasswordCheckBusyError } from './password.js';
import { endpoints } from './routes.js';

/**
 * The REST API (management-api.md): a Fastify app with NetBird's paths and JSON shapes, PAT and JWT
 * authentication, role checks on every endpoint, the embedded identity provider under /oauth2 and
 * the OpenAPI document at /api/openapi.json. It needs no socket: netbird-server hands it the
 * plain-HTTP requests of its one port (`api.handle(req, res)`), tests use `api.app.inject()`.
 */

export interface ApiOptions {
  manager: AccountManager;
  /** Base URL clients use for this server (issuer of the embedded IdP is `${publicUrl}/oauth2`). */
  publicUrl: string;
  /** Serve the embedded identity provider (default true). */
  embeddedIdp?: boolean;
  /** External OIDC issuers whose JWTs are accepted. */
  oidc?: OidcIssuerConfig[];
  /** Let POST /api/setup issue a PAT when `create_pat` is true (default: env NB_SETUP_PAT_ENABLED, else true). */
  setupPatEnabled?: boolean;
  /** Largest accepted request body, bytes (default 1 MiB). */
  bodyLimit?: number;
  /**
   * Authentication failures allowed per key and window before 429 (default 20 per minute); the key
   * is the client address for tokens and codes, address and account name for passwords.
   */
  authFailures?: { max: number; windowMs: number };
  /**
   * Reverse proxies (addresses or CIDRs) whose X-Forwarded-For names the real client: limits then
   * apply to that client instead of the proxy. Default none (the socket's peer is the client).
   */
  trustedProxies?: string[];
  /** Version string for /api/instance/version. */
  version?: string;
  /** Traffic-event store behind GET /api/events/network-traffic (none: the endpoint answers empty pages). */
  flowStore?: Pick<FlowStore, 'query'>;
  /** Geolocation for /api/locations (default: the database shipped with the server; false: none). */
  geo?: GeoDatabase | false;
  /** Lifetime of the embedded IdP's access tokens, seconds (default: env NB_IDP_TOKEN_TTL, else 3600). */
  idpTokenTtlSeconds?: number;
  /** Seals the embedded IdP's signing key in the store (see EmbeddedIdpOptions.keyEncryptionKey). */
  idpKeyEncryptionKey?: Uint8Array;
  /** Origins (besides loopback and publicUrl's) whose pages may sign in at the embedded IdP (default: env NB_IDP_REDIRECT_ORIGINS, comma-separated). */
  idpRedirectOrigins?: string[];
  log?: (msg: string) => void;
}

/** What a peer needs for the authorization-code + PKCE flow (ProviderConfig). */
export interface PkceFlowConfig {
  clientId: string;
  audience: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  scope: string;
  /** Loopback callback URLs the client may listen on. */
  redirectUrls: string[];
}

/** What a peer needs to run the OAuth2 device flow against this server (ProviderConfig). */
export interface DeviceFlowConfig {
  clientId: string;
  audience: string;
  deviceAuthEndpoint: string;
  tokenEndpoint: string;
  scope: string;
}

const KIND_STATUS: Record<ManagementError['kind'], number> = {
  not_found: 404,
  invalid_argument: 422,
  permission_denied: 403,
  failed_precondition: 412,
  already_exists: 409,
  unprocessable: 422,
  unauthenticated: 401,
  internal: 500,
};

export interface Api {
  app: FastifyInstance;
  idp: EmbeddedIdp | undefined;
  auth: Authenticator;
  endpoints: readonly Endpoint[];
  /** Every route Fastify registered (method, URL pattern), as seen by its onRoute hook. */
  routes: ReadonlyArray<{ method: string; url: string }>;
  /** Request handler for a node HTTP server (what netbird-server mounts). */
  handle(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void;
  /** LoginRequest.jwtToken resolver for the management gRPC Login (one-time use, §4.2). */
  resolvePeerJwt(token: string): Promise<string>;
  /** OAuth2 device-flow parameters for GetDeviceAuthorizationFlow (undefined without the embedded IdP). */
  deviceFlow(): DeviceFlowConfig | undefined;
  /** Authorization-code + PKCE parameters for GetPKCEAuthorizationFlow (undefined without the embedded IdP). */
  pkceFlow(): PkceFlowConfig | undefined;
  close(): Promise<void>;
}

function validationMessage(err: FastifyError): { status: number; message: string } {
  const v = err.validation?.[0];
  if (!v) return { status: 400, message: err.message };
  const params = v.params as { missingProperty?: string; allowedValues?: unknown[] };
  const path = v.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const field = [path, params.missingProperty].filter(Boolean).join('.') || 'body';
  let message = `${field}: ${v.message ?? 'is invalid'}`;
  if (params.missingProperty) message = `${field}: field is required`;
  if (params.allowedValues) message = `${field}: must be one of ${params.allowedValues.map((x) => JSON.stringify(x)).join(', ')}`;
  if (v.keyword === 'pattern' && (params as { pattern?: string }).pattern === NO_CONTROL_CHARS) message = `${field}: must not contain control characters (NUL, CR, LF, tab, ...)`;
  if (v.keyword === 'maxLength') message = `${field}: is too long (at most ${(params as { limit?: number }).limit} characters)`;
  if (v.keyword === 'maxItems') message = `${field}: has too many entries (at most ${(params as { limit?: number }).limit})`;
  // A wrong JSON type is a malformed body (400); a missing field or bad value breaks a rule (422).
  return { status: v.keyword === 'type' ? 400 : 422, message };
}

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
/** Loopback ports the NetBird client listens on for the PKCE callback. */
const PKCE_REDIRECT_URLS = ['http://localhost:53000/', 'http://localhost:54000/'];
const DEVICE_ERRORS: Record<string, string> = {
  authorization_pending: 'the user has not approved this device yet',
  slow_down: 'polling too fast; wait the advertised interval',
  expired_token: 'the device code expired; start again',
  invalid_grant: 'unknown device code',
};

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(p: AuthorizeParams, error: string, form: boolean): string {
  const hidden = Object.entries(p)
    .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(String(v))}">`)
    .join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>NetBird login</title></head><body>
<h1>Log in to NetBird</h1>${error ? `<p role="alert">${escapeHtml(error)}</p>` : ''}${
    form
      ? `<form method="post">${hidden}<label>E-mail <input name="email" type="email" autocomplete="username" required></label><br>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label><br>
<button type="submit">Log in</button></form>`
      : ''
  }</body></html>`;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

function sessionCookie(value: string, secure: boolean, maxAgeSeconds = 7 * 86400): string {
  // SameSite=None (HTTPS only) lets a dashboard on another site renew silently in a frame.
  return `${SESSION_COOKIE}=${encodeURIComponent(value)}; Path=${IDP_BASE_PATH}; HttpOnly; Max-Age=${maxAgeSeconds}; ${secure ? 'Secure; SameSite=None' : 'SameSite=Lax'}`;
}

function devicePage(userCode: string, error: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>NetBird login</title></head><body>
<h1>Log in a NetBird device</h1>${error ? `<p role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post"><label>Code <input name="user_code" value="${escapeHtml(userCode)}" required></label><br>
<label>E-mail <input name="email" type="email" autocomplete="username" required></label><br>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label><br>
<button type="submit">Approve</button></form></body></html>`;
}

export async function createApi(opts: ApiOptions): Promise<Api> {
  const manager = opts.manager;
  const log = opts.log ?? ((): void => {});
  const publicUrl = opts.publicUrl.replace(/\/$/, '');
  const envTtl = Number(process.env.NB_IDP_TOKEN_TTL);
  const tokenTtlSeconds = opts.idpTokenTtlSeconds ?? (Number.isInteger(envTtl) && envTtl >= 5 ? envTtl : undefined);
  const redirectOrigins = opts.idpRedirectOrigins ?? (process.env.NB_IDP_REDIRECT_ORIGINS ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  const idp = opts.embeddedIdp === false ? undefined : await EmbeddedIdp.open(manager, { issuer: `${publicUrl}${IDP_BASE_PATH}`, tokenTtlSeconds, redirectOrigins, keyEncryptionKey: opts.idpKeyEncryptionKey });
  const secureCookies = publicUrl.startsWith('https:');
  const auth = new Authenticator(manager, new JwtValidator(idp, opts.oidc ?? []));
  const limiter = new AuthFailureLimiter(opts.authFailures?.max, opts.authFailures?.windowMs);
  const setupPatEnabled = opts.setupPatEnabled ?? process.env.NB_SETUP_PAT_ENABLED !== 'false';

  const app = Fastify({
    logger: false,
    bodyLimit: opts.bodyLimit ?? 1024 * 1024,
    trustProxy: opts.trustedProxies?.length ? opts.trustedProxies : false,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  });

  // The token endpoint takes form bodies; API clients like `curl -d '{...}'` send JSON labelled as a
  // form (or unlabelled), which the reference server accepts too, so a JSON-looking body is JSON.
  const lenient = (_req: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void => {
    const text = body.toString();
    const t = text.trimStart();
    if (t.startsWith('{') || t.startsWith('[')) {
      try {
        done(null, JSON.parse(text));
      } catch (err) {
        done(new HttpError(400, `couldn't parse JSON request: ${(err as Error).message}`));
      }
      return;
    }
    done(null, t === '' ? undefined : Object.fromEntries(new URLSearchParams(text)));
  };
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, lenient);
  // Clients label body-less requests (DELETE, GET) as JSON too (`curl -X DELETE -H 'Content-Type:
  // application/json'`, generic API clients); NetBird ignores the label there, so an empty JSON body
  // is no body, and routes that need one say so.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = body.toString();
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(new HttpError(400, `couldn't parse JSON request: ${(err as Error).message}`));
    }
  });
  app.addContentTypeParser('*', { parseAs: 'string' }, lenient);

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    if (err.validation) {
      const { status, message } = validationMessage(err);
      return reply.code(status).send({ message, code: status });
    }
    if (err instanceof HttpError) return reply.code(err.status).send({ message: err.message, code: err.status });
    if (err instanceof PasswordCheckBusyError) return reply.code(429).header('retry-after', '1').send({ message: err.message, code: 429 });
    if (err instanceof FlowQueryError) return reply.code(422).send({ message: err.message, code: 422 });
    if (err instanceof ManagementError) {
      const status = KIND_STATUS[err.kind];
      return reply.code(status).send({ message: err.message, code: status });
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send({ message: `request body is larger than ${opts.bodyLimit ?? 1048576} bytes`, code: 413 });
    if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err instanceof SyntaxError) {
      return reply.code(400).send({ message: `couldn't parse JSON request: ${err.message}`, code: 400 });
    }
    if (err.statusCode && err.statusCode < 500) return reply.code(err.statusCode).send({ message: err.message, code: err.statusCode });
    log(`api: internal error: ${err.stack ?? String(err)}`);
    return reply.code(500).send({ message: 'internal server error', code: 500 });
  });

  // CORS as in NetBird (all origins): dashboards served elsewhere call /api and the IdP with bearer
  // tokens, never cookies, so "*" gives away nothing. Preflights are answered before routing.
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0]!;
    if (!req.headers.origin || !(path.startsWith('/api/') || path === '/api' || path.startsWith(`${IDP_BASE_PATH}/`))) return;
    reply.header('access-control-allow-origin', '*');
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
      reply
        .header('access-control-allow-methods', 'GET, POST, PUT, DELETE, OPTIONS')
        .header('access-control-allow-headers', req.headers['access-control-request-headers'] ?? 'authorization, content-type')
        .header('access-control-max-age', '600')
        .code(204);
      return reply.send();
    }
  });

  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ message: `no such endpoint: ${req.method} ${req.url.split('?')[0]}`, code: 404 });
  });

  const registered: Array<{ method: string; url: string }> = [];
  app.addHook('onRoute', (r) => {
    for (const m of Array.isArray(r.method) ? r.method : [r.method]) if (m !== 'HEAD') registered.push({ method: m, url: r.url });
  });
  const geo = opts.geo === false ? undefined : (opts.geo ?? geoDatabase());
  const list = endpoints({ manager, idp, auth, limiter, setupPatEnabled, version: opts.version ?? 'development', flowStore: opts.flowStore, oidc: opts.oidc, geo });

  for (const ep of list) {
    app.route({
      method: ep.method,
      url: ep.path.replace(/\{(\w+)\}/g, ':$1'),
      schema: ep.body ? { body: ep.body } : undefined,
      handler: async (req, reply) => {
        const ctx: Ctx = {
          req,
          reply,
          params: (req.params ?? {}) as Record<string, string>,
          query: (req.query ?? {}) as Record<string, string | undefined>,
          body: (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>,
          now: manager.now(),
          principal: undefined,
          decision: 'allow',
        };
        if (ep.access.kind === 'public') return ep.handler(ctx as AuthedCtx);
        // Tokens are checked even for a client over its failure limit (they are not guessable, and a
        // valid one must keep working); only failures count, and over the limit they answer 429.
        let principal: Principal;
        try {
          principal = await auth.authenticate(req.headers.authorization);
        } catch (err) {
          if (err instanceof AuthError) {
            if (err.status !== 401) throw new HttpError(err.status, err.message);
            if (!limiter.failed(req.ip)) throw new HttpError(429, 'too many failed authentication attempts; try again later');
            log(`api: ${req.method} ${req.url.split('?')[0]} refused: ${err.message}`);
            throw new HttpError(401, AUTH_FAILURE_MESSAGE[err.failure]);
          }
          throw err;
        }
        const a: AuthedCtx = {
          ...ctx,
          principal,
          state: principal.state,
          accountId: principal.state.id,
          user: principal.user,
          role: principal.user.role,
        };
        if (ep.access.kind === 'resource') {
          const { resource, write, ownerOnly } = ep.access;
          if (ownerOnly && a.role !== 'owner') throw new HttpError(403, 'only the account owner may do this');
          a.decision = decide(a.role, resource, write, principal.state.account.settings.regularUsersViewBlocked);
          if (a.decision === 'deny') throw new HttpError(403, `role ${a.role} may not ${write ? 'change' : 'read'} ${resource.replace('_', ' ')}`);
          if (a.decision === 'limited') {
            if (ep.access.list) return [];
            throw new HttpError(403, `role ${a.role} may not read ${resource.replace('_', ' ')} in this account`);
          }
        }
        return manager.asInitiator(principal.user.id, () => ep.handler(a));
      },
    });
  }

  const openapi = buildOpenApi(list, opts.version ?? 'development', publicUrl);
  app.get('/api/openapi.json', async () => openapi);

  if (idp) {
    app.get(`${IDP_BASE_PATH}/.well-known/openid-configuration`, async () => idp.discovery());
    app.get(`${IDP_BASE_PATH}/keys`, async () => idp.jwks());
    app.post(`${IDP_BASE_PATH}/token`, async (req, reply) => {
      const body = (req.body ?? {}) as Record<string, string | undefined>;
      const ip = req.ip;
      reply.header('cache-control', 'no-store');
      const limited = (): FastifyReply => reply.code(429).send({ error: 'slow_down', error_description: 'too many failed attempts; try again later' });
      if (!idp.acceptsClient(body.client_id)) {
        return reply.code(401).send({ error: 'invalid_client', error_description: `unknown client_id; use one of ${idp.clientIds.join(', ')}` });
      }
      if (body.grant_type === 'refresh_token') {
        const tokens = await idp.refresh(body.refresh_token ?? '', body.client_id);
        if (!tokens) {
          if (!limiter.failed(ip)) return limited();
          return reply.code(400).send({ error: 'invalid_grant', error_description: 'the refresh token is unknown, used, expired or for another client; sign in again' });
        }
        return tokens;
      }
      if (body.grant_type === DEVICE_GRANT) {
        const r = await idp.pollDevice(body.device_code ?? '');
        if (r.status === 'ok') return r.tokens;
        return reply.code(400).send({ error: r.status, error_description: DEVICE_ERRORS[r.status] });
      }
      if (body.grant_type === 'authorization_code') {
        const tokens = await idp.exchangeCode(body.code ?? '', body.code_verifier ?? '', body.redirect_uri ?? '', body.client_id);
        if (!tokens) {
          if (!limiter.failed(ip)) return limited();
          return reply.code(400).send({ error: 'invalid_grant', error_description: 'unknown, used or expired code, or a verifier/redirect_uri that does not match' });
        }
        return tokens;
      }
      if (body.grant_type !== 'password') {
        return reply.code(400).send({ error: 'unsupported_grant_type', error_description: `this issuer supports authorization_code, refresh_token, password and ${DEVICE_GRANT}` });
      }
      const attempt = limiter.begin(loginKey(ip, body.username ?? ''));
      if (!attempt) return limited();
      let tokens: Awaited<ReturnType<typeof idp.passwordGrant>>;
      try {
        tokens = await idp.passwordGrant(body.username ?? '', body.password ?? '', body.client_id);
      } finally {
        attempt.done();
      }
      if (!tokens) {
        attempt.fail();
        return reply.code(400).send({ error: 'invalid_grant', error_description: 'wrong e-mail or password' });
      }
      return tokens;
    });
    app.post(`${IDP_BASE_PATH}/device/code`, async (req, reply) => {
      const body = (req.body ?? {}) as Record<string, string | undefined>;
      reply.header('cache-control', 'no-store');
      if (!idp.acceptsClient(body.client_id)) {
        return reply.code(401).send({ error: 'invalid_client', error_description: `unknown client_id; use one of ${idp.clientIds.join(', ')}` });
      }
      const started = idp.startDevice(req.ip);
      if (!started) return reply.code(429).send({ error: 'slow_down', error_description: 'too many device logins pending from this address; finish or wait for one to expire' });
      return started;
    });
    // The verification page: a plain HTML form (user code, e-mail, password), no script needed.
    app.get(`${IDP_BASE_PATH}/device`, async (req, reply) => {
      const code = String((req.query as Record<string, unknown>).user_code ?? '');
      reply.type('text/html; charset=utf-8').header('cache-control', 'no-store');
      return devicePage(code, '');
    });
    app.post(`${IDP_BASE_PATH}/device`, async (req, reply) => {
      const body = (req.body ?? {}) as Record<string, string | undefined>;
      const ip = req.ip;
      reply.type('text/html; charset=utf-8').header('cache-control', 'no-store');
      const tooMany = (): FastifyReply => reply.code(429).send(devicePage(body.user_code ?? '', 'Too many failed attempts; try again later.'));
      // Code guessing is limited per address, password guessing per address and account.
      if (limiter.blocked(ip)) return tooMany();
      const attempt = limiter.begin(loginKey(ip, body.email ?? ''));
      if (!attempt) return tooMany();
      let r: Awaited<ReturnType<typeof idp.approveDevice>>;
      try {
        r = await idp.approveDevice(body.user_code ?? '', body.email ?? '', body.password ?? '');
      } finally {
        attempt.done();
      }
      if (r === 'ok') return '<!doctype html><title>NetBird login</title><p>Device approved. You can close this window and return to your terminal.</p>';
      if (r === 'bad_code') limiter.fail(ip);
      else attempt.fail();
      return reply.code(400).send(devicePage(body.user_code ?? '', r === 'bad_code' ? 'Unknown or expired code.' : 'Wrong e-mail or password.'));
    });
    const authParams = (src: Record<string, unknown>): AuthorizeParams => {
      const out: Record<string, string> = {};
      for (const k of ['response_type', 'client_id', 'redirect_uri', 'code_challenge', 'code_challenge_method', 'state', 'scope', 'nonce', 'prompt']) {
        if (typeof src[k] === 'string') out[k] = src[k] as string;
      }
      return out;
    };
    app.get(`${IDP_BASE_PATH}/auth`, async (req, reply) => {
      const p = authParams(req.query as Record<string, unknown>);
      reply.type('text/html; charset=utf-8').header('cache-control', 'no-store');
      const problem = idp.checkAuthorize(p);
      if (problem) return reply.code(400).send(loginPage(p, problem, false));
      if (p.prompt === 'none') return reply.redirect(await idp.authorizeSilently(p, cookieValue(req.headers.cookie, SESSION_COOKIE)), 302);
      return loginPage(p, '', true);
    });
    app.post(`${IDP_BASE_PATH}/auth`, async (req, reply) => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const p = authParams(body);
      reply.type('text/html; charset=utf-8').header('cache-control', 'no-store');
      const problem = idp.checkAuthorize(p);
      if (problem) return reply.code(400).send(loginPage(p, problem, false));
      const attempt = limiter.begin(loginKey(req.ip, String(body.email ?? '')));
      if (!attempt) return reply.code(429).send(loginPage(p, 'Too many failed attempts; try again later.', true));
      let signedIn: Awaited<ReturnType<typeof idp.authorize>>;
      try {
        signedIn = await idp.authorize(p, String(body.email ?? ''), String(body.password ?? ''));
      } finally {
        attempt.done();
      }
      if (!signedIn) {
        attempt.fail();
        return reply.code(400).send(loginPage(p, 'Wrong e-mail or password.', true));
      }
      // Remembered for prompt=none (silent renewal by dashboards); only the issuer's paths see it.
      reply.header('set-cookie', sessionCookie(await idp.sessionFor(signedIn.userId), secureCookies));
      return reply.redirect(signedIn.location, 302);
    });
    // RP-initiated logout: forgets the browser's session here, then back to the app if it is ours.
    app.get(`${IDP_BASE_PATH}/logout`, async (req, reply) => {
      const q = req.query as Record<string, unknown>;
      const back = typeof q.post_logout_redirect_uri === 'string' ? q.post_logout_redirect_uri : '';
      reply.header('set-cookie', sessionCookie('', secureCookies, 0)).header('cache-control', 'no-store');
      if (back && isAllowedRedirect(back, idp.issuer, idp.redirectOrigins)) {
        const url = new URL(back);
        if (typeof q.state === 'string') url.searchParams.set('state', q.state);
        return reply.redirect(url.toString(), 302);
      }
      return reply.type('text/html; charset=utf-8').send('<!doctype html><title>NetBird</title><p>You are signed out.</p>');
    });
    app.get(`${IDP_BASE_PATH}/userinfo`, async (req) => {
      const header = req.headers.authorization ?? '';
      if (!/^bearer /i.test(header)) throw new HttpError(401, 'send Authorization: Bearer <token>');
      const p = await auth.authenticate(header).catch((e: unknown) => {
        throw e instanceof AuthError ? new HttpError(e.status, e.message) : e;
      });
      return { sub: p.user.id, email: p.user.email, name: p.user.name };
    });
  }

  await app.ready();
  return {
    app,
    idp,
    auth,
    endpoints: list,
    routes: registered,
    handle: (req, res) => app.routing(req, res),
    resolvePeerJwt: (token) => auth.resolvePeerJwt(token),
    deviceFlow: () =>
      idp
        ? { clientId: idp.clientId, audience: idp.clientId, deviceAuthEndpoint: `${idp.issuer}/device/code`, tokenEndpoint: `${idp.issuer}/token`, scope: 'openid profile email' }
        : undefined,
    pkceFlow: () =>
      idp
        ? {
            clientId: idp.clientId,
            audience: idp.clientId,
            authorizationEndpoint: `${idp.issuer}/auth`,
            tokenEndpoint: `${idp.issuer}/token`,
            scope: 'openid profile email',
            redirectUrls: PKCE_REDIRECT_URLS,
          }
        : undefined,
    close: () => app.close(),
  };
}
