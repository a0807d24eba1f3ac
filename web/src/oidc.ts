import { ApiError, type Credential, credentialFrom } from './api.js';

/**
 * Sign-in at an external OpenID Connect provider: authorization code with PKCE (RFC 7636, S256).
 * The server tells the app about the provider at /dashboard-config.json; the app redirects to the
 * provider, comes back to /auth/callback, exchanges the code at the token endpoint and sends the
 * ID token (its audience is the client id the server accepts) as "Bearer".
 */

export interface OidcConfig {
  issuer: string;
  clientId: string;
  scope: string;
}

export interface DashboardConfig {
  oidc: OidcConfig | null;
}

export const CALLBACK_PATH = '/auth/callback';
const PENDING_KEY = 'netbird.oidc.pending';

interface Pending {
  state: string;
  verifier: string;
  returnTo: string;
  firstRun: boolean;
  tokenEndpoint: string;
}

export async function loadDashboardConfig(): Promise<DashboardConfig> {
  try {
    const r = await fetch('/dashboard-config.json');
    if (!r.ok) return { oidc: null };
    return (await r.json()) as DashboardConfig;
  } catch {
    return { oidc: null };
  }
}

export function providerName(cfg: OidcConfig): string {
  try {
    return new URL(cfg.issuer).host;
  } catch {
    return cfg.issuer;
  }
}

function b64url(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(n: number): string {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

async function discovery(cfg: OidcConfig): Promise<{ authorization_endpoint: string; token_endpoint: string }> {
  let r: Response;
  try {
    r = await fetch(`${cfg.issuer}/.well-known/openid-configuration`);
  } catch {
    throw new ApiError(0, `the identity provider ${cfg.issuer} cannot be reached`);
  }
  if (!r.ok) throw new ApiError(r.status, `the identity provider's discovery document answered ${r.status}`);
  const d = (await r.json()) as { authorization_endpoint?: string; token_endpoint?: string };
  if (!d.authorization_endpoint || !d.token_endpoint) throw new ApiError(0, 'the identity provider does not offer the authorization-code flow');
  return { authorization_endpoint: d.authorization_endpoint, token_endpoint: d.token_endpoint };
}

/** Leaves for the provider's login page. */
export async function startOidcSignIn(cfg: OidcConfig, returnTo: string, firstRun: boolean): Promise<void> {
  if (!crypto.subtle) throw new ApiError(0, 'signing in with an identity provider needs HTTPS (or localhost): browsers offer PKCE hashing only there');
  const d = await discovery(cfg);
  const verifier = randomString(48);
  const challenge = b64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  const state = randomString(24);
  const pending: Pending = { state, verifier, returnTo, firstRun, tokenEndpoint: d.token_endpoint };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(d.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: cfg.clientId,
    redirect_uri: location.origin + CALLBACK_PATH,
    scope: cfg.scope,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}

/** On /auth/callback: trades the code for tokens. */
export async function finishOidcSignIn(cfg: OidcConfig): Promise<{ cred: Credential; returnTo: string; firstRun: boolean }> {
  const params = new URLSearchParams(location.search);
  const raw = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  if (params.get('error')) throw new ApiError(0, `the identity provider refused: ${params.get('error_description') ?? params.get('error')}`);
  if (!raw) throw new ApiError(0, 'no sign-in was started from this browser tab; start again');
  const pending = JSON.parse(raw) as Pending;
  if (params.get('state') !== pending.state) throw new ApiError(0, 'the sign-in answer does not match the request (state); start again');
  const code = params.get('code');
  if (!code) throw new ApiError(0, 'the identity provider sent no authorization code');
  let r: Response;
  try {
    r = await fetch(pending.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: location.origin + CALLBACK_PATH, client_id: cfg.clientId, code_verifier: pending.verifier }).toString(),
    });
  } catch {
    throw new ApiError(0, 'the identity provider\'s token endpoint cannot be reached (does it allow this origin, CORS?)');
  }
  const body = (await r.json().catch(() => ({}))) as { id_token?: string; access_token?: string; refresh_token?: string; error?: string; error_description?: string };
  if (!r.ok) throw new ApiError(r.status, `the identity provider refused the code: ${body.error_description ?? body.error ?? r.status}`);
  if (!body.id_token && !body.access_token) throw new ApiError(0, 'the identity provider returned no token');
  // The ID token is what the server checks (its audience is our client id); a refresh token, when
  // the provider gives one, renews it before it expires.
  const cred = credentialFrom(body, { tokenEndpoint: pending.tokenEndpoint, clientId: cfg.clientId, useIdToken: true });
  return { cred, returnTo: pending.returnTo, firstRun: pending.firstRun };
}
