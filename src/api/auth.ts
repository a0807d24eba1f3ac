import { createHash } from 'node:crypto';
import { type JWTPayload, type JWTVerifyGetKey, createRemoteJWKSet, decodeJwt, errors as joseErrors, jwtVerify } from 'jose';
import { type AccountManager, type AccountState, ManagementError, type User } from '../management/index.js';
import type { EmbeddedIdp } from './idp.js';

/**
 * Authentication for the REST API and for peer logins with a JWT:
 * - `Authorization: Token <PAT>`: personal access tokens (AccountManager.authenticateToken).
 * - `Authorization: Bearer <JWT>`: tokens of the embedded identity provider or of configured external
 *   OIDC issuers, verified with jose against the issuer's JWKS (signature, issuer, audience, expiry).
 * A validated JWT provisions its user on first use and applies IdP group sync (management-api.md §2).
 */

export interface OidcIssuerConfig {
  /** Issuer URL exactly as in the tokens' "iss". */
  issuer: string;
  /** Accepted audience(s) (client id). */
  audience: string | string[];
  /** JWKS URL; default: `jwks_uri` from the issuer's discovery document. */
  jwksUrl?: string;
  /** Claim with the user's group names, used when the account's `jwt_groups_claim_name` is empty. */
  groupsClaim?: string;
  /** Claim with the e-mail address; default "email". */
  emailClaim?: string;
}

export interface VerifiedJwt {
  sub: string;
  email: string;
  name: string;
  exp: number;
  /** Issued-at (seconds), when the token says. */
  iat: number | undefined;
  claims: JWTPayload;
  issuer: OidcIssuerConfig | undefined;
}

/** Why credentials were refused; the REST API answers with NetBird's words for it, which dashboards react to. */
export type AuthFailure = 'missing' | 'expired' | 'invalid';

/** NetBird's 401 messages: the dashboard signs in again on the first two and shows an error on the third. */
export const AUTH_FAILURE_MESSAGE: Record<AuthFailure, string> = {
  missing: 'no valid authentication provided',
  expired: 'token expired',
  invalid: 'token invalid',
};

export class AuthError extends Error {
  constructor(
    readonly status: 401 | 403 | 429,
    message: string,
    readonly failure: AuthFailure = 'invalid',
  ) {
    super(message);
  }
}

/** Verifies JWTs of the embedded issuer and of external OIDC issuers. */
export class JwtValidator {
  private readonly remote = new Map<string, Promise<JWTVerifyGetKey>>();

  constructor(
    private readonly embedded: EmbeddedIdp | undefined,
    private readonly external: readonly OidcIssuerConfig[],
    private readonly fetchFn: typeof fetch = fetch,
  ) {}

  private keySet(cfg: OidcIssuerConfig): Promise<JWTVerifyGetKey> {
    let p = this.remote.get(cfg.issuer);
    if (!p) {
      p = (async () => {
        let url = cfg.jwksUrl;
        if (!url) {
          const res = await this.fetchFn(`${cfg.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
          if (!res.ok) throw new Error(`OIDC discovery of ${cfg.issuer} answered HTTP ${res.status}`);
          url = ((await res.json()) as { jwks_uri?: string }).jwks_uri;
          if (!url) throw new Error(`OIDC discovery of ${cfg.issuer} has no jwks_uri`);
        }
        return createRemoteJWKSet(new URL(url), { cooldownDuration: 5_000 });
      })();
      // A failed discovery is retried on the next token instead of being cached forever.
      p.catch(() => this.remote.delete(cfg.issuer));
      this.remote.set(cfg.issuer, p);
    }
    return p;
  }

  /** Verifies a JWT; throws AuthError(401) with the reason when it is not acceptable. */
  async verify(token: string): Promise<VerifiedJwt> {
    let iss: string | undefined;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      throw new AuthError(401, 'token is not a valid JWT');
    }
    let tokenUse: unknown;
    try {
      tokenUse = decodeJwt(token).token_use;
    } catch {
      tokenUse = undefined;
    }
    try {
      if (this.embedded && iss === this.embedded.issuer) {
        // Refresh tokens and session cookies are signed by the same key but are not access tokens.
        if (tokenUse === 'refresh' || tokenUse === 'session') throw new AuthError(401, `a ${tokenUse} token is not an access token`);
        const { payload } = await jwtVerify(token, this.embedded.publicKey, {
          issuer: this.embedded.issuer,
          audience: this.embedded.clientIds,
          requiredClaims: ['exp', 'sub'],
        });
        return this.result(payload, undefined);
      }
      const cfg = this.external.find((c) => c.issuer === iss);
      if (!cfg) throw new AuthError(401, `token issuer ${JSON.stringify(iss ?? '')} is not trusted by this server`);
      const { payload } = await jwtVerify(token, await this.keySet(cfg), { issuer: cfg.issuer, audience: cfg.audience, requiredClaims: ['exp', 'sub'] });
      return this.result(payload, cfg);
    } catch (err) {
      if (err instanceof AuthError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new AuthError(401, 'token has expired', 'expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw new AuthError(401, `token claim "${err.claim}" is not acceptable: ${err.reason}`);
      if (err instanceof joseErrors.JOSEError) throw new AuthError(401, `token rejected: ${err.message}`);
      throw new AuthError(401, `token could not be verified: ${(err as Error).message}`);
    }
  }

  private result(payload: JWTPayload, cfg: OidcIssuerConfig | undefined): VerifiedJwt {
    const emailClaim = cfg?.emailClaim ?? 'email';
    const email = typeof payload[emailClaim] === 'string' ? (payload[emailClaim] as string) : '';
    const name = typeof payload.name === 'string' ? payload.name : email;
    return { sub: payload.sub!, email, name, exp: payload.exp!, iat: payload.iat, claims: payload, issuer: cfg };
  }
}

/** One credential check in progress, holding its place under the limit until it ends. */
export interface AuthAttempt {
  /** The credential was wrong: counts against the key (and releases the place). Once. */
  fail(): void;
  /** The check ended: releases the place (idempotent; a later `fail()` still counts). */
  done(): void;
}

/**
 * Counts authentication failures per key in a fixed window; over the limit further attempts answer
 * 429 until the window ends (slows password and token guessing). Keys are chosen by the caller:
 * password logins use the client address AND the account name, so one user's (or an attacker's)
 * failures never lock out another user's correct password from the same address; bearer tokens use
 * the address, and a valid token is always served (only failures are limited, see `failed`).
 *
 * `begin` reserves a place before a slow check (scrypt) so that a burst of concurrent attempts cannot
 * all pass the limit before the first failure is recorded: failures plus attempts in flight never
 * exceed the limit.
 */
export class AuthFailureLimiter {
  private readonly entries = new Map<string, { count: number; inFlight: number; resetAt: number }>();

  constructor(
    readonly maxFailures = 20,
    readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  private entry(key: string): { count: number; inFlight: number; resetAt: number } {
    const now = this.now();
    let e = this.entries.get(key);
    if (!e || e.resetAt <= now) {
      const inFlight = e?.inFlight ?? 0;
      this.entries.set(key, (e = { count: 0, inFlight, resetAt: now + this.windowMs }));
      if (this.entries.size > 10_000) {
        for (const [k, v] of this.entries) if (v.resetAt <= now && v.inFlight === 0) this.entries.delete(k);
      }
    }
    return e;
  }

  blocked(key: string): boolean {
    const e = this.entries.get(key);
    if (!e) return false;
    if (e.resetAt <= this.now()) {
      if (e.inFlight === 0) this.entries.delete(key);
      return false;
    }
    return e.count >= this.maxFailures;
  }

  /** Reserves a place for one attempt; undefined when the key is over its limit (answer 429). */
  begin(key: string): AuthAttempt | undefined {
    const e = this.entry(key);
    if (e.count + e.inFlight >= this.maxFailures) return undefined;
    e.inFlight++;
    let released = false;
    let failed = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const cur = this.entries.get(key);
      if (cur) cur.inFlight = Math.max(0, cur.inFlight - 1);
    };
    return {
      fail: () => {
        release();
        if (failed) return;
        failed = true;
        this.entry(key).count++;
      },
      done: release,
    };
  }

  /** Records a failure; false when the key was already over its limit (answer 429 rather than 401). */
  failed(key: string): boolean {
    const e = this.entry(key);
    const over = e.count >= this.maxFailures;
    e.count++;
    return !over;
  }

  /** Records a failure. */
  fail(key: string): void {
    this.failed(key);
  }
}

/** Limiter key of a password login: client address and the (case-folded) account name. */
export function loginKey(ip: string, account: string): string {
  return `${ip}\u0000${account.trim().toLowerCase()}`;
}

export interface Principal {
  state: AccountState;
  user: User;
  via: 'token' | 'jwt';
}

function groupsFromClaim(claims: JWTPayload, name: string): string[] {
  const v = claims[name];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  if (typeof v === 'string' && v !== '') return [v];
  return [];
}

/** Turns credentials into the acting user, provisioning JWT users and syncing their IdP groups. */
export class Authenticator {
  private readonly usedJwts = new Map<string, number>();

  constructor(
    private readonly manager: AccountManager,
    readonly jwt: JwtValidator,
  ) {}

  /** Resolves an Authorization header value; throws AuthError(401/403). */
  async authenticate(header: string | undefined): Promise<Principal> {
    if (!header) throw new AuthError(401, 'no credentials: send "Authorization: Token <PAT>" or "Authorization: Bearer <JWT>"', 'missing');
    const sp = header.indexOf(' ');
    let scheme = sp > 0 ? header.slice(0, sp).toLowerCase() : '';
    const value = sp > 0 ? header.slice(sp + 1).trim() : '';
    // As in NetBird: a personal access token sent as "Bearer nbp_..." is still a PAT.
    if (scheme === 'bearer' && value.startsWith('nbp_')) scheme = 'token';
    if (scheme === 'token') {
      const r = await this.manager.authenticateToken(value);
      if (!r) throw new AuthError(401, 'personal access token is invalid, expired or revoked');
      if (r.user.blocked) throw new AuthError(403, 'user is blocked');
      return { state: r.state, user: r.user, via: 'token' };
    }
    if (scheme === 'bearer') {
      const v = await this.jwt.verify(value);
      const { state, user } = await this.userOf(v);
      await this.manager.touchUserLogin(state.id, user.id);
      return { state, user, via: 'jwt' };
    }
    throw new AuthError(401, 'unsupported authorization scheme: use "Token <PAT>" or "Bearer <JWT>"', 'missing');
  }

  /** Finds or creates the user of a verified token and applies group sync and allow-groups. */
  private async userOf(v: VerifiedJwt): Promise<{ state: AccountState; user: User }> {
    const { state, user } = await this.manager.ensureJwtUser({ userId: v.sub, email: v.email, name: v.name, issuedAt: v.iat }).catch((err: unknown) => {
      if (err instanceof ManagementError && err.kind === 'unauthenticated') throw new AuthError(401, err.message, 'invalid');
      throw err;
    });
    if (user.blocked) throw new AuthError(403, 'user is blocked');
    if (user.isServiceUser) throw new AuthError(403, 'service users cannot log in');
    const s = state.account.settings;
    if (s.jwtGroupsEnabled) {
      const claim = s.jwtGroupsClaimName || v.issuer?.groupsClaim || 'groups';
      const groups = groupsFromClaim(v.claims, claim);
      if (s.jwtAllowGroups.length > 0 && !groups.some((g) => s.jwtAllowGroups.includes(g))) {
        throw new AuthError(403, `user is not in any of the groups allowed to log in (${s.jwtAllowGroups.join(', ')})`);
      }
      const synced = await this.manager.syncJwtGroups(state.id, user.id, groups);
      return { state, user: synced };
    }
    return { state, user };
  }

  /**
   * JWT of a peer login (LoginRequest.jwtToken, protocol.md §4.2): verified like REST tokens, must
   * carry `exp`, and is accepted once (used tokens are remembered until they expire).
   */
  async resolvePeerJwt(token: string): Promise<string> {
    let v: VerifiedJwt;
    try {
      v = await this.jwt.verify(token);
    } catch (err) {
      const msg = (err as Error).message;
      // protocol.md §4.2: expired tokens and tokens without "exp" are Unauthenticated, others InvalidArgument.
      if (/expired|"exp"/.test(msg)) throw new ManagementError('unauthenticated', msg);
      throw new ManagementError('invalid_argument', `invalid JWT: ${msg}`);
    }
    const now = Math.floor(Date.now() / 1000);
    for (const [k, exp] of this.usedJwts) if (exp < now) this.usedJwts.delete(k);
    const key = createHash('sha256').update(token).digest('base64');
    if (this.usedJwts.has(key)) throw new ManagementError('unauthenticated', 'this JWT was already used for a login; get a fresh token');
    this.usedJwts.set(key, v.exp);
    try {
      const { user } = await this.userOf(v);
      return user.id;
    } catch (err) {
      if (err instanceof AuthError) throw new ManagementError('permission_denied', err.message);
      throw err;
    }
  }
}
