import type {
  Account,
  DnsZone,
  Group,
  NameserverGroup,
  NetworkDef,
  NetworkResource,
  NetworkRouter,
  PersonalAccessToken,
  Peer,
  PeerMeta,
  Policy,
  PostureCheck,
  Route,
  SetupKey,
  User,
  UserInvite,
} from '../types.js';
import { emptyPeerMeta } from '../types.js';
import type { ObjectTableName, PeersTable, PersonalAccessTokensTable, SetupKeysTable } from './schema.js';

/** What the store reads and writes besides the domain types, and the conversions of table rows. */

/** Everything of one account, as loaded at start-up into the in-memory account state. */
export interface AccountData {
  account: Account;
  users: User[];
  groups: Group[];
  policies: Policy[];
  setupKeys: SetupKey[];
  peers: Peer[];
  /** Entities of the REST API (absent in data built by hand, e.g. tests and benchmarks). */
  objects?: AccountObjects;
}

/** REST-managed entities of one account, by kind. */
export interface AccountObjects {
  routes: Route[];
  nameserverGroups: NameserverGroup[];
  postureChecks: PostureCheck[];
  networks: NetworkDef[];
  networkResources: NetworkResource[];
  networkRouters: NetworkRouter[];
  dnsZones: DnsZone[];
  userInvites: UserInvite[];
  tokens: PersonalAccessToken[];
}

/** Which table holds which kind of object. */
export const OBJECT_TABLE = {
  routes: 'routes',
  nameserverGroups: 'nameserver_groups',
  postureChecks: 'posture_checks',
  networks: 'networks',
  networkResources: 'network_resources',
  networkRouters: 'network_routers',
  dnsZones: 'dns_zones',
  userInvites: 'user_invites',
} as const satisfies Record<Exclude<keyof AccountObjects, 'tokens'>, ObjectTableName>;

export type ObjectKind = keyof typeof OBJECT_TABLE;

export interface LocalCredential {
  userId: string;
  accountId: string;
  email: string;
  passwordHash: string;
}

export function tokenFromRow(r: PersonalAccessTokensTable): PersonalAccessToken {
  return {
    id: r.id,
    accountId: r.account_id,
    userId: r.user_id,
    name: r.name,
    hashedToken: r.hashed_token,
    expiresAt: Number(r.expires_at),
    createdBy: r.created_by,
    createdAt: Number(r.created_at),
    lastUsed: Number(r.last_used),
  };
}

export const b = (v: boolean): number => (v ? 1 : 0);
export const isTrue = (v: number | string | boolean): boolean => v === 1 || v === true || v === '1';

export function parseJson<T>(text: string, fallback: T): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

export function peerFromRow(r: PeersTable): Peer {
  return {
    id: r.id,
    accountId: r.account_id,
    key: r.wg_pub_key,
    ip: r.ip,
    dnsLabel: r.dns_label,
    extraDnsLabels: parseJson<string[]>(r.extra_dns_labels_json, []),
    name: r.name,
    sshKey: r.ssh_key,
    sshEnabled: isTrue(r.ssh_enabled),
    meta: { ...emptyPeerMeta(), ...parseJson<Partial<PeerMeta>>(r.meta_json, {}) },
    userId: r.user_id,
    setupKeyId: r.setup_key_id,
    ephemeral: isTrue(r.ephemeral),
    loginExpirationEnabled: isTrue(r.login_expiration_enabled),
    inactivityExpirationEnabled: isTrue(r.inactivity_expiration_enabled),
    approvalRequired: isTrue(r.approval_required),
    connected: isTrue(r.connected),
    lastSeen: Number(r.last_seen),
    lastLogin: Number(r.last_login),
    createdAt: Number(r.created_at),
  };
}

export function peerToRow(p: Peer): PeersTable {
  return {
    id: p.id,
    account_id: p.accountId,
    wg_pub_key: p.key,
    ip: p.ip,
    dns_label: p.dnsLabel,
    extra_dns_labels_json: JSON.stringify(p.extraDnsLabels),
    name: p.name,
    ssh_key: p.sshKey,
    ssh_enabled: b(p.sshEnabled),
    meta_json: JSON.stringify(p.meta),
    user_id: p.userId,
    setup_key_id: p.setupKeyId,
    ephemeral: b(p.ephemeral),
    login_expiration_enabled: b(p.loginExpirationEnabled),
    inactivity_expiration_enabled: b(p.inactivityExpirationEnabled),
    approval_required: b(p.approvalRequired),
    connected: b(p.connected),
    last_seen: p.lastSeen,
    last_login: p.lastLogin,
    created_at: p.createdAt,
  };
}

export function setupKeyFromRow(r: SetupKeysTable): SetupKey {
  return {
    id: r.id,
    accountId: r.account_id,
    name: r.name,
    keyHash: r.key_hash,
    keyMasked: r.key_masked,
    type: r.type === 'one-off' ? 'one-off' : 'reusable',
    expiresAt: Number(r.expires_at),
    usageLimit: Number(r.usage_limit),
    usedTimes: Number(r.used_times),
    lastUsed: Number(r.last_used),
    revoked: isTrue(r.revoked),
    autoGroups: parseJson<string[]>(r.auto_groups_json, []),
    ephemeral: isTrue(r.ephemeral),
    allowExtraDnsLabels: isTrue(r.allow_extra_dns_labels),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

export function setupKeyToRow(k: SetupKey): SetupKeysTable {
  return {
    id: k.id,
    account_id: k.accountId,
    name: k.name,
    key_hash: k.keyHash,
    key_masked: k.keyMasked,
    type: k.type,
    expires_at: k.expiresAt,
    usage_limit: k.usageLimit,
    used_times: k.usedTimes,
    last_used: k.lastUsed,
    revoked: b(k.revoked),
    auto_groups_json: JSON.stringify(k.autoGroups),
    ephemeral: b(k.ephemeral),
    allow_extra_dns_labels: b(k.allowExtraDnsLabels),
    created_at: k.createdAt,
    updated_at: k.updatedAt,
  };
}
