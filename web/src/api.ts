/**
 * The dashboard's REST client: NetBird's /api endpoints on this origin, authenticated with either a
 * personal access token ("Token ...") or an access token from the embedded identity provider
 * ("Bearer ..."). Errors keep NetBird's {message, code} shape; messages of the form "field: text"
 * name the request field, which the forms show next to that field.
 */

export type Credential = {
  kind: 'pat' | 'jwt';
  token: string;
  /** When the token stops working (ms). */
  expiresAt?: number;
  /** Refresh token and where to trade it (grant_type=refresh_token) for a new token before expiresAt. */
  refresh?: { token: string; tokenEndpoint: string; clientId: string; useIdToken: boolean };
};

const STORAGE_KEY = 'netbird.credential';

export function loadCredential(): Credential | undefined {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return undefined;
    const c = JSON.parse(raw) as Credential;
    // An expired token with a refresh token is renewed on first use.
    if (c.expiresAt !== undefined && c.expiresAt < Date.now() && !c.refresh) return undefined;
    return c;
  } catch {
    return undefined;
  }
}

export function saveCredential(c: Credential | undefined): void {
  if (c) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(c));
  else sessionStorage.removeItem(STORAGE_KEY);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }

  /** The request field the server named ("name: must not be empty" -> "name"), if any. */
  get field(): string | undefined {
    const m = /^([A-Za-z_][\w.]*?):\s/.exec(this.message);
    return m ? m[1] : undefined;
  }

  /** The message without its field prefix. */
  get text(): string {
    const f = this.field;
    return f ? this.message.slice(f.length + 1).trim() : this.message;
  }
}

let credential: Credential | undefined = loadCredential();
// (its renewal is scheduled when the app starts and calls setCredential with it)
let onUnauthorized: () => void = () => {};

export function setCredential(c: Credential | undefined): void {
  credential = c;
  saveCredential(c);
  scheduleRenewal(c);
}

export function getCredential(): Credential | undefined {
  return credential;
}

export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn;
}

function authHeader(c: Credential): string {
  return c.kind === 'pat' ? `Token ${c.token}` : `Bearer ${c.token}`;
}

async function errorOf(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { message?: unknown; error_description?: unknown };
    if (typeof body.message === 'string') message = body.message;
    else if (typeof body.error_description === 'string') message = body.error_description;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(res.status, message);
}

/** Token responses of the token endpoint (RFC 6749 §5.1). */
interface TokenAnswer {
  access_token?: string;
  id_token?: string;
  refresh_token?: string;
  expires_in?: number;
  error?: string;
  error_description?: string;
}

/** A credential from a token answer: renewal is due a little before expiry (30 s, or half a short lifetime). */
export function credentialFrom(t: TokenAnswer, refresh: Omit<NonNullable<Credential['refresh']>, 'token'> | undefined): Credential {
  const token = (refresh?.useIdToken ? (t.id_token ?? t.access_token) : (t.access_token ?? t.id_token)) ?? '';
  const exp = jwtExpiry(token) ?? (t.expires_in ? Date.now() + t.expires_in * 1000 : undefined);
  return { kind: 'jwt', token, expiresAt: exp, refresh: refresh && t.refresh_token ? { ...refresh, token: t.refresh_token } : undefined };
}

export function jwtExpiry(token: string): number | undefined {
  try {
    const payload = JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { exp?: number; iat?: number };
    return typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

function renewAt(c: Credential): number | undefined {
  if (!c.refresh || c.expiresAt === undefined) return undefined;
  const iat = (() => {
    try {
      return (JSON.parse(atob(c.token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as { iat?: number }).iat;
    } catch {
      return undefined;
    }
  })();
  const lifetime = iat ? c.expiresAt - iat * 1000 : 60 * 60 * 1000;
  return c.expiresAt - Math.min(30_000, lifetime / 2);
}

let renewing: Promise<Credential | undefined> | undefined;
let renewTimer: ReturnType<typeof setTimeout> | undefined;

/** Trades the refresh token for a new one (once at a time); undefined when the sign-in has ended. */
export function renewCredential(): Promise<Credential | undefined> {
  const c = credential;
  if (!c?.refresh) return Promise.resolve(undefined);
  renewing ??= (async () => {
    try {
      const r = c.refresh!;
      const res = await fetch(r.tokenEndpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: r.token, client_id: r.clientId }).toString(),
      });
      if (!res.ok) return undefined;
      const next = credentialFrom((await res.json()) as TokenAnswer, r);
      if (credential !== c) return credential;
      setCredential(next);
      return next;
    } catch {
      return undefined;
    } finally {
      renewing = undefined;
    }
  })();
  return renewing;
}

function scheduleRenewal(c: Credential | undefined): void {
  if (renewTimer) clearTimeout(renewTimer);
  renewTimer = undefined;
  const at = c ? renewAt(c) : undefined;
  if (at === undefined) return;
  renewTimer = setTimeout(() => void renewCredential(), Math.max(0, at - Date.now()));
}

export async function request<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown, cred: Credential | undefined = credential): Promise<T> {
  // A token due for renewal is renewed first (e.g. after the tab slept through the timer).
  if (cred && cred === credential && cred.refresh) {
    const at = renewAt(cred);
    if (at !== undefined && at <= Date.now()) cred = (await renewCredential()) ?? cred;
  }
  const headers: Record<string, string> = { accept: 'application/json' };
  if (cred) headers.authorization = authHeader(cred);
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'the server cannot be reached; check that netbird-server is running');
  }
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401 && cred && cred === credential) {
      // "token expired" (NetBird's words): one renewal and the request again.
      if (err.message === 'token expired' && cred.refresh) {
        const next = await renewCredential();
        if (next) return request<T>(method, path, body, next);
      }
      onUnauthorized();
    }
    throw err;
  }
  const text = await res.text();
  return (text === '' ? {} : JSON.parse(text)) as T;
}

export const api = {
  get: <T>(path: string): Promise<T> => request<T>('GET', path),
  post: <T>(path: string, body: unknown): Promise<T> => request<T>('POST', path, body),
  put: <T>(path: string, body: unknown): Promise<T> => request<T>('PUT', path, body),
  del: (path: string): Promise<unknown> => request<unknown>('DELETE', path),
};

/** Signs in with e-mail and password at the embedded identity provider (password grant). */
export async function passwordSignIn(email: string, password: string): Promise<Credential> {
  const form = new URLSearchParams({ grant_type: 'password', client_id: 'netbird', username: email, password, scope: 'openid profile email offline_access' });
  let res: Response;
  try {
    res = await fetch('/oauth2/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
  } catch {
    throw new ApiError(0, 'the server cannot be reached; check that netbird-server is running');
  }
  if (!res.ok) {
    const err = await errorOf(res);
    throw new ApiError(res.status, err.status === 404 ? 'this server has no embedded identity provider; sign in with an access token' : err.message);
  }
  return credentialFrom((await res.json()) as TokenAnswer, { tokenEndpoint: '/oauth2/token', clientId: 'netbird', useIdToken: false });
}

// ----- NetBird JSON shapes (management-api.md §8), the fields the dashboard uses -----

export interface GroupMinimum {
  id: string;
  name: string;
  peers_count: number;
  resources_count?: number;
}

export interface Group extends GroupMinimum {
  peers: Array<{ id: string; name: string }>;
  issued?: string;
}

export interface Peer {
  id: string;
  name: string;
  ip: string;
  connection_ip: string;
  connected: boolean;
  last_seen: string;
  os: string;
  version: string;
  groups: GroupMinimum[];
  ssh_enabled: boolean;
  user_id: string;
  hostname: string;
  dns_label: string;
  login_expiration_enabled: boolean;
  login_expired: boolean;
  inactivity_expiration_enabled: boolean;
  approval_required: boolean;
  accessible_peers_count?: number;
  ephemeral?: boolean;
  created_at?: string;
  last_login?: string;
  kernel_version?: string;
  ui_version?: string;
  country_code?: string;
  city_name?: string;
  serial_number?: string;
  extra_dns_labels?: string[];
}

export interface SetupKey {
  id: string;
  name: string;
  expires: string;
  type: 'reusable' | 'one-off';
  valid: boolean;
  revoked: boolean;
  used_times: number;
  last_used: string;
  state: string;
  auto_groups: string[];
  usage_limit: number;
  ephemeral: boolean;
  key: string;
}

export type Protocol = 'all' | 'tcp' | 'udp' | 'icmp' | 'netbird-ssh';

export interface PolicyRule {
  id?: string;
  name: string;
  description?: string;
  enabled: boolean;
  action: 'accept' | 'drop';
  bidirectional: boolean;
  protocol: Protocol;
  ports?: string[];
  port_ranges?: Array<{ start: number; end: number }>;
  sources: GroupMinimum[];
  destinations: GroupMinimum[];
  /** Set instead of groups: one peer, or (destination only) one network resource. */
  sourceResource?: RuleResource;
  destinationResource?: RuleResource;
}

export interface RuleResource {
  id: string;
  type: 'peer' | 'host' | 'subnet' | 'domain';
}

export interface Policy {
  id: string;
  name: string;
  description: string;
  enabled: boolean;
  source_posture_checks: string[];
  rules: PolicyRule[];
}

export interface Route {
  id: string;
  network_type: string;
  description: string;
  network_id: string;
  enabled: boolean;
  metric: number;
  masquerade: boolean;
  groups: string[];
  keep_route: boolean;
  peer?: string;
  peer_groups?: string[];
  network?: string;
  domains?: string[];
}

export interface Network {
  id: string;
  name: string;
  description: string;
  routers: string[];
  routing_peers_count: number;
  resources: string[];
  policies: string[];
}

export interface NetworkResource {
  id: string;
  type: 'host' | 'subnet' | 'domain';
  groups: GroupMinimum[];
  name: string;
  description: string;
  address: string;
  enabled: boolean;
}

export interface NetworkRouter {
  id: string;
  peer?: string;
  peer_groups?: string[];
  metric: number;
  masquerade: boolean;
  enabled: boolean;
}

export interface DnsRecord {
  id: string;
  name: string;
  type: 'A' | 'AAAA' | 'CNAME';
  content: string;
  ttl: number;
}

export interface DnsZone {
  id: string;
  name: string;
  domain: string;
  enabled: boolean;
  enable_search_domain: boolean;
  distribution_groups: string[];
  records: DnsRecord[];
}

/** Posture check conditions (management-api.md §3); every part is optional, at least one is set. */
export interface PostureChecks {
  nb_version_check?: { min_version: string };
  os_version_check?: Partial<Record<'android' | 'darwin' | 'ios' | 'linux' | 'windows', { min_version?: string; min_kernel_version?: string }>>;
  geo_location_check?: { locations: Array<{ country_code: string; city_name?: string }>; action: 'allow' | 'deny' };
  peer_network_range_check?: { ranges: string[]; action: 'allow' | 'deny' };
  process_check?: { processes: Array<{ linux_path?: string; mac_path?: string; windows_path?: string }> };
}

export interface PostureCheck {
  id: string;
  name: string;
  description: string;
  checks: PostureChecks;
}

export interface Country {
  country_code: string;
  country_name: string;
}

export interface City {
  geoname_id: number;
  city_name: string;
}

export interface AccountSettings {
  peer_login_expiration_enabled: boolean;
  peer_login_expiration: number;
  peer_inactivity_expiration_enabled: boolean;
  peer_inactivity_expiration: number;
  regular_users_view_blocked: boolean;
  groups_propagation_enabled: boolean;
  jwt_groups_enabled: boolean;
  jwt_groups_claim_name: string;
  jwt_allow_groups: string[];
  routing_peer_dns_resolution_enabled: boolean;
  dns_domain: string;
  network_range: string;
  lazy_connection_enabled: boolean;
  extra?: {
    peer_approval_enabled?: boolean;
    network_traffic_logs_enabled?: boolean;
    network_traffic_logs_groups?: string[];
    network_traffic_packet_counter_enabled?: boolean;
  };
}

export interface Account {
  id: string;
  domain: string;
  created_at: string;
  settings: AccountSettings;
}

export interface NameserverGroup {
  id: string;
  name: string;
  description: string;
  nameservers: Array<{ ip: string; ns_type: string; port: number }>;
  enabled: boolean;
  groups: string[];
  primary: boolean;
  domains: string[];
  search_domains_enabled: boolean;
}

export interface User {
  id: string;
  email: string;
  name: string;
  role: 'owner' | 'admin' | 'user' | 'billing_admin' | 'auditor' | 'network_admin';
  status: string;
  last_login: string;
  auto_groups: string[];
  is_current: boolean;
  is_service_user: boolean;
  is_blocked: boolean;
  password?: string;
}

export interface Token {
  id: string;
  name: string;
  expiration_date: string;
  created_at: string;
  last_used?: string;
}

export interface AuditEvent {
  id: string | number;
  timestamp: string;
  activity: string;
  activity_code: string;
  initiator_name: string;
  initiator_email: string;
  target_id: string;
  meta: Record<string, string> | null;
}

export interface TrafficEndpoint {
  id?: string;
  type?: string;
  name?: string;
  address?: string;
}

export interface TrafficEvent {
  flow_id?: string;
  /** Peer that reported the event. */
  reporter_id?: string;
  window_start?: string;
  events?: Array<{ type: string; timestamp: string }>;
  protocol?: number;
  direction?: string;
  type?: string;
  source?: TrafficEndpoint;
  destination?: TrafficEndpoint;
  rx_bytes?: number;
  tx_bytes?: number;
  policy?: { name?: string };
}

export interface TrafficPage {
  data: TrafficEvent[];
  page: number;
  page_size: number;
  total_records: number;
  total_pages: number;
}
