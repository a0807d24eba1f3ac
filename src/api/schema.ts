/**
 * JSON Schemas of request bodies (NetBird's *Request shapes, management-api.md §8). Fastify
 * validates bodies against them; the same objects go into the OpenAPI document.
 */

export type Schema = { [k: string]: unknown };

/**
 * Input limits, declared once: every string is bounded and free of control characters (NUL, CR, LF,
 * ...: they break logs, DNS labels and other peers' maps); names are short; lists are bounded.
 */
export const LIMITS = { string: 4096, name: 255, items: 10_000 } as const;
export const NO_CONTROL_CHARS = '^[^\\u0000-\\u001f\\u007f]*$';

export const str = (extra: Schema = {}): Schema => ({ type: 'string', maxLength: LIMITS.string, pattern: NO_CONTROL_CHARS, ...extra });
/** A display name (of a group, policy, route, key, ...). */
const name = str({ maxLength: LIMITS.name });
/** Secrets may hold any character, but are still bounded. */
const secret = { type: 'string', maxLength: 1024, format: 'password' } as const;
export const bool: Schema = { type: 'boolean' };
export const int = (extra: Schema = {}): Schema => ({ type: 'integer', ...extra });
export const arr = (items: Schema, extra: Schema = {}): Schema => ({ type: 'array', items, maxItems: LIMITS.items, ...extra });
export const obj = (required: string[], properties: Record<string, Schema>, extra: Schema = {}): Schema => ({ type: 'object', required, properties, ...extra });
export const strings = arr(str());

export const SetupRequest = obj(['email', 'password', 'name'], {
  email: str(),
  password: secret,
  name,
  create_pat: bool,
  pat_expire_in: int(),
});

const settings = obj(['peer_login_expiration_enabled', 'peer_login_expiration'], {
  peer_login_expiration_enabled: bool,
  peer_login_expiration: int(),
  peer_inactivity_expiration_enabled: bool,
  peer_inactivity_expiration: int(),
  regular_users_view_blocked: bool,
  groups_propagation_enabled: bool,
  jwt_groups_enabled: bool,
  jwt_groups_claim_name: name,
  jwt_allow_groups: strings,
  routing_peer_dns_resolution_enabled: bool,
  dns_domain: str(),
  network_range: str(),
  lazy_connection_enabled: bool,
});

export const AccountRequest = obj(['settings'], { settings, onboarding: { type: 'object' } });

export const UserCreateRequest = obj(['role', 'auto_groups', 'is_service_user'], {
  email: str(),
  name,
  role: str(),
  auto_groups: strings,
  is_service_user: bool,
});

export const UserRequest = obj(['role', 'auto_groups', 'is_blocked'], { role: str(), auto_groups: strings, is_blocked: bool });

export const PasswordChangeRequest = obj(['old_password', 'new_password'], { old_password: secret, new_password: secret });

export const PersonalAccessTokenRequest = obj(['name', 'expires_in'], { name, expires_in: int() });

export const PeerRequest = obj(['name', 'ssh_enabled', 'login_expiration_enabled', 'inactivity_expiration_enabled'], {
  name,
  ssh_enabled: bool,
  login_expiration_enabled: bool,
  inactivity_expiration_enabled: bool,
  approval_required: bool,
  ip: str(),
});

export const CreateSetupKeyRequest = obj(['name', 'type', 'expires_in', 'auto_groups', 'usage_limit'], {
  name,
  type: str({ enum: ['reusable', 'one-off'] }),
  expires_in: int(),
  auto_groups: strings,
  // The dashboard sends null for "no limit" on reusable keys; 0 means the same.
  usage_limit: { type: ['integer', 'null'] },
  ephemeral: bool,
  allow_extra_dns_labels: bool,
});

export const SetupKeyRequest = obj(['revoked', 'auto_groups'], { revoked: bool, auto_groups: strings });

const resource = obj(['id', 'type'], { id: str(), type: str({ enum: ['host', 'subnet', 'domain', 'peer'] }) });

export const GroupRequest = obj(['name'], { name, peers: strings, resources: arr(resource) });

const portRange = obj(['start', 'end'], { start: int(), end: int() });

const rule = obj(['name', 'enabled', 'action', 'bidirectional', 'protocol'], {
  id: str(),
  name,
  description: str(),
  enabled: bool,
  action: str({ enum: ['accept', 'drop'] }),
  bidirectional: bool,
  protocol: str({ enum: ['all', 'tcp', 'udp', 'icmp', 'netbird-ssh'] }),
  ports: strings,
  port_ranges: arr(portRange),
  // null beside a single resource (the dashboard sends that), as NetBird accepts.
  sources: { ...strings, type: ['array', 'null'] },
  destinations: { ...strings, type: ['array', 'null'] },
  sourceResource: { ...resource, type: ['object', 'null'] },
  destinationResource: { ...resource, type: ['object', 'null'] },
  authorized_groups: { type: 'object' },
});

export const PolicyRequest = obj(['name', 'enabled', 'rules'], {
  name,
  description: str(),
  enabled: bool,
  source_posture_checks: strings,
  rules: arr(rule),
});

export const RouteRequest = obj(['description', 'network_id', 'enabled', 'metric', 'masquerade', 'groups', 'keep_route'], {
  description: str(),
  network_id: str(),
  enabled: bool,
  peer: str(),
  peer_groups: strings,
  network: str(),
  domains: strings,
  metric: int(),
  masquerade: bool,
  groups: strings,
  keep_route: bool,
  access_control_groups: strings,
  skip_auto_apply: bool,
});

export const NetworkRequest = obj(['name'], { name, description: str() });

export const NetworkResourceRequest = obj(['name', 'address', 'enabled', 'groups'], {
  name,
  description: str(),
  address: str(),
  enabled: bool,
  groups: strings,
});

export const NetworkRouterRequest = obj(['metric', 'masquerade', 'enabled'], {
  peer: str(),
  peer_groups: strings,
  metric: int(),
  masquerade: bool,
  enabled: bool,
});

const nameserver = obj(['ip', 'ns_type', 'port'], { ip: str(), ns_type: str({ enum: ['udp'] }), port: int() });

export const NameserverGroupRequest = obj(['name', 'description', 'nameservers', 'enabled', 'groups', 'primary', 'domains', 'search_domains_enabled'], {
  name,
  description: str(),
  nameservers: arr(nameserver),
  enabled: bool,
  groups: strings,
  primary: bool,
  domains: strings,
  search_domains_enabled: bool,
});

export const DNSSettings = obj(['disabled_management_groups'], { disabled_management_groups: strings });

export const ZoneRequest = obj(['name', 'domain', 'enable_search_domain', 'distribution_groups'], {
  name,
  domain: str(),
  enabled: bool,
  enable_search_domain: bool,
  distribution_groups: strings,
});

export const DNSRecordRequest = obj(['name', 'type', 'content', 'ttl'], {
  name,
  type: str({ enum: ['A', 'AAAA', 'CNAME'] }),
  content: str(),
  ttl: int(),
});

export const PostureCheckUpdate = obj(['name', 'checks'], { name, description: str(), checks: { type: 'object' } });

export const UserInviteCreateRequest = obj(['email', 'name', 'role', 'auto_groups'], {
  email: str(),
  name,
  role: str(),
  auto_groups: strings,
  expires_in: int(),
});

export const UserInviteRegenerateRequest = obj([], { expires_in: int() });

export const UserInviteAcceptRequest = obj(['password'], { password: secret });

export const IdentityProviderRequest = obj(['type', 'name', 'issuer', 'client_id', 'client_secret'], {
  type: str({ enum: ['oidc', 'zitadel', 'entra', 'google', 'okta', 'pocketid', 'microsoft', 'adfs'] }),
  name,
  issuer: str(),
  client_id: str(),
  client_secret: str(),
});
