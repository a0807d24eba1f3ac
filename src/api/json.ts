import {
  type Account,
  type AccountState,
  type AuditEvent,
  type DnsRecord,
  type DnsZone,
  type Group,
  type NameserverGroup,
  type NetworkDef,
  type NetworkResource,
  type NetworkRouter,
  type Peer,
  type PersonalAccessToken,
  type Policy,
  type PostureCheck,
  type Route,
  type SetupKey,
  type User,
  type UserInvite,
  accountObjects,
  isLoginExpired,
  setupKeyState,
} from '../management/index.js';

/**
 * Domain objects -> NetBird's REST JSON shapes (management-api.md §8): snake_case fields, RFC 3339
 * times, ids of related objects resolved to the minimal objects the reference embeds.
 */

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json | undefined };
export type JsonObject = { [k: string]: Json | undefined };

/** The reference shows unset times as Go's zero time. */
const ZERO_TIME = '0001-01-01T00:00:00Z';

export function time(ms: number): string {
  return ms > 0 ? new Date(ms).toISOString() : ZERO_TIME;
}

export function groupMinimum(state: AccountState, g: Group): JsonObject {
  let resources = 0;
  for (const r of accountObjects(state).networkResources.values()) if (r.groups.includes(g.id)) resources++;
  return { id: g.id, name: g.name, peers_count: state.members.get(g.id)?.size ?? g.peers.length, resources_count: resources, issued: g.issued };
}

function groupMinimums(state: AccountState, ids: Iterable<string>): JsonObject[] {
  const out: JsonObject[] = [];
  for (const id of ids) {
    const g = state.groups.get(id);
    if (g) out.push(groupMinimum(state, g));
  }
  return out;
}

export function groupJson(state: AccountState, g: Group): JsonObject {
  const resources: JsonObject[] = [];
  for (const r of accountObjects(state).networkResources.values()) if (r.groups.includes(g.id)) resources.push({ id: r.id, type: r.type });
  return {
    ...groupMinimum(state, g),
    peers: [...(state.members.get(g.id) ?? [])].map((pid) => {
      const p = state.peers.get(pid);
      return { id: pid, name: p?.name ?? '' };
    }),
    resources,
  };
}

export function peerJson(state: AccountState, p: Peer, now: number, withAccessible = false): JsonObject {
  const m = p.meta;
  const out: JsonObject = {
    id: p.id,
    name: p.name,
    created_at: time(p.createdAt),
    ip: p.ip,
    connection_ip: p.location?.connectionIp ?? '',
    connected: p.connected,
    last_seen: time(p.lastSeen),
    os: `${m.OS} ${m.OSVersion || m.core}`.trim(),
    kernel_version: m.kernelVersion,
    geoname_id: p.location?.geonameId ?? 0,
    version: m.netbirdVersion,
    groups: groupMinimums(state, state.peerGroups.get(p.id) ?? []),
    ssh_enabled: p.sshEnabled,
    user_id: p.userId,
    hostname: m.hostname,
    ui_version: m.uiVersion,
    dns_label: p.dnsLabel,
    login_expiration_enabled: p.loginExpirationEnabled,
    login_expired: isLoginExpired(state, p, now),
    last_login: time(p.lastLogin),
    inactivity_expiration_enabled: p.inactivityExpirationEnabled,
    approval_required: p.approvalRequired,
    country_code: p.location?.countryCode ?? '',
    city_name: p.location?.cityName ?? '',
    serial_number: m.sysSerialNumber,
    extra_dns_labels: [...p.extraDnsLabels],
    ephemeral: p.ephemeral,
  };
  if (withAccessible) out.accessible_peers_count = state.visiblePeers(p.id).size;
  return out;
}

export function accessiblePeerJson(p: Peer): JsonObject {
  return {
    id: p.id,
    name: p.name,
    ip: p.ip,
    dns_label: p.dnsLabel,
    user_id: p.userId,
    os: `${p.meta.OS} ${p.meta.OSVersion || p.meta.core}`.trim(),
    country_code: p.location?.countryCode ?? '',
    city_name: p.location?.cityName ?? '',
    geoname_id: p.location?.geonameId ?? 0,
    connected: p.connected,
    last_seen: time(p.lastSeen),
  };
}

export function userJson(u: User, currentUserId: string): JsonObject {
  return {
    id: u.id,
    email: u.email,
    name: u.name,
    role: u.role,
    status: u.blocked ? 'blocked' : 'active',
    last_login: time(u.lastLogin),
    auto_groups: [...u.autoGroups],
    is_current: u.id === currentUserId,
    is_service_user: u.isServiceUser,
    is_blocked: u.blocked,
    pending_approval: false,
    issued: 'api',
  };
}

export function tokenJson(t: PersonalAccessToken): JsonObject {
  return {
    id: t.id,
    name: t.name,
    expiration_date: time(t.expiresAt),
    created_by: t.createdBy,
    created_at: time(t.createdAt),
    last_used: t.lastUsed ? time(t.lastUsed) : undefined,
  };
}

export function setupKeyJson(k: SetupKey, now: number, plain?: string): JsonObject {
  const state = setupKeyState(k, now);
  return {
    id: k.id,
    name: k.name,
    expires: time(k.expiresAt),
    type: k.type,
    valid: state === 'valid',
    revoked: k.revoked,
    used_times: k.usedTimes,
    last_used: time(k.lastUsed),
    state,
    auto_groups: [...k.autoGroups],
    updated_at: time(k.updatedAt),
    usage_limit: k.usageLimit,
    ephemeral: k.ephemeral,
    allow_extra_dns_labels: k.allowExtraDnsLabels,
    key: plain ?? k.keyMasked,
  };
}

export function policyJson(state: AccountState, p: Policy): JsonObject {
  return {
    id: p.id,
    name: p.name,
    description: p.description,
    enabled: p.enabled,
    source_posture_checks: [...p.sourcePostureChecks],
    rules: p.rules.map((r) => ({
      id: r.id,
      name: r.name,
      description: r.description,
      enabled: r.enabled,
      action: r.action,
      bidirectional: r.bidirectional,
      protocol: r.protocol,
      ports: [...r.ports],
      port_ranges: r.portRanges.map((x) => ({ start: x.start, end: x.end })),
      sources: groupMinimums(state, r.sources),
      destinations: groupMinimums(state, r.destinations),
      // NetBird leaves these out when the side is groups.
      ...(r.sourceResource ? { sourceResource: { id: r.sourceResource.id, type: r.sourceResource.type } } : {}),
      ...(r.destinationResource ? { destinationResource: { id: r.destinationResource.id, type: r.destinationResource.type } } : {}),
    })),
  };
}

export function accountJson(a: Account): JsonObject {
  const s = a.settings;
  return {
    id: a.id,
    domain: a.domain,
    domain_category: a.domainCategory,
    created_at: time(a.createdAt),
    created_by: a.createdBy,
    onboarding: { signup_form_pending: false, onboarding_flow_pending: false },
    settings: {
      peer_login_expiration_enabled: s.peerLoginExpirationEnabled,
      peer_login_expiration: s.peerLoginExpiration,
      peer_inactivity_expiration_enabled: s.peerInactivityExpirationEnabled,
      peer_inactivity_expiration: s.peerInactivityExpiration,
      regular_users_view_blocked: s.regularUsersViewBlocked,
      groups_propagation_enabled: s.groupsPropagationEnabled,
      jwt_groups_enabled: s.jwtGroupsEnabled,
      jwt_groups_claim_name: s.jwtGroupsClaimName,
      jwt_allow_groups: [...s.jwtAllowGroups],
      routing_peer_dns_resolution_enabled: s.routingPeerDnsResolutionEnabled,
      dns_domain: a.dnsDomain,
      network_range: a.network,
      peer_expose_enabled: false,
      peer_expose_groups: [],
      lazy_connection_enabled: s.lazyConnectionEnabled,
      embedded_idp_enabled: true,
      extra: {
        peer_approval_enabled: false,
        user_approval_required: false,
        network_traffic_logs_enabled: s.networkTrafficLogsEnabled,
        network_traffic_logs_groups: [...s.networkTrafficLogsGroups],
        network_traffic_packet_counter_enabled: s.networkTrafficPacketCounterEnabled,
      },
    },
  };
}

export function routeJson(r: Route): JsonObject {
  const out: JsonObject = {
    id: r.id,
    network_type: r.networkType,
    description: r.description,
    network_id: r.networkId,
    enabled: r.enabled,
    metric: r.metric,
    masquerade: r.masquerade,
    groups: [...r.groups],
    keep_route: r.keepRoute,
    access_control_groups: [...r.accessControlGroups],
    skip_auto_apply: r.skipAutoApply,
  };
  if (r.peer) out.peer = r.peer;
  else out.peer_groups = [...r.peerGroups];
  if (r.networkType === 'Domain') out.domains = [...r.domains];
  else out.network = r.network;
  return out;
}

export function nameserverGroupJson(g: NameserverGroup): JsonObject {
  return {
    id: g.id,
    name: g.name,
    description: g.description,
    nameservers: g.nameservers.map((n) => ({ ip: n.ip, ns_type: n.nsType, port: n.port })),
    enabled: g.enabled,
    groups: [...g.groups],
    primary: g.primary,
    domains: [...g.domains],
    search_domains_enabled: g.searchDomainsEnabled,
  };
}

export function postureCheckJson(p: PostureCheck): JsonObject {
  return { id: p.id, name: p.name, description: p.description, checks: p.checks as JsonObject };
}

export function networkJson(state: AccountState, n: NetworkDef): JsonObject {
  const objs = accountObjects(state);
  const routers = [...objs.networkRouters.values()].filter((r) => r.networkId === n.id);
  const resources = [...objs.networkResources.values()].filter((r) => r.networkId === n.id);
  const peers = new Set<string>();
  for (const r of routers) {
    if (r.peer) peers.add(r.peer);
    for (const g of r.peerGroups) for (const p of state.members.get(g) ?? []) peers.add(p);
  }
  const groups = new Set(resources.flatMap((r) => r.groups));
  const ids = new Set(resources.map((r) => r.id));
  const policies = state.policies
    .filter((p) => p.rules.some((r) => r.destinations.some((g) => groups.has(g)) || (r.destinationResource !== undefined && r.destinationResource.type !== 'peer' && ids.has(r.destinationResource.id))))
    .map((p) => p.id);
  return {
    id: n.id,
    name: n.name,
    description: n.description,
    routers: routers.map((r) => r.id),
    routing_peers_count: peers.size,
    resources: resources.map((r) => r.id),
    policies,
  };
}

export function networkResourceJson(state: AccountState, r: NetworkResource): JsonObject {
  return { id: r.id, type: r.type, groups: groupMinimums(state, r.groups), name: r.name, description: r.description, address: r.address, enabled: r.enabled };
}

export function networkRouterJson(r: NetworkRouter): JsonObject {
  // Both always, as NetBird: its dashboard tells a single routing peer by peer != "" and would
  // otherwise fetch /api/peers/undefined for a group router.
  return { id: r.id, peer: r.peer, peer_groups: [...r.peerGroups], metric: r.metric, masquerade: r.masquerade, enabled: r.enabled };
}

export function dnsRecordJson(r: DnsRecord): JsonObject {
  return { id: r.id, name: r.name, type: r.type, content: r.content, ttl: r.ttl };
}

export function dnsZoneJson(z: DnsZone): JsonObject {
  return {
    id: z.id,
    name: z.name,
    domain: z.domain,
    enabled: z.enabled,
    enable_search_domain: z.enableSearchDomain,
    distribution_groups: [...z.distributionGroups],
    records: z.records.map(dnsRecordJson),
  };
}

const VERBS: Record<string, string> = {
  add: 'added',
  create: 'created',
  update: 'updated',
  delete: 'deleted',
  revoke: 'revoked',
  enable: 'enabled',
  disable: 'disabled',
  join: 'joined',
  invite: 'invited',
  block: 'blocked',
  unblock: 'unblocked',
  login: 'logged in',
  expire: 'expired',
  rename: 'renamed',
  overuse: 'overused',
  approve: 'approved',
  reject: 'rejected',
};

const ACTIVITY_TEXT: Record<string, string> = {
  'peer.user.add': 'Peer added',
  'peer.setupkey.add': 'Peer added with setup key',
  'user.join': 'User joined',
  'account.create': 'Account created',
  'user.peer.delete': 'Peer deleted',
  'user.peer.login': 'User logged in peer',
  'peer.login.expire': 'Peer login expired',
  'personal.access.token.create': 'Personal access token created',
  'personal.access.token.delete': 'Personal access token deleted',
  'transferred.owner.role': 'Transferred owner role',
  'dns.setting.disabled.management.group.add': 'Group added to disabled management DNS setting',
  'dns.setting.disabled.management.group.delete': 'Group removed from disabled management DNS setting',
};

/** Human text of an activity code ("policy.add" -> "Policy added"). */
export function activityText(code: string): string {
  const known = ACTIVITY_TEXT[code];
  if (known) return known;
  const parts = code.split('.');
  const last = parts.at(-1)!;
  const verb = VERBS[last];
  const words = (verb ? [...parts.slice(0, -1), verb] : parts).join(' ').replace(/setupkey/g, 'setup key');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function eventJson(state: AccountState, e: AuditEvent): JsonObject {
  const initiator = state.users.get(e.initiatorId);
  return {
    id: e.id,
    timestamp: time(e.timestamp),
    activity: activityText(e.activityCode),
    activity_code: e.activityCode,
    initiator_id: e.initiatorId,
    initiator_name: initiator?.name ?? '',
    initiator_email: initiator?.email ?? '',
    target_id: e.targetId,
    meta: e.meta,
  };
}

export function inviteJson(i: UserInvite, now: number, token?: string): JsonObject {
  const out: JsonObject = {
    id: i.id,
    email: i.email,
    name: i.name,
    role: i.role,
    auto_groups: [...i.autoGroups],
    expires_at: time(i.expiresAt),
    created_at: time(i.createdAt),
    expired: i.expiresAt <= now,
  };
  if (token) out.invite_token = token;
  return out;
}
