import { ACT } from './audit.js';
import type { ManagerCore } from './core.js';
import { accountObjects } from './objects.js';
import { buildToken, hashPersonalAccessToken, isWellFormedPat } from './pat.js';
import type { AccountState } from './state.js';
import type { PersonalAccessToken, User } from './types.js';
import { ManagementError } from './types.js';
import type { Users } from './users.js';

/** Personal access tokens of users (the plain token is returned once; the store keeps its hash). */
export class Tokens {
  constructor(
    private readonly core: ManagerCore,
    private readonly users: Users,
  ) {}

  listTokens(accountId: string, userId: string): PersonalAccessToken[] {
    this.users.getUser(accountId, userId);
    return [...accountObjects(this.core.accountState(accountId)).tokens.values()].filter((t) => t.userId === userId);
  }

  getToken(accountId: string, userId: string, tokenId: string): PersonalAccessToken {
    const t = accountObjects(this.core.accountState(accountId)).tokens.get(tokenId);
    if (!t || t.userId !== userId) throw new ManagementError('not_found', `token ${tokenId} not found`);
    return t;
  }

  /** Creates a PAT for `userId`; the plain token is returned only here. */
  async createToken(accountId: string, userId: string, input: { name: string; expiresInDays: number; createdBy: string }): Promise<{ plain: string; token: PersonalAccessToken }> {
    const state = this.core.accountState(accountId);
    this.users.getUser(accountId, userId);
    const built = buildToken(accountId, userId, input.name, input.expiresInDays, input.createdBy, this.core.now());
    await this.core.change(accountId, async (q) => {
      await q.insertToken(built.token);
      return {
        result: undefined,
        events: [{ activityCode: ACT.patCreate, initiatorId: '', targetId: userId, meta: { name: built.token.name } }],
        apply: () => {
          accountObjects(state).tokens.set(built.token.id, built.token);
          this.core.tokenHashIndex.set(built.token.hashedToken, { accountId, id: built.token.id });
          return new Set<string>();
        },
      };
    });
    return built;
  }

  async deleteToken(accountId: string, userId: string, tokenId: string): Promise<void> {
    const state = this.core.accountState(accountId);
    const t = this.getToken(accountId, userId, tokenId);
    await this.core.change(accountId, async (q) => {
      await q.deleteToken(tokenId);
      return {
        result: undefined,
        events: [{ activityCode: ACT.patDelete, initiatorId: '', targetId: userId, meta: { name: t.name } }],
        apply: () => {
          accountObjects(state).tokens.delete(tokenId);
          this.core.tokenHashIndex.delete(t.hashedToken);
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
    const ref = this.core.tokenHashIndex.get(hashPersonalAccessToken(plain));
    if (!ref) return undefined;
    const state = this.core.accounts.get(ref.accountId);
    const token = state ? accountObjects(state).tokens.get(ref.id) : undefined;
    const user = token ? state!.users.get(token.userId) : undefined;
    if (!state || !token || !user) return undefined;
    const now = this.core.now();
    if (token.expiresAt <= now) return undefined;
    if (now - token.lastUsed > 60_000) {
      token.lastUsed = now;
      await this.core.store.setTokenLastUsed(token.id, now);
    }
    return { state, user, token };
  }

}

/** The methods the AccountManager face exposes. */
export const TOKENS_API = ['listTokens', 'getToken', 'createToken', 'deleteToken', 'authenticateToken'] as const satisfies ReadonlyArray<keyof Tokens>;
