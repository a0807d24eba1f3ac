import { ACT } from './audit.js';
import { checkGroups } from './checks.js';
import type { ManagerCore } from './core.js';
import { accountObjects } from './objects.js';
import type { AccountState } from './state.js';
import type { Policy, PolicyRule, PortRange, RuleAction, RuleProtocol, RuleResource } from './types.js';
import { ManagementError, policyRule } from './types.js';
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
  /** Groups, or (not both) a single resource per side. */
  sources?: string[];
  destinations?: string[];
  sourceResource?: RuleResource;
  destinationResource?: RuleResource;
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

/**
 * A rule's single resource must exist now (NetBird leaves this unchecked, a TODO there): a peer of
 * the account for type "peer", else a network resource of the account whose type is the one given.
 */
function checkRuleResource(state: AccountState, r: RuleResource, field: string): RuleResource {
  if (typeof r.id !== 'string' || r.id === '') throw new ManagementError('unprocessable', `${field}.id: a resource id is required`);
  if (r.type === 'peer') {
    if (!state.peers.has(r.id)) throw new ManagementError('unprocessable', `${field}: peer ${r.id} does not exist in this account`);
    return { id: r.id, type: 'peer' };
  }
  const res = accountObjects(state).networkResources.get(r.id);
  if (!res) throw new ManagementError('unprocessable', `${field}: network resource ${r.id} does not exist in this account`);
  if (res.type !== r.type) throw new ManagementError('unprocessable', `${field}.type: network resource ${r.id} is a ${res.type}, not a ${String(r.type)}`);
  return { id: r.id, type: res.type };
}

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
      const sources = r.sources ?? [];
      const destinations = r.destinations ?? [];
      if (r.sourceResource && sources.length > 0) throw new ManagementError('unprocessable', `rules.${i}: specify either sources or sourceResource, not both`);
      if (r.destinationResource && destinations.length > 0) throw new ManagementError('unprocessable', `rules.${i}: specify either destinations or destinationResource, not both`);
      if ((sources.length === 0 && !r.sourceResource) || (destinations.length === 0 && !r.destinationResource)) {
        throw new ManagementError('unprocessable', `rules.${i}: a rule needs sources (groups or sourceResource) and destinations (groups or destinationResource)`);
      }
      checkGroups(state, sources, `rules.${i}.sources`);
      checkGroups(state, destinations, `rules.${i}.destinations`);
      const sourceResource = r.sourceResource && checkRuleResource(state, r.sourceResource, `rules.${i}.sourceResource`);
      const destinationResource = r.destinationResource && checkRuleResource(state, r.destinationResource, `rules.${i}.destinationResource`);
      // Only a peer can send traffic; NetBird stores a network resource as source but matches nobody with it.
      if (sourceResource && sourceResource.type !== 'peer') throw new ManagementError('unprocessable', `rules.${i}.sourceResource: a rule's source resource must be a peer`);
      const keepId = r.id && old?.rules.some((x) => x.id === r.id) ? r.id : undefined;
      return policyRule({
        id: keepId ?? newId(),
        name: r.name ?? '',
        description: r.description ?? '',
        enabled: r.enabled ?? true,
        action,
        bidirectional: r.bidirectional ?? false,
        protocol,
        ports: [...ports],
        portRanges,
        sources: [...new Set(sources)],
        destinations: [...new Set(destinations)],
        sourceResource: sourceResource || undefined,
        destinationResource: destinationResource || undefined,
      });
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
