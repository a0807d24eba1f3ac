import { ACT } from './audit.js';
import { checkGroups } from './checks.js';
import type { ManagerCore } from './core.js';
import type { SetupKey, SetupKeyState, SetupKeyType } from './types.js';
import { ManagementError } from './types.js';
import { hashSetupKey, maskSetupKey, newId, newSetupKey } from './util.js';

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

export function setupKeyState(k: SetupKey, now: number): SetupKeyState {
  if (k.revoked) return 'revoked';
  if (k.expiresAt !== 0 && k.expiresAt <= now) return 'expired';
  if (k.usageLimit !== 0 && k.usedTimes >= k.usageLimit) return 'overused';
  return 'valid';
}

/** Setup keys: the plain key is shown once, the store keeps its hash. */
export class SetupKeys {
  constructor(private readonly core: ManagerCore) {}

  listSetupKeys(accountId: string): SetupKey[] {
    return [...this.core.accountState(accountId).setupKeys.values()];
  }

  getSetupKey(accountId: string, id: string): SetupKey {
    const k = this.core.accountState(accountId).setupKeys.get(id);
    if (!k) throw new ManagementError('not_found', `setup key ${id} not found`);
    return k;
  }

  /** Creates a key; the plain key is returned only here (the store keeps its hash). */
  async createSetupKey(accountId: string, input: SetupKeyInput): Promise<{ key: string; setupKey: SetupKey }> {
    const state = this.core.accountState(accountId);
    const type = input.type ?? 'reusable';
    if (type !== 'reusable' && type !== 'one-off') throw new ManagementError('unprocessable', `invalid setup key type ${JSON.stringify(type)}: use reusable or one-off`);
    const expiresIn = input.expiresIn ?? 0;
    if (!Number.isFinite(expiresIn) || expiresIn < 0) throw new ManagementError('unprocessable', 'expires_in must be >= 0 seconds');
    const usageLimit = type === 'one-off' ? 1 : (input.usageLimit ?? 0);
    if (!Number.isInteger(usageLimit) || usageLimit < 0) throw new ManagementError('unprocessable', 'usage_limit must be an integer >= 0');
    checkGroups(state, input.autoGroups ?? [], 'auto_groups');
    if ((input.autoGroups ?? []).includes(state.allGroupId)) throw new ManagementError('unprocessable', 'the group "All" cannot be an auto-group');
    const now = this.core.now();
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
    await this.core.change(accountId, async (q) => {
      await q.insertSetupKey(setupKey);
      return {
        result: undefined,
        events: [{ activityCode: ACT.setupKeyAdd, initiatorId: '', targetId: setupKey.id, meta: { name: setupKey.name, type } }],
        apply: () => {
          state.setupKeys.set(setupKey.id, setupKey);
          this.core.keyHashIndex.set(setupKey.keyHash, { accountId, id: setupKey.id });
          // Keys only shape future registrations: no existing map changes.
          return new Set<string>();
        },
      };
    });
    return { key: plain, setupKey };
  }

  /** Only `revoked` and `autoGroups` are editable (management-api.md §3). */
  async updateSetupKey(accountId: string, id: string, input: { revoked?: boolean; autoGroups?: string[] }): Promise<SetupKey> {
    const state = this.core.accountState(accountId);
    const old = this.getSetupKey(accountId, id);
    if (old.revoked && input.revoked === false) throw new ManagementError('unprocessable', 'a revoked setup key cannot be un-revoked; create a new one');
    if (input.autoGroups) checkGroups(state, input.autoGroups, 'auto_groups');
    const key: SetupKey = {
      ...old,
      revoked: input.revoked ?? old.revoked,
      autoGroups: input.autoGroups ? [...new Set(input.autoGroups)] : old.autoGroups,
      updatedAt: this.core.now(),
    };
    return this.core.change(accountId, async (q) => {
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
    const state = this.core.accountState(accountId);
    const old = this.getSetupKey(accountId, id);
    await this.core.change(accountId, async (q) => {
      await q.deleteSetupKey(id);
      return {
        result: undefined,
        events: [{ activityCode: ACT.setupKeyDelete, initiatorId: '', targetId: id, meta: { name: old.name } }],
        apply: () => {
          state.setupKeys.delete(id);
          this.core.keyHashIndex.delete(old.keyHash);
          return new Set<string>();
        },
      };
    });
  }
}

/** The methods the AccountManager face exposes. */
export const SETUP_KEYS_API = [
  'listSetupKeys', 'getSetupKey', 'createSetupKey', 'updateSetupKey', 'deleteSetupKey',
] as const satisfies ReadonlyArray<keyof SetupKeys>;
