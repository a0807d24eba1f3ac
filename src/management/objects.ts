import { management } from '../proto/index.js';
import type { AccountState, IndexedRule } from './state.js';
import type { AccountObjects } from './store/store.js';
import type { DnsZone, NameserverGroup, NetworkDef, NetworkResource, NetworkRouter, Peer, PersonalAccessToken, PolicyRule, PostureCheck, Route, UserInvite } from './types.js';
import { compareVersion } from './util.js';

/**
 * The REST-managed entities of one account in memory (routes, name-server groups, posture checks,
 * networks with resources and routers, DNS zones, personal access tokens), kept beside the
 * AccountState (a WeakMap keyed by the state, so state.ts needs no field for them), and the
 * per-peer views network-map computation needs: `peerRoutes`, `peerNameServerGroups`,
 * `peerCustomZones` return proto-shaped objects ready to put into a NetworkMap.
 *
 * Cost: each view walks the account's routes / groups / zones once (tens, not thousands) and
 * membership lookups are Set lookups, so adding them to every map keeps the change path O(peers).
 */
export class AccountObjectsState {
  readonly routes = new Map<string, Route>();
  readonly nameserverGroups = new Map<string, NameserverGroup>();
  readonly postureChecks = new Map<string, PostureCheck>();
  readonly networks = new Map<string, NetworkDef>();
  readonly networkResources = new Map<string, NetworkResource>();
  readonly networkRouters = new Map<string, NetworkRouter>();
  readonly dnsZones = new Map<string, DnsZone>();
  readonly tokens = new Map<string, PersonalAccessToken>();
  readonly userInvites = new Map<string, UserInvite>();
  /** Bumped on every change of routes, name servers, zones, networks (cache key for map builders). */
  generation = 0;
  /**
   * Expanded routing peers per route / network router, valid for one (account serial, generation):
   * every change that can alter group membership bumps the serial, so a burst of map builds after
   * one change expands each routing group once instead of once per receiving peer.
   */
  memo: { serial: number; generation: number; routers: Map<string, string[]>; resourceRouters: Map<string, NetworkRouter[]> } | undefined;

  constructor(data?: AccountObjects) {
    if (!data) return;
    for (const x of data.routes) this.routes.set(x.id, x);
    for (const x of data.nameserverGroups) this.nameserverGroups.set(x.id, x);
    for (const x of data.postureChecks) this.postureChecks.set(x.id, x);
    for (const x of data.networks) this.networks.set(x.id, x);
    for (const x of data.networkResources) this.networkResources.set(x.id, x);
    for (const x of data.networkRouters) this.networkRouters.set(x.id, x);
    for (const x of data.dnsZones) this.dnsZones.set(x.id, x);
    for (const x of data.tokens) this.tokens.set(x.id, x);
    for (const x of data.userInvites ?? []) this.userInvites.set(x.id, x);
  }
}

const objectsByState = new WeakMap<AccountState, AccountObjectsState>();

/** The REST entities of an account (an empty set for states built without them). */
export function accountObjects(state: AccountState): AccountObjectsState {
  let o = objectsByState.get(state);
  if (!o) attachAccountObjects(state, (o = new AccountObjectsState()));
  return o;
}

export function attachAccountObjects(state: AccountState, objects: AccountObjectsState): void {
  objectsByState.set(state, objects);
  state.sourceGate = (policy, peer) => passesPostureChecks(state, peer, policy.sourcePostureChecks);
  state.invalidateIndex();
}

/**
 * Whether a rule's destination holds network resource `res`: one of the resource's groups, or the
 * resource itself as the rule's destinationResource (NetBird's GetPoliciesForNetworkResource).
 */
export function ruleReachesResource(rule: PolicyRule, res: NetworkResource): boolean {
  const d = rule.destinationResource;
  if (d) return d.type !== 'peer' && d.id === res.id;
  return rule.destinations.some((g) => res.groups.includes(g));
}

function inAnyGroup(state: AccountState, peerId: string, groups: readonly string[]): boolean {
  const mine = state.peerGroups.get(peerId);
  if (!mine || mine.size === 0) return false;
  for (const g of groups) if (mine.has(g)) return true;
  return false;
}

function membersOf(state: AccountState, groups: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const g of groups) for (const p of state.members.get(g) ?? []) out.add(p);
  return out;
}

/** Routing peers of a route or network router: the single peer or the members of its peer groups. */
export function routingPeers(state: AccountState, r: { peer: string; peerGroups: readonly string[] }): string[] {
  if (r.peer) return state.peers.has(r.peer) ? [r.peer] : [];
  return [...membersOf(state, r.peerGroups)];
}

function memoOf(state: AccountState, objs: AccountObjectsState): NonNullable<AccountObjectsState['memo']> {
  const m = objs.memo;
  if (m && m.serial === state.account.serial && m.generation === objs.generation) return m;
  const routersByNetwork = new Map<string, NetworkRouter[]>();
  for (const r of objs.networkRouters.values()) {
    if (!r.enabled) continue;
    let l = routersByNetwork.get(r.networkId);
    if (!l) routersByNetwork.set(r.networkId, (l = []));
    l.push(r);
  }
  objs.memo = { serial: state.account.serial, generation: objs.generation, routers: new Map(), resourceRouters: routersByNetwork };
  return objs.memo;
}

function memoRoutingPeers(state: AccountState, memo: NonNullable<AccountObjectsState['memo']>, id: string, r: { peer: string; peerGroups: readonly string[] }): string[] {
  let l = memo.routers.get(id);
  if (!l) memo.routers.set(id, (l = routingPeers(state, r)));
  return l;
}

const NETWORK_TYPE = { IPv4: 1, IPv6: 2, Domain: 3 } as const;

function routeNetworkType(address: string): { network: string; type: number; domains: string[] } {
  if (/^[0-9.]+\/\d+$/.test(address)) return { network: address, type: 1, domains: [] };
  if (/^[0-9.]+$/.test(address)) return { network: `${address}/32`, type: 1, domains: [] };
  if (address.includes(':')) return { network: address.includes('/') ? address : `${address}/128`, type: 2, domains: [] };
  return { network: '', type: 3, domains: [address] };
}

/**
 * Routes peer P receives (management-api.md §5.3): every enabled route whose distribution groups
 * contain P, one entry per routing peer other than P; and the routes P itself serves (entries whose
 * `Peer` is P's key, which tell the client to act as router). Network resources (the newer model)
 * become routes for peers that some enabled policy lets reach a group holding the resource, via each
 * enabled router of its network.
 */
export function peerRoutes(state: AccountState, peerId: string): management.Route[] {
  const objs = objectsByState.get(state);
  if (!objs || (objs.routes.size === 0 && objs.networkRouters.size === 0)) return [];
  const memo = memoOf(state, objs);
  const out: management.Route[] = [];
  for (const r of objs.routes.values()) {
    if (!r.enabled) continue;
    const distributed = inAnyGroup(state, peerId, r.groups);
    for (const rp of memoRoutingPeers(state, memo, r.id, r)) {
      if (rp !== peerId && !distributed) continue;
      const peer = state.peers.get(rp);
      if (!peer) continue;
      out.push({
        ID: r.peer ? r.id : `${r.id}:${rp}`,
        Network: r.networkType === 'Domain' ? '' : r.network,
        NetworkType: NETWORK_TYPE[r.networkType],
        Peer: peer.key,
        Metric: r.metric,
        Masquerade: r.masquerade,
        NetID: r.networkId,
        Domains: [...r.domains],
        keepRoute: r.keepRoute,
        skipAutoApply: r.skipAutoApply,
      });
    }
  }
  if (objs.networkResources.size > 0 && objs.networkRouters.size > 0) {
    // Groups P may reach as a source of an enabled rule (or as destination of a bidirectional one),
    // and single resources P's rules name as destination (only from the source side: a resource
    // starts no traffic, so a bidirectional rule gives its sources nothing more).
    const reach = new Set<string>();
    const reachResources = new Set<string>();
    const rules = state.rulesOf(peerId);
    for (const ir of rules.asSource) {
      const d = ir.rule.destinationResource;
      if (d) {
        if (d.type !== 'peer') reachResources.add(d.id);
      } else for (const g of ir.rule.destinations) reach.add(g);
    }
    for (const ir of rules.asDestination) if (ir.rule.bidirectional) for (const g of ir.rule.sources) reach.add(g);
    for (const res of objs.networkResources.values()) {
      if (!res.enabled) continue;
      const routers = memo.resourceRouters.get(res.networkId);
      if (!routers) continue;
      const granted = reachResources.has(res.id) || res.groups.some((g) => reach.has(g));
      const net = routeNetworkType(res.address);
      const network = objs.networks.get(res.networkId);
      for (const router of routers) {
        for (const rp of memoRoutingPeers(state, memo, router.id, router)) {
          if (rp !== peerId && !granted) continue;
          const peer = state.peers.get(rp);
          if (!peer) continue;
          out.push({
            ID: `${res.id}:${router.id}:${rp}`,
            Network: net.network,
            NetworkType: net.type,
            Peer: peer.key,
            Metric: router.metric,
            Masquerade: router.masquerade,
            NetID: network ? network.name : res.networkId,
            Domains: net.domains,
            keepRoute: true,
            skipAutoApply: false,
          });
        }
      }
    }
  }
  return out;
}

const ROUTE_RULE_PROTOCOL: Record<string, management.RuleProtocol> = {
  all: management.RuleProtocol.ALL,
  tcp: management.RuleProtocol.TCP,
  udp: management.RuleProtocol.UDP,
  icmp: management.RuleProtocol.ICMP,
};

/** What a route firewall rule guards: the routed prefix (any address for domain routes). */
interface RouteTarget {
  routeId: string;
  destination: string;
  isDynamic: boolean;
  domains: string[];
}

/**
 * RouteFirewallRules for one policy rule (protocol.md §4.6.4, as NetBird's
 * GenerateRouteFirewallRules): the rule's source peers as /32 ranges, one entry per port or port
 * range, none for a rule without sources.
 */
function routeRulesOf(state: AccountState, ir: IndexedRule, target: RouteTarget, exclude: string, allowed: ReadonlySet<string> | undefined, out: management.RouteFirewallRule[]): void {
  const protocol = ROUTE_RULE_PROTOCOL[ir.rule.protocol];
  if (protocol === undefined) return; // netbird-ssh is about the peers themselves, not routed networks
  const sourceRanges: string[] = [];
  for (const pid of ir.sources) {
    if (pid === exclude || (allowed && !allowed.has(pid))) continue;
    const peer = state.peers.get(pid);
    if (!peer || !passesPostureChecks(state, peer, ir.policy.sourcePostureChecks)) continue;
    sourceRanges.push(`${peer.ip}/32`);
  }
  if (sourceRanges.length === 0) return;
  sourceRanges.sort();
  const base = {
    sourceRanges,
    action: ir.rule.action === 'drop' ? management.RuleAction.DROP : management.RuleAction.ACCEPT,
    destination: target.destination,
    protocol,
    isDynamic: target.isDynamic,
    domains: target.domains,
    customProtocol: 0,
    PolicyID: Buffer.from(ir.policy.id, 'utf8'),
    RouteID: target.routeId,
  };
  if (ir.rule.ports.length > 0) {
    for (const port of ir.rule.ports) out.push({ ...base, portInfo: { port: Number(port) } });
  } else if (ir.rule.portRanges.length > 0) {
    for (const r of ir.rule.portRanges) out.push({ ...base, portInfo: { range: { start: r.start, end: r.end } } });
  } else {
    out.push({ ...base, portInfo: undefined });
  }
}

/**
 * Firewall rules for the traffic routing peer P forwards (protocol.md §4.6.4, NetBird's
 * getPeerRoutesFirewallRules and getPeerNetworkResourceFirewallRules):
 * - a route P serves without access-control groups lets everyone in (0.0.0.0/0, all protocols);
 * - with access-control groups, every enabled rule whose destinations include one of them lets in its
 *   source peers that also receive the route (its distribution groups);
 * - a network resource P routes for lets in the sources of every enabled rule whose destinations hold
 *   the resource (a group of it, or the resource itself as destinationResource).
 * Empty for peers that route nothing.
 */
export function peerRoutesFirewallRules(state: AccountState, peerId: string): management.RouteFirewallRule[] {
  const objs = objectsByState.get(state);
  if (!objs || (objs.routes.size === 0 && objs.networkRouters.size === 0)) return [];
  const memo = memoOf(state, objs);
  const out: management.RouteFirewallRule[] = [];
  const rules = state.policyIndex().rules;
  for (const r of objs.routes.values()) {
    if (!r.enabled || !memoRoutingPeers(state, memo, r.id, r).includes(peerId)) continue;
    const domain = r.networkType === 'Domain';
    const target: RouteTarget = { routeId: r.peer ? r.id : `${r.id}:${peerId}`, destination: domain ? '0.0.0.0/0' : r.network, isDynamic: domain, domains: [...r.domains] };
    if (r.accessControlGroups.length === 0) {
      out.push({
        sourceRanges: [r.networkType === 'IPv6' ? '::/0' : '0.0.0.0/0'], action: management.RuleAction.ACCEPT, destination: target.destination,
        protocol: management.RuleProtocol.ALL, portInfo: undefined, isDynamic: domain, domains: target.domains, customProtocol: 0, PolicyID: Buffer.alloc(0), RouteID: target.routeId,
      });
      continue;
    }
    const distribution = membersOf(state, r.groups);
    for (const ir of rules) {
      if (ir.rule.destinations.some((g) => r.accessControlGroups.includes(g))) routeRulesOf(state, ir, target, peerId, distribution, out);
    }
  }
  if (objs.networkResources.size > 0 && objs.networkRouters.size > 0) {
    for (const res of objs.networkResources.values()) {
      if (!res.enabled) continue;
      const net = routeNetworkType(res.address);
      for (const router of memo.resourceRouters.get(res.networkId) ?? []) {
        if (!memoRoutingPeers(state, memo, router.id, router).includes(peerId)) continue;
        const target: RouteTarget = { routeId: `${res.id}:${router.id}:${peerId}`, destination: net.type === 3 ? '0.0.0.0/0' : net.network, isDynamic: net.type === 3, domains: net.domains };
        for (const ir of rules) if (ruleReachesResource(ir.rule, res)) routeRulesOf(state, ir, target, peerId, undefined, out);
      }
    }
  }
  return out;
}

/**
 * Peers P must have a WireGuard path to for network resources even without a policy between the
 * peers themselves (NetBird's addNetworksRoutingPeers): the routers of resources P may reach, and,
 * when P is a router, the peers that may reach its resources.
 */
export function networkResourcePeers(state: AccountState, peerId: string): Set<string> {
  const out = new Set<string>();
  const objs = objectsByState.get(state);
  if (!objs || objs.networkResources.size === 0 || objs.networkRouters.size === 0) return out;
  const memo = memoOf(state, objs);
  const rules = state.policyIndex().rules;
  for (const res of objs.networkResources.values()) {
    if (!res.enabled) continue;
    const routers = memo.resourceRouters.get(res.networkId);
    if (!routers) continue;
    const routerPeers = new Set<string>();
    for (const router of routers) for (const rp of memoRoutingPeers(state, memo, router.id, router)) routerPeers.add(rp);
    const amRouter = routerPeers.has(peerId);
    for (const ir of rules) {
      if (!ruleReachesResource(ir.rule, res)) continue;
      if (amRouter) for (const src of ir.sources) out.add(src);
      else if (ir.sources.has(peerId)) for (const rp of routerPeers) out.add(rp);
    }
  }
  out.delete(peerId);
  return out;
}

/**
 * `affected` plus the peers whose maps follow from it through routing: every routing peer (its route
 * firewall rules depend on policies, groups and peers' addresses) and, for an affected router, the
 * peers reaching its network resources. `affected` itself when the account routes nothing.
 */
export function withRoutingDependents(state: AccountState, affected: ReadonlySet<string>): ReadonlySet<string> {
  const objs = objectsByState.get(state);
  if (!objs || (objs.routes.size === 0 && objs.networkRouters.size === 0)) return affected;
  const out = new Set(affected);
  const routers = new Set<string>();
  for (const r of objs.routes.values()) if (r.enabled) for (const p of routingPeers(state, r)) routers.add(p);
  for (const r of objs.networkRouters.values()) if (r.enabled) for (const p of routingPeers(state, r)) routers.add(p);
  for (const p of routers) {
    out.add(p);
    if (affected.has(p)) for (const q of networkResourcePeers(state, p)) out.add(q);
  }
  return out;
}

/** Name-server groups for P (management-api.md §5.4); none when P is in a DNS-disabled group. */
export function peerNameServerGroups(state: AccountState, peerId: string): management.NameServerGroup[] {
  const objs = objectsByState.get(state);
  if (!objs || objs.nameserverGroups.size === 0) return [];
  if (inAnyGroup(state, peerId, state.account.settings.dnsDisabledManagementGroups)) return [];
  const out: management.NameServerGroup[] = [];
  for (const g of objs.nameserverGroups.values()) {
    if (!g.enabled || !inAnyGroup(state, peerId, g.groups)) continue;
    out.push({
      NameServers: g.nameservers.map((n) => ({ IP: n.ip, NSType: 1, Port: n.port })),
      Primary: g.primary,
      Domains: [...g.domains],
      SearchDomainsEnabled: g.searchDomainsEnabled,
    });
  }
  return out;
}

const RR_TYPE = { A: 1, AAAA: 28, CNAME: 5 } as const;

/** User DNS zones distributed to P (in addition to the account's peer zone). */
export function peerCustomZones(state: AccountState, peerId: string): management.CustomZone[] {
  const objs = objectsByState.get(state);
  if (!objs || objs.dnsZones.size === 0) return [];
  if (inAnyGroup(state, peerId, state.account.settings.dnsDisabledManagementGroups)) return [];
  const out: management.CustomZone[] = [];
  for (const z of objs.dnsZones.values()) {
    if (!z.enabled || !inAnyGroup(state, peerId, z.distributionGroups)) continue;
    out.push({
      Domain: z.domain.endsWith('.') ? z.domain : `${z.domain}.`,
      Records: z.records.map((r) => ({
        Name: r.name.endsWith('.') ? r.name.slice(0, -1) : r.name,
        Type: RR_TYPE[r.type],
        Class: 'IN',
        TTL: r.ttl,
        RData: r.content,
      })),
      SearchDomainDisabled: !z.enableSearchDomain,
      NonAuthoritative: true,
    });
  }
  return out;
}

/** Peers whose maps may change when a route changes: its distribution groups and routing peers. */
export function affectedByRoute(state: AccountState, r: Route | undefined): Set<string> {
  if (!r) return new Set();
  const out = membersOf(state, r.groups);
  for (const p of routingPeers(state, r)) out.add(p);
  return out;
}

export function membersOfGroups(state: AccountState, groups: readonly string[]): Set<string> {
  return membersOf(state, groups);
}

// ----- posture checks (management-api.md §3: a source peer failing a check is left out of that policy) -----

/** OS and kernel versions come as "22.04", "10.0.19045" or "6.1.0-18-amd64": compare numerically, padded. */
function osVersionAtLeast(version: string, min: string): boolean {
  const parts = (v: string): number[] => {
    const m = /^v?(\d+(?:\.\d+)*)/.exec(v.trim());
    return m ? m[1]!.split('.').map(Number) : [];
  };
  const a = parts(version);
  const b = parts(min);
  if (a.length === 0) return false;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

function ipv4InCidr(ip: string, cidr: string): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr.trim());
  const a = /^(\d+)\.(\d+)\.(\d+)\.(\d+)/.exec(ip.trim());
  if (!m || !a) return false;
  const toInt = (x: RegExpExecArray): number => ((Number(x[1]) * 256 + Number(x[2])) * 256 + Number(x[3])) * 256 + Number(x[4]);
  const bits = Number(m[5]);
  if (bits > 32) return false;
  const size = 2 ** (32 - bits);
  const base = Math.floor(toInt(m) / size) * size;
  const v = toInt(a);
  return v >= base && v < base + size;
}

/**
 * Why `peer` fails posture check `check`, or undefined when it passes. Follows the reference's
 * rules: an OS missing from an OS-version check is not allowed; checks that need data this server
 * does not have (geolocation without a database, processes the client did not report) fail.
 */
export function postureCheckFailure(check: PostureCheck, peer: Peer): string | undefined {
  const c = check.checks as Record<string, Record<string, unknown> | undefined>;
  const meta = peer.meta;
  const nb = c.nb_version_check;
  if (nb && compareVersion(meta.netbirdVersion, String(nb.min_version ?? '0.0.0')) < 0) {
    return `NetBird ${meta.netbirdVersion || '(unknown)'} is older than ${String(nb.min_version)}`;
  }
  const os = c.os_version_check;
  if (os) {
    const entry = os[meta.goOS] as { min_version?: string; min_kernel_version?: string } | undefined;
    if (!entry) return `operating system ${meta.goOS || '(unknown)'} is not allowed`;
    if (entry.min_version && entry.min_version !== '0' && !osVersionAtLeast(meta.OSVersion, entry.min_version)) {
      return `OS version ${meta.OSVersion} is older than ${entry.min_version}`;
    }
    if (entry.min_kernel_version && entry.min_kernel_version !== '0' && !osVersionAtLeast(meta.kernelVersion, entry.min_kernel_version)) {
      return `kernel ${meta.kernelVersion} is older than ${entry.min_kernel_version}`;
    }
  }
  const geo = c.geo_location_check as { locations?: Array<{ country_code?: string; city_name?: string }>; action?: string } | undefined;
  if (geo) {
    // As the reference: an unknown place fails; a listed one (country, and city when given) decides.
    const loc = peer.location;
    if (!loc || (!loc.countryCode && !loc.cityName)) return 'peer location is unknown';
    const hit = (geo.locations ?? []).some((l) => l.country_code === loc.countryCode && (!l.city_name || l.city_name === loc.cityName));
    if (geo.action === 'allow' && !hit) return `location ${loc.countryCode}${loc.cityName ? `/${loc.cityName}` : ''} is not allowed`;
    if (geo.action === 'deny' && hit) return `location ${loc.countryCode}${loc.cityName ? `/${loc.cityName}` : ''} is denied`;
  }
  const net = c.peer_network_range_check as { ranges?: string[]; action?: string } | undefined;
  if (net) {
    const inRange = meta.networkAddresses.some((a) => (net.ranges ?? []).some((r) => ipv4InCidr(a.netIP, r)));
    if (net.action === 'allow' && !inRange) return 'no local address in an allowed range';
    if (net.action === 'deny' && inRange) return 'a local address is in a denied range';
  }
  const proc = c.process_check as { processes?: unknown[] } | undefined;
  if (proc && (proc.processes ?? []).length > 0) return 'running processes are not reported by this peer';
  return undefined;
}

/** Whether `peer` passes every posture check in `ids` (unknown ids are ignored). */
export function passesPostureChecks(state: AccountState, peer: Peer, ids: readonly string[]): boolean {
  if (ids.length === 0) return true;
  const objs = objectsByState.get(state);
  if (!objs) return true;
  for (const id of ids) {
    const check = objs.postureChecks.get(id);
    if (check && postureCheckFailure(check, peer) !== undefined) return false;
  }
  return true;
}
