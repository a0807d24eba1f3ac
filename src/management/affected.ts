import { accountObjects, affectedByRoute, routingPeers } from './objects.js';
import type { AccountState } from './state.js';

/**
 * Which peers' maps a change of a group or a network may touch: what the write steps of those
 * changes return (core.ts adds the routing dependents before telling the listeners). The same for
 * routes, name servers and zones is in objects.ts (affectedByRoute, membersOfGroups).
 */

/** Peers whose maps can change when membership of `groupId` changes. */
export function affectedByGroup(state: AccountState, groupId: string, extra: Iterable<string>): Set<string> {
  const out = new Set<string>(extra);
  const rules = state.policies.flatMap((p) => p.rules).filter((r) => r.sources.includes(groupId) || r.destinations.includes(groupId));
  for (const pid of state.peersOfRules(rules)) out.add(pid);
  // Routing peers chosen by group change what the route's receivers get.
  const objs = accountObjects(state);
  for (const r of objs.routes.values()) if (r.peerGroups.includes(groupId)) for (const pid of affectedByRoute(state, r)) out.add(pid);
  const networks = new Set<string>();
  for (const r of objs.networkRouters.values()) if (r.peerGroups.includes(groupId)) networks.add(r.networkId);
  for (const r of objs.networkResources.values()) if (r.groups.includes(groupId)) networks.add(r.networkId);
  for (const n of networks) for (const pid of affectedByNetwork(state, n)) out.add(pid);
  return out;
}

/** Peers whose maps may change with network `networkId`: its routing peers and the peers of rules touching its resources (or their groups). */
export function affectedByNetwork(state: AccountState, networkId: string): Set<string> {
  const objs = accountObjects(state);
  const out = new Set<string>();
  for (const r of objs.networkRouters.values()) if (r.networkId === networkId) for (const p of routingPeers(state, r)) out.add(p);
  const groups = new Set<string>();
  const resources = new Set<string>();
  for (const res of objs.networkResources.values()) {
    if (res.networkId !== networkId) continue;
    resources.add(res.id);
    for (const g of res.groups) groups.add(g);
  }
  if (resources.size > 0) {
    const rules = state.policies
      .flatMap((p) => p.rules)
      .filter((r) => r.sources.some((g) => groups.has(g)) || r.destinations.some((g) => groups.has(g)) || (r.destinationResource !== undefined && resources.has(r.destinationResource.id)));
    for (const p of state.peersOfRules(rules)) out.add(p);
  }
  return out;
}
