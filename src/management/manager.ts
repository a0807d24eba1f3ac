import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { AccountState } from './state.js';
import { Store, type AccountObjects, type LocalCredential, type Queries } from './store/store.js';
import { AccountObjectsState, accountObjects, affectedByRoute, attachAccountObjects, membersOfGroups, routingPeers, withRoutingDependents } from './objects.js';
import { forwarderPort, isLoginExpired } from './networkmap.js';
import type {
  Account,
  AccountSettings,
  AuditEvent,
  DnsRecord,
  DnsZone,
  Group,
  NameserverGroup,
  NetworkDef,
  NetworkResource,
  NetworkRouter,
  PersonalAccessToken,
  PostureCheck,
  Route,
  Peer,
  PeerLocation,
  PeerMeta,
  Policy,
  PolicyRule,
  PortRange,
  RuleAction,
  RuleProtocol,
  SetupKey,
  SetupKeyState,
  SetupKeyType,
  User,
  UserInvite,
  UserRole,
} from './types.js';
import { ALL_GROUP_NAME, ManagementError, defaultAccountSettings, emptyPeerMeta } from './types.js';
import {
  OVERLAY_SUPERNET,
  allocateIp,
  cidrContains,
  dnsLabelFromHostname,
  hashSetupKey,
  isValidDnsLabel,
  isValidDomain,
  maskSetupKey,
  newId,
  newSetupKey,
  parseCidr,
  randomAccountNetwork,
  uniqueDnsLabel,
} from './util.js';

/**
 * Domain logic of the management service: accounts, users, groups, policies, setup keys, peer
 * registration/login and the bookkeeping of connected peers. Every change is one store transaction
 * (which also bumps the account serial and records an audit event), then applied to the in-memory
 * account, then announced to listeners with the set of peers whose network maps may have changed.
 * Writes to one account are serialized by a per-account lock, which is what keeps concurrent
 * registrations from picking the same IP or DNS label (the database's unique constraints back it up).
 */

export const DEFAULT_DNS_DOMAIN = 'netbird.cloud';
export const DEFAULT_EPHEMERAL_TIMEOUT_MS = 10 * 60 * 1000;
/** Connection-status writes are batched this long (see updatePeerRuntime). */
const STATUS_FLUSH_MS = 500;

export interface AccountManagerOptions {
  store: Store;
  /** DNS domain for new accounts (default netbird.cloud). */
  dnsDomain?: string;
  /** How long an ephemeral peer may stay disconnected before it is deleted (default 10 min). */
  ephemeralTimeoutMs?: number;
  /** How often to look for peers whose login expired (default 30 s). */
  expirationCheckMs?: number;
  /** Clock (tests). */
  now?: () => number;
}

/** Which connected peers' maps may have changed; 'all' = every peer of the account. */
export type Affected = ReadonlySet<string> | 'all';

export interface ChangeListener {
  /** Maps of `affected` peers of `accountId` may have changed. */
  accountChanged(accountId: string, affected: Affected): void;
  /** `peer` was deleted: its stream gets the final empty map and is closed. */
  peerDeleted(accountId: string, peer: Peer): void;
  /** `peer`'s login expired: its stream must end with PermissionDenied. */
  peerLoginExpired?(accountId: string, peer: Peer): void;
}

export interface PolicyRuleInput {
  id?: string;
  name: string;
  description?: string;
  enabled?: boolean;
  action?: RuleAction;
  bidirectional?: boolean;
  protocol?: RuleProtocol;
  ports?: string[];
  portRanges?: PortRange[];
  sources: string[];
  destinations: string[];
}

export interface PolicyInput {
  name: string;
  description?: string;
  enabled?: boolean;
  sourcePostureChecks?: string[];
  rules: PolicyRuleInput[];
}

export interface SetupKeyInput {
  name: string;
  type?: SetupKeyType;
  /** Seconds from now; 0/undefined = never expires. */
  expiresIn?: number;
  /** 0 = unlimited (one-off keys always have 1). */
  usageLimit?: number;
  autoGroups?: string[];
  ephemeral?: boolean;
  allowExtraDnsLabels?: boolean;
}

export interface PeerUpdateInput {
  name?: string;
  sshEnabled?: boolean;
  loginExpirationEnabled?: boolean;
  inactivityExpirationEnabled?: boolean;
  approvalRequired?: boolean;
}

export interface LoginInput {
  /** WireGuard public key (already validated and authenticated by the envelope). */
  peerKey: string;
  setupKey?: string;
  /** Owner resolved from a validated JWT, if any (JWT validation itself is outside this class). */
  jwtUserId?: string;
  meta: PeerMeta;
  sshKey?: string;
  dnsLabels?: string[];
  /** Public address of the login and its place (geolocation posture checks, the peers API). */
  location?: PeerLocation;
}

export interface PeerRef {
  state: AccountState;
  peer: Peer;
}

/** Activity codes (management-api.md §7) this class records. */
const ACT = {
  peerUserAdd: 'peer.user.add',
  peerSetupKeyAdd: 'peer.setupkey.add',
  accountCreate: 'account.create',
  userPeerDelete: 'user.peer.delete',
  policyAdd: 'policy.add',
  policyUpdate: 'policy.update',
  policyDelete: 'policy.delete',
  setupKeyAdd: 'setupkey.add',
  setupKeyUpdate: 'setupkey.update',
  setupKeyRevoke: 'setupkey.revoke',
  setupKeyDelete: 'setupkey.delete',
  groupAdd: 'group.add',
  groupUpdate: 'group.update',
  groupDelete: 'group.delete',
  peerRename: 'peer.rename',
  peerSshEnable: 'peer.ssh.enable',
  peerSshDisable: 'peer.ssh.disable',
  peerLoginExpire: 'peer.login.expire',
  userPeerLogin: 'user.peer.login',
  accountDnsDomainUpdate: 'account.dns.domain.update',
  userCreate: 'user.create',
  userJoin: 'user.join',
  userDelete: 'user.delete',
  userBlock: 'user.block',
  userUnblock: 'user.unblock',
  userRoleUpdate: 'user.role.update',
  userGroupAdd: 'user.group.add',
  userGroupDelete: 'user.group.delete',
  peerGroupAdd: 'peer.group.add',
  peerGroupDelete: 'peer.group.delete',
  serviceUserCreate: 'service.user.create',
  serviceUserDelete: 'service.user.delete',
  transferredOwnerRole: 'transferred.owner.role',
  patCreate: 'personal.access.token.create',
  patDelete: 'personal.access.token.delete',
  routeAdd: 'route.add',
  routeUpdate: 'route.update',
  routeDelete: 'route.delete',
  nsAdd: 'nameserver.group.add',
  nsUpdate: 'nameserver.group.update',
  nsDelete: 'nameserver.group.delete',
  dnsDisabledAdd: 'dns.setting.disabled.management.group.add',
  dnsDisabledDelete: 'dns.setting.disabled.management.group.delete',
  postureCreate: 'posture.check.create',
  postureUpdate: 'posture.check.update',
  postureDelete: 'posture.check.delete',
  networkCreate: 'network.create',
  networkUpdate: 'network.update',
  networkDelete: 'network.delete',
  resourceCreate: 'network.resource.create',
  resourceUpdate: 'network.resource.update',
  resourceDelete: 'network.resource.delete',
  routerCreate: 'network.router.create',
  routerUpdate: 'network.router.update',
  routerDelete: 'network.router.delete',
  zoneCreate: 'dns.zone.create',
  zoneUpdate: 'dns.zone.update',
  zoneDelete: 'dns.zone.delete',
  recordCreate: 'dns.zone.record.create',
  recordUpdate: 'dns.zone.record.update',
  recordDelete: 'dns.zone.record.delete',
  peerLoginExpirationEnable: 'peer.login.expiration.enable',
  peerLoginExpirationDisable: 'peer.login.expiration.disable',
  peerInactivityExpirationEnable: 'peer.inactivity.expiration.enable',
  peerInactivityExpirationDisable: 'peer.inactivity.expiration.disable',
  peerApprove: 'peer.approve',
  inviteCreate: 'user.invite.link.create',
  inviteAccept: 'user.invite.link.accept',
  inviteRegenerate: 'user.invite.link.regenerate',
  inviteDelete: 'user.invite.link.delete',
} as const;

/** Default lifetime of an invite link (the reference's 72 hours). */
export const INVITE_TTL_SECONDS = 72 * 3600;

/** Activity codes of account-setting toggles: [setting, code when turned on, code when turned off]. */
const SETTING_EVENTS: Array<[keyof AccountSettings, string, string]> = [
  ['peerLoginExpirationEnabled', 'account.setting.peer.login.expiration.enable', 'account.setting.peer.login.expiration.disable'],
  ['peerInactivityExpirationEnabled', 'account.peer.inactivity.expiration.enable', 'account.peer.inactivity.expiration.disable'],
  ['groupsPropagationEnabled', 'account.setting.group.propagation.enable', 'account.setting.group.propagation.disable'],
  ['routingPeerDnsResolutionEnabled', 'account.setting.routing.peer.dns.resolution.enable', 'account.setting.routing.peer.dns.resolution.disable'],
  ['lazyConnectionEnabled', 'account.setting.lazy.connection.enable', 'account.setting.lazy.connection.disable'],
];

/** Initiator (user id) of the changes made inside `AccountManager.asInitiator`, for audit events. */
const initiatorContext = new AsyncLocalStorage<string>();

type EventDraft = Omit<AuditEvent, 'id' | 'accountId' | 'timestamp'>;

const PAT_PREFIX = 'nbp_';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(text: string): number {
  let c = 0xffffffff;
  for (const byte of Buffer.from(text, 'utf8')) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function base62(n: number, width: number): string {
  let out = '';
  while (n > 0) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out.padStart(width, '0');
}

function randomBase62(len: number): string {
  // Rejection sampling keeps the distribution uniform (248 = 4 * 62).
  let out = '';
  while (out.length < len) {
    for (const b of randomBytes(len * 2)) {
      if (b < 248 && out.length < len) out += BASE62[b % 62];
    }
  }
  return out;
}

/** A new PAT: "nbp_" + 30 random base62 characters + 6-character base62 CRC32 of the secret. */
export function newPersonalAccessToken(): string {
  const secret = randomBase62(30);
  return PAT_PREFIX + secret + base62(crc32(secret), 6);
}

/** Shape and checksum check of a plain PAT (rejects typos before any lookup). */
export function isWellFormedPat(token: string): boolean {
  if (!token.startsWith(PAT_PREFIX) || token.length !== PAT_PREFIX.length + 36) return false;
  const secret = token.slice(4, 34);
  if (!/^[0-9A-Za-z]+$/.test(token.slice(4))) return false;
  return base62(crc32(secret), 6) === token.slice(34);
}

export function hashPersonalAccessToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64');
}

export interface UserUpdateInput {
  role?: UserRole;
  autoGroups?: string[];
  blocked?: boolean;
}

export interface RouteInput {
  description: string;
  networkId: string;
  enabled: boolean;
  peer?: string;
  peerGroups?: string[];
  network?: string;
  domains?: string[];
  metric: number;
  masquerade: boolean;
  groups: string[];
  keepRoute: boolean;
  accessControlGroups?: string[];
  skipAutoApply?: boolean;
}

export type NameserverGroupInput = Omit<NameserverGroup, 'id' | 'accountId'>;
export type NetworkResourceInput = Pick<NetworkResource, 'name' | 'description' | 'address' | 'enabled' | 'groups'>;
export type NetworkRouterInput = Pick<NetworkRouter, 'peer' | 'peerGroups' | 'metric' | 'masquerade' | 'enabled'>;
export type DnsZoneInput = Pick<DnsZone, 'name' | 'domain' | 'enabled' | 'enableSearchDomain' | 'distributionGroups'>;
export type DnsRecordInput = Omit<DnsRecord, 'id'>;

export const USER_ROLES: readonly UserRole[] = ['owner', 'admin', 'user', 'auditor', 'network_admin', 'billing_admin'];

class Mutex {
  private tail: Promise<void> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

export function setupKeyState(k: SetupKey, now: number): SetupKeyState {
  if (k.revoked) return 'revoked';
  if (k.expiresAt !== 0 && k.expiresAt <= now) return 'expired';
  if (k.usageLimit !== 0 && k.usedTimes >= k.usageLimit) return 'overused';
  return 'valid';
}

const RULE_ACTIONS: readonly RuleAction[] = ['accept', 'drop'];
const RULE_PROTOCOLS: readonly RuleProtocol[] = ['all', 'tcp', 'udp', 'icmp', 'netbird-ssh'];

function hasGeoChecks(state: AccountState): boolean {
  for (const c of accountObjects(state).postureChecks.values()) if ((c.checks as Record<string, unknown>).geo_location_check) return true;
  return false;
}

/** An unknown new location (no address seen) keeps the old one. */
function sameLocation(next: PeerLocation | undefined, cur: PeerLocation | undefined): boolean {
  if (!next) return true;
  return !!cur && next.connectionIp === cur.connectionIp && next.countryCode === cur.countryCode && next.cityName === cur.cityName;
}

function metaEqual(a: PeerMeta, b: PeerMeta): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class AccountManager {
  readonly store: Store;
  readonly defaultDnsDomain: string;
  readonly ephemeralTimeoutMs: number;
  readonly now: () => number;
  private readonly accounts = new Map<string, AccountState>();
  private readonly locks = new Map<string, Mutex>();
  private readonly globalLock = new Mutex();
  private readonly peerAccount = new Map<string, string>();
  private readonly keyHashIndex = new Map<string, { accountId: string; id: string }>();
  private readonly tokenHashIndex = new Map<string, { accountId: string; id: string }>();
  private readonly listeners = new Set<ChangeListener>();
  private readonly ephemeralTimers = new Map<string, NodeJS.Timeout>();
  private readonly expiredNotified = new Set<string>();
  private expirationTimer: NodeJS.Timeout | undefined;
  private readonly pendingStatus = new Map<string, { connected: boolean; lastSeen: number }>();
  private statusTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(options: AccountManagerOptions) {
    this.store = options.store;
    this.defaultDnsDomain = options.dnsDomain ?? DEFAULT_DNS_DOMAIN;
    this.ephemeralTimeoutMs = options.ephemeralTimeoutMs ?? DEFAULT_EPHEMERAL_TIMEOUT_MS;
    this.now = options.now ?? Date.now;
  }

  /** Loads every account into memory, resets connection state and re-arms ephemeral clean-up. */
  static async open(options: AccountManagerOptions): Promise<AccountManager> {
    const m = new AccountManager(options);
    for (const id of await m.store.listAccountIds()) {
      const data = await m.store.loadAccount(id);
      if (data) m.index(new AccountState(data), data.objects);
    }
    // Nobody is connected to a server that just started; persisted "connected" flags are stale
    // (one UPDATE: thousands of single-row fsynced writes would stall start-up after a crash).
    const now = m.now();
    await m.store.resetConnectedPeers(now);
    for (const state of m.accounts.values()) {
      for (const p of state.peers.values()) {
        if (p.connected) {
          p.connected = false;
          p.lastSeen = now;
        }
        if (p.ephemeral) m.armEphemeral(state.id, p);
        if (isLoginExpired(state, p, now)) m.expiredNotified.add(p.id);
      }
    }
    const every = options.expirationCheckMs ?? 30_000;
    m.expirationTimer = setInterval(() => void m.checkLoginExpiration(), every);
    m.expirationTimer.unref();
    return m;
  }

  /** Stops timers; the store stays open (its owner closes it). */
  close(): void {
    this.closed = true;
    if (this.statusTimer) clearTimeout(this.statusTimer);
    this.statusTimer = undefined;
    if (this.expirationTimer) clearInterval(this.expirationTimer);
    for (const t of this.ephemeralTimers.values()) clearTimeout(t);
    this.ephemeralTimers.clear();
  }

  addListener(l: ChangeListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private index(state: AccountState, objects?: AccountObjects): void {
    const objs = new AccountObjectsState(objects);
    attachAccountObjects(state, objs);
    for (const t of objs.tokens.values()) this.tokenHashIndex.set(t.hashedToken, { accountId: state.id, id: t.id });
    this.accounts.set(state.id, state);
    for (const p of state.peers.values()) this.peerAccount.set(p.key, state.id);
    for (const k of state.setupKeys.values()) this.keyHashIndex.set(k.keyHash, { accountId: state.id, id: k.id });
  }

  private lock(accountId: string): Mutex {
    let l = this.locks.get(accountId);
    if (!l) this.locks.set(accountId, (l = new Mutex()));
    return l;
  }

  /** The in-memory account (read-only use: map computation, REST reads). */
  accountState(accountId: string): AccountState {
    const s = this.accounts.get(accountId);
    if (!s) throw new ManagementError('not_found', `account ${accountId} not found`);
    return s;
  }

  private emit(accountId: string, affected: Affected): void {
    if (affected !== 'all' && affected.size === 0) return;
    const state = this.accounts.get(accountId);
    const all = affected === 'all' || !state ? affected : withRoutingDependents(state, affected);
    for (const l of this.listeners) l.accountChanged(accountId, all);
  }

  /**
   * Runs a change of one account: `fn` writes through the transaction `q` and mutates nothing in
   * memory; `apply` (run only after commit) updates memory and returns the affected peers.
   */
  private async change<T>(
    accountId: string,
    fn: (q: Queries, state: AccountState, now: number) => Promise<{ result: T; apply: () => Affected; events?: Omit<AuditEvent, 'id' | 'accountId' | 'timestamp'>[] }>,
  ): Promise<T> {
    const initiator = initiatorContext.getStore() ?? '';
    return this.lock(accountId).run(async () => {
      const state = this.accountState(accountId);
      const now = this.now();
      const serial = state.account.serial + 1;
      let apply: (() => Affected) | undefined;
      const result = await this.store.transaction(async (q) => {
        const r = await fn(q, state, now);
        await q.setAccountSerial(accountId, serial);
        for (const e of r.events ?? []) await q.insertEvent({ ...e, initiatorId: e.initiatorId || initiator, id: newId(), accountId, timestamp: now });
        apply = r.apply;
        return r.result;
      });
      const fwdBefore = forwarderPort(state);
      state.account = { ...state.account, serial };
      const affected = apply!();
      // The DNS forwarder port depends on every peer's version: when it flips, everybody is affected.
      this.emit(accountId, forwarderPort(state) !== fwdBefore ? 'all' : affected);
      return result;
    });
  }

  // =====================================================================================
  // Accounts
  // =====================================================================================

  async createAccount(opts: { createdBy?: string; domain?: string; dnsDomain?: string; network?: string } = {}): Promise<Account> {
    const now = this.now();
    const network = opts.network ?? randomAccountNetwork();
    const net = parseCidr(network);
    if (!cidrContains(OVERLAY_SUPERNET, net.base) || net.bits < OVERLAY_SUPERNET.bits || net.bits > 30) {
      throw new ManagementError('unprocessable', `network ${network} must be a prefix inside 100.64.0.0/10 with room for peers`);
    }
    const dnsDomain = opts.dnsDomain ?? this.defaultDnsDomain;
    if (!isValidDomain(dnsDomain)) throw new ManagementError('unprocessable', `invalid DNS domain ${JSON.stringify(dnsDomain)}`);
    const account: Account = {
      id: newId(),
      domain: opts.domain ?? '',
      domainCategory: 'private',
      dnsDomain,
      network,
      serial: 1,
      settings: defaultAccountSettings(),
      createdAt: now,
      createdBy: opts.createdBy ?? '',
    };
    const all: Group = { id: newId(), accountId: account.id, name: ALL_GROUP_NAME, issued: 'api', peers: [] };
    const policy: Policy = {
      id: newId(),
      accountId: account.id,
      name: 'Default',
      description: 'This is a default policy that allows connections between all the resources',
      enabled: true,
      sourcePostureChecks: [],
      rules: [
        {
          id: newId(),
          name: 'Default',
          description: 'This is a default rule that allows connections between all the resources',
          enabled: true,
          action: 'accept',
          bidirectional: true,
          protocol: 'all',
          ports: [],
          portRanges: [],
          sources: [all.id],
          destinations: [all.id],
        },
      ],
    };
    await this.store.transaction(async (q) => {
      await q.insertAccount(account);
      await q.insertGroup(all);
      await q.insertPolicy(policy, 0);
      await q.insertEvent({ id: newId(), accountId: account.id, timestamp: now, activityCode: ACT.accountCreate, initiatorId: account.createdBy, targetId: account.id, meta: {} });
    });
    this.index(new AccountState({ account, users: [], groups: [all], policies: [policy], setupKeys: [], peers: [] }));
    return account;
  }

  /** The instance's account (the oldest), created on a fresh store. */
  async defaultAccount(): Promise<Account> {
    return this.globalLock.run(async () => {
      const first = [...this.accounts.values()].sort((a, b) => a.account.createdAt - b.account.createdAt || (a.id < b.id ? -1 : 1))[0];
      if (first) return first.account;
      return this.createAccount();
    });
  }

  listAccounts(): Account[] {
    return [...this.accounts.values()].map((s) => s.account);
  }

  getAccount(accountId: string): Account {
    return this.accountState(accountId).account;
  }

  async updateAccount(accountId: string, patch: { settings?: Partial<AccountSettings>; dnsDomain?: string }): Promise<Account> {
    if (patch.dnsDomain !== undefined && !isValidDomain(patch.dnsDomain)) {
      throw new ManagementError('unprocessable', `invalid DNS domain ${JSON.stringify(patch.dnsDomain)}`);
    }
    return this.change(accountId, async (q, state) => {
      const account: Account = {
        ...state.account,
        dnsDomain: patch.dnsDomain ?? state.account.dnsDomain,
        settings: { ...state.account.settings, ...(patch.settings ?? {}) },
      };
      await q.updateAccount({ ...account, serial: state.account.serial });
      const events: EventDraft[] = patch.dnsDomain !== undefined && patch.dnsDomain !== state.account.dnsDomain
        ? [{ activityCode: ACT.accountDnsDomainUpdate, initiatorId: '', targetId: accountId, meta: { domain: patch.dnsDomain } }]
        : [];
      const before = state.account.settings;
      for (const [key, on, off] of SETTING_EVENTS) {
        if (account.settings[key] !== before[key]) events.push({ activityCode: account.settings[key] ? on : off, initiatorId: '', targetId: accountId, meta: {} });
      }
      if (account.settings.peerLoginExpiration !== before.peerLoginExpiration) {
        events.push({ activityCode: 'account.setting.peer.login.expiration.update', initiatorId: '', targetId: accountId, meta: { expiration: String(account.settings.peerLoginExpiration) } });
      }
      if (account.settings.peerInactivityExpiration !== before.peerInactivityExpiration) {
        events.push({ activityCode: 'account.peer.inactivity.expiration.update', initiatorId: '', targetId: accountId, meta: { expiration: String(account.settings.peerInactivityExpiration) } });
      }
      return {
        result: account,
        events,
        apply: () => {
          state.account = { ...account, serial: state.account.serial };
          // Cached fragments embed the DNS domain and settings.
          state.peerCache.clear();
          return 'all';
        },
      };
    });
  }

  async deleteAccount(accountId: string): Promise<void> {
    const state = this.accountState(accountId);
    await this.lock(accountId).run(async () => {
      await this.store.transaction((q) => q.deleteAccount(accountId));
      for (const p of state.peers.values()) {
        this.peerAccount.delete(p.key);
        this.disarmEphemeral(p.id);
        for (const l of this.listeners) l.peerDeleted(accountId, p);
      }
      for (const k of state.setupKeys.values()) this.keyHashIndex.delete(k.keyHash);
      this.accounts.delete(accountId);
    });
  }

  async listEvents(accountId: string, limit?: number): Promise<AuditEvent[]> {
    this.accountState(accountId);
    return this.store.listEvents(accountId, limit);
  }

  // =====================================================================================
  // Users
  // =====================================================================================

  listUsers(accountId: string): User[] {
    return [...this.accountState(accountId).users.values()];
  }

  /**
   * Creates a user; with `passwordHash` (embedded identity provider) their local credential is
   * written in the same transaction.
   */
  async createUser(
    accountId: string,
    input: { id?: string; email?: string; name?: string; role: UserRole; isServiceUser?: boolean; autoGroups?: string[]; passwordHash?: string },
  ): Promise<User> {
    const state = this.accountState(accountId);
    this.checkGroups(state, input.autoGroups ?? [], 'auto_groups');
    const user: User = {
      id: input.id ?? newId(),
      accountId,
      email: input.email ?? '',
      name: input.name ?? '',
      role: input.role,
      isServiceUser: input.isServiceUser ?? false,
      blocked: false,
      autoGroups: input.autoGroups ?? [],
      createdAt: this.now(),
      lastLogin: 0,
    };
    if (!USER_ROLES.includes(user.role)) throw new ManagementError('unprocessable', `role: invalid role ${JSON.stringify(user.role)}; use one of ${USER_ROLES.join(', ')}`);
    if (user.role === 'owner') throw new ManagementError('unprocessable', 'role: an account has exactly one owner; transfer ownership instead');
    if (state.users.has(user.id)) throw new ManagementError('already_exists', `user ${user.id} already exists`);
    if (user.email !== '' && [...state.users.values()].some((u) => u.email === user.email)) throw new ManagementError('already_exists', `a user with e-mail ${user.email} already exists`);
    if (input.passwordHash !== undefined && (user.isServiceUser || user.email === '')) throw new ManagementError('unprocessable', 'password: only users with an e-mail address can have a password');
    if (input.passwordHash !== undefined && (await this.store.findCredentialByEmail(user.email))) throw new ManagementError('already_exists', `a user with e-mail ${user.email} already exists`);
    return this.change(accountId, async (q) => {
      await q.insertUser(user);
      if (input.passwordHash !== undefined) await q.putCredential({ userId: user.id, accountId, email: user.email, passwordHash: input.passwordHash });
      return {
        result: user,
        events: [{ activityCode: user.isServiceUser ? ACT.serviceUserCreate : ACT.userCreate, initiatorId: '', targetId: user.id, meta: { name: user.name, email: user.email, role: user.role } }],
        apply: () => {
          state.users.set(user.id, user);
          return new Set<string>();
        },
      };
    });
  }

  // =====================================================================================
  // Groups
  // =====================================================================================

  listGroups(accountId: string): Group[] {
    return [...this.accountState(accountId).groups.values()];
  }

  getGroup(accountId: string, groupId: string): Group {
    const g = this.accountState(accountId).groups.get(groupId);
    if (!g) throw new ManagementError('not_found', `group ${groupId} not found`);
    return g;
  }

  /** `field` names the request field in the message (REST errors name the offending field). */
  private checkGroups(state: AccountState, ids: readonly string[], field = 'groups'): void {
    for (const id of ids) {
      if (!state.groups.has(id)) throw new ManagementError('unprocessable', `${field}: group ${id} does not exist in this account`);
    }
  }

  private checkPeers(state: AccountState, ids: readonly string[], field = 'peers'): void {
    for (const id of ids) {
      if (!state.peers.has(id)) throw new ManagementError('unprocessable', `${field}: peer ${id} does not exist in this account`);
    }
  }

  /** Peers whose maps can change when membership of `groupId` changes. */
  private affectedByGroup(state: AccountState, groupId: string, extra: Iterable<string>): Set<string> {
    const out = new Set<string>(extra);
    const rules = state.policies.flatMap((p) => p.rules).filter((r) => r.sources.includes(groupId) || r.destinations.includes(groupId));
    for (const pid of state.peersOfRules(rules)) out.add(pid);
    // Routing peers chosen by group change what the route's receivers get.
    const objs = accountObjects(state);
    for (const r of objs.routes.values()) if (r.peerGroups.includes(groupId)) for (const pid of affectedByRoute(state, r)) out.add(pid);
    const networks = new Set<string>();
    for (const r of objs.networkRouters.values()) if (r.peerGroups.includes(groupId)) networks.add(r.networkId);
    for (const r of objs.networkResources.values()) if (r.groups.includes(groupId)) networks.add(r.networkId);
    for (const n of networks) for (const pid of this.affectedByNetwork(state, n)) out.add(pid);
    return out;
  }

  async createGroup(accountId: string, input: { name: string; peers?: string[]; issued?: Group['issued'] }): Promise<Group> {
    const state = this.accountState(accountId);
    const name = input.name.trim();
    if (name === '') throw new ManagementError('unprocessable', 'group name must not be empty');
    if (name === ALL_GROUP_NAME) throw new ManagementError('already_exists', 'the group "All" exists in every account and cannot be created');
    this.checkPeers(state, input.peers ?? []);
    const group: Group = { id: newId(), accountId, name, issued: input.issued ?? 'api', peers: [...new Set(input.peers ?? [])] };
    return this.change(accountId, async (q) => {
      // Checked under the account lock: names identify groups for IdP group sync.
      if (state.groupByName(name)) throw new ManagementError('already_exists', `name: a group named ${JSON.stringify(name)} already exists`);
      await q.insertGroup(group);
      return {
        result: group,
        events: [{ activityCode: ACT.groupAdd, initiatorId: '', targetId: group.id, meta: { name } }],
        apply: () => {
          state.putGroup({ ...group, peers: [...group.peers] });
          // A new group is referenced by no rule yet: only its members' own view may change (DNS settings).
          return new Set(group.peers);
        },
      };
    });
  }

  async updateGroup(accountId: string, groupId: string, input: { name: string; peers?: string[] }): Promise<Group> {
    const state = this.accountState(accountId);
    const old = this.getGroup(accountId, groupId);
    if (old.name === ALL_GROUP_NAME) throw new ManagementError('failed_precondition', 'the group "All" cannot be edited');
    const name = input.name.trim();
    if (name === '' || name === ALL_GROUP_NAME) throw new ManagementError('unprocessable', `invalid group name ${JSON.stringify(input.name)}`);
    this.checkPeers(state, input.peers ?? []);
    const group: Group = { ...old, name, peers: [...new Set(input.peers ?? [])] };
    return this.change(accountId, async (q) => {
      const same = state.groupByName(name);
      if (same && same.id !== groupId) throw new ManagementError('already_exists', `name: a group named ${JSON.stringify(name)} already exists`);
      await q.updateGroup(group);
      return {
        result: group,
        events: [{ activityCode: ACT.groupUpdate, initiatorId: '', targetId: group.id, meta: { name } }],
        apply: () => {
          const before = this.affectedByGroup(state, groupId, old.peers);
          state.putGroup({ ...group, peers: [...group.peers] });
          for (const pid of this.affectedByGroup(state, groupId, group.peers)) before.add(pid);
          return before;
        },
      };
    });
  }

  async deleteGroup(accountId: string, groupId: string): Promise<void> {
    const state = this.accountState(accountId);
    const g = this.getGroup(accountId, groupId);
    if (g.name === ALL_GROUP_NAME) throw new ManagementError('failed_precondition', 'the group "All" cannot be deleted');
    for (const p of state.policies) {
      for (const r of p.rules) {
        if (r.sources.includes(groupId) || r.destinations.includes(groupId)) {
          throw new ManagementError('failed_precondition', `group ${g.name} is used by policy ${p.name}; remove it there first`);
        }
      }
    }
    for (const k of state.setupKeys.values()) {
      if (k.autoGroups.includes(groupId)) throw new ManagementError('failed_precondition', `group ${g.name} is an auto-group of setup key ${k.name}; remove it there first`);
    }
    const objs = accountObjects(state);
    const uses: Array<[string, boolean]> = [
      ...[...objs.routes.values()].map((r): [string, boolean] => [`route ${r.networkId}`, [...r.groups, ...r.peerGroups, ...r.accessControlGroups].includes(groupId)]),
      ...[...objs.nameserverGroups.values()].map((n): [string, boolean] => [`name-server group ${n.name}`, n.groups.includes(groupId)]),
      ...[...objs.dnsZones.values()].map((z): [string, boolean] => [`DNS zone ${z.name}`, z.distributionGroups.includes(groupId)]),
      ...[...objs.networkResources.values()].map((r): [string, boolean] => [`network resource ${r.name}`, r.groups.includes(groupId)]),
      ...[...objs.networkRouters.values()].map((r): [string, boolean] => [`a router of network ${objs.networks.get(r.networkId)?.name ?? r.networkId}`, r.peerGroups.includes(groupId)]),
      ...[...state.users.values()].map((u): [string, boolean] => [`the auto-groups of user ${u.email || u.id}`, u.autoGroups.includes(groupId)]),
    ];
    const use = uses.find(([, used]) => used);
    if (use) throw new ManagementError('failed_precondition', `group ${g.name} is used by ${use[0]}; remove it there first`);
    if (state.account.settings.dnsDisabledManagementGroups.includes(groupId)) {
      throw new ManagementError('failed_precondition', `group ${g.name} is used in DNS settings; remove it there first`);
    }
    await this.change(accountId, async (q) => {
      await q.deleteGroup(groupId);
      return {
        result: undefined,
        events: [{ activityCode: ACT.groupDelete, initiatorId: '', targetId: groupId, meta: { name: g.name } }],
        apply: () => {
          const affected = new Set(g.peers);
          state.removeGroup(groupId);
          return affected;
        },
      };
    });
  }

  // =====================================================================================
  // Policies
  // =====================================================================================

  listPolicies(accountId: string): Policy[] {
    return this.accountState(accountId).policies;
  }

  getPolicy(accountId: string, policyId: string): Policy {
    const p = this.accountState(accountId).policies.find((x) => x.id === policyId);
    if (!p) throw new ManagementError('not_found', `policy ${policyId} not found`);
    return p;
  }

  private buildPolicy(state: AccountState, id: string, input: PolicyInput, old?: Policy): Policy {
    if (!input.name || input.name.trim() === '') throw new ManagementError('unprocessable', 'name: policy name must not be empty');
    if (!Array.isArray(input.rules) || input.rules.length === 0) throw new ManagementError('unprocessable', 'rules: a policy needs at least one rule');
    const rules: PolicyRule[] = input.rules.map((r, i) => {
      const action = r.action ?? 'accept';
      const protocol = r.protocol ?? 'all';
      if (!RULE_ACTIONS.includes(action)) throw new ManagementError('unprocessable', `rules.${i}.action: invalid rule action ${JSON.stringify(action)}`);
      if (!RULE_PROTOCOLS.includes(protocol)) throw new ManagementError('unprocessable', `rules.${i}.protocol: invalid rule protocol ${JSON.stringify(protocol)}`);
      const ports = r.ports ?? [];
      const portRanges = r.portRanges ?? [];
      if ((ports.length > 0 || portRanges.length > 0) && protocol !== 'tcp' && protocol !== 'udp') {
        throw new ManagementError('unprocessable', `rules.${i}.ports: ports are only allowed with protocol tcp or udp`);
      }
      for (const p of ports) {
        const n = Number(p);
        if (!/^\d+$/.test(p) || n < 1 || n > 65535) throw new ManagementError('unprocessable', `rules.${i}.ports: invalid port ${JSON.stringify(p)}: use 1-65535`);
      }
      for (const pr of portRanges) {
        if (!Number.isInteger(pr.start) || !Number.isInteger(pr.end) || pr.start < 1 || pr.end > 65535 || pr.start > pr.end) {
          throw new ManagementError('unprocessable', `rules.${i}.port_ranges: invalid port range ${pr.start}-${pr.end}: need 1 <= start <= end <= 65535`);
        }
      }
      if (!r.sources?.length || !r.destinations?.length) throw new ManagementError('unprocessable', `rules.${i}: a rule needs source and destination groups`);
      this.checkGroups(state, r.sources, `rules.${i}.sources`);
      this.checkGroups(state, r.destinations, `rules.${i}.destinations`);
      const keepId = r.id && old?.rules.some((x) => x.id === r.id) ? r.id : undefined;
      return {
        id: keepId ?? newId(),
        name: r.name ?? '',
        description: r.description ?? '',
        enabled: r.enabled ?? true,
        action,
        bidirectional: r.bidirectional ?? false,
        protocol,
        ports: [...ports],
        portRanges: portRanges.map((x) => ({ start: x.start, end: x.end })),
        sources: [...new Set(r.sources)],
        destinations: [...new Set(r.destinations)],
      };
    });
    for (const pc of input.sourcePostureChecks ?? []) {
      if (!accountObjects(state).postureChecks.has(pc)) throw new ManagementError('unprocessable', `source_posture_checks: posture check ${pc} does not exist in this account`);
    }
    return {
      id,
      accountId: state.id,
      name: input.name.trim(),
      description: input.description ?? '',
      enabled: input.enabled ?? true,
      sourcePostureChecks: input.sourcePostureChecks ?? [],
      rules,
    };
  }

  async createPolicy(accountId: string, input: PolicyInput): Promise<Policy> {
    const state = this.accountState(accountId);
    const policy = this.buildPolicy(state, newId(), input);
    return this.change(accountId, async (q) => {
      await q.insertPolicy(policy, state.policies.length);
      return {
        result: policy,
        events: [{ activityCode: ACT.policyAdd, initiatorId: '', targetId: policy.id, meta: { name: policy.name } }],
        apply: () => {
          state.setPolicies([...state.policies, policy]);
          return policy.enabled ? state.peersOfRules(policy.rules.filter((r) => r.enabled)) : new Set<string>();
        },
      };
    });
  }

  async updatePolicy(accountId: string, policyId: string, input: PolicyInput): Promise<Policy> {
    const state = this.accountState(accountId);
    const old = this.getPolicy(accountId, policyId);
    const policy = this.buildPolicy(state, policyId, input, old);
    return this.change(accountId, async (q) => {
      await q.updatePolicy(policy);
      return {
        result: policy,
        events: [{ activityCode: ACT.policyUpdate, initiatorId: '', targetId: policy.id, meta: { name: policy.name } }],
        apply: () => {
          const affected = state.peersOfRules([...old.rules, ...policy.rules]);
          state.setPolicies(state.policies.map((p) => (p.id === policyId ? policy : p)));
          return affected;
        },
      };
    });
  }

  async deletePolicy(accountId: string, policyId: string): Promise<void> {
    const state = this.accountState(accountId);
    const old = this.getPolicy(accountId, policyId);
    await this.change(accountId, async (q) => {
      await q.deletePolicy(policyId);
      return {
        result: undefined,
        events: [{ activityCode: ACT.policyDelete, initiatorId: '', targetId: policyId, meta: { name: old.name } }],
        apply: () => {
          const affected = state.peersOfRules(old.rules);
          state.setPolicies(state.policies.filter((p) => p.id !== policyId));
          return affected;
        },
      };
    });
  }

  // =====================================================================================
  // Setup keys
  // =====================================================================================

  listSetupKeys(accountId: string): SetupKey[] {
    return [...this.accountState(accountId).setupKeys.values()];
  }

  getSetupKey(accountId: string, id: string): SetupKey {
    const k = this.accountState(accountId).setupKeys.get(id);
    if (!k) throw new ManagementError('not_found', `setup key ${id} not found`);
    return k;
  }

  /** Creates a key; the plain key is returned only here (the store keeps its hash). */
  async createSetupKey(accountId: string, input: SetupKeyInput): Promise<{ key: string; setupKey: SetupKey }> {
    const state = this.accountState(accountId);
    const type = input.type ?? 'reusable';
    if (type !== 'reusable' && type !== 'one-off') throw new ManagementError('unprocessable', `invalid setup key type ${JSON.stringify(type)}: use reusable or one-off`);
    const expiresIn = input.expiresIn ?? 0;
    if (!Number.isFinite(expiresIn) || expiresIn < 0) throw new ManagementError('unprocessable', 'expires_in must be >= 0 seconds');
    const usageLimit = type === 'one-off' ? 1 : (input.usageLimit ?? 0);
    if (!Number.isInteger(usageLimit) || usageLimit < 0) throw new ManagementError('unprocessable', 'usage_limit must be an integer >= 0');
    this.checkGroups(state, input.autoGroups ?? [], 'auto_groups');
    if ((input.autoGroups ?? []).includes(state.allGroupId)) throw new ManagementError('unprocessable', 'the group "All" cannot be an auto-group');
    const now = this.now();
    const plain = newSetupKey();
    const setupKey: SetupKey = {
      id: newId(),
      accountId,
      name: input.name ?? '',
      keyHash: hashSetupKey(plain),
      keyMasked: maskSetupKey(plain),
      type,
      expiresAt: expiresIn > 0 ? now + Math.round(expiresIn * 1000) : 0,
      usageLimit,
      usedTimes: 0,
      lastUsed: 0,
      revoked: false,
      autoGroups: [...new Set(input.autoGroups ?? [])],
      ephemeral: input.ephemeral ?? false,
      allowExtraDnsLabels: input.allowExtraDnsLabels ?? false,
      createdAt: now,
      updatedAt: now,
    };
    await this.change(accountId, async (q) => {
      await q.insertSetupKey(setupKey);
      return {
        result: undefined,
        events: [{ activityCode: ACT.setupKeyAdd, initiatorId: '', targetId: setupKey.id, meta: { name: setupKey.name, type } }],
        apply: () => {
          state.setupKeys.set(setupKey.id, setupKey);
          this.keyHashIndex.set(setupKey.keyHash, { accountId, id: setupKey.id });
          // Keys only shape future registrations: no existing map changes.
          return new Set<string>();
        },
      };
    });
    return { key: plain, setupKey };
  }

  /** Only `revoked` and `autoGroups` are editable (management-api.md §3). */
  async updateSetupKey(accountId: string, id: string, input: { revoked?: boolean; autoGroups?: string[] }): Promise<SetupKey> {
    const state = this.accountState(accountId);
    const old = this.getSetupKey(accountId, id);
    if (old.revoked && input.revoked === false) throw new ManagementError('unprocessable', 'a revoked setup key cannot be un-revoked; create a new one');
    if (input.autoGroups) this.checkGroups(state, input.autoGroups, 'auto_groups');
    const key: SetupKey = {
      ...old,
      revoked: input.revoked ?? old.revoked,
      autoGroups: input.autoGroups ? [...new Set(input.autoGroups)] : old.autoGroups,
      updatedAt: this.now(),
    };
    return this.change(accountId, async (q) => {
      await q.updateSetupKey(key);
      const events = [{ activityCode: key.revoked && !old.revoked ? ACT.setupKeyRevoke : ACT.setupKeyUpdate, initiatorId: '', targetId: id, meta: { name: key.name } }];
      return {
        result: key,
        events,
        apply: () => {
          state.setupKeys.set(id, key);
          return new Set<string>();
        },
      };
    });
  }

  async deleteSetupKey(accountId: string, id: string): Promise<void> {
    const state = this.accountState(accountId);
    const old = this.getSetupKey(accountId, id);
    await this.change(accountId, async (q) => {
      await q.deleteSetupKey(id);
      return {
        result: undefined,
        events: [{ activityCode: ACT.setupKeyDelete, initiatorId: '', targetId: id, meta: { name: old.name } }],
        apply: () => {
          state.setupKeys.delete(id);
          this.keyHashIndex.delete(old.keyHash);
          return new Set<string>();
        },
      };
    });
  }

  // =====================================================================================
  // Peers (admin side)
  // =====================================================================================

  listPeers(accountId: string): Peer[] {
    return [...this.accountState(accountId).peers.values()];
  }

  getPeer(accountId: string, peerId: string): Peer {
    const p = this.accountState(accountId).peers.get(peerId);
    if (!p) throw new ManagementError('not_found', `peer ${peerId} not found`);
    return p;
  }

  /** Groups of a peer (ids). */
  peerGroups(accountId: string, peerId: string): string[] {
    return [...(this.accountState(accountId).peerGroups.get(peerId) ?? [])];
  }

  /** Peers `peerId` can reach (REST `accessible-peers`). */
  accessiblePeers(accountId: string, peerId: string): Peer[] {
    const state = this.accountState(accountId);
    this.getPeer(accountId, peerId);
    return [...state.visiblePeers(peerId)].map((id) => state.peers.get(id)!).filter(Boolean);
  }

  findPeerByKey(key: string): PeerRef | undefined {
    const accountId = this.peerAccount.get(key);
    if (!accountId) return undefined;
    const state = this.accounts.get(accountId);
    const peer = state?.peersByKey.get(key);
    return state && peer ? { state, peer } : undefined;
  }

  async updatePeer(accountId: string, peerId: string, input: PeerUpdateInput): Promise<Peer> {
    const state = this.accountState(accountId);
    const old = this.getPeer(accountId, peerId);
    const next: Peer = { ...old };
    const events: Omit<AuditEvent, 'id' | 'accountId' | 'timestamp'>[] = [];
    if (input.name !== undefined && input.name !== old.name) {
      const name = input.name.trim();
      if (name === '') throw new ManagementError('unprocessable', 'peer name must not be empty');
      next.name = name;
      const taken = new Set(state.usedLabels);
      taken.delete(old.dnsLabel);
      next.dnsLabel = uniqueDnsLabel(dnsLabelFromHostname(name), taken);
      events.push({ activityCode: ACT.peerRename, initiatorId: '', targetId: peerId, meta: { name } });
    }
    if (input.sshEnabled !== undefined && input.sshEnabled !== old.sshEnabled) {
      next.sshEnabled = input.sshEnabled;
      events.push({ activityCode: input.sshEnabled ? ACT.peerSshEnable : ACT.peerSshDisable, initiatorId: '', targetId: peerId, meta: {} });
    }
    if (input.loginExpirationEnabled !== undefined) next.loginExpirationEnabled = input.loginExpirationEnabled;
    if (input.inactivityExpirationEnabled !== undefined) next.inactivityExpirationEnabled = input.inactivityExpirationEnabled;
    if (input.approvalRequired !== undefined) next.approvalRequired = input.approvalRequired;
    return this.change(accountId, async (q) => {
      await q.updatePeer(next);
      return {
        result: next,
        events,
        apply: () => {
          state.putPeer(next);
          const affected = state.visiblePeers(peerId);
          affected.add(peerId);
          return affected;
        },
      };
    });
  }

  async deletePeer(accountId: string, peerId: string, initiatorId = ''): Promise<void> {
    const state = this.accountState(accountId);
    const old = this.getPeer(accountId, peerId);
    await this.change(accountId, async (q) => {
      await q.deletePeer(peerId);
      return {
        result: undefined,
        events: [{ activityCode: ACT.userPeerDelete, initiatorId, targetId: peerId, meta: { name: old.name, ip: old.ip } }],
        apply: () => {
          const affected = state.visiblePeers(peerId);
          state.removePeer(peerId);
          this.peerAccount.delete(old.key);
          this.disarmEphemeral(peerId);
          this.expiredNotified.delete(peerId);
          for (const l of this.listeners) l.peerDeleted(accountId, old);
          return affected;
        },
      };
    });
  }

  // =====================================================================================
  // Peers (gRPC side)
  // =====================================================================================

  /**
   * Login (protocol.md §4.3): a known key logs in (meta refreshed, expiry checked); an unknown key
   * registers with a setup key or a JWT user.
   */
  async loginPeer(input: LoginInput): Promise<PeerRef> {
    const known = this.findPeerByKey(input.peerKey);
    if (known) return this.loginKnownPeer(known, input);
    if (input.jwtUserId) return this.registerWithUser(input);
    if (input.setupKey && input.setupKey.trim() !== '') return this.registerWithSetupKey(input);
    throw new ManagementError('permission_denied', 'peer is not registered: no peer auth method provided, please log in with a setup key or SSO');
  }

  private async loginKnownPeer(ref: PeerRef, input: LoginInput): Promise<PeerRef> {
    const { state } = ref;
    const accountId = state.id;
    // Fast path: a plain re-login that changes nothing (the usual case when clients reconnect after a
    // server restart) is answered from memory, without a write or a serial bump.
    if (!input.jwtUserId && (!input.dnsLabels || input.dnsLabels.length === 0)) {
      const peer = state.peers.get(ref.peer.id);
      // Where a peer is matters to others only through geolocation posture checks; otherwise a new
      // place is noted in memory without a change (reconnects after a restart stay cheap).
      if (peer && !sameLocation(input.location, peer.location) && !hasGeoChecks(state)) peer.location = input.location;
      if (
        peer &&
        !(peer.userId && (state.users.get(peer.userId)?.blocked || isLoginExpired(state, peer, this.now()))) &&
        (input.sshKey === undefined || input.sshKey === peer.sshKey) &&
        metaEqual(this.mergeMeta(peer.meta, input.meta), peer.meta) &&
        sameLocation(input.location, peer.location)
      ) {
        return { state, peer };
      }
    }
    return this.change(accountId, async (q, _s, now) => {
      const peer = state.peers.get(ref.peer.id);
      if (!peer) throw new ManagementError('permission_denied', 'peer is not registered');
      if (peer.userId) {
        if (state.users.get(peer.userId)?.blocked) throw new ManagementError('permission_denied', 'user is blocked');
        if (input.jwtUserId && input.jwtUserId !== peer.userId) throw new ManagementError('permission_denied', 'peer is registered by another user');
        if (!input.jwtUserId && isLoginExpired(state, peer, now)) {
          throw new ManagementError('permission_denied', 'peer login has expired, please log in once more');
        }
      }
      const next: Peer = { ...peer, meta: this.mergeMeta(peer.meta, input.meta) };
      if (input.location) next.location = input.location;
      if (input.sshKey !== undefined && input.sshKey !== peer.sshKey) next.sshKey = input.sshKey;
      if (input.dnsLabels && input.dnsLabels.length > 0 && JSON.stringify(input.dnsLabels) !== JSON.stringify(peer.extraDnsLabels)) {
        const key = peer.setupKeyId ? state.setupKeys.get(peer.setupKeyId) : undefined;
        if (!key?.allowExtraDnsLabels) throw new ManagementError('failed_precondition', 'extra DNS labels are not allowed for this peer');
        next.extraDnsLabels = this.checkExtraLabels(input.dnsLabels);
      }
      if (input.jwtUserId) {
        next.lastLogin = now;
        this.expiredNotified.delete(peer.id);
      }
      await q.updatePeer(next);
      const events = input.jwtUserId ? [{ activityCode: ACT.userPeerLogin, initiatorId: input.jwtUserId, targetId: peer.id, meta: {} }] : [];
      return {
        result: { state, peer: next },
        events,
        apply: () => {
          const visibleChange =
            next.sshKey !== peer.sshKey ||
            next.meta.netbirdVersion !== peer.meta.netbirdVersion ||
            JSON.stringify(next.extraDnsLabels) !== JSON.stringify(peer.extraDnsLabels) ||
            next.lastLogin !== peer.lastLogin;
          state.putPeer(next);
          // A new place can change geolocation posture checks, so whom the peer reaches.
          if (!sameLocation(next.location, peer.location) && hasGeoChecks(state)) return 'all';
          const affected = visibleChange ? state.visiblePeers(peer.id) : new Set<string>();
          affected.add(peer.id);
          return affected;
        },
      };
    });
  }

  private checkExtraLabels(labels: string[]): string[] {
    const out = [...new Set(labels.map((l) => l.trim().toLowerCase()))];
    for (const l of out) if (!isValidDnsLabel(l)) throw new ManagementError('invalid_argument', `invalid DNS label ${JSON.stringify(l)}`);
    return out;
  }

  private mergeMeta(old: PeerMeta, incoming: PeerMeta): PeerMeta {
    // An empty uiVersion never overwrites a stored one (protocol.md §4.5).
    return { ...incoming, uiVersion: incoming.uiVersion || old.uiVersion };
  }

  private async registerWithSetupKey(input: LoginInput): Promise<PeerRef> {
    const hash = hashSetupKey(input.setupKey!);
    const invalid = (): ManagementError => new ManagementError('not_found', "couldn't add peer: setup key is invalid");
    const ref = this.keyHashIndex.get(hash) ?? (await this.adoptSetupKey(hash));
    if (!ref) throw invalid();
    const state = this.accountState(ref.accountId);
    return this.change(ref.accountId, async (q, _s, now) => {
      const key = state.setupKeys.get(ref.id);
      if (!key || setupKeyState(key, now) !== 'valid') throw invalid();
      if (this.findPeerByKey(input.peerKey)) throw new ManagementError('failed_precondition', 'peer is already registered');
      let extra: string[] = [];
      if (input.dnsLabels && input.dnsLabels.length > 0) {
        if (!key.allowExtraDnsLabels) throw new ManagementError('failed_precondition', 'extra DNS labels are not allowed by this setup key');
        extra = this.checkExtraLabels(input.dnsLabels);
      }
      // The check above is advisory; this conditional update is what makes a use count exactly once.
      if (!(await q.consumeSetupKey(key.id, now))) throw invalid();
      const peer = this.newPeer(state, input, now, { setupKeyId: key.id, ephemeral: key.ephemeral, extraDnsLabels: extra, userId: '' });
      await q.insertPeer(peer);
      const groups = [state.allGroupId, ...key.autoGroups.filter((g) => state.groups.has(g))];
      for (const gid of groups) await q.addGroupPeers(state.id, gid, [peer.id]);
      const usedKey: SetupKey = { ...key, usedTimes: key.usedTimes + 1, lastUsed: now };
      return {
        result: { state, peer },
        events: [{ activityCode: ACT.peerSetupKeyAdd, initiatorId: key.id, targetId: peer.id, meta: { name: peer.name, ip: peer.ip } }],
        apply: () => this.applyNewPeer(state, peer, groups, () => state.setupKeys.set(key.id, usedKey)),
      };
    });
  }

  /**
   * A key unknown in memory may have been created by another process on the same store (e.g.
   * `netbird-server setup-keys create` next to a running server): look it up and adopt it, loading
   * its account if that is new as well.
   */
  private async adoptSetupKey(hash: string): Promise<{ accountId: string; id: string } | undefined> {
    const key = await this.store.findSetupKeyByHash(hash);
    if (!key) return undefined;
    return this.globalLock.run(async () => {
      let state = this.accounts.get(key.accountId);
      if (!state) {
        const data = await this.store.loadAccount(key.accountId);
        if (!data) return undefined;
        state = new AccountState(data);
        this.index(state, data.objects);
      } else if (!state.setupKeys.has(key.id)) {
        state.setupKeys.set(key.id, key);
        this.keyHashIndex.set(key.keyHash, { accountId: key.accountId, id: key.id });
      }
      return { accountId: key.accountId, id: key.id };
    });
  }

  private async registerWithUser(input: LoginInput): Promise<PeerRef> {
    const accountId = [...this.accounts.values()].find((s) => s.users.has(input.jwtUserId!))?.id;
    if (!accountId) throw new ManagementError('permission_denied', 'user is not known to this server');
    const state = this.accountState(accountId);
    return this.change(accountId, async (q, _s, now) => {
      const user = state.users.get(input.jwtUserId!)!;
      if (user.blocked) throw new ManagementError('permission_denied', 'user is blocked');
      if (this.findPeerByKey(input.peerKey)) throw new ManagementError('failed_precondition', 'peer is already registered');
      const peer = this.newPeer(state, input, now, { setupKeyId: '', ephemeral: false, extraDnsLabels: [], userId: user.id });
      await q.insertPeer(peer);
      const groups = [state.allGroupId, ...user.autoGroups.filter((g) => state.groups.has(g))];
      for (const gid of groups) await q.addGroupPeers(state.id, gid, [peer.id]);
      return {
        result: { state, peer },
        events: [{ activityCode: ACT.peerUserAdd, initiatorId: user.id, targetId: peer.id, meta: { name: peer.name, ip: peer.ip } }],
        apply: () => this.applyNewPeer(state, peer, groups),
      };
    });
  }

  private newPeer(state: AccountState, input: LoginInput, now: number, extra: Pick<Peer, 'setupKeyId' | 'ephemeral' | 'extraDnsLabels' | 'userId'>): Peer {
    const hostname = input.meta.hostname || 'peer';
    return {
      id: newId(),
      accountId: state.id,
      key: input.peerKey,
      ip: allocateIp(state.account.network, state.usedIps),
      dnsLabel: uniqueDnsLabel(dnsLabelFromHostname(hostname), state.usedLabels),
      extraDnsLabels: extra.extraDnsLabels,
      name: hostname,
      sshKey: input.sshKey ?? '',
      sshEnabled: false,
      meta: { ...emptyPeerMeta(), ...input.meta },
      userId: extra.userId,
      setupKeyId: extra.setupKeyId,
      ephemeral: extra.ephemeral,
      loginExpirationEnabled: extra.userId !== '',
      inactivityExpirationEnabled: false,
      approvalRequired: false,
      connected: false,
      lastSeen: now,
      lastLogin: now,
      createdAt: now,
      location: input.location,
    };
  }

  private applyNewPeer(state: AccountState, peer: Peer, groups: string[], more?: () => void): Affected {
    state.putPeer(peer);
    for (const gid of groups) state.addPeerToGroup(gid, peer.id);
    this.peerAccount.set(peer.key, state.id);
    more?.();
    if (peer.ephemeral) this.armEphemeral(state.id, peer);
    return state.visiblePeers(peer.id);
  }

  /** Sync stream opening: peer must exist and not be expired; stores meta, marks it connected. */
  async syncPeer(peerKey: string, meta: PeerMeta | undefined): Promise<PeerRef> {
    const ref = this.findPeerByKey(peerKey);
    if (!ref) throw new ManagementError('permission_denied', 'peer is not registered');
    const { state } = ref;
    if (isLoginExpired(state, ref.peer, this.now())) throw new ManagementError('permission_denied', 'peer login has expired, please log in once more');
    const owner = ref.peer.userId ? state.users.get(ref.peer.userId) : undefined;
    if (owner?.blocked) throw new ManagementError('permission_denied', 'user is blocked');
    this.disarmEphemeral(ref.peer.id);
    return this.updatePeerRuntime(ref, meta && meta.hostname !== '' ? meta : undefined, true);
  }

  /** SyncMeta: refresh stored meta (FailedPrecondition without meta is the caller's check). */
  async syncMeta(peerKey: string, meta: PeerMeta): Promise<PeerRef> {
    const ref = this.findPeerByKey(peerKey);
    if (!ref) throw new ManagementError('permission_denied', 'peer is not registered');
    return this.updatePeerRuntime(ref, meta, undefined);
  }

  /**
   * Meta and connection status updates. Status alone does not change anybody's map, so it does not
   * bump the serial; a meta change that others can see (agent version) is a real change.
   */
  private async updatePeerRuntime(ref: PeerRef, meta: PeerMeta | undefined, connected: boolean | undefined): Promise<PeerRef> {
    const { state } = ref;
    const peer = state.peers.get(ref.peer.id) ?? ref.peer;
    const nextMeta = meta ? this.mergeMeta(peer.meta, meta) : peer.meta;
    if (!metaEqual(nextMeta, peer.meta)) {
      return this.change(state.id, async (q, _s, now) => {
        const cur = state.peers.get(peer.id);
        if (!cur) throw new ManagementError('permission_denied', 'peer is not registered');
        const next: Peer = { ...cur, meta: nextMeta, connected: connected ?? cur.connected, lastSeen: now };
        await q.updatePeer(next);
        // This write carries the current status; an older queued one must not overwrite it.
        this.pendingStatus.delete(cur.id);
        return {
          result: { state, peer: next },
          apply: () => {
            state.putPeer(next);
            const affected =
              next.meta.netbirdVersion !== cur.meta.netbirdVersion ? state.visiblePeers(peer.id) : new Set<string>();
            affected.add(peer.id);
            return affected;
          },
        };
      });
    }
    if (connected === undefined) return { state, peer };
    const cur = state.peers.get(peer.id);
    if (!cur) throw new ManagementError('permission_denied', 'peer is not registered');
    const now = this.now();
    // Status is not part of any encoded fragment, so the peer's cache stays valid. It is runtime
    // state (reset at start-up), so it is written behind in batches: a reconnect storm of thousands
    // of peers must not queue one fsynced transaction per peer in front of their first maps.
    cur.connected = connected;
    cur.lastSeen = now;
    this.pendingStatus.set(cur.id, { connected, lastSeen: now });
    this.scheduleStatusFlush();
    return { state, peer: cur };
  }

  private scheduleStatusFlush(): void {
    if (this.statusTimer || this.closed) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined;
      this.flushStatus().catch(() => undefined);
    }, STATUS_FLUSH_MS);
    this.statusTimer.unref();
  }

  /** Writes pending connection-status changes (also called on shutdown, before the store closes). */
  async flushStatus(): Promise<void> {
    if (this.statusTimer) clearTimeout(this.statusTimer);
    this.statusTimer = undefined;
    if (this.pendingStatus.size === 0) return;
    const batch = [...this.pendingStatus];
    this.pendingStatus.clear();
    await this.store.transaction(async (q) => {
      for (const [id, st] of batch) await q.setPeerStatus(id, st.connected, st.lastSeen);
    });
  }

  /** A Sync stream ended. Ephemeral peers start their deletion countdown. */
  async peerDisconnected(peerKey: string): Promise<void> {
    const ref = this.findPeerByKey(peerKey);
    if (!ref) return;
    await this.updatePeerRuntime(ref, undefined, false);
    if (ref.peer.ephemeral) this.armEphemeral(ref.state.id, ref.state.peers.get(ref.peer.id) ?? ref.peer);
  }

  /** Logout: the peer is deleted (protocol.md §4.2). */
  async logoutPeer(peerKey: string): Promise<void> {
    const ref = this.findPeerByKey(peerKey);
    if (!ref) throw new ManagementError('not_found', 'peer not found');
    await this.deletePeer(ref.state.id, ref.peer.id, ref.peer.userId);
  }

  // ----- ephemeral peers -----
  private armEphemeral(accountId: string, peer: Peer): void {
    this.disarmEphemeral(peer.id);
    if (peer.connected || this.closed) return;
    const delay = Math.max(0, peer.lastSeen + this.ephemeralTimeoutMs - this.now());
    const t = setTimeout(() => {
      this.ephemeralTimers.delete(peer.id);
      const state = this.accounts.get(accountId);
      const cur = state?.peers.get(peer.id);
      if (!cur || cur.connected) return;
      this.deletePeer(accountId, peer.id).catch(() => undefined);
    }, delay);
    t.unref();
    this.ephemeralTimers.set(peer.id, t);
  }

  private disarmEphemeral(peerId: string): void {
    const t = this.ephemeralTimers.get(peerId);
    if (t) clearTimeout(t);
    this.ephemeralTimers.delete(peerId);
  }

  // =====================================================================================
  // REST support: initiator context, users, tokens, local credentials, bootstrap, JWT users
  // =====================================================================================

  /** Runs `fn` with `userId` as the initiator recorded in the audit events of its changes. */
  asInitiator<T>(userId: string, fn: () => Promise<T>): Promise<T> {
    return initiatorContext.run(userId, fn);
  }

  getUser(accountId: string, userId: string): User {
    const u = this.accountState(accountId).users.get(userId);
    if (!u) throw new ManagementError('not_found', `user ${userId} not found`);
    return u;
  }

  /** The account a user id belongs to, if any. */
  findUser(userId: string): { state: AccountState; user: User } | undefined {
    for (const state of this.accounts.values()) {
      const user = state.users.get(userId);
      if (user) return { state, user };
    }
    return undefined;
  }

  hasUsers(): boolean {
    for (const s of this.accounts.values()) if (s.users.size > 0) return true;
    return false;
  }

  private peersOfUser(state: AccountState, userId: string): Peer[] {
    return [...state.peers.values()].filter((p) => p.userId === userId);
  }

  /**
   * Role, auto-groups and blocking of a user. Group propagation (account setting) moves the user's
   * peers into added auto-groups and out of removed ones; blocking ends the user's peers' sessions.
   * Ownership moves with role "owner": the previous owner becomes admin (the caller checks that only
   * the owner does this).
   */
  async updateUser(accountId: string, userId: string, input: UserUpdateInput): Promise<User> {
    const state = this.accountState(accountId);
    const old = this.getUser(accountId, userId);
    if (input.role !== undefined && !USER_ROLES.includes(input.role)) {
      throw new ManagementError('unprocessable', `invalid role ${JSON.stringify(input.role)}: use one of ${USER_ROLES.join(', ')}`);
    }
    if (input.autoGroups) {
      this.checkGroups(state, input.autoGroups, 'auto_groups');
      if (input.autoGroups.includes(state.allGroupId)) throw new ManagementError('unprocessable', 'the group "All" cannot be an auto-group');
    }
    if (old.role === 'owner' && input.role !== undefined && input.role !== 'owner') {
      throw new ManagementError('failed_precondition', 'the owner role can only be handed over by making another user the owner');
    }
    if (old.role === 'owner' && input.blocked) throw new ManagementError('failed_precondition', 'the account owner cannot be blocked');
    const next: User = {
      ...old,
      role: input.role ?? old.role,
      autoGroups: input.autoGroups ? [...new Set(input.autoGroups)] : old.autoGroups,
      blocked: input.blocked ?? old.blocked,
    };
    const prevOwner = next.role === 'owner' && old.role !== 'owner' ? [...state.users.values()].find((u) => u.role === 'owner') : undefined;
    return this.change(accountId, async (q) => {
      const events: EventDraft[] = [];
      await q.updateUser(next);
      if (prevOwner) {
        await q.updateUser({ ...prevOwner, role: 'admin' });
        events.push({ activityCode: ACT.transferredOwnerRole, initiatorId: '', targetId: userId, meta: { previous_owner: prevOwner.id } });
      }
      if (next.role !== old.role) events.push({ activityCode: ACT.userRoleUpdate, initiatorId: '', targetId: userId, meta: { role: next.role } });
      if (next.blocked !== old.blocked) events.push({ activityCode: next.blocked ? ACT.userBlock : ACT.userUnblock, initiatorId: '', targetId: userId, meta: {} });
      const added = next.autoGroups.filter((g) => !old.autoGroups.includes(g));
      const removed = old.autoGroups.filter((g) => !next.autoGroups.includes(g));
      for (const g of added) events.push({ activityCode: ACT.userGroupAdd, initiatorId: '', targetId: userId, meta: { group: g, group_name: state.groups.get(g)?.name ?? '' } });
      for (const g of removed) events.push({ activityCode: ACT.userGroupDelete, initiatorId: '', targetId: userId, meta: { group: g, group_name: state.groups.get(g)?.name ?? '' } });
      const peers = this.peersOfUser(state, userId);
      const propagate = state.account.settings.groupsPropagationEnabled && peers.length > 0 && (added.length > 0 || removed.length > 0);
      if (propagate) await this.writePeerGroupMoves(q, state, peers, added, removed, events);
      return {
        result: next,
        events,
        apply: () => {
          state.users.set(userId, next);
          if (prevOwner) state.users.set(prevOwner.id, { ...prevOwner, role: 'admin' });
          const affected = new Set<string>();
          if (propagate) for (const p of this.applyPeerGroupMoves(state, peers, added, removed)) affected.add(p);
          if (next.blocked && !old.blocked) {
            for (const p of peers) {
              for (const v of state.visiblePeers(p.id)) affected.add(v);
              for (const l of this.listeners) l.peerLoginExpired?.(state.id, p);
            }
          } else if (!next.blocked && old.blocked) {
            for (const p of peers) for (const v of state.visiblePeers(p.id)) affected.add(v);
          }
          return affected;
        },
      };
    });
  }

  /** Store part of moving peers into `added` and out of `removed` groups (inside a change). */
  private async writePeerGroupMoves(q: Queries, state: AccountState, peers: Peer[], added: string[], removed: string[], events: EventDraft[]): Promise<void> {
    for (const g of added) {
      const fresh = peers.filter((p) => !state.members.get(g)?.has(p.id));
      await q.addGroupPeers(state.id, g, fresh.map((p) => p.id));
      for (const p of fresh) events.push({ activityCode: ACT.peerGroupAdd, initiatorId: '', targetId: p.id, meta: { group: g, group_name: state.groups.get(g)?.name ?? '' } });
    }
    for (const g of removed) {
      for (const p of peers) {
        if (!state.members.get(g)?.has(p.id)) continue;
        await q.removeGroupPeer(g, p.id);
        events.push({ activityCode: ACT.peerGroupDelete, initiatorId: '', targetId: p.id, meta: { group: g, group_name: state.groups.get(g)?.name ?? '' } });
      }
    }
  }

  /** Memory part of writePeerGroupMoves; returns the peers whose maps may change. */
  private applyPeerGroupMoves(state: AccountState, peers: Peer[], added: string[], removed: string[]): Set<string> {
    const ids = peers.map((p) => p.id);
    const affected = new Set<string>();
    for (const g of [...added, ...removed]) for (const pid of this.affectedByGroup(state, g, ids)) affected.add(pid);
    for (const g of added) for (const pid of ids) state.addPeerToGroup(g, pid);
    for (const g of removed) {
      const group = state.groups.get(g);
      if (!group) continue;
      state.putGroup({ ...group, peers: group.peers.filter((pid) => !ids.includes(pid)) });
    }
    for (const g of [...added, ...removed]) for (const pid of this.affectedByGroup(state, g, ids)) affected.add(pid);
    return affected;
  }

  /** Deletes a user with their tokens, local credentials and peers (one transaction). */
  async deleteUser(accountId: string, userId: string): Promise<void> {
    const state = this.accountState(accountId);
    const old = this.getUser(accountId, userId);
    if (old.role === 'owner') throw new ManagementError('failed_precondition', 'the account owner cannot be deleted');
    const peers = this.peersOfUser(state, userId);
    const objs = accountObjects(state);
    const tokens = [...objs.tokens.values()].filter((t) => t.userId === userId);
    await this.change(accountId, async (q) => {
      const events: EventDraft[] = [];
      for (const p of peers) {
        await q.deletePeer(p.id);
        events.push({ activityCode: ACT.userPeerDelete, initiatorId: '', targetId: p.id, meta: { name: p.name, ip: p.ip } });
      }
      await q.deleteUserTokens(userId);
      await q.deleteCredential(userId);
      await q.deleteUser(userId);
      events.push({ activityCode: old.isServiceUser ? ACT.serviceUserDelete : ACT.userDelete, initiatorId: '', targetId: userId, meta: { name: old.name, email: old.email } });
      return {
        result: undefined,
        events,
        apply: () => {
          const affected = new Set<string>();
          for (const p of peers) for (const v of state.visiblePeers(p.id)) affected.add(v);
          for (const p of peers) {
            state.removePeer(p.id);
            affected.delete(p.id);
            this.peerAccount.delete(p.key);
            this.disarmEphemeral(p.id);
            this.expiredNotified.delete(p.id);
            for (const l of this.listeners) l.peerDeleted(accountId, p);
          }
          for (const t of tokens) {
            objs.tokens.delete(t.id);
            this.tokenHashIndex.delete(t.hashedToken);
          }
          state.users.delete(userId);
          return affected;
        },
      };
    });
  }

  // ----- personal access tokens -----
  listTokens(accountId: string, userId: string): PersonalAccessToken[] {
    this.getUser(accountId, userId);
    return [...accountObjects(this.accountState(accountId)).tokens.values()].filter((t) => t.userId === userId);
  }

  getToken(accountId: string, userId: string, tokenId: string): PersonalAccessToken {
    const t = accountObjects(this.accountState(accountId)).tokens.get(tokenId);
    if (!t || t.userId !== userId) throw new ManagementError('not_found', `token ${tokenId} not found`);
    return t;
  }

  private buildToken(accountId: string, userId: string, name: string, expiresInDays: number, createdBy: string, now: number): { plain: string; token: PersonalAccessToken } {
    if (typeof name !== 'string' || name.trim() === '') throw new ManagementError('unprocessable', 'name: token name must not be empty');
    if (!Number.isInteger(expiresInDays) || expiresInDays < 1 || expiresInDays > 365) {
      throw new ManagementError('unprocessable', 'expires_in: must be a whole number of days between 1 and 365');
    }
    const plain = newPersonalAccessToken();
    const token: PersonalAccessToken = {
      id: newId(),
      accountId,
      userId,
      name: name.trim(),
      hashedToken: hashPersonalAccessToken(plain),
      expiresAt: now + expiresInDays * 86_400_000,
      createdBy,
      createdAt: now,
      lastUsed: 0,
    };
    return { plain, token };
  }

  /** Creates a PAT for `userId`; the plain token is returned only here. */
  async createToken(accountId: string, userId: string, input: { name: string; expiresInDays: number; createdBy: string }): Promise<{ plain: string; token: PersonalAccessToken }> {
    const state = this.accountState(accountId);
    this.getUser(accountId, userId);
    const built = this.buildToken(accountId, userId, input.name, input.expiresInDays, input.createdBy, this.now());
    await this.change(accountId, async (q) => {
      await q.insertToken(built.token);
      return {
        result: undefined,
        events: [{ activityCode: ACT.patCreate, initiatorId: '', targetId: userId, meta: { name: built.token.name } }],
        apply: () => {
          accountObjects(state).tokens.set(built.token.id, built.token);
          this.tokenHashIndex.set(built.token.hashedToken, { accountId, id: built.token.id });
          return new Set<string>();
        },
      };
    });
    return built;
  }

  async deleteToken(accountId: string, userId: string, tokenId: string): Promise<void> {
    const state = this.accountState(accountId);
    const t = this.getToken(accountId, userId, tokenId);
    await this.change(accountId, async (q) => {
      await q.deleteToken(tokenId);
      return {
        result: undefined,
        events: [{ activityCode: ACT.patDelete, initiatorId: '', targetId: userId, meta: { name: t.name } }],
        apply: () => {
          accountObjects(state).tokens.delete(tokenId);
          this.tokenHashIndex.delete(t.hashedToken);
          return new Set<string>();
        },
      };
    });
  }

  /**
   * Resolves a plain PAT to its user, or undefined when unknown, malformed, expired or revoked
   * (deleted). Last use is written at most once a minute per token, so API traffic does not turn
   * into a database write per request.
   */
  async authenticateToken(plain: string): Promise<{ state: AccountState; user: User; token: PersonalAccessToken } | undefined> {
    if (!isWellFormedPat(plain)) return undefined;
    const ref = this.tokenHashIndex.get(hashPersonalAccessToken(plain));
    if (!ref) return undefined;
    const state = this.accounts.get(ref.accountId);
    const token = state ? accountObjects(state).tokens.get(ref.id) : undefined;
    const user = token ? state!.users.get(token.userId) : undefined;
    if (!state || !token || !user) return undefined;
    const now = this.now();
    if (token.expiresAt <= now) return undefined;
    if (now - token.lastUsed > 60_000) {
      token.lastUsed = now;
      await this.store.setTokenLastUsed(token.id, now);
    }
    return { state, user, token };
  }

  // ----- local credentials (embedded identity provider) -----
  findCredentialByEmail(email: string): Promise<LocalCredential | undefined> {
    return this.store.findCredentialByEmail(email.trim().toLowerCase());
  }

  async setCredential(accountId: string, userId: string, email: string, passwordHash: string): Promise<void> {
    this.getUser(accountId, userId);
    await this.store.putCredential({ userId, accountId, email: email.trim().toLowerCase(), passwordHash });
  }

  /**
   * Headless bootstrap (`POST /api/setup`): creates the owner of the instance's account together with
   * their local credential and, when asked, a PAT, all in one transaction. Refused with
   * failed_precondition once any user exists.
   */
  async setupOwner(input: { email: string; name: string; passwordHash: string; patExpireDays?: number }): Promise<{ account: Account; user: User; plainToken?: string }> {
    return this.globalLock.run(async () => {
      if (this.hasUsers() || (await this.store.countUsers()) > 0) throw new ManagementError('failed_precondition', 'setup was already completed');
      const email = input.email.trim().toLowerCase();
      if (await this.store.findCredentialByEmail(email)) throw new ManagementError('already_exists', `a user with e-mail ${email} exists`);
      const oldest = [...this.accounts.values()].sort((a, b) => a.account.createdAt - b.account.createdAt || (a.id < b.id ? -1 : 1))[0];
      const domain = email.split('@')[1] ?? '';
      const account = oldest ? oldest.account : await this.createAccount({ domain });
      const state = this.accountState(account.id);
      const now = this.now();
      const user: User = {
        id: newId(),
        accountId: account.id,
        email,
        name: input.name.trim(),
        role: 'owner',
        isServiceUser: false,
        blocked: false,
        autoGroups: [],
        createdAt: now,
        lastLogin: 0,
      };
      const pat = input.patExpireDays !== undefined ? this.buildToken(account.id, user.id, 'setup', input.patExpireDays, user.id, now) : undefined;
      await this.change(account.id, async (q) => {
        await q.insertUser(user);
        await q.putCredential({ userId: user.id, accountId: account.id, email, passwordHash: input.passwordHash });
        if (pat) await q.insertToken(pat.token);
        const events: EventDraft[] = [{ activityCode: ACT.userCreate, initiatorId: user.id, targetId: user.id, meta: { email, role: 'owner' } }];
        if (pat) events.push({ activityCode: ACT.patCreate, initiatorId: user.id, targetId: user.id, meta: { name: pat.token.name } });
        return {
          result: undefined,
          events,
          apply: () => {
            state.users.set(user.id, user);
            if (pat) {
              accountObjects(state).tokens.set(pat.token.id, pat.token);
              this.tokenHashIndex.set(pat.token.hashedToken, { accountId: account.id, id: pat.token.id });
            }
            return new Set<string>();
          },
        };
      });
      return { account: this.getAccount(account.id), user, plainToken: pat?.plain };
    });
  }

  /**
   * The user behind a validated JWT: an existing user by id (the token's subject), or a new one in
   * the instance's account (its owner when the account has no users yet, else a regular user).
   */
  async ensureJwtUser(claims: { userId: string; email: string; name: string }): Promise<{ state: AccountState; user: User; created: boolean }> {
    const found = this.findUser(claims.userId);
    if (found) return { ...found, created: false };
    const account = await this.defaultAccount();
    const state = this.accountState(account.id);
    return this.change<{ state: AccountState; user: User; created: boolean }>(account.id, async (q, _s, now) => {
      const existing = state.users.get(claims.userId);
      if (existing) return { result: { state, user: existing, created: false }, apply: () => new Set<string>() };
      const user: User = {
        id: claims.userId,
        accountId: account.id,
        email: claims.email,
        name: claims.name || claims.email,
        role: state.users.size === 0 ? 'owner' : 'user',
        isServiceUser: false,
        blocked: false,
        autoGroups: [],
        createdAt: now,
        lastLogin: now,
      };
      await q.insertUser(user);
      return {
        result: { state, user, created: true },
        events: [{ activityCode: ACT.userJoin, initiatorId: user.id, targetId: user.id, meta: { email: user.email } }],
        apply: () => {
          state.users.set(user.id, user);
          return new Set<string>();
        },
      };
    });
  }

  /**
   * IdP group sync (management-api.md §2): the claim's groups are created when missing (issued
   * "jwt"), the user's JWT-issued auto-groups become exactly the claim's set (groups added by hand
   * stay), and with propagation on the user's peers follow. No change (and no serial bump) when
   * everything already matches, which is the common case on every request.
   */
  async syncJwtGroups(accountId: string, userId: string, names: readonly string[]): Promise<User> {
    const state = this.accountState(accountId);
    const wanted = [...new Set(names.map((n) => n.trim()).filter((n) => n !== '' && n !== ALL_GROUP_NAME))];
    const plan = (): { user: User; missing: string[]; toRemove: string[]; toAddExisting: string[] } => {
      const user = this.getUser(accountId, userId);
      const byName = new Map([...state.groups.values()].map((g) => [g.name, g] as const));
      const wantedIds = new Set(wanted.map((n) => byName.get(n)?.id).filter((x): x is string => !!x));
      return {
        user,
        missing: wanted.filter((n) => !byName.has(n)),
        toRemove: user.autoGroups.filter((g) => state.groups.get(g)?.issued === 'jwt' && !wantedIds.has(g)),
        toAddExisting: [...wantedIds].filter((g) => !user.autoGroups.includes(g)),
      };
    };
    const first = plan();
    if (first.missing.length === 0 && first.toRemove.length === 0 && first.toAddExisting.length === 0) return first.user;
    return this.change(accountId, async (q) => {
      // Planned again under the account lock: a concurrent request may have created the groups already.
      const { user, missing, toRemove, toAddExisting } = plan();
      const created: Group[] = missing.map((name) => ({ id: newId(), accountId, name, issued: 'jwt', peers: [] }));
      const added = [...toAddExisting, ...created.map((g) => g.id)];
      const next: User = { ...user, autoGroups: [...user.autoGroups.filter((g) => !toRemove.includes(g)), ...added] };
      const peers = this.peersOfUser(state, userId);
      const propagate = state.account.settings.groupsPropagationEnabled && peers.length > 0;
      const events: EventDraft[] = [];
      for (const g of created) {
        await q.insertGroup(g);
        events.push({ activityCode: ACT.groupAdd, initiatorId: userId, targetId: g.id, meta: { name: g.name, issued: 'jwt' } });
      }
      await q.updateUser(next);
      for (const g of added) events.push({ activityCode: ACT.userGroupAdd, initiatorId: userId, targetId: userId, meta: { group: g } });
      for (const g of toRemove) events.push({ activityCode: ACT.userGroupDelete, initiatorId: userId, targetId: userId, meta: { group: g } });
      if (propagate) await this.writePeerGroupMoves(q, state, peers, added, toRemove, events);
      return {
        result: next,
        events,
        apply: () => {
          for (const g of created) state.putGroup({ ...g, peers: [] });
          state.users.set(userId, next);
          return propagate ? this.applyPeerGroupMoves(state, peers, added, toRemove) : new Set<string>();
        },
      };
    });
  }

  /** Records a user's login time (dashboard/API use of a fresh JWT). */
  async touchUserLogin(accountId: string, userId: string): Promise<void> {
    const state = this.accountState(accountId);
    const u = state.users.get(userId);
    if (!u) return;
    const now = this.now();
    if (now - u.lastLogin < 60_000) return;
    const next = { ...u, lastLogin: now };
    await this.store.updateUser(next);
    state.users.set(userId, next);
  }

  // =====================================================================================
  // Routes, name servers, DNS settings, posture checks, networks, DNS zones
  // =====================================================================================

  objects(accountId: string): AccountObjectsState {
    return accountObjects(this.accountState(accountId));
  }

  private getObject<T>(map: ReadonlyMap<string, T>, id: string, what: string): T {
    const x = map.get(id);
    if (!x) throw new ManagementError('not_found', `${what} ${id} not found`);
    return x;
  }

  private checkPeer(state: AccountState, id: string, field: string): void {
    if (!state.peers.has(id)) throw new ManagementError('unprocessable', `${field}: peer ${id} does not exist in this account`);
  }

  private checkGroupsField(state: AccountState, ids: readonly string[] | undefined, field: string, required = false): string[] {
    if (!Array.isArray(ids)) {
      if (required) throw new ManagementError('unprocessable', `${field}: must be a list of group ids`);
      return [];
    }
    if (required && ids.length === 0) throw new ManagementError('unprocessable', `${field}: at least one group is required`);
    for (const id of ids) if (!state.groups.has(id)) throw new ManagementError('unprocessable', `${field}: group ${id} does not exist in this account`);
    return [...new Set(ids)];
  }

  private checkMetric(metric: number): void {
    if (!Number.isInteger(metric) || metric < 1 || metric > 9999) throw new ManagementError('unprocessable', 'metric: must be an integer between 1 and 9999');
  }

  private buildRoute(state: AccountState, id: string, input: RouteInput): Route {
    const netId = (input.networkId ?? '').trim();
    if (netId === '' || netId.length > 40) throw new ManagementError('unprocessable', 'network_id: must be 1-40 characters');
    this.checkMetric(input.metric);
    const hasNet = typeof input.network === 'string' && input.network !== '';
    const domains = input.domains ?? [];
    if (hasNet === domains.length > 0) throw new ManagementError('unprocessable', 'network, domains: give either a network CIDR or domains, not both');
    let networkType: Route['networkType'] = 'Domain';
    let network = '';
    if (hasNet) {
      const n = input.network!.trim();
      if (n.includes(':')) {
        if (!/^[0-9a-fA-F:]+\/\d{1,3}$/.test(n) || Number(n.split('/')[1]) > 128) throw new ManagementError('unprocessable', `network: invalid CIDR ${JSON.stringify(n)}`);
        networkType = 'IPv6';
        network = n.toLowerCase();
      } else {
        let p;
        try {
          p = parseCidr(n);
        } catch {
          throw new ManagementError('unprocessable', `network: invalid CIDR ${JSON.stringify(n)}`);
        }
        networkType = 'IPv4';
        network = `${intToIpText(p.base)}/${p.bits}`;
      }
    } else {
      for (const d of domains) {
        const bare = d.startsWith('*.') ? d.slice(2) : d;
        if (!isValidDomain(bare.toLowerCase())) throw new ManagementError('unprocessable', `domains: invalid domain ${JSON.stringify(d)}`);
      }
    }
    const peer = input.peer ?? '';
    const peerGroups = input.peerGroups ?? [];
    if ((peer !== '') === peerGroups.length > 0) throw new ManagementError('unprocessable', 'peer, peer_groups: give either a routing peer or peer groups, not both');
    if (peer) this.checkPeer(state, peer, 'peer');
    return {
      id,
      accountId: state.id,
      description: input.description ?? '',
      networkId: netId,
      enabled: input.enabled,
      peer,
      peerGroups: this.checkGroupsField(state, peerGroups, 'peer_groups'),
      network,
      networkType,
      domains: domains.map((d) => d.toLowerCase()),
      metric: input.metric,
      masquerade: input.masquerade,
      groups: this.checkGroupsField(state, input.groups, 'groups', true),
      keepRoute: input.keepRoute,
      accessControlGroups: this.checkGroupsField(state, input.accessControlGroups, 'access_control_groups'),
      skipAutoApply: input.skipAutoApply ?? false,
    };
  }

  async createRoute(accountId: string, input: RouteInput): Promise<Route> {
    const state = this.accountState(accountId);
    const route = this.buildRoute(state, newId(), input);
    return this.saveRoute(state, route, undefined);
  }

  async updateRoute(accountId: string, id: string, input: RouteInput): Promise<Route> {
    const state = this.accountState(accountId);
    const old = this.getObject(accountObjects(state).routes, id, 'route');
    return this.saveRoute(state, this.buildRoute(state, id, input), old);
  }

  private saveRoute(state: AccountState, route: Route, old: Route | undefined): Promise<Route> {
    const objs = accountObjects(state);
    return this.change(state.id, async (q) => {
      await q.putObject('routes', route);
      return {
        result: route,
        events: [{ activityCode: old ? ACT.routeUpdate : ACT.routeAdd, initiatorId: '', targetId: route.id, meta: { name: route.networkId, network_range: route.network, domains: route.domains.join(',') } }],
        apply: () => {
          const affected = affectedByRoute(state, old);
          objs.routes.set(route.id, route);
          objs.generation++;
          for (const p of affectedByRoute(state, route)) affected.add(p);
          return affected;
        },
      };
    });
  }

  async deleteRoute(accountId: string, id: string): Promise<void> {
    const state = this.accountState(accountId);
    const objs = accountObjects(state);
    const old = this.getObject(objs.routes, id, 'route');
    await this.change(accountId, async (q) => {
      await q.deleteObject('routes', id);
      return {
        result: undefined,
        events: [{ activityCode: ACT.routeDelete, initiatorId: '', targetId: id, meta: { name: old.networkId, network_range: old.network } }],
        apply: () => {
          const affected = affectedByRoute(state, old);
          objs.routes.delete(id);
          objs.generation++;
          return affected;
        },
      };
    });
  }

  // ----- name-server groups -----
  private buildNameserverGroup(state: AccountState, id: string, input: NameserverGroupInput): NameserverGroup {
    const name = (input.name ?? '').trim();
    if (name === '' || name.length > 40) throw new ManagementError('unprocessable', 'name: must be 1-40 characters');
    if (!Array.isArray(input.nameservers) || input.nameservers.length < 1 || input.nameservers.length > 3) {
      throw new ManagementError('unprocessable', 'nameservers: between 1 and 3 name servers are required');
    }
    for (const ns of input.nameservers) {
      if (!isIpAddress(ns.ip)) throw new ManagementError('unprocessable', `nameservers.ip: invalid IP address ${JSON.stringify(ns.ip)}`);
      if (ns.nsType !== 'udp') throw new ManagementError('unprocessable', `nameservers.ns_type: only "udp" is supported`);
      if (!Number.isInteger(ns.port) || ns.port < 1 || ns.port > 65535) throw new ManagementError('unprocessable', `nameservers.port: invalid port ${ns.port}`);
    }
    const domains = (input.domains ?? []).map((d) => d.trim().toLowerCase());
    for (const d of domains) if (!isValidDomain(d)) throw new ManagementError('unprocessable', `domains: invalid domain ${JSON.stringify(d)}`);
    if (input.primary && domains.length > 0) throw new ManagementError('unprocessable', 'domains: a primary name-server group must not have match domains');
    if (!input.primary && domains.length === 0) throw new ManagementError('unprocessable', 'domains: a non-primary name-server group needs at least one match domain');
    return {
      id,
      accountId: state.id,
      name,
      description: input.description ?? '',
      nameservers: input.nameservers.map((n) => ({ ip: n.ip, nsType: 'udp', port: n.port })),
      enabled: input.enabled,
      groups: this.checkGroupsField(state, input.groups, 'groups', true),
      primary: input.primary,
      domains,
      searchDomainsEnabled: input.searchDomainsEnabled,
    };
  }

  async createNameserverGroup(accountId: string, input: NameserverGroupInput): Promise<NameserverGroup> {
    const state = this.accountState(accountId);
    return this.saveNameserverGroup(state, this.buildNameserverGroup(state, newId(), input), undefined);
  }

  async updateNameserverGroup(accountId: string, id: string, input: NameserverGroupInput): Promise<NameserverGroup> {
    const state = this.accountState(accountId);
    const old = this.getObject(accountObjects(state).nameserverGroups, id, 'name-server group');
    return this.saveNameserverGroup(state, this.buildNameserverGroup(state, id, input), old);
  }

  private saveNameserverGroup(state: AccountState, g: NameserverGroup, old: NameserverGroup | undefined): Promise<NameserverGroup> {
    const objs = accountObjects(state);
    return this.change(state.id, async (q) => {
      await q.putObject('nameserverGroups', g);
      return {
        result: g,
        events: [{ activityCode: old ? ACT.nsUpdate : ACT.nsAdd, initiatorId: '', targetId: g.id, meta: { name: g.name } }],
        apply: () => {
          const affected = membersOfGroups(state, [...g.groups, ...(old?.groups ?? [])]);
          objs.nameserverGroups.set(g.id, g);
          objs.generation++;
          return affected;
        },
      };
    });
  }

  async deleteNameserverGroup(accountId: string, id: string): Promise<void> {
    const state = this.accountState(accountId);
    const objs = accountObjects(state);
    const old = this.getObject(objs.nameserverGroups, id, 'name-server group');
    await this.change(accountId, async (q) => {
      await q.deleteObject('nameserverGroups', id);
      return {
        result: undefined,
        events: [{ activityCode: ACT.nsDelete, initiatorId: '', targetId: id, meta: { name: old.name } }],
        apply: () => {
          objs.nameserverGroups.delete(id);
          objs.generation++;
          return membersOfGroups(state, old.groups);
        },
      };
    });
  }

  /** DNS settings: groups whose peers get no managed DNS. */
  async updateDnsSettings(accountId: string, disabledManagementGroups: string[]): Promise<string[]> {
    const state = this.accountState(accountId);
    const groups = this.checkGroupsField(state, disabledManagementGroups, 'disabled_management_groups');
    const old = state.account.settings.dnsDisabledManagementGroups;
    const added = groups.filter((g) => !old.includes(g));
    const removed = old.filter((g) => !groups.includes(g));
    return this.change(accountId, async (q) => {
      const account: Account = { ...state.account, settings: { ...state.account.settings, dnsDisabledManagementGroups: groups } };
      await q.updateAccount({ ...account, serial: state.account.serial });
      const events: EventDraft[] = [
        ...added.map((g) => ({ activityCode: ACT.dnsDisabledAdd, initiatorId: '', targetId: g, meta: { group: state.groups.get(g)?.name ?? '' } })),
        ...removed.map((g) => ({ activityCode: ACT.dnsDisabledDelete, initiatorId: '', targetId: g, meta: { group: state.groups.get(g)?.name ?? '' } })),
      ];
      return {
        result: groups,
        events,
        apply: () => {
          state.account = { ...account, serial: state.account.serial };
          accountObjects(state).generation++;
          const affected = membersOfGroups(state, [...added, ...removed]);
          for (const p of affected) state.peerCache.delete(p);
          return affected;
        },
      };
    });
  }

  // ----- posture checks -----
  private buildPostureCheck(state: AccountState, id: string, input: { name: string; description?: string; checks: Record<string, unknown> }): PostureCheck {
    const name = (input.name ?? '').trim();
    if (name === '') throw new ManagementError('unprocessable', 'name: posture check name must not be empty');
    for (const other of accountObjects(state).postureChecks.values()) {
      if (other.id !== id && other.name === name) throw new ManagementError('already_exists', `posture check ${JSON.stringify(name)} already exists`);
    }
    const checks = input.checks ?? {};
    const known = ['nb_version_check', 'os_version_check', 'geo_location_check', 'peer_network_range_check', 'process_check'];
    const keys = Object.keys(checks);
    if (keys.length === 0) throw new ManagementError('unprocessable', 'checks: at least one check is required');
    for (const k of keys) if (!known.includes(k)) throw new ManagementError('unprocessable', `checks.${k}: unknown check; use ${known.join(', ')}`);
    const nb = checks.nb_version_check as { min_version?: unknown } | undefined;
    if (nb && (typeof nb.min_version !== 'string' || !/^\d+\.\d+\.\d+/.test(nb.min_version))) {
      throw new ManagementError('unprocessable', 'checks.nb_version_check.min_version: must be a version like 0.60.0');
    }
    const geo = checks.geo_location_check as { action?: unknown; locations?: unknown } | undefined;
    if (geo && (!['allow', 'deny'].includes(String(geo.action)) || !Array.isArray(geo.locations))) {
      throw new ManagementError('unprocessable', 'checks.geo_location_check: needs locations and action allow or deny');
    }
    const net = checks.peer_network_range_check as { action?: unknown; ranges?: unknown } | undefined;
    if (net) {
      if (!['allow', 'deny'].includes(String(net.action)) || !Array.isArray(net.ranges)) {
        throw new ManagementError('unprocessable', 'checks.peer_network_range_check: needs ranges and action allow or deny');
      }
      for (const r of net.ranges as unknown[]) {
        try {
          parseCidr(String(r));
        } catch {
          throw new ManagementError('unprocessable', `checks.peer_network_range_check.ranges: invalid CIDR ${JSON.stringify(r)}`);
        }
      }
    }
    return { id, accountId: state.id, name, description: input.description ?? '', checks };
  }

  async createPostureCheck(accountId: string, input: { name: string; description?: string; checks: Record<string, unknown> }): Promise<PostureCheck> {
    const state = this.accountState(accountId);
    return this.savePostureCheck(state, this.buildPostureCheck(state, newId(), input), false);
  }

  async updatePostureCheck(accountId: string, id: string, input: { name: string; description?: string; checks: Record<string, unknown> }): Promise<PostureCheck> {
    const state = this.accountState(accountId);
    this.getObject(accountObjects(state).postureChecks, id, 'posture check');
    return this.savePostureCheck(state, this.buildPostureCheck(state, id, input), true);
  }

  private savePostureCheck(state: AccountState, pc: PostureCheck, update: boolean): Promise<PostureCheck> {
    return this.change(state.id, async (q) => {
      await q.putObject('postureChecks', pc);
      return {
        result: pc,
        events: [{ activityCode: update ? ACT.postureUpdate : ACT.postureCreate, initiatorId: '', targetId: pc.id, meta: { name: pc.name } }],
        apply: () => {
          accountObjects(state).postureChecks.set(pc.id, pc);
          return state.peersOfRules(state.policies.filter((p) => p.sourcePostureChecks.includes(pc.id)).flatMap((p) => p.rules));
        },
      };
    });
  }

  async deletePostureCheck(accountId: string, id: string): Promise<void> {
    const state = this.accountState(accountId);
    const old = this.getObject(accountObjects(state).postureChecks, id, 'posture check');
    const user = state.policies.find((p) => p.sourcePostureChecks.includes(id));
    if (user) throw new ManagementError('failed_precondition', `posture check ${old.name} is used by policy ${user.name}; remove it there first`);
    await this.change(accountId, async (q) => {
      await q.deleteObject('postureChecks', id);
      return {
        result: undefined,
        events: [{ activityCode: ACT.postureDelete, initiatorId: '', targetId: id, meta: { name: old.name } }],
        apply: () => {
          accountObjects(state).postureChecks.delete(id);
          return new Set<string>();
        },
      };
    });
  }

  // ----- networks, resources, routers -----
  /** Peers whose maps may change with network `networkId`: its routing peers and the peers of rules touching its resources' groups. */
  private affectedByNetwork(state: AccountState, networkId: string): Set<string> {
    const objs = accountObjects(state);
    const out = new Set<string>();
    for (const r of objs.networkRouters.values()) if (r.networkId === networkId) for (const p of routingPeers(state, r)) out.add(p);
    const groups = new Set<string>();
    for (const res of objs.networkResources.values()) if (res.networkId === networkId) for (const g of res.groups) groups.add(g);
    if (groups.size > 0) {
      const rules = state.policies.flatMap((p) => p.rules).filter((r) => r.sources.some((g) => groups.has(g)) || r.destinations.some((g) => groups.has(g)));
      for (const p of state.peersOfRules(rules)) out.add(p);
    }
    return out;
  }

  private changeNetwork<T>(state: AccountState, networkId: string, write: (q: Queries) => Promise<void>, event: EventDraft, mutate: () => void, result: T): Promise<T> {
    return this.change(state.id, async (q) => {
      await write(q);
      return {
        result,
        events: [event],
        apply: () => {
          const affected = this.affectedByNetwork(state, networkId);
          mutate();
          accountObjects(state).generation++;
          for (const p of this.affectedByNetwork(state, networkId)) affected.add(p);
          return affected;
        },
      };
    });
  }

  getNetwork(accountId: string, id: string): NetworkDef {
    return this.getObject(this.objects(accountId).networks, id, 'network');
  }

  async saveNetwork(accountId: string, id: string | undefined, input: { name: string; description?: string }): Promise<NetworkDef> {
    const state = this.accountState(accountId);
    if (id !== undefined) this.getNetwork(accountId, id);
    const name = (input.name ?? '').trim();
    if (name === '') throw new ManagementError('unprocessable', 'name: network name must not be empty');
    const net: NetworkDef = { id: id ?? newId(), accountId, name, description: input.description ?? '' };
    return this.changeNetwork(
      state,
      net.id,
      (q) => q.putObject('networks', net),
      { activityCode: id ? ACT.networkUpdate : ACT.networkCreate, initiatorId: '', targetId: net.id, meta: { name } },
      () => accountObjects(state).networks.set(net.id, net),
      net,
    );
  }

  async deleteNetwork(accountId: string, id: string): Promise<void> {
    const state = this.accountState(accountId);
    const objs = accountObjects(state);
    const old = this.getNetwork(accountId, id);
    await this.changeNetwork(
      state,
      id,
      async (q) => {
        await q.deleteObjectsByParent('networkResources', id);
        await q.deleteObjectsByParent('networkRouters', id);
        await q.deleteObject('networks', id);
      },
      { activityCode: ACT.networkDelete, initiatorId: '', targetId: id, meta: { name: old.name } },
      () => {
        for (const r of [...objs.networkResources.values()]) if (r.networkId === id) objs.networkResources.delete(r.id);
        for (const r of [...objs.networkRouters.values()]) if (r.networkId === id) objs.networkRouters.delete(r.id);
        objs.networks.delete(id);
      },
      undefined,
    );
  }

  getNetworkResource(accountId: string, networkId: string, id: string): NetworkResource {
    const r = this.objects(accountId).networkResources.get(id);
    if (!r || r.networkId !== networkId) throw new ManagementError('not_found', `network resource ${id} not found`);
    return r;
  }

  async saveNetworkResource(accountId: string, networkId: string, id: string | undefined, input: NetworkResourceInput): Promise<NetworkResource> {
    const state = this.accountState(accountId);
    this.getNetwork(accountId, networkId);
    if (id !== undefined) this.getNetworkResource(accountId, networkId, id);
    const name = (input.name ?? '').trim();
    if (name === '') throw new ManagementError('unprocessable', 'name: resource name must not be empty');
    const address = (input.address ?? '').trim();
    let type: NetworkResource['type'];
    if (/^[0-9.]+$/.test(address) && isIpAddress(address)) type = 'host';
    else if (address.includes('/')) {
      try {
        const p = parseCidr(address);
        type = p.bits === 32 ? 'host' : 'subnet';
      } catch {
        throw new ManagementError('unprocessable', `address: invalid CIDR ${JSON.stringify(address)}`);
      }
    } else if (isValidDomain((address.startsWith('*.') ? address.slice(2) : address).toLowerCase())) type = 'domain';
    else throw new ManagementError('unprocessable', `address: ${JSON.stringify(address)} is not an IP address, CIDR or domain`);
    const res: NetworkResource = {
      id: id ?? newId(),
      accountId,
      networkId,
      name,
      description: input.description ?? '',
      type,
      address,
      enabled: input.enabled,
      // NetBird keeps resources without groups (reachable once a group holds them); [] is fine.
      groups: this.checkGroupsField(state, input.groups ?? [], 'groups'),
    };
    return this.changeNetwork(
      state,
      networkId,
      (q) => q.putObject('networkResources', res, networkId),
      { activityCode: id ? ACT.resourceUpdate : ACT.resourceCreate, initiatorId: '', targetId: res.id, meta: { name, address, network: networkId } },
      () => accountObjects(state).networkResources.set(res.id, res),
      res,
    );
  }

  async deleteNetworkResource(accountId: string, networkId: string, id: string): Promise<void> {
    const state = this.accountState(accountId);
    const old = this.getNetworkResource(accountId, networkId, id);
    await this.changeNetwork(
      state,
      networkId,
      (q) => q.deleteObject('networkResources', id),
      { activityCode: ACT.resourceDelete, initiatorId: '', targetId: id, meta: { name: old.name, network: networkId } },
      () => accountObjects(state).networkResources.delete(id),
      undefined,
    );
  }

  getNetworkRouter(accountId: string, networkId: string, id: string): NetworkRouter {
    const r = this.objects(accountId).networkRouters.get(id);
    if (!r || r.networkId !== networkId) throw new ManagementError('not_found', `network router ${id} not found`);
    return r;
  }

  async saveNetworkRouter(accountId: string, networkId: string, id: string | undefined, input: NetworkRouterInput): Promise<NetworkRouter> {
    const state = this.accountState(accountId);
    this.getNetwork(accountId, networkId);
    if (id !== undefined) this.getNetworkRouter(accountId, networkId, id);
    const peer = input.peer ?? '';
    const peerGroups = input.peerGroups ?? [];
    if ((peer !== '') === peerGroups.length > 0) throw new ManagementError('unprocessable', 'peer, peer_groups: give either a routing peer or peer groups, not both');
    if (peer) this.checkPeer(state, peer, 'peer');
    this.checkMetric(input.metric);
    const router: NetworkRouter = {
      id: id ?? newId(),
      accountId,
      networkId,
      peer,
      peerGroups: this.checkGroupsField(state, peerGroups, 'peer_groups'),
      metric: input.metric,
      masquerade: input.masquerade,
      enabled: input.enabled,
    };
    return this.changeNetwork(
      state,
      networkId,
      (q) => q.putObject('networkRouters', router, networkId),
      { activityCode: id ? ACT.routerUpdate : ACT.routerCreate, initiatorId: '', targetId: router.id, meta: { network: networkId } },
      () => accountObjects(state).networkRouters.set(router.id, router),
      router,
    );
  }

  async deleteNetworkRouter(accountId: string, networkId: string, id: string): Promise<void> {
    const state = this.accountState(accountId);
    this.getNetworkRouter(accountId, networkId, id);
    await this.changeNetwork(
      state,
      networkId,
      (q) => q.deleteObject('networkRouters', id),
      { activityCode: ACT.routerDelete, initiatorId: '', targetId: id, meta: { network: networkId } },
      () => accountObjects(state).networkRouters.delete(id),
      undefined,
    );
  }

  // ----- DNS zones and records -----
  getDnsZone(accountId: string, id: string): DnsZone {
    return this.getObject(this.objects(accountId).dnsZones, id, 'DNS zone');
  }

  private checkRecord(zone: { domain: string }, input: DnsRecordInput): DnsRecord {
    const name = (input.name ?? '').trim().toLowerCase().replace(/\.$/, '');
    if (!isValidDomain(name) || !(name === zone.domain || name.endsWith(`.${zone.domain}`))) {
      throw new ManagementError('unprocessable', `name: ${JSON.stringify(input.name)} must be a name inside the zone ${zone.domain}`);
    }
    if (input.type === 'A' && !(/^[0-9.]+$/.test(input.content) && isIpAddress(input.content))) throw new ManagementError('unprocessable', `content: ${JSON.stringify(input.content)} is not an IPv4 address`);
    else if (input.type === 'AAAA' && !(input.content.includes(':') && isIpAddress(input.content))) throw new ManagementError('unprocessable', `content: ${JSON.stringify(input.content)} is not an IPv6 address`);
    else if (input.type === 'CNAME' && !isValidDomain(input.content.toLowerCase().replace(/\.$/, ''))) throw new ManagementError('unprocessable', `content: ${JSON.stringify(input.content)} is not a domain name`);
    else if (!['A', 'AAAA', 'CNAME'].includes(input.type)) throw new ManagementError('unprocessable', `type: use A, AAAA or CNAME`);
    if (!Number.isInteger(input.ttl) || input.ttl < 0 || input.ttl > 2147483647) throw new ManagementError('unprocessable', 'ttl: must be a non-negative integer');
    return { id: '', name, type: input.type, content: input.content, ttl: input.ttl };
  }

  private saveZone(state: AccountState, zone: DnsZone, old: DnsZone | undefined, event: EventDraft): Promise<DnsZone> {
    return this.change(state.id, async (q) => {
      await q.putObject('dnsZones', zone);
      return {
        result: zone,
        events: [event],
        apply: () => {
          const affected = membersOfGroups(state, [...zone.distributionGroups, ...(old?.distributionGroups ?? [])]);
          accountObjects(state).dnsZones.set(zone.id, zone);
          accountObjects(state).generation++;
          return affected;
        },
      };
    });
  }

  async saveDnsZone(accountId: string, id: string | undefined, input: DnsZoneInput): Promise<DnsZone> {
    const state = this.accountState(accountId);
    const old = id !== undefined ? this.getDnsZone(accountId, id) : undefined;
    const name = (input.name ?? '').trim();
    if (name === '') throw new ManagementError('unprocessable', 'name: zone name must not be empty');
    const domain = (input.domain ?? '').trim().toLowerCase().replace(/\.$/, '');
    if (!isValidDomain(domain)) throw new ManagementError('unprocessable', `domain: invalid domain ${JSON.stringify(input.domain)}`);
    for (const z of accountObjects(state).dnsZones.values()) {
      if (z.id !== id && z.domain === domain) throw new ManagementError('already_exists', `a zone for ${domain} already exists`);
    }
    if (old && old.domain !== domain && old.records.length > 0) throw new ManagementError('unprocessable', 'domain: cannot change the domain of a zone that has records');
    const zone: DnsZone = {
      id: id ?? newId(),
      accountId,
      name,
      domain,
      enabled: input.enabled ?? true,
      enableSearchDomain: input.enableSearchDomain,
      distributionGroups: this.checkGroupsField(state, input.distributionGroups, 'distribution_groups', true),
      records: old?.records ?? [],
    };
    return this.saveZone(state, zone, old, { activityCode: old ? ACT.zoneUpdate : ACT.zoneCreate, initiatorId: '', targetId: zone.id, meta: { name, domain } });
  }

  async deleteDnsZone(accountId: string, id: string): Promise<void> {
    const state = this.accountState(accountId);
    const old = this.getDnsZone(accountId, id);
    await this.change(accountId, async (q) => {
      await q.deleteObject('dnsZones', id);
      return {
        result: undefined,
        events: [{ activityCode: ACT.zoneDelete, initiatorId: '', targetId: id, meta: { name: old.name, domain: old.domain } }],
        apply: () => {
          accountObjects(state).dnsZones.delete(id);
          accountObjects(state).generation++;
          return membersOfGroups(state, old.distributionGroups);
        },
      };
    });
  }

  getDnsRecord(accountId: string, zoneId: string, id: string): DnsRecord {
    const r = this.getDnsZone(accountId, zoneId).records.find((x) => x.id === id);
    if (!r) throw new ManagementError('not_found', `DNS record ${id} not found`);
    return r;
  }

  async saveDnsRecord(accountId: string, zoneId: string, id: string | undefined, input: DnsRecordInput): Promise<DnsRecord> {
    const state = this.accountState(accountId);
    const zone = this.getDnsZone(accountId, zoneId);
    if (id !== undefined) this.getDnsRecord(accountId, zoneId, id);
    const rec = { ...this.checkRecord(zone, input), id: id ?? newId() };
    const records = id ? zone.records.map((r) => (r.id === id ? rec : r)) : [...zone.records, rec];
    await this.saveZone(state, { ...zone, records }, zone, { activityCode: id ? ACT.recordUpdate : ACT.recordCreate, initiatorId: '', targetId: rec.id, meta: { name: rec.name, type: rec.type, zone: zone.domain } });
    return rec;
  }

  async deleteDnsRecord(accountId: string, zoneId: string, id: string): Promise<void> {
    const state = this.accountState(accountId);
    const zone = this.getDnsZone(accountId, zoneId);
    const rec = this.getDnsRecord(accountId, zoneId, id);
    await this.saveZone(state, { ...zone, records: zone.records.filter((r) => r.id !== id) }, zone, { activityCode: ACT.recordDelete, initiatorId: '', targetId: id, meta: { name: rec.name, zone: zone.domain } });
  }

  // ----- user invites (embedded identity provider) -----
  listInvites(accountId: string): UserInvite[] {
    return [...this.objects(accountId).userInvites.values()];
  }

  getInvite(accountId: string, id: string): UserInvite {
    return this.getObject(this.objects(accountId).userInvites, id, 'invite');
  }

  /** Creates an invite; the plain token ("nbi_…") is returned only here. */
  async createInvite(
    accountId: string,
    input: { email: string; name: string; role: UserRole; autoGroups: string[]; expiresInSeconds?: number; createdBy: string },
  ): Promise<{ token: string; invite: UserInvite }> {
    const state = this.accountState(accountId);
    const email = input.email.trim().toLowerCase();
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) throw new ManagementError('unprocessable', 'email: not a valid e-mail address');
    if (!USER_ROLES.includes(input.role) || input.role === 'owner') throw new ManagementError('unprocessable', `role: invalid role ${JSON.stringify(input.role)}`);
    this.checkGroups(state, input.autoGroups, 'auto_groups');
    if ([...state.users.values()].some((u) => u.email === email) || (await this.store.findCredentialByEmail(email))) {
      throw new ManagementError('already_exists', `a user with e-mail ${email} already exists`);
    }
    if ([...accountObjects(state).userInvites.values()].some((i) => i.email === email)) throw new ManagementError('already_exists', `${email} is already invited`);
    const ttl = input.expiresInSeconds ?? INVITE_TTL_SECONDS;
    if (!Number.isInteger(ttl) || ttl < 60 || ttl > 30 * 86400) throw new ManagementError('unprocessable', 'expires_in: must be between 60 seconds and 30 days');
    const now = this.now();
    const token = `nbi_${randomBase62(40)}`;
    const invite: UserInvite = {
      id: newId(),
      accountId,
      email,
      name: input.name.trim(),
      role: input.role,
      autoGroups: [...new Set(input.autoGroups)],
      tokenHash: hashPersonalAccessToken(token),
      expiresAt: now + ttl * 1000,
      createdAt: now,
      createdBy: input.createdBy,
    };
    await this.change(accountId, async (q) => {
      await q.putObject('userInvites', invite);
      return {
        result: undefined,
        events: [{ activityCode: ACT.inviteCreate, initiatorId: '', targetId: invite.id, meta: { email } }],
        apply: () => {
          accountObjects(state).userInvites.set(invite.id, invite);
          return new Set<string>();
        },
      };
    });
    return { token, invite };
  }

  async deleteInvite(accountId: string, id: string): Promise<void> {
    const state = this.accountState(accountId);
    const old = this.getInvite(accountId, id);
    await this.change(accountId, async (q) => {
      await q.deleteObject('userInvites', id);
      return {
        result: undefined,
        events: [{ activityCode: ACT.inviteDelete, initiatorId: '', targetId: id, meta: { email: old.email } }],
        apply: () => {
          accountObjects(state).userInvites.delete(id);
          return new Set<string>();
        },
      };
    });
  }

  /** New token and expiry for an invite (the old token stops working). */
  async regenerateInvite(accountId: string, id: string, expiresInSeconds?: number): Promise<{ token: string; invite: UserInvite }> {
    const state = this.accountState(accountId);
    const old = this.getInvite(accountId, id);
    const ttl = expiresInSeconds ?? INVITE_TTL_SECONDS;
    if (!Number.isInteger(ttl) || ttl < 60 || ttl > 30 * 86400) throw new ManagementError('unprocessable', 'expires_in: must be between 60 seconds and 30 days');
    const token = `nbi_${randomBase62(40)}`;
    const invite: UserInvite = { ...old, tokenHash: hashPersonalAccessToken(token), expiresAt: this.now() + ttl * 1000 };
    await this.change(accountId, async (q) => {
      await q.putObject('userInvites', invite);
      return {
        result: undefined,
        events: [{ activityCode: ACT.inviteRegenerate, initiatorId: '', targetId: id, meta: { email: old.email } }],
        apply: () => {
          accountObjects(state).userInvites.set(id, invite);
          return new Set<string>();
        },
      };
    });
    return { token, invite };
  }

  /** The invite a plain token belongs to (expired ones included; callers check `expiresAt`). */
  findInviteByToken(token: string): { state: AccountState; invite: UserInvite } | undefined {
    if (!/^nbi_[0-9A-Za-z]{40}$/.test(token)) return undefined;
    const hash = hashPersonalAccessToken(token);
    for (const state of this.accounts.values()) {
      for (const invite of accountObjects(state).userInvites.values()) if (invite.tokenHash === hash) return { state, invite };
    }
    return undefined;
  }

  /** Accepting an invite creates the user with their local credential and drops the invite, atomically. */
  async acceptInvite(token: string, passwordHash: string): Promise<User> {
    const found = this.findInviteByToken(token);
    if (!found) throw new ManagementError('not_found', 'invite not found; ask for a new link');
    const { state, invite } = found;
    if (invite.expiresAt <= this.now()) throw new ManagementError('failed_precondition', 'the invite has expired; ask for a new link');
    if (await this.store.findCredentialByEmail(invite.email)) throw new ManagementError('already_exists', `a user with e-mail ${invite.email} already exists`);
    return this.change(state.id, async (q, _s, now) => {
      if (!accountObjects(state).userInvites.has(invite.id)) throw new ManagementError('not_found', 'invite not found; ask for a new link');
      const user: User = {
        id: newId(),
        accountId: state.id,
        email: invite.email,
        name: invite.name,
        role: invite.role,
        isServiceUser: false,
        blocked: false,
        autoGroups: invite.autoGroups.filter((g) => state.groups.has(g)),
        createdAt: now,
        lastLogin: 0,
      };
      await q.insertUser(user);
      await q.putCredential({ userId: user.id, accountId: state.id, email: user.email, passwordHash });
      await q.deleteObject('userInvites', invite.id);
      return {
        result: user,
        events: [{ activityCode: ACT.inviteAccept, initiatorId: user.id, targetId: user.id, meta: { email: user.email, invited_by: invite.createdBy } }],
        apply: () => {
          state.users.set(user.id, user);
          accountObjects(state).userInvites.delete(invite.id);
          return new Set<string>();
        },
      };
    });
  }

  // ----- login expiration -----
  /** Finds peers whose login expired since the last check and tells the listeners. */
  async checkLoginExpiration(): Promise<void> {
    const now = this.now();
    for (const state of this.accounts.values()) {
      if (!state.account.settings.peerLoginExpirationEnabled) continue;
      const expired: Peer[] = [];
      for (const p of state.peers.values()) {
        if (!this.expiredNotified.has(p.id) && isLoginExpired(state, p, now)) expired.push(p);
      }
      if (expired.length === 0) continue;
      await this.change(state.id, async (q) => {
        for (const p of expired) {
          await q.insertEvent({ id: newId(), accountId: state.id, timestamp: now, activityCode: ACT.peerLoginExpire, initiatorId: '', targetId: p.id, meta: {} });
        }
        return {
          result: undefined,
          apply: () => {
            const affected = new Set<string>();
            for (const p of expired) {
              this.expiredNotified.add(p.id);
              for (const v of state.visiblePeers(p.id)) affected.add(v);
              for (const l of this.listeners) l.peerLoginExpired?.(state.id, p);
            }
            return affected;
          },
        };
      });
    }
  }
}

function intToIpText(n: number): string {
  return `${Math.floor(n / 16777216) & 255}.${Math.floor(n / 65536) & 255}.${Math.floor(n / 256) & 255}.${n & 255}`;
}

/** IPv4 dotted quad or an IPv6 address in text form. */
function isIpAddress(ip: string): boolean {
  return isIP(ip) !== 0;
}
