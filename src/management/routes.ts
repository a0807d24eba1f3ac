import { ACT } from './audit.js';
import { checkGroupsField, checkMetric, checkPeer, getObject } from './checks.js';
import type { ManagerCore } from './core.js';
import { accountObjects, affectedByRoute } from './objects.js';
import type { AccountState } from './state.js';
import type { Route } from './types.js';
import { ManagementError } from './types.js';
import { isValidDomain, newId, parseCidr } from './util.js';

export interface RouteInput {
  description: string;
  networkId: string;
  enabled: boolean;
  peer?: string;
  peerGroups?: string[];
  network?: string;
  domains?: string[];
  metric: number;
  masquerade: boolean;
  groups: string[];
  keepRoute: boolean;
  accessControlGroups?: string[];
  skipAutoApply?: boolean;
}

/** Legacy network routes (a network CIDR or domains, reached through routing peers). */
export class Routes {
  constructor(private readonly core: ManagerCore) {}

  private buildRoute(state: AccountState, id: string, input: RouteInput): Route {
    const netId = (input.networkId ?? '').trim();
    if (netId === '' || netId.length > 40) throw new ManagementError('unprocessable', 'network_id: must be 1-40 characters');
    checkMetric(input.metric);
    const hasNet = typeof input.network === 'string' && input.network !== '';
    const domains = input.domains ?? [];
    if (hasNet === domains.length > 0) throw new ManagementError('unprocessable', 'network, domains: give either a network CIDR or domains, not both');
    let networkType: Route['networkType'] = 'Domain';
    let network = '';
    if (hasNet) {
      const n = input.network!.trim();
      if (n.includes(':')) {
        if (!/^[0-9a-fA-F:]+\/\d{1,3}$/.test(n) || Number(n.split('/')[1]) > 128) throw new ManagementError('unprocessable', `network: invalid CIDR ${JSON.stringify(n)}`);
        networkType = 'IPv6';
        network = n.toLowerCase();
      } else {
        let p;
        try {
          p = parseCidr(n);
        } catch {
          throw new ManagementError('unprocessable', `network: invalid CIDR ${JSON.stringify(n)}`);
        }
        networkType = 'IPv4';
        network = `${intToIpText(p.base)}/${p.bits}`;
      }
    } else {
      for (const d of domains) {
        const bare = d.startsWith('*.') ? d.slice(2) : d;
        if (!isValidDomain(bare.toLowerCase())) throw new ManagementError('unprocessable', `domains: invalid domain ${JSON.stringify(d)}`);
      }
    }
    const peer = input.peer ?? '';
    const peerGroups = input.peerGroups ?? [];
    if ((peer !== '') === peerGroups.length > 0) throw new ManagementError('unprocessable', 'peer, peer_groups: give either a routing peer or peer groups, not both');
    if (peer) checkPeer(state, peer, 'peer');
    return {
      id,
      accountId: state.id,
      description: input.description ?? '',
      networkId: netId,
      enabled: input.enabled,
      peer,
      peerGroups: checkGroupsField(state, peerGroups, 'peer_groups'),
      network,
      networkType,
      domains: domains.map((d) => d.toLowerCase()),
      metric: input.metric,
      masquerade: input.masquerade,
      groups: checkGroupsField(state, input.groups, 'groups', true),
      keepRoute: input.keepRoute,
      accessControlGroups: checkGroupsField(state, input.accessControlGroups, 'access_control_groups'),
      skipAutoApply: input.skipAutoApply ?? false,
    };
  }

  async createRoute(accountId: string, input: RouteInput): Promise<Route> {
    const state = this.core.accountState(accountId);
    const route = this.buildRoute(state, newId(), input);
    return this.saveRoute(state, route, undefined);
  }

  async updateRoute(accountId: string, id: string, input: RouteInput): Promise<Route> {
    const state = this.core.accountState(accountId);
    const old = getObject(accountObjects(state).routes, id, 'route');
    return this.saveRoute(state, this.buildRoute(state, id, input), old);
  }

  private saveRoute(state: AccountState, route: Route, old: Route | undefined): Promise<Route> {
    const objs = accountObjects(state);
    return this.core.change(state.id, async (q) => {
      await q.putObject('routes', route);
      return {
        result: route,
        events: [{ activityCode: old ? ACT.routeUpdate : ACT.routeAdd, initiatorId: '', targetId: route.id, meta: { name: route.networkId, network_range: route.network, domains: route.domains.join(',') } }],
        apply: () => {
          const affected = affectedByRoute(state, old);
          objs.routes.set(route.id, route);
          objs.generation++;
          for (const p of affectedByRoute(state, route)) affected.add(p);
          return affected;
        },
      };
    });
  }

  async deleteRoute(accountId: string, id: string): Promise<void> {
    const state = this.core.accountState(accountId);
    const objs = accountObjects(state);
    const old = getObject(objs.routes, id, 'route');
    await this.core.change(accountId, async (q) => {
      await q.deleteObject('routes', id);
      return {
        result: undefined,
        events: [{ activityCode: ACT.routeDelete, initiatorId: '', targetId: id, meta: { name: old.networkId, network_range: old.network } }],
        apply: () => {
          const affected = affectedByRoute(state, old);
          objs.routes.delete(id);
          objs.generation++;
          return affected;
        },
      };
    });
  }
}

/** The methods the AccountManager face exposes. */
export const ROUTES_API = ['createRoute', 'updateRoute', 'deleteRoute'] as const satisfies ReadonlyArray<keyof Routes>;

function intToIpText(n: number): string {
  return `${Math.floor(n / 16777216) & 255}.${Math.floor(n / 65536) & 255}.${Math.floor(n / 256) & 255}.${n & 255}`;
}
