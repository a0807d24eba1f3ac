import { affectedByGroup } from './affected.js';
import { ACT } from './audit.js';
import { checkPeers } from './checks.js';
import type { ManagerCore } from './core.js';
import { accountObjects } from './objects.js';
import type { Group } from './types.js';
import { ALL_GROUP_NAME, ManagementError } from './types.js';
import { newId } from './util.js';

/** Groups of peers (the "All" group is in every account and cannot be edited). */
export class Groups {
  constructor(private readonly core: ManagerCore) {}

  listGroups(accountId: string): Group[] {
    return [...this.core.accountState(accountId).groups.values()];
  }

  getGroup(accountId: string, groupId: string): Group {
    const g = this.core.accountState(accountId).groups.get(groupId);
    if (!g) throw new ManagementError('not_found', `group ${groupId} not found`);
    return g;
  }

  async createGroup(accountId: string, input: { name: string; peers?: string[]; issued?: Group['issued'] }): Promise<Group> {
    const state = this.core.accountState(accountId);
    const name = input.name.trim();
    if (name === '') throw new ManagementError('unprocessable', 'group name must not be empty');
    if (name === ALL_GROUP_NAME) throw new ManagementError('already_exists', 'the group "All" exists in every account and cannot be created');
    checkPeers(state, input.peers ?? []);
    const group: Group = { id: newId(), accountId, name, issued: input.issued ?? 'api', peers: [...new Set(input.peers ?? [])] };
    return this.core.change(accountId, async (q) => {
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
    const state = this.core.accountState(accountId);
    const old = this.getGroup(accountId, groupId);
    if (old.name === ALL_GROUP_NAME) throw new ManagementError('failed_precondition', 'the group "All" cannot be edited');
    const name = input.name.trim();
    if (name === '' || name === ALL_GROUP_NAME) throw new ManagementError('unprocessable', `invalid group name ${JSON.stringify(input.name)}`);
    checkPeers(state, input.peers ?? []);
    const group: Group = { ...old, name, peers: [...new Set(input.peers ?? [])] };
    return this.core.change(accountId, async (q) => {
      const same = state.groupByName(name);
      if (same && same.id !== groupId) throw new ManagementError('already_exists', `name: a group named ${JSON.stringify(name)} already exists`);
      await q.updateGroup(group);
      return {
        result: group,
        events: [{ activityCode: ACT.groupUpdate, initiatorId: '', targetId: group.id, meta: { name } }],
        apply: () => {
          const before = affectedByGroup(state, groupId, old.peers);
          state.putGroup({ ...group, peers: [...group.peers] });
          for (const pid of affectedByGroup(state, groupId, group.peers)) before.add(pid);
          return before;
        },
      };
    });
  }

  async deleteGroup(accountId: string, groupId: string): Promise<void> {
    const state = this.core.accountState(accountId);
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
    await this.core.change(accountId, async (q) => {
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
}

/** The methods the AccountManager face exposes. */
export const GROUPS_API = ['listGroups', 'getGroup', 'createGroup', 'updateGroup', 'deleteGroup'] as const satisfies ReadonlyArray<keyof Groups>;
