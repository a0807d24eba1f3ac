import { ACT } from './audit.js';
import { checkGroups, getObject } from './checks.js';
import type { ManagerCore } from './core.js';
import { accountObjects } from './objects.js';
import { hashPersonalAccessToken, randomBase62 } from './pat.js';
import type { AccountState } from './state.js';
import type { User, UserInvite, UserRole } from './types.js';
import { ManagementError } from './types.js';
import { USER_ROLES } from './users.js';
import { newId } from './util.js';

/** Default lifetime of an invite link (the reference's 72 hours). */
export const INVITE_TTL_SECONDS = 72 * 3600;

/** Invite links of the embedded identity provider: accepting one creates the user with a password. */
export class Invites {
  constructor(private readonly core: ManagerCore) {}

  listInvites(accountId: string): UserInvite[] {
    return [...this.core.objects(accountId).userInvites.values()];
  }

  getInvite(accountId: string, id: string): UserInvite {
    return getObject(this.core.objects(accountId).userInvites, id, 'invite');
  }

  /** Creates an invite; the plain token ("nbi_…") is returned only here. */
  async createInvite(
    accountId: string,
    input: { email: string; name: string; role: UserRole; autoGroups: string[]; expiresInSeconds?: number; createdBy: string },
  ): Promise<{ token: string; invite: UserInvite }> {
    const state = this.core.accountState(accountId);
    const email = input.email.trim().toLowerCase();
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) throw new ManagementError('unprocessable', 'email: not a valid e-mail address');
    if (!USER_ROLES.includes(input.role) || input.role === 'owner') throw new ManagementError('unprocessable', `role: invalid role ${JSON.stringify(input.role)}`);
    checkGroups(state, input.autoGroups, 'auto_groups');
    if ([...state.users.values()].some((u) => u.email === email) || (await this.core.store.findCredentialByEmail(email))) {
      throw new ManagementError('already_exists', `a user with e-mail ${email} already exists`);
    }
    if ([...accountObjects(state).userInvites.values()].some((i) => i.email === email)) throw new ManagementError('already_exists', `${email} is already invited`);
    const ttl = input.expiresInSeconds ?? INVITE_TTL_SECONDS;
    if (!Number.isInteger(ttl) || ttl < 60 || ttl > 30 * 86400) throw new ManagementError('unprocessable', 'expires_in: must be between 60 seconds and 30 days');
    const now = this.core.now();
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
    await this.core.change(accountId, async (q) => {
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
    const state = this.core.accountState(accountId);
    const old = this.getInvite(accountId, id);
    await this.core.change(accountId, async (q) => {
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
    const state = this.core.accountState(accountId);
    const old = this.getInvite(accountId, id);
    const ttl = expiresInSeconds ?? INVITE_TTL_SECONDS;
    if (!Number.isInteger(ttl) || ttl < 60 || ttl > 30 * 86400) throw new ManagementError('unprocessable', 'expires_in: must be between 60 seconds and 30 days');
    const token = `nbi_${randomBase62(40)}`;
    const invite: UserInvite = { ...old, tokenHash: hashPersonalAccessToken(token), expiresAt: this.core.now() + ttl * 1000 };
    await this.core.change(accountId, async (q) => {
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
    for (const state of this.core.accounts.values()) {
      for (const invite of accountObjects(state).userInvites.values()) if (invite.tokenHash === hash) return { state, invite };
    }
    return undefined;
  }

  /** Accepting an invite creates the user with their local credential and drops the invite, atomically. */
  async acceptInvite(token: string, passwordHash: string): Promise<User> {
    const found = this.findInviteByToken(token);
    if (!found) throw new ManagementError('not_found', 'invite not found; ask for a new link');
    const { state, invite } = found;
    if (invite.expiresAt <= this.core.now()) throw new ManagementError('failed_precondition', 'the invite has expired; ask for a new link');
    if (await this.core.store.findCredentialByEmail(invite.email)) throw new ManagementError('already_exists', `a user with e-mail ${invite.email} already exists`);
    return this.core.change(state.id, async (q, _s, now) => {
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

}

/** The methods the AccountManager face exposes. */
export const INVITES_API = [
  'listInvites', 'getInvite', 'createInvite', 'deleteInvite', 'regenerateInvite', 'findInviteByToken',
  'acceptInvite',
] as const satisfies ReadonlyArray<keyof Invites>;
