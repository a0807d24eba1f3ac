import { ACCOUNTS_API, Accounts } from './accounts.js';
import { AUDIT_API, Audit } from './audit.js';
import { type AccountManagerOptions, type ChangeListener, ManagerCore } from './core.js';
import { DNS_API, Dns } from './dns.js';
import { GROUPS_API, Groups } from './groups.js';
import { INVITES_API, Invites } from './invites.js';
import { NETWORKS_API, Networks } from './networks.js';
import type { AccountObjectsState } from './objects.js';
import { PEERS_API, Peers } from './peers.js';
import { POLICIES_API, Policies } from './policies.js';
import { POSTURE_API, PostureChecks } from './posture.js';
import { ROUTES_API, Routes } from './routes.js';
import { SETUP_KEYS_API, SetupKeys } from './setup-keys.js';
import type { AccountState } from './state.js';
import type { Store } from './store/store.js';
import { TOKENS_API, Tokens } from './tokens.js';
import { USERS_API, Users } from './users.js';

/**
 * Domain logic of the management service as one object for the REST API and the gRPC service. Each
 * entity lives in its own module (accounts.ts, users.ts, peers.ts, ...) that owns its validation and
 * its store calls; they share one ManagerCore (core.ts): the in-memory accounts, the per-account lock
 * and transaction of every change, and the notification of the peers a change affects. This face
 * only composes them: each module lists the methods it contributes (its `*_API`), and the interface
 * below gives the face exactly those methods' types.
 */

/** The methods module `T` contributes to the face. */
type Part<T, Names extends ReadonlyArray<keyof T>> = Pick<T, Names[number]>;

export interface AccountManager
  extends Part<Accounts, typeof ACCOUNTS_API>,
    Part<Audit, typeof AUDIT_API>,
    Part<Users, typeof USERS_API>,
    Part<Tokens, typeof TOKENS_API>,
    Part<Invites, typeof INVITES_API>,
    Part<Groups, typeof GROUPS_API>,
    Part<Policies, typeof POLICIES_API>,
    Part<SetupKeys, typeof SETUP_KEYS_API>,
    Part<Peers, typeof PEERS_API>,
    Part<Routes, typeof ROUTES_API>,
    Part<Networks, typeof NETWORKS_API>,
    Part<Dns, typeof DNS_API>,
    Part<PostureChecks, typeof POSTURE_API> {}

export class AccountManager {
  readonly store: Store;
  readonly defaultDnsDomain: string;
  readonly ephemeralTimeoutMs: number;
  readonly now: () => number;
  private readonly core: ManagerCore;

  private constructor(core: ManagerCore, peers: Peers) {
    this.core = core;
    this.store = core.store;
    this.defaultDnsDomain = core.defaultDnsDomain;
    this.ephemeralTimeoutMs = core.ephemeralTimeoutMs;
    this.now = core.now;
    const accounts = new Accounts(core, peers);
    const users = new Users(core, accounts, peers);
    mixIn(this, accounts, ACCOUNTS_API);
    mixIn(this, new Audit(core), AUDIT_API);
    mixIn(this, users, USERS_API);
    mixIn(this, new Tokens(core, users), TOKENS_API);
    mixIn(this, new Invites(core), INVITES_API);
    mixIn(this, new Groups(core), GROUPS_API);
    mixIn(this, new Policies(core), POLICIES_API);
    mixIn(this, new SetupKeys(core), SETUP_KEYS_API);
    mixIn(this, peers, PEERS_API);
    mixIn(this, new Routes(core), ROUTES_API);
    mixIn(this, new Networks(core), NETWORKS_API);
    mixIn(this, new Dns(core), DNS_API);
    mixIn(this, new PostureChecks(core), POSTURE_API);
  }

  /** Loads every account into memory, resets connection state and re-arms ephemeral clean-up. */
  static async open(options: AccountManagerOptions): Promise<AccountManager> {
    const core = new ManagerCore(options);
    await core.loadAccounts();
    const peers = new Peers(core);
    await peers.resume(options.expirationCheckMs ?? 30_000);
    return new AccountManager(core, peers);
  }

  addListener(l: ChangeListener): () => void {
    return this.core.addListener(l);
  }

  /** The in-memory account (read-only use: map computation, REST reads). */
  accountState(accountId: string): AccountState {
    return this.core.accountState(accountId);
  }

  objects(accountId: string): AccountObjectsState {
    return this.core.objects(accountId);
  }
}

/** Puts `part`'s methods `names` on the face, bound to `part`. */
function mixIn<T extends object>(face: AccountManager, part: T, names: ReadonlyArray<keyof T & string>): void {
  for (const name of names) {
    const method: unknown = part[name];
    if (typeof method !== 'function') throw new Error(`${part.constructor.name}.${name} is not a method`);
    if (name in face) throw new Error(`AccountManager.${name} is contributed twice`);
    Object.defineProperty(face, name, { value: method.bind(part), writable: true, configurable: true });
  }
}
