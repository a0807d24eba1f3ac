import { createHash, randomBytes, randomInt, randomUUID } from 'node:crypto';
import { type CryptoKey, type JWK, type JWTPayload, SignJWT, exportJWK, generateKeyPair, importJWK, jwtVerify } from 'jose';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import type { AccountManager, User } from '../management/index.js';
import { verifyPassword } from './password.js';

/**
 * The embedded identity provider: a small OpenID Connect issuer for the instance's local users
 * (e-mail + password, kept as scrypt hashes in the management store). It serves discovery
 * (`/oauth2/.well-known/openid-configuration`), its JWKS (`/oauth2/keys`) and a token endpoint
 * (`/oauth2/token`, grant type `password` per RFC 6749 §4.3, for headless use with curl) issuing
 * ES256-signed access and ID tokens. The signing key is generated once and kept in the store's
 * instance table, so tokens survive restarts and every server on a shared PostgreSQL store agrees;
 * netbird-server seals it there with a key from its data dir (idp.secret).
 */

export const IDP_BASE_PATH = '/oauth2';
const KEY_ENTRY = 'idp.signing_jwk';
/** File of netbird-server's data dir that holds the key sealing KEY_ENTRY. */
export const IDP_SECRET_FILE = 'idp.secret';
export const DEFAULT_CLIENT_ID = 'netbird';
/** Client ids of NetBird's own dashboard and CLI (the reference's embedded IdP registers these). */
export const NETBIRD_CLIENT_IDS = ['netbird-dashboard', 'netbird-cli'] as const;
/** How long a refresh token stays valid unused, and how long a sign-in lasts at most through refreshes. */
const REFRESH_IDLE_S = 7 * 86400;
const SESSION_MAX_S = 30 * 86400;
/** Browser session at the issuer (cookie), used by prompt=none; as long as a sign-in may last unused. */
export const SESSION_COOKIE = 'nb_idp_session';
const SESSION_TTL_S = REFRESH_IDLE_S;

export interface EmbeddedIdpOptions {
  /** Issuer URL, e.g. "https://netbird.example.com/oauth2". */
  issuer: string;
  /** Audience (client id) of issued tokens; default "netbird". */
  clientId?: string;
  /** Token lifetime, seconds; default 3600. */
  tokenTtlSeconds?: number;
  /** Origins besides loopback and the issuer's own that may receive codes (a dashboard elsewhere). */
  redirectOrigins?: readonly string[];
  /**
   * 32-byte key that seals the signing key in the store (netbird-server keeps it in a file of the
   * data dir), so a copy of the database alone cannot forge tokens. Without it the key is stored
   * as plain JWK (tests, embedding).
   */
  keyEncryptionKey?: Uint8Array;
}

const SEALED_PREFIX = 'sealed:v1:';

/** XChaCha20-Poly1305 of the JWK text under the key-encryption key; the entry name is bound as AAD. */
function sealJwk(text: string, kek: Uint8Array): string {
  const nonce = randomBytes(24);
  const box = xchacha20poly1305(kek, nonce, new TextEncoder().encode(KEY_ENTRY)).encrypt(new TextEncoder().encode(text));
  return SEALED_PREFIX + Buffer.concat([nonce, box]).toString('base64');
}

function openJwk(stored: string, kek: Uint8Array | undefined): string {
  if (!stored.startsWith(SEALED_PREFIX)) return stored;
  if (!kek) throw new Error(`the identity provider's signing key in the store is sealed, but no key-encryption key was given (netbird-server keeps it in ${IDP_SECRET_FILE} of the data dir)`);
  const raw = Buffer.from(stored.slice(SEALED_PREFIX.length), 'base64');
  try {
    return new TextDecoder().decode(xchacha20poly1305(kek, raw.subarray(0, 24), new TextEncoder().encode(KEY_ENTRY)).decrypt(raw.subarray(24)));
  } catch {
    throw new Error(`the identity provider's signing key in the store cannot be opened with ${IDP_SECRET_FILE}: the file was replaced or belongs to another data dir; put the original back (from a backup of the data dir)`);
  }
}

/** RFC 8628 device authorization response. */
export interface DeviceCodeResponse {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete: string;
  expires_in: number;
  interval: number;
}

interface PendingDevice {
  userCode: string;
  expiresAt: number;
  userId?: string;
  lastPoll: number;
  /** Who asked for it (client address), for the per-client allowance. */
  client: string;
}

const DEVICE_TTL_MS = 10 * 60 * 1000;
/** Device logins one client address may have pending (a person needs one; a few for retries). */
export const MAX_PENDING_DEVICES_PER_CLIENT = 10;
/** Device logins pending in all; when full, the oldest of the client with the most go first. */
export const MAX_PENDING_DEVICES = 10_000;
const DEVICE_INTERVAL_S = 5;
// Unambiguous upper-case letters for user codes (RFC 8628 §6.1: no vowels-only confusion, no 0/O, 1/I).
const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ';

interface PendingCode {
  userId: string;
  /** When the user signed in (seconds), carried into refresh tokens to cap the sign-in's length. */
  authTime: number;
  clientId: string;
  redirectUri: string;
  challenge: string;
  nonce: string;
  expiresAt: number;
}

/** Parameters of an authorization request (RFC 6749 §4.1.1 with RFC 7636 PKCE). */
export interface AuthorizeParams {
  response_type?: string;
  client_id?: string;
  redirect_uri?: string;
  code_challenge?: string;
  code_challenge_method?: string;
  state?: string;
  scope?: string;
  nonce?: string;
  /** OpenID Connect prompt: "none" answers at once (code, or error=login_required), never with a form. */
  prompt?: string;
}

const CODE_TTL_MS = 60 * 1000;

/** Redirect URIs the issuer sends codes to: loopback (CLI/desktop callbacks), its own origin or `extra` origins. */
export function isAllowedRedirect(uri: string, issuer: string, extra: readonly string[] = []): boolean {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return false;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return false;
  if (u.hostname === 'localhost' || u.hostname === '127.0.0.1' || u.hostname === '[::1]') return true;
  return u.origin === new URL(issuer).origin || extra.some((o) => o.replace(/\/$/, '') === u.origin);
}

export type DevicePoll =
  | { status: 'ok'; tokens: TokenResponse }
  | { status: 'authorization_pending' | 'slow_down' | 'expired_token' | 'invalid_grant' };

export interface TokenResponse {
  access_token: string;
  id_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  /** Trade for fresh tokens with grant_type=refresh_token (each use returns a new one). */
  refresh_token: string;
}

export class EmbeddedIdp {
  private constructor(
    readonly issuer: string,
    readonly clientId: string,
    readonly tokenTtlSeconds: number,
    private readonly privateKey: CryptoKey,
    readonly publicKey: CryptoKey,
    private readonly publicJwk: JWK,
    private readonly manager: AccountManager,
    readonly redirectOrigins: readonly string[] = [],
  ) {}

  /** Client ids this issuer serves: its own and NetBird's dashboard and CLI ids. */
  get clientIds(): string[] {
    return [this.clientId, ...NETBIRD_CLIENT_IDS.filter((c) => c !== this.clientId)];
  }

  /** An omitted client id (RFC 6749 public clients may leave it out) counts as ours. */
  acceptsClient(id: string | undefined): boolean {
    return id === undefined || this.clientIds.includes(id);
  }

  /** jti of refresh tokens already traded (rotation: a replayed one is refused), until they expire. */
  private readonly usedRefresh = new Map<string, number>();
  // Insertion order is expiry order (one TTL for all), so sweeps stop at the first live entry.
  private readonly devices = new Map<string, PendingDevice>();
  private readonly deviceByUserCode = new Map<string, string>();
  private readonly devicesByClient = new Map<string, Set<string>>();
  private readonly codes = new Map<string, PendingCode>();

  static async open(manager: AccountManager, opts: EmbeddedIdpOptions): Promise<EmbeddedIdp> {
    const kek = opts.keyEncryptionKey;
    if (kek && kek.length !== 32) throw new Error(`the key-encryption key must be 32 bytes, got ${kek.length}`);
    let stored = await manager.store.getInstanceValue(KEY_ENTRY);
    if (stored && kek && !stored.startsWith(SEALED_PREFIX)) {
      // A key stored in the clear by an earlier version: seal it in place.
      await manager.store.setInstanceValue(KEY_ENTRY, sealJwk(stored, kek));
      stored = (await manager.store.getInstanceValue(KEY_ENTRY))!;
    }
    if (!stored) {
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      const jwk = await exportJWK(privateKey);
      jwk.kid = randomUUID();
      jwk.alg = 'ES256';
      jwk.use = 'sig';
      await manager.store.setInstanceValue(KEY_ENTRY, kek ? sealJwk(JSON.stringify(jwk), kek) : JSON.stringify(jwk));
      // Two servers starting at once on one store: whoever wrote last wins; read back that one.
      stored = (await manager.store.getInstanceValue(KEY_ENTRY))!;
    }
    const jwk = JSON.parse(openJwk(stored, kek)) as JWK;
    const privateKey = (await importJWK(jwk, 'ES256')) as CryptoKey;
    const { d: _d, ...pub } = jwk;
    const publicKey = (await importJWK(pub, 'ES256')) as CryptoKey;
    return new EmbeddedIdp(opts.issuer.replace(/\/$/, ''), opts.clientId ?? DEFAULT_CLIENT_ID, opts.tokenTtlSeconds ?? 3600, privateKey, publicKey, pub, manager, opts.redirectOrigins ?? []);
  }

  get kid(): string {
    return this.publicJwk.kid ?? '';
  }

  jwks(): { keys: JWK[] } {
    return { keys: [this.publicJwk] };
  }

  discovery(): Record<string, unknown> {
    return {
      issuer: this.issuer,
      jwks_uri: `${this.issuer}/keys`,
      token_endpoint: `${this.issuer}/token`,
      device_authorization_endpoint: `${this.issuer}/device/code`,
      userinfo_endpoint: `${this.issuer}/userinfo`,
      authorization_endpoint: `${this.issuer}/auth`,
      end_session_endpoint: `${this.issuer}/logout`,
      grant_types_supported: ['authorization_code', 'refresh_token', 'password', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types_supported: ['code'],
      code_challenge_methods_supported: ['S256'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['ES256'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      token_endpoint_auth_methods_supported: ['none', 'client_secret_post'],
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'email', 'name'],
    };
  }

  /** Signs an access token for `user` (also used by tests and the peer-login path). */
  async issue(user: Pick<User, 'id' | 'email' | 'name'>, ttlSeconds = this.tokenTtlSeconds, extra: Record<string, string> = {}, audience = this.clientId): Promise<string> {
    return new SignJWT({ email: user.email, name: user.name, ...extra })
      .setProtectedHeader({ alg: 'ES256', kid: this.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setAudience(audience)
      .setSubject(user.id)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
      .sign(this.privateKey);
  }

  /** Checks a local user's e-mail and password; the user id, or undefined. */
  async checkPassword(email: string, password: string): Promise<string | undefined> {
    const cred = await this.manager.findCredentialByEmail(email);
    // Verify against a dummy hash for unknown users too, so timing does not reveal which e-mails exist.
    const ok = await verifyPassword(password, cred?.passwordHash ?? DUMMY_HASH);
    if (!cred || !ok) return undefined;
    const found = this.manager.findUser(cred.userId);
    if (!found || found.user.blocked || found.user.isServiceUser) return undefined;
    return found.user.id;
  }

  private async tokensFor(userId: string, nonce = '', clientId = this.clientId, authTime = Math.floor(Date.now() / 1000)): Promise<TokenResponse | undefined> {
    const found = this.manager.findUser(userId);
    if (!found || found.user.blocked) return undefined;
    const token = await this.issue(found.user, this.tokenTtlSeconds, {}, clientId);
    const idToken = nonce ? await this.issue(found.user, this.tokenTtlSeconds, { nonce }, clientId) : token;
    const refresh = await this.signInternal(userId, 'refresh', Math.min(REFRESH_IDLE_S, authTime + SESSION_MAX_S - Math.floor(Date.now() / 1000)), clientId, authTime);
    return { access_token: token, id_token: idToken, token_type: 'Bearer', expires_in: this.tokenTtlSeconds, scope: 'openid profile email', refresh_token: refresh };
  }

  /**
   * Refresh tokens and browser-session cookies: JWTs signed with the issuer's key (so they survive
   * restarts and work on every server of a shared store) that the REST API refuses as access tokens.
   */
  private signInternal(userId: string, use: 'refresh' | 'session', ttlSeconds: number, audience: string, authTime: number): Promise<string> {
    return new SignJWT({ token_use: use, auth_time: authTime })
      .setProtectedHeader({ alg: 'ES256', kid: this.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setAudience(audience)
      .setSubject(userId)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + Math.max(1, ttlSeconds))
      .sign(this.privateKey);
  }

  private async verifyInternal(token: string, use: 'refresh' | 'session'): Promise<JWTPayload | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.publicKey, { issuer: this.issuer, requiredClaims: ['exp', 'sub', 'jti'] });
      return payload.token_use === use ? payload : undefined;
    } catch {
      return undefined;
    }
  }

  /** grant_type=refresh_token: new tokens (and a new refresh token) while the user may still sign in. */
  async refresh(refreshToken: string, clientId: string | undefined): Promise<TokenResponse | undefined> {
    const p = await this.verifyInternal(refreshToken, 'refresh');
    if (!p) return undefined;
    const aud = Array.isArray(p.aud) ? p.aud[0] : p.aud;
    if (!aud || (clientId !== undefined && clientId !== aud)) return undefined;
    const now = Math.floor(Date.now() / 1000);
    for (const [k, exp] of this.usedRefresh) if (exp < now) this.usedRefresh.delete(k);
    if (this.usedRefresh.has(p.jti!)) return undefined;
    this.usedRefresh.set(p.jti!, p.exp!);
    const authTime = typeof p.auth_time === 'number' ? p.auth_time : now;
    if (authTime + SESSION_MAX_S <= now) return undefined;
    const found = this.manager.findUser(p.sub!);
    if (!found || found.user.blocked || found.user.isServiceUser) return undefined;
    return this.tokensFor(p.sub!, '', aud, authTime);
  }

  /** Cookie value remembering a browser sign-in at the issuer (for prompt=none). */
  sessionFor(userId: string): Promise<string> {
    return this.signInternal(userId, 'session', SESSION_TTL_S, this.issuer, Math.floor(Date.now() / 1000));
  }

  /** The user of a session cookie still valid, or undefined. */
  async sessionUser(cookie: string | undefined): Promise<{ userId: string; authTime: number } | undefined> {
    if (!cookie) return undefined;
    const p = await this.verifyInternal(cookie, 'session');
    if (!p) return undefined;
    const found = this.manager.findUser(p.sub!);
    if (!found || found.user.blocked || found.user.isServiceUser) return undefined;
    return { userId: p.sub!, authTime: typeof p.auth_time === 'number' ? p.auth_time : Math.floor(Date.now() / 1000) };
  }

  // ----- authorization code + PKCE (RFC 6749 §4.1, RFC 7636): browsers and `netbird up` on desktops -----
  /** Why an authorization request cannot be served (shown to the user, never redirected), or undefined. */
  checkAuthorize(p: AuthorizeParams): string | undefined {
    if (!p.client_id || !this.clientIds.includes(p.client_id)) return `unknown client_id; use one of ${this.clientIds.join(', ')}`;
    if (!p.redirect_uri || !isAllowedRedirect(p.redirect_uri, this.issuer, this.redirectOrigins)) return 'redirect_uri must be a loopback URL or on this server';
    if (p.response_type !== 'code') return 'response_type must be "code"';
    if (!p.code_challenge || p.code_challenge_method !== 'S256') return 'PKCE is required: code_challenge with code_challenge_method=S256';
    return undefined;
  }

  /** Signs the user in and returns the redirect URL carrying a one-time code (undefined: bad credentials). */
  async authorize(p: AuthorizeParams, email: string, password: string): Promise<{ location: string; userId: string } | undefined> {
    const problem = this.checkAuthorize(p);
    if (problem) throw new Error(problem);
    const userId = await this.checkPassword(email, password);
    if (!userId) return undefined;
    return { location: this.codeRedirect(p, userId, Math.floor(Date.now() / 1000)), userId };
  }

  /**
   * prompt=none (OpenID Connect Core §3.1.2.1): a code at once for a browser still signed in here,
   * else the redirect carries error=login_required; no page is ever shown.
   */
  async authorizeSilently(p: AuthorizeParams, sessionCookie: string | undefined): Promise<string> {
    const problem = this.checkAuthorize(p);
    if (problem) throw new Error(problem);
    const session = await this.sessionUser(sessionCookie);
    if (session) return this.codeRedirect(p, session.userId, session.authTime);
    const url = new URL(p.redirect_uri!);
    url.searchParams.set('error', 'login_required');
    url.searchParams.set('error_description', 'the user is not signed in at the identity provider');
    if (p.state) url.searchParams.set('state', p.state);
    return url.toString();
  }

  private codeRedirect(p: AuthorizeParams, userId: string, authTime: number): string {
    const now = Date.now();
    for (const [k, c] of this.codes) if (c.expiresAt <= now) this.codes.delete(k);
    const code = randomBytes(32).toString('base64url');
    this.codes.set(code, { userId, authTime, clientId: p.client_id!, redirectUri: p.redirect_uri!, challenge: p.code_challenge!, nonce: p.nonce ?? '', expiresAt: now + CODE_TTL_MS });
    const url = new URL(p.redirect_uri!);
    url.searchParams.set('code', code);
    if (p.state) url.searchParams.set('state', p.state);
    return url.toString();
  }

  /** grant_type=authorization_code: the code once, with the matching verifier and redirect URI. */
  async exchangeCode(code: string, verifier: string, redirectUri: string, clientId: string | undefined): Promise<TokenResponse | undefined> {
    const c = this.codes.get(code);
    this.codes.delete(code);
    if (!c || c.expiresAt <= Date.now()) return undefined;
    if (c.redirectUri !== redirectUri || (clientId !== undefined && clientId !== c.clientId)) return undefined;
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    if (challenge !== c.challenge) return undefined;
    return this.tokensFor(c.userId, c.nonce, c.clientId, c.authTime);
  }

  /** Resource-owner password grant: tokens for a local user, or undefined for bad credentials. */
  async passwordGrant(email: string, password: string, clientId = this.clientId): Promise<TokenResponse | undefined> {
    const userId = await this.checkPassword(email, password);
    return userId ? this.tokensFor(userId, '', clientId) : undefined;
  }

  // ----- RFC 8628 device authorization (what `netbird up` uses for SSO) -----
  private sweep(now: number): void {
    for (const [k, d] of this.devices) {
      if (d.expiresAt > now) break;
      this.dropDevice(k);
    }
  }

  private dropDevice(deviceCode: string): void {
    const d = this.devices.get(deviceCode);
    if (!d) return;
    this.devices.delete(deviceCode);
    this.deviceByUserCode.delete(d.userCode.replace('-', ''));
    const own = this.devicesByClient.get(d.client);
    own?.delete(deviceCode);
    if (own?.size === 0) this.devicesByClient.delete(d.client);
  }

  /**
   * Starts a device login for `client` (its address). Undefined when that client already has
   * MAX_PENDING_DEVICES_PER_CLIENT pending (answer 429 slow_down); a full table never refuses
   * others: the oldest pending login of the client with the most makes room.
   */
  startDevice(client = ''): DeviceCodeResponse | undefined {
    const now = Date.now();
    this.sweep(now);
    const own = this.devicesByClient.get(client);
    if (own && own.size >= MAX_PENDING_DEVICES_PER_CLIENT) return undefined;
    if (this.devices.size >= MAX_PENDING_DEVICES) {
      let busiest: Set<string> | undefined;
      for (const set of this.devicesByClient.values()) if (!busiest || set.size > busiest.size) busiest = set;
      const oldest = busiest?.values().next().value;
      if (oldest !== undefined) this.dropDevice(oldest);
    }
    const deviceCode = randomBytes(32).toString('base64url');
    let userCode = '';
    do {
      userCode = '';
      for (let i = 0; i < 8; i++) userCode += USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)];
    } while (this.deviceByUserCode.has(userCode));
    this.deviceByUserCode.set(userCode, deviceCode);
    userCode = `${userCode.slice(0, 4)}-${userCode.slice(4)}`;
    this.devices.set(deviceCode, { userCode, expiresAt: now + DEVICE_TTL_MS, lastPoll: 0, client });
    let set = this.devicesByClient.get(client);
    if (!set) this.devicesByClient.set(client, (set = new Set()));
    set.add(deviceCode);
    return {
      device_code: deviceCode,
      user_code: userCode,
      verification_uri: `${this.issuer}/device`,
      verification_uri_complete: `${this.issuer}/device?user_code=${userCode}`,
      expires_in: DEVICE_TTL_MS / 1000,
      interval: DEVICE_INTERVAL_S,
    };
  }

  /** The user approves a pending device login by its user code, signing in with e-mail and password. */
  async approveDevice(userCode: string, email: string, password: string): Promise<'ok' | 'bad_code' | 'bad_credentials'> {
    const code = userCode.trim().toUpperCase().replace(/[^A-Z]/g, '');
    const deviceCode = this.deviceByUserCode.get(code);
    const entry = deviceCode === undefined ? undefined : this.devices.get(deviceCode);
    if (!entry || entry.expiresAt <= Date.now() || entry.userId) return 'bad_code';
    const userId = await this.checkPassword(email, password);
    if (!userId) return 'bad_credentials';
    entry.userId = userId;
    return 'ok';
  }

  /** Token endpoint poll with grant_type=urn:ietf:params:oauth:grant-type:device_code. */
  async pollDevice(deviceCode: string): Promise<DevicePoll> {
    const now = Date.now();
    const d = this.devices.get(deviceCode);
    if (!d) return { status: 'invalid_grant' };
    if (d.expiresAt <= now) {
      this.dropDevice(deviceCode);
      return { status: 'expired_token' };
    }
    if (!d.userId) {
      // Polling faster than the advertised interval (less a second of slack) is told to slow down.
      const tooFast = now - d.lastPoll < (DEVICE_INTERVAL_S - 1) * 1000;
      d.lastPoll = now;
      return { status: tooFast ? 'slow_down' : 'authorization_pending' };
    }
    this.dropDevice(deviceCode);
    const tokens = await this.tokensFor(d.userId);
    return tokens ? { status: 'ok', tokens } : { status: 'invalid_grant' };
  }
}

// scrypt hash of a random string nobody knows (same cost as real hashes).
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
