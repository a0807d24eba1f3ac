import { AsyncLocalStorage } from 'node:async_hooks';
import { AccountState } from './state.js';
import type { AccountObjects, Queries, Store } from './store/store.js';
import { AccountObjectsState, accountObjects, attachAccountObjects, withRoutingDependents } from './objects.js';
import { forwarderPort } from './networkmap.js';
import type { AuditEvent, Peer } from './types.js';
import { ManagementError, accountRecord } from './types.js';
import { newId } from './util.js';

/**
 * What every entity module of the account manager shares: the in-memory accounts and their lookup
 * indexes, the one way to change an account (`change`: per-account lock, one store transaction that
 * also bumps the serial and records the audit events, then the in-memory update) and the one way to
 * tell listeners about it (`emit` with the affected peers, `peerDeleted`, `peerLoginExpired`).
 * Writes to one account are serialized by its lock, which is what keeps concurrent registrations
 * from picking the same IP or DNS label (the database's unique constraints back it up).
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

export interface PeerRef {
  state: AccountState;
  peer: Peer;
}

/** An audit event before the change fills in id, account and time. */
export type EventDraft = Omit<AuditEvent, 'id' | 'accountId' | 'timestamp'>;

/** What the write step of a change hands back: its result, the in-memory update and the audit events. */
export interface ChangeStep<T> {
  result: T;
  /** Run only after commit: updates memory and returns the peers whose maps may have changed. */
  apply: () => Affected;
  events?: EventDraft[];
}

/** Initiator (user id) of the changes made inside `AccountManager.asInitiator`, for audit events. */
const initiatorContext = new AsyncLocalStorage<string>();

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

export class ManagerCore {
  readonly store: Store;
  readonly defaultDnsDomain: string;
  readonly ephemeralTimeoutMs: number;
  readonly now: () => number;
  readonly accounts = new Map<string, AccountState>();
  readonly globalLock = new Mutex();
  /** Peer WireGuard key -> account id. */
  readonly peerAccount = new Map<string, string>();
  /** Setup key hash -> key. */
  readonly keyHashIndex = new Map<string, { accountId: string; id: string }>();
  /** PAT hash -> token. */
  readonly tokenHashIndex = new Map<string, { accountId: string; id: string }>();
  private readonly locks = new Map<string, Mutex>();
  private readonly listeners = new Set<ChangeListener>();

  constructor(options: AccountManagerOptions) {
    this.store = options.store;
    this.defaultDnsDomain = options.dnsDomain ?? DEFAULT_DNS_DOMAIN;
    this.ephemeralTimeoutMs = options.ephemeralTimeoutMs ?? DEFAULT_EPHEMERAL_TIMEOUT_MS;
    this.now = options.now ?? Date.now;
  }

  /** Loads every account of the store into memory. */
  async loadAccounts(): Promise<void> {
    for (const id of await this.store.listAccountIds()) {
      const data = await this.store.loadAccount(id);
      if (data) this.index(new AccountState(data), data.objects);
    }
  }

  addListener(l: ChangeListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  index(state: AccountState, objects?: AccountObjects): void {
    const objs = new AccountObjectsState(objects);
    attachAccountObjects(state, objs);
    for (const t of objs.tokens.values()) this.tokenHashIndex.set(t.hashedToken, { accountId: state.id, id: t.id });
    this.accounts.set(state.id, state);
    for (const p of state.peers.values()) this.peerAccount.set(p.key, state.id);
    for (const k of state.setupKeys.values()) this.keyHashIndex.set(k.keyHash, { accountId: state.id, id: k.id });
  }

  lock(accountId: string): Mutex {
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

  objects(accountId: string): AccountObjectsState {
    return accountObjects(this.accountState(accountId));
  }

  /** Runs `fn` with `userId` as the initiator recorded in the audit events of its changes. */
  asInitiator<T>(userId: string, fn: () => Promise<T>): Promise<T> {
    return initiatorContext.run(userId, fn);
  }

  private emit(accountId: string, affected: Affected): void {
    if (affected !== 'all' && affected.size === 0) return;
    const state = this.accounts.get(accountId);
    const all = affected === 'all' || !state ? affected : withRoutingDependents(state, affected);
    for (const l of this.listeners) l.accountChanged(accountId, all);
  }

  /** Tells the listeners that `peer` was deleted. */
  peerDeleted(accountId: string, peer: Peer): void {
    for (const l of this.listeners) l.peerDeleted(accountId, peer);
  }

  /** Tells the listeners that `peer` may no longer log in (login expired, owner blocked). */
  peerLoginExpired(accountId: string, peer: Peer): void {
    for (const l of this.listeners) l.peerLoginExpired?.(accountId, peer);
  }

  /**
   * Runs a change of one account: `fn` writes through the transaction `q` and mutates nothing in
   * memory; `apply` (run only after commit) updates memory and returns the affected peers.
   */
  async change<T>(accountId: string, fn: (q: Queries, state: AccountState, now: number) => Promise<ChangeStep<T>>): Promise<T> {
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
      const flipsBefore = state.postureFlips;
      state.account = accountRecord({ ...state.account, serial });
      const affected = apply!();
      // The DNS forwarder port depends on every peer's version, and a peer passing or failing a
      // posture check changes whom its policies connect: then everybody is affected.
      this.emit(accountId, forwarderPort(state) !== fwdBefore || state.postureFlips !== flipsBefore ? 'all' : affected);
      return result;
    });
  }
}
