import { affectedByNetwork } from './affected.js';
import { ACT } from './audit.js';
import { checkGroupsField, checkMetric, checkPeer, getObject, isIpAddress } from './checks.js';
import type { EventDraft, ManagerCore } from './core.js';
import { accountObjects } from './objects.js';
import type { AccountState } from './state.js';
import type { Queries } from './store/store.js';
import type { NetworkDef, NetworkResource, NetworkRouter } from './types.js';
import { ManagementError } from './types.js';
import { isValidDomain, newId, parseCidr } from './util.js';

export type NetworkResourceInput = Pick<NetworkResource, 'name' | 'description' | 'address' | 'enabled' | 'groups'>;
export type NetworkRouterInput = Pick<NetworkRouter, 'peer' | 'peerGroups' | 'metric' | 'masquerade' | 'enabled'>;

/** Networks with their resources and routing peers. */
export class Networks {
  constructor(private readonly core: ManagerCore) {}

  private changeNetwork<T>(state: AccountState, networkId: string, write: (q: Queries) => Promise<void>, event: EventDraft, mutate: () => void, result: T): Promise<T> {
    return this.core.change(state.id, async (q) => {
      await write(q);
      return {
        result,
        events: [event],
        apply: () => {
          const affected = affectedByNetwork(state, networkId);
          mutate();
          accountObjects(state).generation++;
          for (const p of affectedByNetwork(state, networkId)) affected.add(p);
          return affected;
        },
      };
    });
  }

  getNetwork(accountId: string, id: string): NetworkDef {
    return getObject(this.core.objects(accountId).networks, id, 'network');
  }

  async saveNetwork(accountId: string, id: string | undefined, input: { name: string; description?: string }): Promise<NetworkDef> {
    const state = this.core.accountState(accountId);
    if (id !== undefined) this.getNetwork(accountId, id);
    const name = (input.name ?? '').trim();
    if (name === '') throw new ManagementError('unprocessable', 'name: network name must not be empty');
    const net: NetworkDef = { id: id ?? newId(), accountId, name, description: input.description ?? '' };
    return this.changeNetwork(
      state,
      net.id,
      (q) => q.putObject('networks', net),
      { activityCode: id ? ACT.networkUpdate : ACT.networkCreate, initiatorId: '', targetId: net.id, meta: { name } },
      () => accountObjects(state).networks.set(net.id, net),
      net,
    );
  }

  async deleteNetwork(accountId: string, id: string): Promise<void> {
    const state = this.core.accountState(accountId);
    const objs = accountObjects(state);
    const old = this.getNetwork(accountId, id);
    await this.changeNetwork(
      state,
      id,
      async (q) => {
        await q.deleteObjectsByParent('networkResources', id);
        await q.deleteObjectsByParent('networkRouters', id);
        await q.deleteObject('networks', id);
      },
      { activityCode: ACT.networkDelete, initiatorId: '', targetId: id, meta: { name: old.name } },
      () => {
        for (const r of [...objs.networkResources.values()]) if (r.networkId === id) objs.networkResources.delete(r.id);
        for (const r of [...objs.networkRouters.values()]) if (r.networkId === id) objs.networkRouters.delete(r.id);
        objs.networks.delete(id);
      },
      undefined,
    );
  }

  getNetworkResource(accountId: string, networkId: string, id: string): NetworkResource {
    const r = this.core.objects(accountId).networkResources.get(id);
    if (!r || r.networkId !== networkId) throw new ManagementError('not_found', `network resource ${id} not found`);
    return r;
  }

  async saveNetworkResource(accountId: string, networkId: string, id: string | undefined, input: NetworkResourceInput): Promise<NetworkResource> {
    const state = this.core.accountState(accountId);
    this.getNetwork(accountId, networkId);
    if (id !== undefined) this.getNetworkResource(accountId, networkId, id);
    const name = (input.name ?? '').trim();
    if (name === '') throw new ManagementError('unprocessable', 'name: resource name must not be empty');
    const address = (input.address ?? '').trim();
    let type: NetworkResource['type'];
    if (/^[0-9.]+$/.test(address) && isIpAddress(address)) type = 'host';
    else if (address.includes('/')) {
      try {
        const p = parseCidr(address);
        type = p.bits === 32 ? 'host' : 'subnet';
      } catch {
        throw new ManagementError('unprocessable', `address: invalid CIDR ${JSON.stringify(address)}`);
      }
    } else if (isValidDomain((address.startsWith('*.') ? address.slice(2) : address).toLowerCase())) type = 'domain';
    else throw new ManagementError('unprocessable', `address: ${JSON.stringify(address)} is not an IP address, CIDR or domain`);
    const res: NetworkResource = {
      id: id ?? newId(),
      accountId,
      networkId,
      name,
      description: input.description ?? '',
      type,
      address,
      enabled: input.enabled,
      // NetBird keeps resources without groups (reachable once a group holds them); [] is fine.
      groups: checkGroupsField(state, input.groups ?? [], 'groups'),
    };
    return this.changeNetwork(
      state,
      networkId,
      (q) => q.putObject('networkResources', res, networkId),
      { activityCode: id ? ACT.resourceUpdate : ACT.resourceCreate, initiatorId: '', targetId: res.id, meta: { name, address, network: networkId } },
      () => accountObjects(state).networkResources.set(res.id, res),
      res,
    );
  }

  async deleteNetworkResource(accountId: string, networkId: string, id: string): Promise<void> {
    const state = this.core.accountState(accountId);
    const old = this.getNetworkResource(accountId, networkId, id);
    await this.changeNetwork(
      state,
      networkId,
      (q) => q.deleteObject('networkResources', id),
      { activityCode: ACT.resourceDelete, initiatorId: '', targetId: id, meta: { name: old.name, network: networkId } },
      () => accountObjects(state).networkResources.delete(id),
      undefined,
    );
  }

  getNetworkRouter(accountId: string, networkId: string, id: string): NetworkRouter {
    const r = this.core.objects(accountId).networkRouters.get(id);
    if (!r || r.networkId !== networkId) throw new ManagementError('not_found', `network router ${id} not found`);
    return r;
  }

  async saveNetworkRouter(accountId: string, networkId: string, id: string | undefined, input: NetworkRouterInput): Promise<NetworkRouter> {
    const state = this.core.accountState(accountId);
    this.getNetwork(accountId, networkId);
    if (id !== undefined) this.getNetworkRouter(accountId, networkId, id);
    const peer = input.peer ?? '';
    const peerGroups = input.peerGroups ?? [];
    if ((peer !== '') === peerGroups.length > 0) throw new ManagementError('unprocessable', 'peer, peer_groups: give either a routing peer or peer groups, not both');
    if (peer) checkPeer(state, peer, 'peer');
    checkMetric(input.metric);
    const router: NetworkRouter = {
      id: id ?? newId(),
      accountId,
      networkId,
      peer,
      peerGroups: checkGroupsField(state, peerGroups, 'peer_groups'),
      metric: input.metric,
      masquerade: input.masquerade,
      enabled: input.enabled,
    };
    return this.changeNetwork(
      state,
      networkId,
      (q) => q.putObject('networkRouters', router, networkId),
      { activityCode: id ? ACT.routerUpdate : ACT.routerCreate, initiatorId: '', targetId: router.id, meta: { network: networkId } },
      () => accountObjects(state).networkRouters.set(router.id, router),
      router,
    );
  }

  async deleteNetworkRouter(accountId: string, networkId: string, id: string): Promise<void> {
    const state = this.core.accountState(accountId);
    this.getNetworkRouter(accountId, networkId, id);
    await this.changeNetwork(
      state,
      networkId,
      (q) => q.deleteObject('networkRouters', id),
      { activityCode: ACT.routerDelete, initiatorId: '', targetId: id, meta: { network: networkId } },
      () => accountObjects(state).networkRouters.delete(id),
      undefined,
    );
  }
}

/** The methods the AccountManager face exposes. */
export const NETWORKS_API = [
  'getNetwork', 'saveNetwork', 'deleteNetwork', 'getNetworkResource', 'saveNetworkResource',
  'deleteNetworkResource', 'getNetworkRouter', 'saveNetworkRouter', 'deleteNetworkRouter',
] as const satisfies ReadonlyArray<keyof Networks>;
