import { randomBytes } from 'node:crypto';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { Timestamp, management } from '../proto/index.js';
import type { AccountState, Chunk, IndexedRule, PeerFragments, PeerRules, RuleTemplate } from './state.js';
import type { Peer, PolicyRule } from './types.js';
import { cidrBits, compareVersion, ipToInt } from './util.js';
import { networkResourcePeers, peerCustomZones, peerNameServerGroups, peerRoutes, peerRoutesFirewallRules } from './objects.js';
import { SYNC_HEADROOM, field, fieldHeader, frameOf, varintLength, writeVarint } from './wire.js';

/**
 * Network map of one peer (protocol.md §4.6, management-api.md §5), computed from the in-memory
 * account and encoded straight to protobuf bytes.
 *
 * Speed matters here: one policy change can require thousands of maps, each listing hundreds of
 * peers. Every per-remote-peer fragment (RemotePeerConfig, DNS records, the FirewallRules for one
 * rule and direction) depends only on the remote peer and a few receiver traits, so its bytes are
 * encoded once, cached on the remote peer (dropped when that peer changes; firewall fragments also
 * when policies change) and spliced into each map as ready length-delimited fields. A FirewallRule
 * fragment is the peer part (PeerIP, sourcePrefixes) followed by a per-rule template part: protobuf
 * merges the fields of a message written in pieces. The map is kept as a list of pieces without its
 * Serial; Serial is written in front when the SyncResponse is assembled (encodeSyncResponse), and the
 * digest that decides whether a peer's map really changed is computed from the pieces' cached
 * hashes, never from the full bytes.
 */

const PEER_RECORD_TTL = 300;
const DNS_FORWARDER_PORT_NEW = 22054;
const DNS_FORWARDER_PORT_OLD = 5353;
const SSH_PORT = 22;
const NETBIRD_SSH_PORT = 22022;
const CAP_SOURCE_PREFIXES = management.PeerCapability.PeerCapabilitySourcePrefixes;
const CHUNK_SEEDS = randomBytes(8);
const CHUNK_SEED1 = CHUNK_SEEDS.readInt32LE(0);
const CHUNK_SEED2 = CHUNK_SEEDS.readInt32LE(4);

export interface EncodedMap {
  /** NetworkMap bytes without field 1 (Serial), in pieces (most shared with other maps). */
  parts: Uint8Array[];
  length: number;
  /** The pieces joined (computed on first use). */
  readonly body: Uint8Array;
  /** Hash of the map with every cached fragment replaced by its content hash: equal digests mean an identical map. */
  digest: string;
  /** The receiver's PeerConfig as a field-2 (tag 18) encoding: same tag in NetworkMap and SyncResponse. */
  ownConfigField: Uint8Array;
  remotePeersIsEmpty: boolean;
  /** Encoded RemotePeerConfig of the connectable peers, in pieces (for the legacy top-level copy). */
  remotePeerParts: Uint8Array[];
  remotePeerCount: number;
  firewallRuleCount: number;
}

export function isLoginExpired(state: AccountState, peer: Peer, now: number): boolean {
  const s = state.account.settings;
  if (!peer.userId || !peer.loginExpirationEnabled || !s.peerLoginExpirationEnabled) return false;
  return peer.lastLogin + s.peerLoginExpiration * 1000 <= now;
}

/**
 * Peers others may see but must not connect to (NetworkMap.offlinePeers): login expired, or owned by
 * a blocked user (blocking a user disconnects and blocks their peers).
 */
export function isListedOffline(state: AccountState, peer: Peer, now: number): boolean {
  if (isLoginExpired(state, peer, now)) return true;
  return peer.userId !== '' && state.users.get(peer.userId)?.blocked === true;
}

/** Three-state session deadline (protocol.md §4.9.2): zero timestamp = expiry does not apply. */
export function sessionExpiresAt(state: AccountState, peer: Peer): { seconds: number; nanos: number } {
  const s = state.account.settings;
  if (!peer.userId || !peer.loginExpirationEnabled || !s.peerLoginExpirationEnabled) return { seconds: 0, nanos: 0 };
  const ms = peer.lastLogin + s.peerLoginExpiration * 1000;
  return { seconds: Math.floor(ms / 1000), nanos: 0 };
}

export function fqdnOf(state: AccountState, peer: Peer): string {
  return `${peer.dnsLabel}.${state.account.dnsDomain}`;
}

export function peerConfigOf(state: AccountState, peer: Peer): management.PeerConfig {
  return {
    address: `${peer.ip}/${cidrBits(state.account.network)}`,
    dns: '',
    sshConfig: { sshEnabled: peer.sshEnabled, sshPubKey: Buffer.alloc(0), jwtConfig: undefined },
    fqdn: fqdnOf(state, peer),
    RoutingPeerDnsResolutionEnabled: state.account.settings.routingPeerDnsResolutionEnabled,
    LazyConnectionEnabled: state.account.settings.lazyConnectionEnabled,
    mtu: 0,
    autoUpdate: undefined,
    addressV6: Buffer.alloc(0),
  };
}

/** Compact IPv4 prefix: 4 address bytes + prefix length (protocol.md §2.4). */
export function compactPrefix(ip: string, bits: number): Buffer {
  const n = ipToInt(ip);
  return Buffer.from([(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255, bits]);
}

/**
 * A fragment with its 64-bit content hash: the map digest's mixing over the bytes, seeded per
 * process. Thousands of fragments are rebuilt on a policy change, and SHA-1 cost ~100x more. A hash
 * only decides whether a map is sent again: a collision could only hold back a change of that
 * fragment, and the fragments a peer controls (its name, keys, version) describe only that peer;
 * firewall fragments hold server-assigned IPs and the admin's rules.
 */
function chunk(bytes: Uint8Array): Chunk {
  const d = new Digest(CHUNK_SEED1, CHUNK_SEED2);
  d.bytes(bytes);
  return { bytes, h1: d.h1, h2: d.h2 };
}

/**
 * Map digest: two 32-bit lanes of murmur3-style mixing over the cached chunks' content hashes and
 * the bytes of the few uncached pieces. No allocation per map; 64 bits plus the length make an
 * accidental collision (a peer missing one update) vanishingly unlikely.
 */
class Digest {
  constructor(
    public h1 = 0x2545f491,
    public h2 = 0x5bd1e995,
  ) {}
  private static mix(h: number, k: number): number {
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    return (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  word(a: number, b: number): void {
    this.h1 = Digest.mix(this.h1, a);
    this.h1 = Digest.mix(this.h1, b);
    this.h2 = Digest.mix(this.h2, b ^ 0x9e3779b9);
    this.h2 = Digest.mix(this.h2, a);
  }
  bytes(b: Uint8Array): void {
    let i = 0;
    for (; i + 8 <= b.length; i += 8) {
      this.word(b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24), b[i + 4]! | (b[i + 5]! << 8) | (b[i + 6]! << 16) | (b[i + 7]! << 24));
    }
    let tail = b.length;
    for (; i < b.length; i++) tail = (tail * 257 + b[i]!) | 0;
    this.word(tail, b.length);
  }
  finish(length: number): string {
    return `${(this.h1 >>> 0).toString(36)}.${(this.h2 >>> 0).toString(36)}.${length.toString(36)}`;
  }
}

// Field tags (field number << 3 | wire type) used below.
const T_NM_PEERCONFIG = 18; // NetworkMap.peerConfig
const T_NM_REMOTE = 26; // NetworkMap.remotePeers (also SyncResponse.remotePeers)
const T_NM_ROUTE = 42; // NetworkMap.Routes
const T_NM_DNS = 50; // NetworkMap.DNSConfig
const T_DNS_NSGROUP = 18; // DNSConfig.NameServerGroups
const T_NM_OFFLINE = 58; // NetworkMap.offlinePeers
const T_NM_FW = 66; // NetworkMap.FirewallRules
const T_NM_ROUTES_FW = 82; // NetworkMap.routesFirewallRules
const T_ZONE_RECORD = 18; // CustomZone.Records
const T_DNS_ZONE = 26; // DNSConfig.CustomZones
const T_SR_MAP = 42; // SyncResponse.NetworkMap
const EMPTY = new Uint8Array(0);
const NO_DEADLINE = field(58, Timestamp.encode({ seconds: 0, nanos: 0 }).finish()); // SyncResponse.sessionExpiresAt = zero
const REMOTE_EMPTY = Uint8Array.of(32, 1); // NetworkMap.remotePeersIsEmpty = true
const FW_EMPTY = Uint8Array.of(72, 1); // NetworkMap.firewallRulesIsEmpty = true
const ROUTES_FW_EMPTY = Uint8Array.of(88, 1); // NetworkMap.routesFirewallRulesIsEmpty = true
const DNS_SERVICE_ENABLE = Uint8Array.of(8, 1); // DNSConfig.ServiceEnable = true
const SSH_AUTH = field(106, management.SSHAuth.encode({ UserIDClaim: 'sub', AuthorizedUsers: [], machineUsers: {} }).finish());

/** Firewall chunks a peer's fragments keep across policy changes (see fragmentsOf). */
const FW_CHUNKS_KEPT = 24;

function fragmentsOf(state: AccountState, q: Peer): PeerFragments {
  const hit = state.peerCache.get(q.id);
  if (hit) {
    if (hit.fwGen !== state.templateGen) {
      // Templates belong to rule objects, which a policy change replaces only for the policy that
      // changed: the chunks of all other rules stay valid. Only a cache grown with chunks of rules
      // that are gone is dropped.
      if (hit.fw.size > FW_CHUNKS_KEPT) hit.fw.clear();
      hit.fwGen = state.templateGen;
    }
    return hit;
  }
  const rp = management.RemotePeerConfig.encode({
    wgPubKey: q.key,
    allowedIps: [`${q.ip}/32`],
    sshConfig: { sshEnabled: false, sshPubKey: Buffer.from(q.sshKey, 'utf8'), jwtConfig: undefined },
    fqdn: fqdnOf(state, q),
    agentVersion: q.meta.netbirdVersion,
  }).finish();
  const records = [q.dnsLabel, ...q.extraDnsLabels].map((label) =>
    field(T_ZONE_RECORD, management.SimpleRecord.encode({ Name: `${label}.${state.account.dnsDomain}`, Type: 1, Class: 'IN', TTL: PEER_RECORD_TTL, RData: q.ip }).finish()),
  );
  const fwPeer = management.FirewallRule.encode(management.FirewallRule.fromPartial({ PeerIP: q.ip })).finish();
  const fwPeerWithPrefix = management.FirewallRule.encode(management.FirewallRule.fromPartial({ PeerIP: q.ip, sourcePrefixes: [compactPrefix(q.ip, 32)] })).finish();
  const f: PeerFragments = {
    ipInt: ipToInt(q.ip),
    ownConfigField: field(T_NM_PEERCONFIG, management.PeerConfig.encode(peerConfigOf(state, q)).finish()),
    remote: chunk(field(T_NM_REMOTE, rp)),
    offline: chunk(field(T_NM_OFFLINE, rp)),
    dns: chunk(Buffer.concat(records)),
    fwPeer,
    fwPeerWithPrefix,
    sshNew: compareVersion(q.meta.netbirdVersion, '0.60.0') >= 0,
    fwGen: state.templateGen,
    fw: new Map(),
  };
  state.peerCache.set(q.id, f);
  return f;
}

const PROTOCOLS: Record<PolicyRule['protocol'], management.RuleProtocol> = {
  all: management.RuleProtocol.ALL,
  tcp: management.RuleProtocol.TCP,
  udp: management.RuleProtocol.UDP,
  icmp: management.RuleProtocol.ICMP,
  'netbird-ssh': management.RuleProtocol.TCP,
};

type PortSel = { kind: 'all' } | { kind: 'port'; port: number } | { kind: 'range'; start: number; end: number };

/** Port selections a rule expands to, given receiver range support and whether the SSH server peer is new. */
function portSelections(rule: PolicyRule, portRanges: boolean, sshNew: boolean): PortSel[] {
  if (rule.protocol === 'netbird-ssh') {
    const out: PortSel[] = [{ kind: 'port', port: SSH_PORT }];
    if (sshNew) out.push({ kind: 'port', port: NETBIRD_SSH_PORT });
    return out;
  }
  if (rule.protocol !== 'tcp' && rule.protocol !== 'udp') return [{ kind: 'all' }];
  const out: PortSel[] = [];
  const seen = new Set<string>();
  const add = (s: PortSel, key: string): void => {
    if (seen.has(key)) return;
    seen.add(key);
    out.push(s);
  };
  for (const p of rule.ports) {
    const n = Number(p);
    if (Number.isInteger(n) && n > 0 && n < 65536) add({ kind: 'port', port: n }, `p${n}`);
  }
  for (const r of rule.portRanges) {
    if (r.start === r.end) add({ kind: 'port', port: r.start }, `p${r.start}`);
    else if (portRanges) add({ kind: 'range', start: r.start, end: r.end }, `r${r.start}-${r.end}`);
    // Agents older than 0.48.0 cannot read ranges (protocol.md §4.8); they get none for it.
  }
  return out.length > 0 ? out : [{ kind: 'all' }];
}

let nextTemplateId = 1;

/** FirewallRule templates (everything but the remote peer) of a rule for one trait combination. */
function templatesOf(ir: IndexedRule, dir: management.RuleDirection, portRanges: boolean, sshNew: boolean): RuleTemplate {
  const combo = (dir === management.RuleDirection.OUT ? 1 : 0) | (portRanges ? 2 : 0) | (sshNew ? 4 : 0);
  let t = ir.templates.get(combo);
  if (t) return t;
  t = {
    id: nextTemplateId++,
    rules: portSelections(ir.rule, portRanges, sshNew).map((sel) =>
      management.FirewallRule.encode({
        PeerIP: '',
        Direction: dir,
        Action: ir.rule.action === 'drop' ? management.RuleAction.DROP : management.RuleAction.ACCEPT,
        Protocol: PROTOCOLS[ir.rule.protocol],
        Port: sel.kind === 'port' ? String(sel.port) : '',
        PortInfo: sel.kind === 'port' ? { port: sel.port } : sel.kind === 'range' ? { range: { start: sel.start, end: sel.end } } : undefined,
        PolicyID: Buffer.from(ir.rule.id, 'utf8'),
        customProtocol: 0,
        sourcePrefixes: [],
      }).finish(),
    ),
  };
  ir.templates.set(combo, t);
  return t;
}

/**
 * The FirewallRules fields for remote peer `f` and template `t`: per port selection, the peer part
 * followed by the template part (protobuf merges the two into one message).
 */
function fwChunk(f: PeerFragments, t: RuleTemplate, withPrefix: boolean): Chunk & { count: number } {
  const key = t.id * 2 + (withPrefix ? 1 : 0);
  let c = f.fw.get(key);
  if (!c) {
    const peerPart = withPrefix ? f.fwPeerWithPrefix : f.fwPeer;
    const pieces: Uint8Array[] = [];
    for (const r of t.rules) {
      pieces.push(fieldHeader(T_NM_FW, peerPart.length + r.length), peerPart, r);
    }
    c = { ...chunk(Buffer.concat(pieces)), count: t.rules.length };
    f.fw.set(key, c);
  }
  return c;
}

/** 22054 once every peer of the account runs >= 0.59.0, else 5353 (protocol.md §4.6.5). */
export function forwarderPort(state: AccountState): number {
  // Memoized per serial: every change of a peer's version goes through a serial bump.
  const memo = state.forwarderPortMemo;
  if (memo && memo.serial === state.account.serial) return memo.port;
  let port = DNS_FORWARDER_PORT_NEW;
  for (const p of state.peers.values()) {
    if (compareVersion(p.meta.netbirdVersion, '0.59.0') < 0) {
      port = DNS_FORWARDER_PORT_OLD;
      break;
    }
  }
  state.forwarderPortMemo = { serial: state.account.serial, port };
  return port;
}

/**
 * Sorts fragments by overlay IP in place. Keys (ip * 2^16 + index, exact in a double) are sorted
 * natively in a Float64Array, much cheaper than a comparator for the thousands of peers a big map
 * lists; IPs are unique within an account, so the order is total.
 */
function sortByIp(list: PeerFragments[]): PeerFragments[] {
  const n = list.length;
  if (n < 2) return list;
  if (n > 65536) return list.sort((a, b) => a.ipInt - b.ipInt);
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) keys[i] = list[i]!.ipInt * 65536 + i;
  keys.sort();
  const copy = list.slice();
  for (let i = 0; i < n; i++) list[i] = copy[keys[i]! % 65536]!;
  return list;
}

/**
 * Fragments of many remote peers in map order (remote peers, DNS records, offline peers or firewall
 * rules), with the slot each came from, so one receiver's own fragments can be left out.
 */
interface Run {
  pieces: Uint8Array[];
  /** Content hashes, two words per piece. */
  hashes: number[];
  slots: number[];
  /** Firewall rules per piece (firewall runs only). */
  counts: number[];
  length: number;
  count: number;
  /** Shared runs only: the pieces joined, piece i at offs[i]..offs[i + 1], and piece indices by slot. */
  joined?: Uint8Array;
  offs?: Int32Array;
  bySlot?: Map<number, number[]>;
}

function newRun(): Run {
  return { pieces: [], hashes: [], slots: [], counts: [], length: 0, count: 0 };
}

function pushRun(run: Run, c: Chunk, slot: number, count: number): void {
  run.pieces.push(c.bytes);
  run.hashes.push(c.h1, c.h2);
  run.slots.push(slot);
  run.counts.push(count);
  run.length += c.bytes.length;
  run.count += count;
}

/** Joins a run for sharing: one buffer to slice receivers' maps from. */
function shareRun(run: Run): void {
  const offs = new Int32Array(run.pieces.length + 1);
  const bySlot = new Map<number, number[]>();
  for (let i = 0; i < run.pieces.length; i++) {
    offs[i + 1] = offs[i]! + run.pieces[i]!.length;
    const sl = run.slots[i]!;
    const at = bySlot.get(sl);
    if (at) at.push(i);
    else bySlot.set(sl, [i]);
  }
  run.joined = Buffer.concat(run.pieces, run.length);
  run.offs = offs;
  run.bySlot = bySlot;
}

/**
 * What a receiver sees of its remote peers: visible peers split into connectable (online) and
 * offline, as runs. A shared view covers every peer of the receiver's rules, the receiver included
 * when it is one of them; each receiver cuts its own fragments out (see cutRun).
 */
interface VisibleView {
  remote: Run;
  dns: Run;
  offline: Run;
  fw: Run;
  onlineCount: number;
  /** Shared views only: the slots covered and what they were when built, to tell when it is stale. */
  slots?: Int32Array;
  peers?: Array<Peer | undefined>;
  frags?: Array<PeerFragments | undefined>;
  /** Per slot: 0 connectable, 1 listed offline, 2 left out (gone or awaiting approval). */
  listing?: Uint8Array;
}

interface ReceiverTraits {
  portRanges: boolean;
  withPrefix: boolean;
  rxSshNew: boolean;
}

/** Builds the view of `visible` slots for a receiver with `rules` and `traits`. */
function buildView(state: AccountState, rules: PeerRules, traits: ReceiverTraits, visible: readonly number[], now: number, shared: boolean): VisibleView {
  const epoch = state.nextEpoch();
  const online = state.onlineMark;
  const frags = state.peerCache.bySlot;
  const onlineList: PeerFragments[] = [];
  const offlineList: PeerFragments[] = [];
  const slotOfFrag = new Map<PeerFragments, number>();
  const listing = shared ? new Uint8Array(visible.length) : undefined;
  const peers: Array<Peer | undefined> = [];
  const fragList: Array<PeerFragments | undefined> = [];
  for (let i = 0; i < visible.length; i++) {
    const sl = visible[i]!;
    const q = state.slotPeers[sl];
    if (shared) peers.push(q);
    if (q === undefined || q.approvalRequired) {
      if (listing) listing[i] = 2;
      fragList.push(undefined);
      continue;
    }
    const f = frags[sl] === undefined || frags[sl]!.fwGen !== state.templateGen ? fragmentsOf(state, q) : frags[sl]!;
    fragList.push(f);
    slotOfFrag.set(f, sl);
    if (isListedOffline(state, q, now)) {
      offlineList.push(f);
      if (listing) listing[i] = 1;
    } else {
      online[sl] = epoch;
      onlineList.push(f);
    }
  }
  // Stable order (by overlay IP), so equal states always encode to equal bytes.
  sortByIp(onlineList);
  sortByIp(offlineList);
  const view: VisibleView = { remote: newRun(), dns: newRun(), offline: newRun(), fw: newRun(), onlineCount: onlineList.length };
  for (const f of onlineList) pushRun(view.remote, f.remote, slotOfFrag.get(f)!, 0);
  const all = offlineList.length > 0 ? sortByIp([...onlineList, ...offlineList]) : onlineList;
  for (const f of all) pushRun(view.dns, f.dns, slotOfFrag.get(f)!, 0);
  for (const f of offlineList) pushRun(view.offline, f.offline, slotOfFrag.get(f)!, 0);

  // Firewall rules: rule by rule, for each connectable peer on the other side. A (peer, rule,
  // direction) can only come up twice when the receiver is on both sides of a bidirectional rule;
  // only those rules pay for de-duplication (fragments are per remote peer, so leaving one peer out
  // later never changes what the others de-duplicate).
  const sourceRules = new Set(rules.asSource);
  const onBothSides = new Set<IndexedRule>();
  for (const ir of rules.asDestination) if (sourceRules.has(ir) && ir.rule.bidirectional) onBothSides.add(ir);
  const seen = new Set<Chunk>();
  const emit = (ir: IndexedRule, slots: Int32Array, dir: management.RuleDirection, dedupe: boolean): void => {
    const fixed = ir.rule.protocol === 'netbird-ssh' ? undefined : templatesOf(ir, dir, traits.portRanges, false);
    for (let i = 0; i < slots.length; i++) {
      const sl = slots[i]!;
      if (online[sl] !== epoch) continue;
      const f = frags[sl]!;
      // The SSH server of a netbird-ssh rule is the destination side of the traffic.
      const t = fixed ?? templatesOf(ir, dir, traits.portRanges, dir === management.RuleDirection.IN ? traits.rxSshNew : f.sshNew);
      const c = fwChunk(f, t, traits.withPrefix);
      if (dedupe) {
        if (seen.has(c)) continue;
        seen.add(c);
      }
      pushRun(view.fw, c, sl, c.count);
    }
  };
  for (const ir of rules.asSource) {
    const both = onBothSides.has(ir);
    emit(ir, ir.destinationSlots, management.RuleDirection.OUT, both);
    if (ir.rule.bidirectional) emit(ir, ir.destinationSlots, management.RuleDirection.IN, both);
  }
  for (const ir of rules.asDestination) {
    const both = onBothSides.has(ir);
    emit(ir, ir.sourceSlots, management.RuleDirection.IN, both);
    if (ir.rule.bidirectional) emit(ir, ir.sourceSlots, management.RuleDirection.OUT, both);
  }
  if (shared) {
    shareRun(view.remote);
    shareRun(view.dns);
    shareRun(view.offline);
    shareRun(view.fw);
    view.slots = Int32Array.from(visible);
    view.peers = peers;
    view.frags = fragList;
    view.listing = listing;
  }
  return view;
}

/** A shared view is current while the rules, the covered peers, their fragments and listings are. */
function viewIsCurrent(state: AccountState, v: VisibleView, now: number): boolean {
  const slots = v.slots!;
  const frags = state.peerCache.bySlot;
  for (let i = 0; i < slots.length; i++) {
    const sl = slots[i]!;
    const q = state.slotPeers[sl];
    if (q !== v.peers![i]) return false;
    const left = q === undefined || q.approvalRequired;
    if (left !== (v.listing![i] === 2)) return false;
    if (left) continue;
    if (frags[sl] !== v.frags![i] || frags[sl]!.fwGen !== state.templateGen) return false;
    if (isListedOffline(state, q, now) !== (v.listing![i] === 1)) return false;
  }
  return true;
}

/**
 * Shared views of one account, by receiver signature (rules it is in, traits). Valid for one policy
 * index and template generation, within a byte budget (past it, receivers get views of their own).
 */
interface ViewCache {
  index: object;
  templateGen: number;
  views: Map<string, VisibleView>;
  bytes: number;
}

const VIEW_CACHE_BYTES = 64 * 1024 * 1024;
const viewCaches = new WeakMap<AccountState, ViewCache>();

function viewCacheOf(state: AccountState): ViewCache {
  const index = state.policyIndex();
  let c = viewCaches.get(state);
  if (!c || c.index !== index || c.templateGen !== state.templateGen) {
    c = { index, templateGen: state.templateGen, views: new Map(), bytes: 0 };
    viewCaches.set(state, c);
  }
  return c;
}

/**
 * Appends `run` without the pieces of `slot` to `parts` and its pieces' hashes to `digest` (the
 * same digest a view built for this receiver alone gives, so sharing never looks like a change);
 * returns [bytes, firewall rules] left out.
 */
function cutRun(run: Run, slot: number, parts: Uint8Array[], digest: Digest): [number, number] {
  const h = run.hashes;
  const own = run.joined === undefined ? undefined : run.bySlot!.get(slot);
  if (own === undefined) {
    if (run.joined !== undefined) {
      if (run.length > 0) parts.push(run.joined);
    } else for (const p of run.pieces) parts.push(p);
    for (let i = 0; i < h.length; i += 2) digest.word(h[i]!, h[i + 1]!);
    return [0, 0];
  }
  const offs = run.offs!;
  let from = 0;
  let bytes = 0;
  let count = 0;
  let next = 0;
  for (const k of own) {
    if (offs[k]! > from) parts.push(run.joined!.subarray(from, offs[k]!));
    from = offs[k + 1]!;
    bytes += offs[k + 1]! - offs[k]!;
    count += run.counts[k]!;
    for (; next < k; next++) digest.word(h[2 * next]!, h[2 * next + 1]!);
    next = k + 1;
  }
  for (; next < run.slots.length; next++) digest.word(h[2 * next]!, h[2 * next + 1]!);
  if (from < run.length) parts.push(run.joined!.subarray(from));
  return [bytes, count];
}

/** The receiver's view: shared with receivers of the same signature where possible. */
function viewFor(state: AccountState, peer: Peer, rules: PeerRules, traits: ReceiverTraits, now: number, share: boolean): VisibleView {
  const selfSlot = state.slotOf(peer.id) ?? -1;
  const extra = networkResourcePeers(state, peer.id);
  // Visible peers (management-api.md §5.1): everyone on the other side of the receiver's rules.
  const epoch = state.nextEpoch();
  const visit = state.visitMark;
  const visible: number[] = [];
  const mark = (sl: number): void => {
    if (visit[sl] !== epoch) {
      visit[sl] = epoch;
      visible.push(sl);
    }
  };
  // Network resources connect their routers with the peers that may reach them (objects.ts): such
  // receivers get a view of their own.
  const sharable = share && extra.size === 0 && (rules.asSource.length > 0 || rules.asDestination.length > 0);
  let key = '';
  let cache: ViewCache | undefined;
  if (sharable) {
    key = `${traits.portRanges ? 1 : 0}${traits.withPrefix ? 1 : 0}${traits.rxSshNew ? 1 : 0}${rulesKey(rules)}`;
    cache = viewCacheOf(state);
    const hit = cache.views.get(key);
    if (hit && viewIsCurrent(state, hit, now)) return hit;
    if (hit) {
      cache.views.delete(key);
      cache.bytes -= viewBytes(hit);
    }
  }
  const shareThis = cache !== undefined && cache.bytes < VIEW_CACHE_BYTES;
  if (!shareThis && selfSlot >= 0) visit[selfSlot] = epoch;
  for (const ir of rules.asSource) {
    const slots = ir.destinationSlots;
    for (let i = 0; i < slots.length; i++) mark(slots[i]!);
  }
  for (const ir of rules.asDestination) {
    const slots = ir.sourceSlots;
    for (let i = 0; i < slots.length; i++) mark(slots[i]!);
  }
  for (const id of extra) {
    const sl = state.slotOf(id);
    if (sl !== undefined) mark(sl);
  }
  const view = buildView(state, rules, traits, visible, now, shareThis);
  if (cache && shareThis) {
    cache.views.set(key, view);
    cache.bytes += viewBytes(view);
  }
  return view;
}

/** The rules part of a receiver signature, once per PeerRules (rebuilt with the policy index). */
const rulesKeys = new WeakMap<PeerRules, string>();
function rulesKey(rules: PeerRules): string {
  let k = rulesKeys.get(rules);
  if (k === undefined) {
    k = '';
    for (const ir of rules.asSource) k += `s${ir.order}`;
    for (const ir of rules.asDestination) k += `d${ir.order}`;
    rulesKeys.set(rules, k);
  }
  return k;
}

/** Small fields every map has, encoded once per value (DNS zone name, forwarder port). */
const zoneNameFields = new Map<string, Uint8Array>();
function zoneNameField(domain: string): Uint8Array {
  let f = zoneNameFields.get(domain);
  if (!f) {
    f = field(10, Buffer.from(`${domain}.`, 'utf8'));
    if (zoneNameFields.size > 64) zoneNameFields.clear();
    zoneNameFields.set(domain, f);
  }
  return f;
}
const forwarderFields = new Map<number, Uint8Array>();
function forwarderField(port: number): Uint8Array {
  let f = forwarderFields.get(port);
  if (!f) {
    f = new Uint8Array(1 + varintLength(port));
    f[0] = 32; // DNSConfig.ForwarderPort
    writeVarint(f, 1, port);
    forwarderFields.set(port, f);
  }
  return f;
}

function viewBytes(v: VisibleView): number {
  return v.remote.length + v.dns.length + v.offline.length + v.fw.length + 64 * (v.slots?.length ?? 0);
}

/**
 * Computes and encodes the map of `peer`. `fwdPort` is passed in because it depends on every peer
 * of the account; the caller computes it once per batch. Receivers in the same rules with the same
 * traits share one computed view of their remote peers (`share`, on unless a test compares).
 */
export function encodeNetworkMap(state: AccountState, peer: Peer, now: number, fwdPort: number, share = true): EncodedMap {
  const traits: ReceiverTraits = {
    portRanges: compareVersion(peer.meta.netbirdVersion, '0.48.0') >= 0,
    withPrefix: peer.meta.capabilities.includes(CAP_SOURCE_PREFIXES),
    rxSshNew: compareVersion(peer.meta.netbirdVersion, '0.60.0') >= 0,
  };
  const rules = state.rulesOf(peer.id);
  const view = viewFor(state, peer, rules, traits, now, share);
  const selfSlot = state.slotOf(peer.id) ?? -1;

  // `parts` are the bytes in order; the digest sees shared and cached pieces through their hashes.
  const parts: Uint8Array[] = [];
  const digest = new Digest();
  let length = 0;
  const raw = (b: Uint8Array): void => {
    parts.push(b);
    digest.bytes(b);
    length += b.length;
  };
  const runOut = (run: Run): number => {
    const [bytes, count] = cutRun(run, selfSlot, parts, digest);
    length += run.length - bytes;
    return run.count - count;
  };
  const runLength = (run: Run): number => run.length - (run.joined === undefined ? 0 : (run.bySlot!.get(selfSlot) ?? []).reduce((n, i) => n + run.offs![i + 1]! - run.offs![i]!, 0));

  const own = fragmentsOf(state, peer);
  raw(own.ownConfigField);

  const remoteFrom = parts.length;
  const remoteLen = runLength(view.remote);
  runOut(view.remote);
  const remotePeerParts = parts.slice(remoteFrom);
  const remoteEmpty = remoteLen === 0;
  if (remoteEmpty) raw(REMOTE_EMPTY);

  // Routes and user DNS (objects.ts; empty, and nearly free, when the account has none).
  for (const r of peerRoutes(state, peer.id)) raw(field(T_NM_ROUTE, management.Route.encode(r).finish()));
  const nsGroups = peerNameServerGroups(state, peer.id).map((g) => field(T_DNS_NSGROUP, management.NameServerGroup.encode(g).finish()));
  const userZones = peerCustomZones(state, peer.id).map((z) => field(T_DNS_ZONE, management.CustomZone.encode(z).finish()));
  let extraDnsLen = 0;
  for (const b of nsGroups) extraDnsLen += b.length;
  for (const b of userZones) extraDnsLen += b.length;

  // DNS: the peer zone with the receiver and every visible peer, unless DNS management is disabled
  // for one of the receiver's groups.
  const myGroups = state.peerGroups.get(peer.id);
  const dnsEnabled = !state.account.settings.dnsDisabledManagementGroups.some((g) => myGroups?.has(g));
  const fwdField = forwarderField(fwdPort);
  if (dnsEnabled) {
    const zoneName = zoneNameField(state.account.dnsDomain);
    const zoneLen = zoneName.length + own.dns.bytes.length + runLength(view.dns);
    const zoneHead = fieldHeader(T_DNS_ZONE, zoneLen);
    const dnsLen = DNS_SERVICE_ENABLE.length + extraDnsLen + zoneHead.length + zoneLen + fwdField.length;
    raw(fieldHeader(T_NM_DNS, dnsLen));
    raw(DNS_SERVICE_ENABLE);
    for (const b of nsGroups) raw(b);
    // The peer zone comes first among the zones; user zones (NonAuthoritative) follow it.
    raw(zoneHead);
    raw(zoneName);
    parts.push(own.dns.bytes);
    digest.word(own.dns.h1, own.dns.h2);
    length += own.dns.bytes.length;
    runOut(view.dns);
    for (const b of userZones) raw(b);
    raw(fwdField);
  } else {
    raw(fieldHeader(T_NM_DNS, fwdField.length));
    raw(fwdField);
  }

  runOut(view.offline);
  const fwCount = runOut(view.fw);
  // Always mark empty lists explicitly: without the flag old clients assume an old server and allow all.
  if (fwCount === 0) raw(FW_EMPTY);
  const routeRules = peerRoutesFirewallRules(state, peer.id);
  for (const r of routeRules) raw(field(T_NM_ROUTES_FW, management.RouteFirewallRule.encode(r).finish()));
  if (routeRules.length === 0) raw(ROUTES_FW_EMPTY);
  raw(SSH_AUTH);

  let body: Uint8Array | undefined;
  return {
    digest: digest.finish(length),
    parts,
    length,
    get body(): Uint8Array {
      return (body ??= Buffer.concat(parts, length));
    },
    ownConfigField: own.ownConfigField,
    remotePeersIsEmpty: remoteEmpty,
    remotePeerParts,
    remotePeerCount: view.onlineCount - (view.remote.joined !== undefined && view.remote.bySlot!.has(selfSlot) ? 1 : 0),
    firewallRuleCount: fwCount,
  };
}

/** The NetworkMap bytes with `serial` prepended. */
export function withSerial(body: Uint8Array, serial: number): Uint8Array {
  const w = new BinaryWriter();
  if (serial !== 0) w.uint32(8).uint64(serial);
  w.raw(body);
  return w.finish();
}

/**
 * A complete SyncResponse (legacy format, Version 0) for `map`, optionally with netbirdConfig
 * (first message only). Agents older than 0.29.3 also get the top-level remotePeers copy.
 * Written in one allocation (from `alloc`, e.g. a FramePool): head fields, then NetworkMap = Serial +
 * the map's parts, after SYNC_HEADROOM free bytes for in-place sealing (wire.ts).
 */
export function encodeSyncResponse(
  map: EncodedMap,
  serial: number,
  peer: Peer,
  sessionDeadline: { seconds: number; nanos: number },
  netbirdConfig: management.NetbirdConfig | undefined,
  alloc: (size: number) => Buffer = Buffer.allocUnsafe,
): Buffer {
  // Head fields by hand (tags: 1 netbirdConfig, 2 peerConfig, 4 remotePeersIsEmpty, 7 sessionExpiresAt);
  // Version 0 is the proto3 default and is not written.
  const cfg = netbirdConfig ? field(10, management.NetbirdConfig.encode(netbirdConfig).finish()) : EMPTY;
  // Peers without login expiration (all setup-key peers) share one encoded zero deadline.
  const deadline = sessionDeadline.seconds === 0 && sessionDeadline.nanos === 0 ? NO_DEADLINE : field(58, Timestamp.encode(sessionDeadline).finish());
  const headParts = [cfg, map.ownConfigField, map.remotePeersIsEmpty ? REMOTE_EMPTY : EMPTY, deadline];
  const headLen = cfg.length + map.ownConfigField.length + headParts[2]!.length + deadline.length;
  const v = peer.meta.netbirdVersion;
  const legacy = v !== '' && compareVersion(v, '0.29.3') < 0 ? map.remotePeerParts : [];
  let legacyLen = 0;
  for (const c of legacy) legacyLen += c.length;
  const serialLen = serial !== 0 ? 1 + varintLength(serial) : 0;
  const mapLen = serialLen + map.length;
  const total = headLen + legacyLen + 1 + varintLength(mapLen) + mapLen;
  const out = alloc(SYNC_HEADROOM + total);
  let pos = SYNC_HEADROOM;
  for (const h of headParts) {
    out.set(h, pos);
    pos += h.length;
  }
  for (const c of legacy) {
    out.set(c, pos);
    pos += c.length;
  }
  out[pos++] = T_SR_MAP;
  pos = writeVarint(out, pos, mapLen);
  if (serial !== 0) {
    out[pos++] = 8;
    pos = writeVarint(out, pos, serial);
  }
  for (const p of map.parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** A credential-refresh SyncResponse: only netbirdConfig set (protocol.md §4.5). */
export function encodeConfigOnly(netbirdConfig: management.NetbirdConfig): Buffer {
  return frameOf(management.SyncResponse.encode(management.SyncResponse.fromPartial({ netbirdConfig })).finish());
}

/**
 * The map a deleted peer gets before its stream is closed: current serial, no peers, no rules, and a
 * DNS config holding only the forwarder port (protocol.md §4.5 "End of stream").
 */
export function encodeDeletedPeerResponse(state: AccountState, peer: Peer, serial: number, fwdPort: number): Buffer {
  const map = management.NetworkMap.fromPartial({
    Serial: serial,
    peerConfig: peerConfigOf(state, peer),
    remotePeersIsEmpty: true,
    firewallRulesIsEmpty: true,
    routesFirewallRulesIsEmpty: true,
    DNSConfig: { ServiceEnable: false, NameServerGroups: [], CustomZones: [], ForwarderPort: fwdPort },
  });
  return frameOf(
    management.SyncResponse.encode(
      management.SyncResponse.fromPartial({ peerConfig: map.peerConfig, remotePeersIsEmpty: true, NetworkMap: map, Version: 0 }),
    ).finish(),
  );
}
