import type { Accounts } from './accounts.js';
import { affectedByGroup } from './affected.js';
import { ACT } from './audit.js';
import { checkGroups } from './checks.js';
import type { EventDraft, ManagerCore } from './core.js';
import { accountObjects } from './objects.js';
import { buildToken } from './pat.js';
import type { Peers } from './peers.js';
import type { AccountState } from './state.js';
import type { LocalCredential, Queries } from './store/store.js';
import type { Account, Group, Peer, User, UserRole } from './types.js';
import { ALL_GROUP_NAME, ManagementError } from './types.js';
import { newId } from './util.js';

export interface UserUpdateInput {
  role?: UserRole;
  autoGroups?: string[];
  blocked?: boolean;
}

export const USER_ROLES: readonly UserRole[] = ['owner', 'admin', 'user', 'auditor', 'network_admin', 'billing_admin'];

/** Instance key of a deleted user's tombstone (value: deletion time, ms). */
function deletedUserKey(userId: string): string {
  return `deleted_user:${userId}`;
}

/**
 * Users: service users, roles and ownership, blocking, auto-groups (with group propagation to their
 * peers), local credentials, the headless owner set-up and the users behind JWTs (with IdP group sync).
 */
export class Users {
  constructor(
    private readonly core: ManagerCore,
    private readonly accounts: Accounts,
    private readonly peers: Peers,
  ) {}

  listUsers(accountId: string): User[] {
    return [...this.core.accountState(accountId).users.values()];
  }

  /**
   * Creates a user; with `passwordHash` (embedded identity provider) their local credential is
   * written in the same transaction.
   */
  async createUser(
    accountId: string,
    input: { id?: string; email?: string; name?: string; role: UserRole; isServiceUser?: boolean; autoGroups?: string[]; passwordHash?: string },
  ): Promise<User> {
    const state = this.core.accountState(accountId);
    checkGroups(state, input.autoGroups ?? [], 'auto_groups');
    const user: User = {
      id: input.id ?? newId(),
      accountId,
      email: input.email ?? '',
      name: input.name ?? '',
      role: input.role,
      isServiceUser: input.isServiceUser ?? false,
      blocked: false,
      autoGroups: input.autoGroups ?? [],
      createdAt: this.core.now(),
      lastLogin: 0,
    };
    if (!USER_ROLES.includes(user.role)) throw new ManagementError('unprocessable', `role: invalid role ${JSON.stringify(user.role)}; use one of ${USER_ROLES.join(', ')}`);
    if (user.role === 'owner') throw new ManagementError('unprocessable', 'role: an account has exactly one owner; transfer ownership instead');
    if (state.users.has(user.id)) throw new ManagementError('already_exists', `user ${user.id} already exists`);
    if (user.email !== '' && [...state.users.values()].some((u) => u.email === user.email)) throw new ManagementError('already_exists', `a user with e-mail ${user.email} already exists`);
    if (input.passwordHash !== undefined && (user.isServiceUser || user.email === '')) throw new ManagementError('unprocessable', 'password: only users with an e-mail address can have a password');
    if (input.passwordHash !== undefined && (await this.core.store.findCredentialByEmail(user.email))) throw new ManagementError('already_exists', `a user with e-mail ${user.email} already exists`);
    return this.core.change(accountId, async (q) => {
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

  getUser(accountId: string, userId: string): User {
    const u = this.core.accountState(accountId).users.get(userId);
    if (!u) throw new ManagementError('not_found', `user ${userId} not found`);
    return u;
  }

  /** The account a user id belongs to, if any. */
  findUser(userId: string): { state: AccountState; user: User } | undefined {
    for (const state of this.core.accounts.values()) {
      const user = state.users.get(userId);
      if (user) return { state, user };
    }
    return undefined;
  }

  hasUsers(): boolean {
    for (const s of this.core.accounts.values()) if (s.users.size > 0) return true;
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
    const state = this.core.accountState(accountId);
    const old = this.getUser(accountId, userId);
    if (input.role !== undefined && !USER_ROLES.includes(input.role)) {
      throw new ManagementError('unprocessable', `invalid role ${JSON.stringify(input.role)}: use one of ${USER_ROLES.join(', ')}`);
    }
    if (input.autoGroups) {
      checkGroups(state, input.autoGroups, 'auto_groups');
      if (input.autoGroups.includes(state.allGroupId)) throw new ManagementError('unprocessable', 'the group "All" cannot be an auto-group');
    }
    if (old.role === 'owner' && input.role !== undefined && input.role !== 'owner') {
      throw new ManagementError('failed_precondition', 'the owner role can only be handed over by making another user the owner');
    }
    if (old.role === 'owner' && input.blocked) throw new ManagementError('failed_precondition', 'the account owner cannot be blocked');
    if (input.role === 'owner' && old.role !== 'owner') {
      if (old.isServiceUser) throw new ManagementError('failed_precondition', 'a service user cannot own the account; hand ownership to a person');
      if (old.blocked || input.blocked) throw new ManagementError('failed_precondition', 'a blocked user cannot own the account; unblock them first');
    }
    const next: User = {
      ...old,
      role: input.role ?? old.role,
      autoGroups: input.autoGroups ? [...new Set(input.autoGroups)] : old.autoGroups,
      blocked: input.blocked ?? old.blocked,
    };
    const prevOwner = next.role === 'owner' && old.role !== 'owner' ? [...state.users.values()].find((u) => u.role === 'owner') : undefined;
    return this.core.change(accountId, async (q) => {
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
              this.core.peerLoginExpired(state.id, p);
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
    for (const g of [...added, ...removed]) for (const pid of affectedByGroup(state, g, ids)) affected.add(pid);
    for (const g of added) for (const pid of ids) state.addPeerToGroup(g, pid);
    for (const g of removed) {
      const group = state.groups.get(g);
      if (!group) continue;
      state.putGroup({ ...group, peers: group.peers.filter((pid) => !ids.includes(pid)) });
    }
    for (const g of [...added, ...removed]) for (const pid of affectedByGroup(state, g, ids)) affected.add(pid);
    return affected;
  }

  /** Deletes a user with their tokens, local credentials and peers (one transaction). */
  async deleteUser(accountId: string, userId: string): Promise<void> {
    const state = this.core.accountState(accountId);
    const old = this.getUser(accountId, userId);
    if (old.role === 'owner') throw new ManagementError('failed_precondition', 'the account owner cannot be deleted');
    const peers = this.peersOfUser(state, userId);
    const objs = accountObjects(state);
    const tokens = [...objs.tokens.values()].filter((t) => t.userId === userId);
    await this.core.change(accountId, async (q) => {
      const events: EventDraft[] = [];
      for (const p of peers) {
        await q.deletePeer(p.id);
        events.push({ activityCode: ACT.userPeerDelete, initiatorId: '', targetId: p.id, meta: { name: p.name, ip: p.ip } });
      }
      await q.deleteUserTokens(userId);
      await q.deleteCredential(userId);
      await q.deleteUser(userId);
      // Remembered so that a JWT issued before the deletion cannot bring the user back (ensureJwtUser).
      await q.setInstanceValue(deletedUserKey(userId), String(this.core.now()));
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
            this.peers.forget(accountId, p);
          }
          for (const t of tokens) {
            objs.tokens.delete(t.id);
            this.core.tokenHashIndex.delete(t.hashedToken);
          }
          state.users.delete(userId);
          return affected;
        },
      };
    });
  }

  // ----- local credentials (embedded identity provider) -----
  findCredentialByEmail(email: string): Promise<LocalCredential | undefined> {
    return this.core.store.findCredentialByEmail(email.trim().toLowerCase());
  }

  async setCredential(accountId: string, userId: string, email: string, passwordHash: string): Promise<void> {
    this.getUser(accountId, userId);
    await this.core.store.putCredential({ userId, accountId, email: email.trim().toLowerCase(), passwordHash });
  }

  /**
   * Headless bootstrap (`POST /api/setup`): creates the owner of the instance's account together with
   * their local credential and, when asked, a PAT, all in one transaction. Refused with
   * failed_precondition once any user exists.
   */
  async setupOwner(input: { email: string; name: string; passwordHash: string; patExpireDays?: number }): Promise<{ account: Account; user: User; plainToken?: string }> {
    return this.core.globalLock.run(async () => {
      if (this.hasUsers() || (await this.core.store.countUsers()) > 0) throw new ManagementError('failed_precondition', 'setup was already completed');
      const email = input.email.trim().toLowerCase();
      if (await this.core.store.findCredentialByEmail(email)) throw new ManagementError('already_exists', `a user with e-mail ${email} exists`);
      const account = await this.accounts.instanceAccount({ domain: email.split('@')[1] ?? '' });
      const state = this.core.accountState(account.id);
      const now = this.core.now();
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
      const pat = input.patExpireDays !== undefined ? buildToken(account.id, user.id, 'setup', input.patExpireDays, user.id, now) : undefined;
      await this.core.change(account.id, async (q) => {
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
              this.core.tokenHashIndex.set(pat.token.hashedToken, { accountId: account.id, id: pat.token.id });
            }
            return new Set<string>();
          },
        };
      });
      return { account: this.accounts.getAccount(account.id), user, plainToken: pat?.plain };
    });
  }

  /**
   * The user behind a validated JWT: an existing user by id (the token's subject), or a new one in
   * the instance's account (its owner when the account has no users yet, else a regular user).
   */
  async ensureJwtUser(claims: { userId: string; email: string; name: string; issuedAt?: number }): Promise<{ state: AccountState; user: User; created: boolean }> {
    const found = this.findUser(claims.userId);
    if (found) return { ...found, created: false };
    const deletedAt = Number(await this.core.store.getInstanceValue(deletedUserKey(claims.userId)));
    if (deletedAt > 0 && (claims.issuedAt === undefined || claims.issuedAt * 1000 <= deletedAt)) {
      throw new ManagementError('unauthenticated', 'this user was deleted after the token was issued; sign in again');
    }
    const account = await this.accounts.defaultAccount();
    const state = this.core.accountState(account.id);
    return this.core.change<{ state: AccountState; user: User; created: boolean }>(account.id, async (q, _s, now) => {
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
    const state = this.core.accountState(accountId);
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
    return this.core.change(accountId, async (q) => {
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
    const state = this.core.accountState(accountId);
    const u = state.users.get(userId);
    if (!u) return;
    const now = this.core.now();
    if (now - u.lastLogin < 60_000) return;
    const next = { ...u, lastLogin: now };
    await this.core.store.updateUser(next);
    state.users.set(userId, next);
  }
}

/** The methods the AccountManager face exposes. */
export const USERS_API = [
  'listUsers', 'createUser', 'getUser', 'findUser', 'hasUsers', 'updateUser', 'deleteUser',
  'findCredentialByEmail', 'setCredential', 'setupOwner', 'ensureJwtUser', 'syncJwtGroups', 'touchUserLogin',
] as const satisfies ReadonlyArray<keyof Users>;
