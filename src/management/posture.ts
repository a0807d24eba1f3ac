import { ACT } from './audit.js';
import { getObject } from './checks.js';
import type { ManagerCore } from './core.js';
import { accountObjects } from './objects.js';
import type { AccountState } from './state.js';
import type { PostureCheck } from './types.js';
import { ManagementError } from './types.js';
import { newId, parseCidr } from './util.js';

/** Posture checks (conditions on a peer's meta that policies can require of their sources). */
export class PostureChecks {
  constructor(private readonly core: ManagerCore) {}

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
    const state = this.core.accountState(accountId);
    return this.savePostureCheck(state, this.buildPostureCheck(state, newId(), input), false);
  }

  async updatePostureCheck(accountId: string, id: string, input: { name: string; description?: string; checks: Record<string, unknown> }): Promise<PostureCheck> {
    const state = this.core.accountState(accountId);
    getObject(accountObjects(state).postureChecks, id, 'posture check');
    return this.savePostureCheck(state, this.buildPostureCheck(state, id, input), true);
  }

  private savePostureCheck(state: AccountState, pc: PostureCheck, update: boolean): Promise<PostureCheck> {
    return this.core.change(state.id, async (q) => {
      await q.putObject('postureChecks', pc);
      return {
        result: pc,
        events: [{ activityCode: update ? ACT.postureUpdate : ACT.postureCreate, initiatorId: '', targetId: pc.id, meta: { name: pc.name } }],
        apply: () => {
          accountObjects(state).postureChecks.set(pc.id, pc);
          // Which source peers pass is part of the policy index.
          state.invalidateIndex();
          return state.peersOfRules(state.policies.filter((p) => p.sourcePostureChecks.includes(pc.id)).flatMap((p) => p.rules));
        },
      };
    });
  }

  async deletePostureCheck(accountId: string, id: string): Promise<void> {
    const state = this.core.accountState(accountId);
    const old = getObject(accountObjects(state).postureChecks, id, 'posture check');
    const user = state.policies.find((p) => p.sourcePostureChecks.includes(id));
    if (user) throw new ManagementError('failed_precondition', `posture check ${old.name} is used by policy ${user.name}; remove it there first`);
    await this.core.change(accountId, async (q) => {
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
}

/** The methods the AccountManager face exposes. */
export const POSTURE_API = ['createPostureCheck', 'updatePostureCheck', 'deletePostureCheck'] as const satisfies ReadonlyArray<keyof PostureChecks>;
