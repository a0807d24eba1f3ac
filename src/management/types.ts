/**
 * Domain model of the management service (management-api.md §3). Plain data; times are Unix
 * milliseconds (0 = never/unset). These are the shapes the store persists and the REST layer reads.
 */

export type RuleAction = 'accept' | 'drop';
export type RuleProtocol = 'all' | 'tcp' | 'udp' | 'icmp' | 'netbird-ssh';
export type GroupIssued = 'api' | 'jwt' | 'integration';
export type UserRole = 'owner' | 'admin' | 'user' | 'auditor' | 'network_admin' | 'billing_admin';
export type SetupKeyType = 'reusable' | 'one-off';
export type SetupKeyState = 'valid' | 'expired' | 'revoked' | 'overused';

export interface AccountSettings {
  peerLoginExpirationEnabled: boolean;
  /** Seconds. */
  peerLoginExpiration: number;
  peerInactivityExpirationEnabled: boolean;
  /** Seconds. */
  peerInactivityExpiration: number;
  regularUsersViewBlocked: boolean;
  groupsPropagationEnabled: boolean;
  jwtGroupsEnabled: boolean;
  jwtGroupsClaimName: string;
  jwtAllowGroups: string[];
  routingPeerDnsResolutionEnabled: boolean;
  lazyConnectionEnabled: boolean;
  /** Groups whose peers get no managed DNS (DNS settings `disabled_management_groups`). */
  dnsDisabledManagementGroups: string[];
  /** Traffic events (settings.extra.network_traffic_*): on/off, limited to these groups (empty: all), counters. */
  networkTrafficLogsEnabled: boolean;
  networkTrafficLogsGroups: string[];
  networkTrafficPacketCounterEnabled: boolean;
}

export interface Account {
  id: string;
  /** Organisation domain (e.g. the owner's e-mail domain); informational. */
  domain: string;
  domainCategory: string;
  /** Peer DNS domain: FQDN = label + '.' + dnsDomain. */
  dnsDomain: string;
  /** IPv4 overlay network in CIDR form, inside 100.64.0.0/10. */
  network: string;
  /** Account-wide network serial; increases with every change. */
  serial: number;
  settings: AccountSettings;
  createdAt: number;
  createdBy: string;
}

export interface User {
  id: string;
  accountId: string;
  email: string;
  name: string;
  role: UserRole;
  isServiceUser: boolean;
  blocked: boolean;
  autoGroups: string[];
  createdAt: number;
  lastLogin: number;
}

export interface Group {
  id: string;
  accountId: string;
  name: string;
  issued: GroupIssued;
  /** Peer ids. For the "All" group this is every peer of the account. */
  peers: string[];
}

export interface PortRange {
  start: number;
  end: number;
}

/**
 * A single object a rule points at instead of groups (NetBird's Resource {id, type}): a peer, or a
 * network resource (its type is the resource's type).
 */
export interface RuleResource {
  id: string;
  type: 'peer' | NetworkResourceType;
}

export interface PolicyRule {
  id: string;
  name: string;
  description: string;
  enabled: boolean;
  action: RuleAction;
  bidirectional: boolean;
  protocol: RuleProtocol;
  /** Single ports as decimal strings (REST form). */
  ports: string[];
  portRanges: PortRange[];
  /** Group ids (empty when the side is a single resource). */
  sources: string[];
  destinations: string[];
  /** Set instead of `sources`: a peer. */
  sourceResource?: RuleResource;
  /** Set instead of `destinations`: a peer, or a network resource reached through its network's routers. */
  destinationResource?: RuleResource;
}

/**
 * A rule object built the one way every rule is built, whether it comes from the REST API or from
 * the store's JSON: objects of one shape keep the map code that reads them optimized. (Rules parsed
 * from JSON and rules from an object literal had different hidden classes, and the first policy
 * change after a restart deoptimized the hot map-building functions.)
 */
export function policyRule(r: PolicyRule): PolicyRule {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    enabled: r.enabled,
    action: r.action,
    bidirectional: r.bidirectional,
    protocol: r.protocol,
    ports: r.ports,
    portRanges: r.portRanges.map((x) => ({ start: x.start, end: x.end })),
    sources: r.sources,
    destinations: r.destinations,
    ...(r.sourceResource ? { sourceResource: r.sourceResource } : {}),
    ...(r.destinationResource ? { destinationResource: r.destinationResource } : {}),
  };
}

export interface Policy {
  id: string;
  accountId: string;
  name: string;
  description: string;
  enabled: boolean;
  sourcePostureChecks: string[];
  rules: PolicyRule[];
}

export interface SetupKey {
  id: string;
  accountId: string;
  name: string;
  /** base64(SHA-256(upper-case key)); the plain key is never stored. */
  keyHash: string;
  /** Masked form shown after creation: first 5 characters + "****". */
  keyMasked: string;
  type: SetupKeyType;
  /** Unix ms; 0 = never expires. */
  expiresAt: number;
  /** 0 = unlimited. */
  usageLimit: number;
  usedTimes: number;
  lastUsed: number;
  revoked: boolean;
  autoGroups: string[];
  ephemeral: boolean;
  allowExtraDnsLabels: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface NetworkAddress {
  netIP: string;
  mac: string;
}

/** Stored peer system meta (subset of PeerSystemMeta the server uses or shows). */
export interface PeerMeta {
  hostname: string;
  goOS: string;
  kernel: string;
  core: string;
  platform: string;
  OS: string;
  netbirdVersion: string;
  uiVersion: string;
  kernelVersion: string;
  OSVersion: string;
  networkAddresses: NetworkAddress[];
  sysSerialNumber: string;
  sysProductName: string;
  sysManufacturer: string;
  environment: { cloud: string; platform: string };
  flags: Record<string, boolean>;
  capabilities: number[];
}

export interface Peer {
  id: string;
  accountId: string;
  /** WireGuard public key, base64. */
  key: string;
  /** IPv4 overlay address (no mask). */
  ip: string;
  dnsLabel: string;
  extraDnsLabels: string[];
  name: string;
  sshKey: string;
  sshEnabled: boolean;
  meta: PeerMeta;
  /** Owner for JWT (SSO) peers; '' for setup-key peers. */
  userId: string;
  setupKeyId: string;
  ephemeral: boolean;
  loginExpirationEnabled: boolean;
  inactivityExpirationEnabled: boolean;
  approvalRequired: boolean;
  connected: boolean;
  lastSeen: number;
  lastLogin: number;
  createdAt: number;
  /**
   * Where the peer's last login came from (its public address, geolocated). Kept in memory only:
   * peers log in again whenever they reconnect, which sets it anew.
   */
  location?: PeerLocation;
}

/** A peer's public address and its place (empty strings / 0 where unknown). */
export interface PeerLocation {
  connectionIp: string;
  countryCode: string;
  cityName: string;
  geonameId: number;
}

export interface AuditEvent {
  id: string;
  accountId: string;
  timestamp: number;
  activityCode: string;
  initiatorId: string;
  targetId: string;
  meta: Record<string, string>;
}

// ----- entities managed through the REST API (routes, DNS, posture checks, networks, tokens) -----

export type RouteNetworkType = 'IPv4' | 'IPv6' | 'Domain';

/** Legacy network route (management-api.md §3 "Route"). */
export interface Route {
  id: string;
  accountId: string;
  description: string;
  /** Human network identifier (NetID); routes sharing it form an HA set. */
  networkId: string;
  enabled: boolean;
  /** Routing peer id, or '' when `peerGroups` is used. */
  peer: string;
  peerGroups: string[];
  /** CIDR, '' for domain routes. */
  network: string;
  networkType: RouteNetworkType;
  domains: string[];
  metric: number;
  masquerade: boolean;
  /** Distribution groups: which peers receive the route. */
  groups: string[];
  keepRoute: boolean;
  accessControlGroups: string[];
  skipAutoApply: boolean;
}

export interface Nameserver {
  ip: string;
  nsType: 'udp';
  port: number;
}

export interface NameserverGroup {
  id: string;
  accountId: string;
  name: string;
  description: string;
  nameservers: Nameserver[];
  enabled: boolean;
  groups: string[];
  primary: boolean;
  domains: string[];
  searchDomainsEnabled: boolean;
}

/** Posture check; `checks` is kept in the REST shape (snake_case object), validated on input. */
export interface PostureCheck {
  id: string;
  accountId: string;
  name: string;
  description: string;
  checks: Record<string, unknown>;
}

export interface NetworkDef {
  id: string;
  accountId: string;
  name: string;
  description: string;
}

export type NetworkResourceType = 'host' | 'subnet' | 'domain';

export interface NetworkResource {
  id: string;
  accountId: string;
  networkId: string;
  name: string;
  description: string;
  type: NetworkResourceType;
  /** Host IP (stored as /32 CIDR-less text), subnet CIDR or domain (may start with "*."). */
  address: string;
  enabled: boolean;
  groups: string[];
}

export interface NetworkRouter {
  id: string;
  accountId: string;
  networkId: string;
  peer: string;
  peerGroups: string[];
  metric: number;
  masquerade: boolean;
  enabled: boolean;
}

export type DnsRecordType = 'A' | 'AAAA' | 'CNAME';

export interface DnsRecord {
  id: string;
  name: string;
  type: DnsRecordType;
  content: string;
  ttl: number;
}

export interface DnsZone {
  id: string;
  accountId: string;
  name: string;
  domain: string;
  enabled: boolean;
  enableSearchDomain: boolean;
  distributionGroups: string[];
  records: DnsRecord[];
}

/** Personal access token; only the hash of the plain token is ever stored. */
export interface PersonalAccessToken {
  id: string;
  accountId: string;
  userId: string;
  name: string;
  /** base64(SHA-256(plain token)). */
  hashedToken: string;
  /** Unix ms. */
  expiresAt: number;
  createdBy: string;
  createdAt: number;
  /** Unix ms, 0 = never used. */
  lastUsed: number;
}

/** A pending invitation of a new local user (embedded identity provider). */
export interface UserInvite {
  id: string;
  accountId: string;
  email: string;
  name: string;
  role: UserRole;
  autoGroups: string[];
  /** base64(SHA-256(invite token)); the token itself is shown once. */
  tokenHash: string;
  expiresAt: number;
  createdAt: number;
  createdBy: string;
}

export const ALL_GROUP_NAME = 'All';

/**
 * The one way Account objects are built: for a new account, from the store, and on every serial bump.
 * Like policyRule, this keeps one hidden class: a spread copy had another one, and the first change
 * after a restart (its serial bump) deoptimized every map function that reads the account.
 */
export function accountRecord(a: Account): Account {
  return {
    id: a.id,
    domain: a.domain,
    domainCategory: a.domainCategory,
    dnsDomain: a.dnsDomain,
    network: a.network,
    serial: a.serial,
    settings: accountSettings(a.settings),
    createdAt: a.createdAt,
    createdBy: a.createdBy,
  };
}

/** Settings over the defaults, in the defaults' shape (see accountRecord). */
export function accountSettings(s: Partial<AccountSettings>): AccountSettings {
  return Object.assign(defaultAccountSettings(), s);
}

export function defaultAccountSettings(): AccountSettings {
  return {
    peerLoginExpirationEnabled: true,
    peerLoginExpiration: 24 * 3600,
    peerInactivityExpirationEnabled: false,
    peerInactivityExpiration: 10 * 60,
    regularUsersViewBlocked: true,
    groupsPropagationEnabled: true,
    jwtGroupsEnabled: false,
    jwtGroupsClaimName: '',
    jwtAllowGroups: [],
    routingPeerDnsResolutionEnabled: true,
    lazyConnectionEnabled: false,
    dnsDisabledManagementGroups: [],
    networkTrafficLogsEnabled: false,
    networkTrafficLogsGroups: [],
    networkTrafficPacketCounterEnabled: false,
  };
}

export function emptyPeerMeta(): PeerMeta {
  return {
    hostname: '',
    goOS: '',
    kernel: '',
    core: '',
    platform: '',
    OS: '',
    netbirdVersion: '',
    uiVersion: '',
    kernelVersion: '',
    OSVersion: '',
    networkAddresses: [],
    sysSerialNumber: '',
    sysProductName: '',
    sysManufacturer: '',
    environment: { cloud: '', platform: '' },
    flags: {},
    capabilities: [],
  };
}

/** Error with a stable kind the gRPC and REST layers map to status codes. */
export type ManagementErrorKind =
  | 'not_found'
  | 'invalid_argument'
  | 'permission_denied'
  | 'failed_precondition'
  | 'already_exists'
  | 'unprocessable'
  | 'unauthenticated'
  | 'internal';

export class ManagementError extends Error {
  override readonly name = 'ManagementError';
  constructor(
    readonly kind: ManagementErrorKind,
    message: string,
  ) {
    super(message);
  }
}
