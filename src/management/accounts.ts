import { ACT } from './audit.js';
import type { EventDraft, ManagerCore } from './core.js';
import type { Peers } from './peers.js';
import { AccountState } from './state.js';
import type { Account, AccountSettings, Group, Policy } from './types.js';
import { ALL_GROUP_NAME, ManagementError, accountRecord, defaultAccountSettings, policyRule } from './types.js';
import { OVERLAY_SUPERNET, cidrContains, isValidDomain, newId, parseCidr, randomAccountNetwork } from './util.js';

/** Activity codes of account-setting toggles: [setting, code when turned on, code when turned off]. */
const SETTING_EVENTS: Array<[keyof AccountSettings, string, string]> = [
  ['peerLoginExpirationEnabled', 'account.setting.peer.login.expiration.enable', 'account.setting.peer.login.expiration.disable'],
  ['peerInactivityExpirationEnabled', 'account.peer.inactivity.expiration.enable', 'account.peer.inactivity.expiration.disable'],
  ['groupsPropagationEnabled', 'account.setting.group.propagation.enable', 'account.setting.group.propagation.disable'],
  ['routingPeerDnsResolutionEnabled', 'account.setting.routing.peer.dns.resolution.enable', 'account.setting.routing.peer.dns.resolution.disable'],
  ['lazyConnectionEnabled', 'account.setting.lazy.connection.enable', 'account.setting.lazy.connection.disable'],
];

/** Instance key holding the id of the instance's one account. */
const INSTANCE_ACCOUNT_KEY = 'account_id';

/** Accounts: creation (with the "All" group and the default policy), settings, deletion. */
export class Accounts {
  constructor(
    private readonly core: ManagerCore,
    private readonly peers: Peers,
  ) {}

  async createAccount(opts: { createdBy?: string; domain?: string; dnsDomain?: string; network?: string } = {}): Promise<Account> {
    const account = await this.insertAccount(opts, false);
    if (!account) throw new Error('unreachable: an unclaimed account insert cannot lose');
    return account;
  }

  /**
   * Writes a new account with its All group and default policy. With `asInstance` it also claims the
   * instance's one account slot in the same transaction; when another process (the CLI next to a
   * running server) claimed it first, nothing is written and undefined is returned.
   */
  private async insertAccount(opts: { createdBy?: string; domain?: string; dnsDomain?: string; network?: string }, asInstance: boolean): Promise<Account | undefined> {
    const now = this.core.now();
    const network = opts.network ?? randomAccountNetwork();
    const net = parseCidr(network);
    if (!cidrContains(OVERLAY_SUPERNET, net.base) || net.bits < OVERLAY_SUPERNET.bits || net.bits > 30) {
      throw new ManagementError('unprocessable', `network ${network} must be a prefix inside 100.64.0.0/10 with room for peers`);
    }
    const dnsDomain = opts.dnsDomain ?? this.core.defaultDnsDomain;
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
        policyRule({
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
        }),
      ],
    };
    const lost = Symbol('lost');
    try {
      await this.core.store.transaction(async (q) => {
        if (asInstance && (await q.claimInstanceValue(INSTANCE_ACCOUNT_KEY, account.id)) !== account.id) throw lost;
        await q.insertAccount(account);
        await q.insertGroup(all);
        await q.insertPolicy(policy, 0);
        await q.insertEvent({ id: newId(), accountId: account.id, timestamp: now, activityCode: ACT.accountCreate, initiatorId: account.createdBy, targetId: account.id, meta: {} });
      });
    } catch (err) {
      if (err === lost) return undefined;
      throw err;
    }
    this.core.index(new AccountState({ account, users: [], groups: [all], policies: [policy], setupKeys: [], peers: [] }));
    return account;
  }

  /** The instance's account (the oldest), created on a fresh store. */
  async defaultAccount(): Promise<Account> {
    return this.core.globalLock.run(() => this.instanceAccount());
  }

  /**
   * The instance's one account; call under the global lock. One per instance by construction: the
   * oldest in memory, else the oldest in the store (another process may have made it since we
   * loaded), else a new one that claims the instance's account slot in the store, so two processes
   * on one store can never each make their own.
   */
  async instanceAccount(opts: { domain?: string } = {}): Promise<Account> {
    for (;;) {
      const first = [...this.core.accounts.values()].sort((a, b) => a.account.createdAt - b.account.createdAt || (a.id < b.id ? -1 : 1))[0];
      if (first) return first.account;
      const [oldestId] = await this.core.store.listAccountIds();
      const claimed = await this.core.store.getInstanceValue(INSTANCE_ACCOUNT_KEY);
      const id = oldestId ?? claimed;
      if (id !== undefined) {
        const data = await this.core.store.loadAccount(id);
        if (!data) throw new ManagementError('internal', `the store names account ${id} as this instance's but does not hold it; restore a backup`);
        this.core.index(new AccountState(data), data.objects);
        continue;
      }
      const created = await this.insertAccount({ domain: opts.domain }, true);
      if (created) return created;
    }
  }

  listAccounts(): Account[] {
    return [...this.core.accounts.values()].map((s) => s.account);
  }

  getAccount(accountId: string): Account {
    return this.core.accountState(accountId).account;
  }

  async updateAccount(accountId: string, patch: { settings?: Partial<AccountSettings>; dnsDomain?: string }): Promise<Account> {
    if (patch.dnsDomain !== undefined && !isValidDomain(patch.dnsDomain)) {
      throw new ManagementError('unprocessable', `invalid DNS domain ${JSON.stringify(patch.dnsDomain)}`);
    }
    return this.core.change(accountId, async (q, state) => {
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
          state.account = accountRecord({ ...account, serial: state.account.serial });
          // Cached fragments embed the DNS domain and settings.
          state.peerCache.clear();
          return 'all';
        },
      };
    });
  }

  async deleteAccount(accountId: string): Promise<void> {
    const state = this.core.accountState(accountId);
    await this.core.lock(accountId).run(async () => {
      await this.core.store.transaction(async (q) => {
        await q.deleteAccount(accountId);
        // The instance's account is gone: the next one made takes its slot.
        if ((await q.getInstanceValue(INSTANCE_ACCOUNT_KEY)) === accountId) await q.deleteInstanceValue(INSTANCE_ACCOUNT_KEY);
      });
      for (const p of state.peers.values()) this.peers.forget(accountId, p);
      for (const k of state.setupKeys.values()) this.core.keyHashIndex.delete(k.keyHash);
      this.core.accounts.delete(accountId);
    });
  }
}

/** The methods the AccountManager face exposes. */
export const ACCOUNTS_API = [
  'createAccount', 'defaultAccount', 'listAccounts', 'getAccount', 'updateAccount', 'deleteAccount',
] as const satisfies ReadonlyArray<keyof Accounts>;
