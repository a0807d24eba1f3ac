import type { UserRole } from '../management/index.js';

/**
 * Role model of the REST API (management-api.md §2). Every endpoint names the resource it touches
 * and whether it writes; `decide` says what the caller's role may do:
 * - owner: everything; admin: everything but owner-only actions (deleting the account, handing over
 *   ownership); network_admin: reads everything and writes network resources (peers, setup keys,
 *   groups, policies, routes, networks, DNS, posture checks); auditor: reads everything;
 *   billing_admin: the account and themselves only; user: their own peers, themselves, their tokens,
 *   and (when the account's `regular_users_view_blocked` is off) read-only network resources other
 *   than setup keys.
 */

export type Resource =
  | 'accounts'
  | 'users'
  | 'peers'
  | 'setup_keys'
  | 'groups'
  | 'policies'
  | 'routes'
  | 'networks'
  | 'dns'
  | 'posture_checks'
  | 'events'
  /** Account-wide configuration beyond the account object: identity providers, integrations. */
  | 'settings';

export type Decision = 'allow' | 'deny' | 'own' | 'limited';

const NETWORK_RESOURCES: readonly Resource[] = ['peers', 'setup_keys', 'groups', 'policies', 'routes', 'networks', 'dns', 'posture_checks'];

/**
 * 'own' = only the caller's own objects (regular users and peers/users); 'limited' = a regular user
 * whose account blocks the view: lists come back empty, single objects are refused.
 */
export function decide(role: UserRole, resource: Resource, write: boolean, viewBlocked: boolean): Decision {
  switch (role) {
    case 'owner':
    case 'admin':
      return 'allow';
    case 'network_admin':
      if (!write) return 'allow';
      return NETWORK_RESOURCES.includes(resource) ? 'allow' : 'deny';
    case 'auditor':
      return write ? 'deny' : 'allow';
    case 'billing_admin':
      if (write) return 'deny';
      if (resource === 'accounts') return 'allow';
      if (resource === 'users') return 'own';
      return 'deny';
    case 'user':
      if (resource === 'peers') return 'own';
      if (write) return 'deny';
      if (resource === 'accounts') return 'allow';
      if (resource === 'users') return 'own';
      // Setup keys are secrets that register peers; NetBird gives regular users no read of them either.
      if (resource === 'events' || resource === 'settings' || resource === 'setup_keys') return 'deny';
      return viewBlocked ? 'limited' : 'allow';
    default:
      return 'deny';
  }
}
