import { isIP } from 'node:net';
import type { AccountState } from './state.js';
import { ManagementError } from './types.js';

/** Reference and value checks shared by the entity modules. */

/** `field` names the request field in the message (REST errors name the offending field). */
export function checkGroups(state: AccountState, ids: readonly string[], field = 'groups'): void {
  for (const id of ids) {
    if (!state.groups.has(id)) throw new ManagementError('unprocessable', `${field}: group ${id} does not exist in this account`);
  }
}

export function checkPeers(state: AccountState, ids: readonly string[], field = 'peers'): void {
  for (const id of ids) {
    if (!state.peers.has(id)) throw new ManagementError('unprocessable', `${field}: peer ${id} does not exist in this account`);
  }
}

export function getObject<T>(map: ReadonlyMap<string, T>, id: string, what: string): T {
  const x = map.get(id);
  if (!x) throw new ManagementError('not_found', `${what} ${id} not found`);
  return x;
}

export function checkPeer(state: AccountState, id: string, field: string): void {
  if (!state.peers.has(id)) throw new ManagementError('unprocessable', `${field}: peer ${id} does not exist in this account`);
}

export function checkGroupsField(state: AccountState, ids: readonly string[] | undefined, field: string, required = false): string[] {
  if (!Array.isArray(ids)) {
    if (required) throw new ManagementError('unprocessable', `${field}: must be a list of group ids`);
    return [];
  }
  if (required && ids.length === 0) throw new ManagementError('unprocessable', `${field}: at least one group is required`);
  for (const id of ids) if (!state.groups.has(id)) throw new ManagementError('unprocessable', `${field}: group ${id} does not exist in this account`);
  return [...new Set(ids)];
}

export function checkMetric(metric: number): void {
  if (!Number.isInteger(metric) || metric < 1 || metric > 9999) throw new ManagementError('unprocessable', 'metric: must be an integer between 1 and 9999');
}

/** IPv4 dotted quad or an IPv6 address in text form. */
export function isIpAddress(ip: string): boolean {
  return isIP(ip) !== 0;
}
