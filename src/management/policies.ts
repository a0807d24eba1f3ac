import { ACT } from './audit.js';
import { checkGroups } from './checks.js';
import type { ManagerCore } from './core.js';
import { accountObjects } from './objects.js';
import type { AccountState } from './state.js';
import type { Policy, PolicyRule, PortRange, RuleAction, RuleProtocol } from './types.js';
import { ManagementError } from './types.js';
import { newId } from './util.js';

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

const RULE_ACTIONS: readonly RuleAction[] = ['accept', 'drop'];
const RULE_PROTOCOLS: readonly RuleProtocol[] = ['all', 'tcp', 'udp', 'icmp', 'netbird-ssh'];

/** Access-control policies and their rules. */
export class Policies {
  constructor(private readonly core: ManagerCore) {}

  listPolicies(accountId: string): Policy[] {
    return this.core.accountState(accountId).policies;
  }

  getPolicy(accountId: string, policyId: string): Policy {
    const p = this.core.accountState(accountId).policies.find((x) => x.id === policyId);
    if (!p) throw new ManagementError('not_found', `policy ${policyId} not found`);
    return p;
  }

  private buildPolicy(state: AccountState, id: string, input: PolicyInput, old?: Policy): Policy {
    if (!input.name || input.name.trim() === '') throw new ManagementError('unprocessable', 'name: policy name must not be empty');
    if (!Array.isArray(input.rules) || input.rules.length === 0) throw new ManagementError('unprocessable', 'rules: a policy needs at least one rule');
    const rules: PolicyRule[] = input.rules.map((r, i) => {
      const action = r.action ?? 'accept';
      const protocol = r.protocol ?? 'all';
      if (!RULE_ACTIONS.includes(action)) throw new ManagementError('unprocessable', `rules.${i}.action: invalid rule action ${JSON.stringify(action)}`);
      if (!RULE_PROTOCOLS.includes(protocol)) throw new ManagementError('unprocessable', `rules.${i}.protocol: invalid rule protocol ${JSON.stringify(protocol)}`);
      const ports = r.ports ?? [];
      const portRanges = r.portRanges ?? [];
      if ((ports.length > 0 || portRanges.length > 0) && protocol !== 'tcp' && protocol !== 'udp') {
        throw new ManagementError('unprocessable', `rules.${i}.ports: ports are only allowed with protocol tcp or udp`);
      }
      for (const p of ports) {
        const n = Number(p);
        if (!/^\d+$/.test(p) || n < 1 || n > 65535) throw new ManagementError('unprocessable', `rules.${i}.ports: invalid port ${JSON.stringify(p)}: use 1-65535`);
      }
      for (const pr of portRanges) {
        if (!Number.isInteger(pr.start) || !Number.isInteger(pr.end) || pr.start < 1 || pr.end > 65535 || pr.start > pr.end) {
          throw new ManagementError('unprocessable', `rules.${i}.port_ranges: invalid port range ${pr.start}-${pr.end}: need 1 <= start <= end <= 65535`);
        }
      }
      if (!r.sources?.length || !r.destinations?.length) throw new ManagementError('unprocessable', `rules.${i}: a rule needs source and destination groups`);
      checkGroups(state, r.sources, `rules.${i}.sources`);
      checkGroups(state, r.destinations, `rules.${i}.destinations`);
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
    for (const pc of input.sourcePostureChecks ?? []) {
      if (!accountObjects(state).postureChecks.has(pc)) throw new ManagementError('unprocessable', `source_posture_checks: posture check ${pc} does not exist in this account`);
    }
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
    const state = this.core.accountState(accountId);
    const policy = this.buildPolicy(state, newId(), input);
    return this.core.change(accountId, async (q) => {
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
    const state = this.core.accountState(accountId);
    const old = this.getPolicy(accountId, policyId);
    const policy = this.buildPolicy(state, policyId, input, old);
    return this.core.change(accountId, async (q) => {
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
    const state = this.core.accountState(accountId);
    const old = this.getPolicy(accountId, policyId);
    await this.core.change(accountId, async (q) => {
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
}

/** The methods the AccountManager face exposes. */
export const POLICIES_API = ['listPolicies', 'getPolicy', 'createPolicy', 'updatePolicy', 'deletePolicy'] as const satisfies ReadonlyArray<keyof Policies>;
