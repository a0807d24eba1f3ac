import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, randomBytes } from 'node:crypto';
import { AccountState } from './state.js';
import { Store, type AccountObjects, type LocalCredential, type Queries } from './store/store.js';
import { AccountObjectsState, accountObjects, affectedByRoute, attachAccountObjects, membersOfGroups, routingPeers } from './objects.js';
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
} as const;

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
    // Nobody is connected to a server that just started; persisted "connected" flags are stale.
    const now = m.now();
    for (const state of m.accounts.values()) {
      for (const p of state.peers.values()) {
        if (p.connected) {
          p.connected = false;
          await m.store.setPeerStatus(p.id, false, now);
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
    for (const l of this.listeners) l.accountChanged(accountId, affected);
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
      const events = patch.dnsDomain !== undefined && patch.dnsDomain !== state.account.dnsDomain
        ? [{ activityCode: ACT.accountDnsDomainUpdate, initiatorId: '', targetId: accountId, meta: { domain: patch.dnsDomain } }]
        : [];
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

  async createUser(accountId: string, input: { id?: string; email?: string; name?: string; role: UserRole; isServiceUser?: boolean; autoGroups?: string[] }): Promise<User> {
    const state = this.accountState(accountId);
    this.checkGroups(state, input.autoGroups ?? []);
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
    return this.change(accountId, async (q) => {
      await q.insertUser(user);
      return {
        result: user,
        events: [{ activityCode: ACT.userCreate, initiatorId: '', targetId: user.id, meta: {} }],
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

  private checkGroups(state: AccountState, ids: readonly string[]): void {
    for (const id of ids) {
      if (!state.groups.has(id)) throw new ManagementError('unprocessable', `group ${id} does not exist in this account`);
    }
  }

  private checkPeers(state: AccountState, ids: readonly string[]): void {
    for (const id of ids) {
      if (!state.peers.has(id)) throw new ManagementError('unprocessable', `peer ${id} does not exist in this account`);
    }
  }

  /** Peers whose maps can change when membership of `groupId` changes. */
  private affectedByGroup(state: AccountState, groupId: string, extra: Iterable<string>): Set<string> {
    const out = new Set<string>(extra);
    const rules = state.policies.flatMap((p) => p.rules).filter((r) => r.sources.includes(groupId) || r.destinations.includes(groupId));
    for (const pid of state.peersOfRules(rules)) out.add(pid);
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
    if (!input.name || input.name.trim() === '') throw new ManagementError('unprocessable', 'policy name must not be empty');
    if (!Array.isArray(input.rules) || input.rules.length === 0) throw new ManagementError('unprocessable', 'a policy needs at least one rule');
    const rules: PolicyRule[] = input.rules.map((r) => {
      const action = r.action ?? 'accept';
      const protocol = r.protocol ?? 'all';
      if (!RULE_ACTIONS.includes(action)) throw new ManagementError('unprocessable', `invalid rule action ${JSON.stringify(action)}`);
      if (!RULE_PROTOCOLS.includes(protocol)) throw new ManagementError('unprocessable', `invalid rule protocol ${JSON.stringify(protocol)}`);
      const ports = r.ports ?? [];
      const portRanges = r.portRanges ?? [];
      if ((ports.length > 0 || portRanges.length > 0) && protocol !== 'tcp' && protocol !== 'udp') {
        throw new ManagementError('unprocessable', 'ports are only allowed with protocol tcp or udp');
      }
      for (const p of ports) {
        const n = Number(p);
        if (!/^\d+$/.test(p) || n < 1 || n > 65535) throw new ManagementError('unprocessable', `invalid port ${JSON.stringify(p)}: use 1-65535`);
      }
      for (const pr of portRanges) {
        if (!Number.isInteger(pr.start) || !Number.isInteger(pr.end) || pr.start < 1 || pr.end > 65535 || pr.start > pr.end) {
          throw new ManagementError('unprocessable', `invalid port range ${pr.start}-${pr.end}: need 1 <= start <= end <= 65535`);
        }
      }
      if (!r.sources?.length || !r.destinations?.length) throw new ManagementError('unprocessable', 'a rule needs source and destination groups');
      this.checkGroups(state, r.sources);
      this.checkGroups(state, r.destinations);
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
    this.checkGroups(state, input.autoGroups ?? []);
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
    if (input.autoGroups) this.checkGroups(state, input.autoGroups);
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
    return this.change(accountId, async (q, _s, now) => {
      const peer = state.peers.get(ref.peer.id);
      if (!peer) throw new ManagementError('permission_denied', 'peer is not registered');
      if (peer.userId) {
        if (input.jwtUserId && input.jwtUserId !== peer.userId) throw new ManagementError('permission_denied', 'peer is registered by another user');
        if (!input.jwtUserId && isLoginExpired(state, peer, now)) {
          throw new ManagementError('permission_denied', 'peer login has expired, please log in once more');
        }
      }
      const next: Peer = { ...peer, meta: this.mergeMeta(peer.meta, input.meta) };
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
    return this.lock(state.id).run(async () => {
      const cur = state.peers.get(peer.id);
      if (!cur) throw new ManagementError('permission_denied', 'peer is not registered');
      const now = this.now();
      await this.store.setPeerStatus(cur.id, connected, now);
      // Status is not part of any encoded fragment, so the peer's cache stays valid.
      cur.connected = connected;
      cur.lastSeen = now;
      return { state, peer: cur };
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
