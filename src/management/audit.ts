import type { ManagerCore } from './core.js';
import type { AuditEvent } from './types.js';

/** Activity codes (management-api.md §7) the account manager records. */
export const ACT = {
  peerUserAdd: 'peer.user.add',
  peerSetupKeyAdd: 'peer.setupkey.add',
  accountCreate: 'account.create',
  userPeerDelete: 'user.peer.delete',
  policyAdd: 'policy.add',
  policyUpdate: 'policy.update',
  policyDelete: 'policy.delete',
  setupKeyAdd: 'setupkey.add',
  setupKeyUpdate: 'setupkey.update',
  setupKeyRevoke: 'setupkey.revoke',
  setupKeyDelete: 'setupkey.delete',
  groupAdd: 'group.add',
  groupUpdate: 'group.update',
  groupDelete: 'group.delete',
  peerRename: 'peer.rename',
  peerSshEnable: 'peer.ssh.enable',
  peerSshDisable: 'peer.ssh.disable',
  peerLoginExpire: 'peer.login.expire',
  userPeerLogin: 'user.peer.login',
  accountDnsDomainUpdate: 'account.dns.domain.update',
  userCreate: 'user.create',
  userJoin: 'user.join',
  userDelete: 'user.delete',
  userBlock: 'user.block',
  userUnblock: 'user.unblock',
  userRoleUpdate: 'user.role.update',
  userGroupAdd: 'user.group.add',
  userGroupDelete: 'user.group.delete',
  peerGroupAdd: 'peer.group.add',
  peerGroupDelete: 'peer.group.delete',
  serviceUserCreate: 'service.user.create',
  serviceUserDelete: 'service.user.delete',
  transferredOwnerRole: 'transferred.owner.role',
  patCreate: 'personal.access.token.create',
  patDelete: 'personal.access.token.delete',
  routeAdd: 'route.add',
  routeUpdate: 'route.update',
  routeDelete: 'route.delete',
  nsAdd: 'nameserver.group.add',
  nsUpdate: 'nameserver.group.update',
  nsDelete: 'nameserver.group.delete',
  dnsDisabledAdd: 'dns.setting.disabled.management.group.add',
  dnsDisabledDelete: 'dns.setting.disabled.management.group.delete',
  postureCreate: 'posture.check.create',
  postureUpdate: 'posture.check.update',
  postureDelete: 'posture.check.delete',
  networkCreate: 'network.create',
  networkUpdate: 'network.update',
  networkDelete: 'network.delete',
  resourceCreate: 'network.resource.create',
  resourceUpdate: 'network.resource.update',
  resourceDelete: 'network.resource.delete',
  routerCreate: 'network.router.create',
  routerUpdate: 'network.router.update',
  routerDelete: 'network.router.delete',
  zoneCreate: 'dns.zone.create',
  zoneUpdate: 'dns.zone.update',
  zoneDelete: 'dns.zone.delete',
  recordCreate: 'dns.zone.record.create',
  recordUpdate: 'dns.zone.record.update',
  recordDelete: 'dns.zone.record.delete',
  peerLoginExpirationEnable: 'peer.login.expiration.enable',
  peerLoginExpirationDisable: 'peer.login.expiration.disable',
  peerInactivityExpirationEnable: 'peer.inactivity.expiration.enable',
  peerInactivityExpirationDisable: 'peer.inactivity.expiration.disable',
  peerApprove: 'peer.approve',
  inviteCreate: 'user.invite.link.create',
  inviteAccept: 'user.invite.link.accept',
  inviteRegenerate: 'user.invite.link.regenerate',
  inviteDelete: 'user.invite.link.delete',
} as const;

/** The audit log: reading it, and naming the initiator of changes. */
export class Audit {
  constructor(private readonly core: ManagerCore) {}

  async listEvents(accountId: string, limit?: number): Promise<AuditEvent[]> {
    this.core.accountState(accountId);
    return this.core.store.listEvents(accountId, limit);
  }

  /** Runs `fn` with `userId` as the initiator recorded in the audit events of its changes. */
  asInitiator<T>(userId: string, fn: () => Promise<T>): Promise<T> {
    return this.core.asInitiator(userId, fn);
  }
}

/** The methods the AccountManager face exposes. */
export const AUDIT_API = ['listEvents', 'asInitiator'] as const satisfies ReadonlyArray<keyof Audit>;
