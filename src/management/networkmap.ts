import { createHash } from 'node:crypto';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { management } from '../proto/index.js';
import type { AccountState, IndexedRule } from './state.js';
import type { Peer, PolicyRule } from './types.js';
import { cidrBits, compareVersion, ipToInt } from './util.js';

/**
 * Network map of one peer (protocol.md §4.6, management-api.md §5), computed from the in-memory
 * account and encoded straight to protobuf bytes.
 *
 * Speed matters here: one policy change can require thousands of maps, each listing hundreds of
 * peers. Every per-remote-peer fragment (RemotePeerConfig, DNS record, FirewallRule) depends only on
 * the remote peer and a few receiver traits, so its bytes are cached on the remote peer (dropped when
 * that peer changes) and spliced into each map as a length-delimited field. The map is written
 * without its Serial; the serial is prepended at send time (protobuf merges concatenated fields), so
 * the same bytes also give the digest used to tell whether a peer's map really changed.
 */

const PEER_RECORD_TTL = 300;
const DNS_FORWARDER_PORT_NEW = 22054;
const DNS_FORWARDER_PORT_OLD = 5353;
const SSH_PORT = 22;
const NETBIRD_SSH_PORT = 22022;
const CAP_SOURCE_PREFIXES = management.PeerCapability.PeerCapabilitySourcePrefixes;

/** Traits of the receiving peer that change the bytes of fragments about others. */
interface Receiver {
  peer: Peer;
  portRanges: boolean;
  sourcePrefixes: boolean;
}

export interface EncodedMap {
  /** NetworkMap bytes without field 1 (Serial). */
  body: Uint8Array;
  /** SHA-1 of `body`: equal digests mean an identical map. */
  digest: string;
  peerConfig: management.PeerConfig;
  remotePeersIsEmpty: boolean;
  /** Encoded RemotePeerConfig of each connectable peer (for the legacy top-level copy). */
  remotePeerChunks: Uint8Array[];
  remotePeerCount: number;
  firewallRuleCount: number;
}

export function isLoginExpired(state: AccountState, peer: Peer, now: number): boolean {
  const s = state.account.settings;
  if (!peer.userId || !peer.loginExpirationEnabled || !s.peerLoginExpirationEnabled) return false;
  return peer.lastLogin + s.peerLoginExpiration * 1000 <= now;
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

function cached(state: AccountState, peerId: string, key: string, make: () => Uint8Array): Uint8Array {
  let m = state.peerCache.get(peerId);
  if (!m) state.peerCache.set(peerId, (m = new Map()));
  let v = m.get(key);
  if (!v) m.set(key, (v = make()));
  return v;
}

function remotePeerBytes(state: AccountState, q: Peer): Uint8Array {
  return cached(state, q.id, 'rp', () =>
    management.RemotePeerConfig.encode({
      wgPubKey: q.key,
      allowedIps: [`${q.ip}/32`],
      sshConfig: { sshEnabled: false, sshPubKey: Buffer.from(q.sshKey, 'utf8'), jwtConfig: undefined },
      fqdn: fqdnOf(state, q),
      agentVersion: q.meta.netbirdVersion,
    }).finish(),
  );
}

function dnsRecordsBytes(state: AccountState, q: Peer): Uint8Array[] {
  const m = state.peerCache.get(q.id);
  const hit = m?.get('dns0');
  const out: Uint8Array[] = [];
  if (hit) {
    out.push(hit);
    for (let i = 1; ; i++) {
      const more = m!.get(`dns${i}`);
      if (!more) break;
      out.push(more);
    }
    return out;
  }
  const labels = [q.dnsLabel, ...q.extraDnsLabels];
  labels.forEach((label, i) => {
    out.push(
      cached(state, q.id, `dns${i}`, () =>
        management.SimpleRecord.encode({ Name: `${label}.${state.account.dnsDomain}`, Type: 1, Class: 'IN', TTL: PEER_RECORD_TTL, RData: q.ip }).finish(),
      ),
    );
  });
  return out;
}

const PROTOCOLS: Record<PolicyRule['protocol'], management.RuleProtocol> = {
  all: management.RuleProtocol.ALL,
  tcp: management.RuleProtocol.TCP,
  udp: management.RuleProtocol.UDP,
  icmp: management.RuleProtocol.ICMP,
  'netbird-ssh': management.RuleProtocol.TCP,
};

type PortSel = { kind: 'all' } | { kind: 'port'; port: number } | { kind: 'range'; start: number; end: number };

/** Port selections a rule expands to, for the given receiver and SSH-server peer. */
function portSelections(rule: PolicyRule, rx: Receiver, sshServer: Peer): PortSel[] {
  if (rule.protocol === 'netbird-ssh') {
    const out: PortSel[] = [{ kind: 'port', port: SSH_PORT }];
    if (compareVersion(sshServer.meta.netbirdVersion, '0.60.0') >= 0) out.push({ kind: 'port', port: NETBIRD_SSH_PORT });
    return out;
  }
  if (rule.protocol !== 'tcp' && rule.protocol !== 'udp') return [{ kind: 'all' }];
  const out: PortSel[] = [];
  for (const p of rule.ports) {
    const n = Number(p);
    if (Number.isInteger(n) && n > 0 && n < 65536) out.push({ kind: 'port', port: n });
  }
  for (const r of rule.portRanges) {
    if (r.start === r.end) out.push({ kind: 'port', port: r.start });
    else if (rx.portRanges) out.push({ kind: 'range', start: r.start, end: r.end });
    // Agents older than 0.48.0 cannot read ranges (protocol.md §4.8); they get none for it.
  }
  return out.length > 0 ? out : [{ kind: 'all' }];
}

function firewallRuleBytes(state: AccountState, q: Peer, ir: IndexedRule, dir: management.RuleDirection, sel: PortSel, rx: Receiver): Uint8Array {
  const selKey = sel.kind === 'all' ? 'a' : sel.kind === 'port' ? `p${sel.port}` : `r${sel.start}-${sel.end}`;
  const key = `fw|${ir.rule.id}|${dir}|${selKey}|${rx.sourcePrefixes ? 1 : 0}|${ir.rule.action}|${ir.rule.protocol}`;
  return cached(state, q.id, key, () =>
    management.FirewallRule.encode({
      PeerIP: q.ip,
      Direction: dir,
      Action: ir.rule.action === 'drop' ? management.RuleAction.DROP : management.RuleAction.ACCEPT,
      Protocol: PROTOCOLS[ir.rule.protocol],
      Port: sel.kind === 'port' ? String(sel.port) : '',
      PortInfo:
        sel.kind === 'port' ? { port: sel.port } : sel.kind === 'range' ? { range: { start: sel.start, end: sel.end } } : undefined,
      PolicyID: Buffer.from(ir.rule.id, 'utf8'),
      customProtocol: 0,
      sourcePrefixes: rx.sourcePrefixes ? [compactPrefix(q.ip, 32)] : [],
    }).finish(),
  );
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
 * Computes and encodes the map of `peer`. `fwdPort` is passed in because it depends on every peer
 * of the account; the caller computes it once per batch.
 */
export function encodeNetworkMap(state: AccountState, peer: Peer, now: number, fwdPort: number): EncodedMap {
  const rx: Receiver = {
    peer,
    portRanges: compareVersion(peer.meta.netbirdVersion, '0.48.0') >= 0,
    sourcePrefixes: peer.meta.capabilities.includes(CAP_SOURCE_PREFIXES),
  };
  const rules = state.rulesOf(peer.id);

  // Remote peer -> the (rule, direction) pairs relating it to the receiver, in rule order.
  const relations = new Map<string, Array<{ ir: IndexedRule; dir: management.RuleDirection }>>();
  const relate = (qid: string, ir: IndexedRule, dir: management.RuleDirection): void => {
    if (qid === peer.id) return;
    let l = relations.get(qid);
    if (!l) relations.set(qid, (l = []));
    l.push({ ir, dir });
  };
  for (const ir of rules.asSource) {
    for (const q of ir.destinations) {
      relate(q, ir, management.RuleDirection.OUT);
      if (ir.rule.bidirectional) relate(q, ir, management.RuleDirection.IN);
    }
  }
  for (const ir of rules.asDestination) {
    for (const q of ir.sources) {
      relate(q, ir, management.RuleDirection.IN);
      if (ir.rule.bidirectional) relate(q, ir, management.RuleDirection.OUT);
    }
  }

  const w = new BinaryWriter();
  const peerConfig = peerConfigOf(state, peer);
  management.PeerConfig.encode(peerConfig, w.uint32(18).fork()).join();

  // Stable order: by overlay IP, so equal states always encode to equal bytes.
  const visible: Peer[] = [];
  for (const qid of relations.keys()) {
    const q = state.peers.get(qid);
    if (q && !q.approvalRequired) visible.push(q);
  }
  visible.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));

  const online: Peer[] = [];
  const offline: Peer[] = [];
  for (const q of visible) (isLoginExpired(state, q, now) ? offline : online).push(q);

  const remotePeerChunks: Uint8Array[] = [];
  for (const q of online) {
    const bytes = remotePeerBytes(state, q);
    remotePeerChunks.push(bytes);
    w.uint32(26).bytes(bytes);
  }
  if (online.length === 0) w.uint32(32).bool(true);

  // DNS: the peer zone with every visible peer and the receiver itself, unless DNS management is
  // disabled for one of the receiver's groups.
  const myGroups = state.peerGroups.get(peer.id);
  const dnsEnabled = !state.account.settings.dnsDisabledManagementGroups.some((g) => myGroups?.has(g));
  w.uint32(50).fork();
  if (dnsEnabled) {
    w.uint32(8).bool(true);
    w.uint32(26).fork();
    w.uint32(10).string(`${state.account.dnsDomain}.`);
    for (const r of dnsRecordsBytes(state, peer)) w.uint32(18).bytes(r);
    for (const q of visible) for (const r of dnsRecordsBytes(state, q)) w.uint32(18).bytes(r);
    w.join();
  }
  w.uint32(32).int64(fwdPort);
  w.join();

  for (const q of offline) w.uint32(58).bytes(remotePeerBytes(state, q));

  let fwCount = 0;
  const seen = new Set<Uint8Array>();
  for (const q of online) {
    for (const { ir, dir } of relations.get(q.id)!) {
      const sshServer = dir === management.RuleDirection.IN ? peer : q;
      for (const sel of portSelections(ir.rule, rx, sshServer)) {
        const bytes = firewallRuleBytes(state, q, ir, dir, sel, rx);
        // Identical (rule, direction, port) triples yield the same cached buffer: de-duplicate by identity.
        if (seen.has(bytes)) continue;
        seen.add(bytes);
        w.uint32(66).bytes(bytes);
        fwCount++;
      }
    }
  }
  // Always mark empty lists explicitly: without the flag old clients assume an old server and allow all.
  if (fwCount === 0) w.uint32(72).bool(true);
  w.uint32(88).bool(true);
  management.SSHAuth.encode({ UserIDClaim: 'sub', AuthorizedUsers: [], machineUsers: {} }, w.uint32(106).fork()).join();

  const body = w.finish();
  return {
    body,
    digest: createHash('sha1').update(body).digest('base64'),
    peerConfig,
    remotePeersIsEmpty: online.length === 0,
    remotePeerChunks,
    remotePeerCount: online.length,
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
 */
export function encodeSyncResponse(
  map: EncodedMap,
  serial: number,
  peer: Peer,
  sessionDeadline: { seconds: number; nanos: number },
  netbirdConfig: management.NetbirdConfig | undefined,
): Uint8Array {
  const head = management.SyncResponse.encode({
    netbirdConfig,
    peerConfig: map.peerConfig,
    remotePeers: [],
    remotePeersIsEmpty: map.remotePeersIsEmpty,
    NetworkMap: undefined,
    Checks: [],
    sessionExpiresAt: sessionDeadline,
    NetworkMapEnvelope: undefined,
    Version: 0,
  });
  const v = peer.meta.netbirdVersion;
  if (v !== '' && compareVersion(v, '0.29.3') < 0) {
    for (const chunk of map.remotePeerChunks) head.uint32(26).bytes(chunk);
  }
  head.uint32(42).bytes(withSerial(map.body, serial));
  return head.finish();
}

/** A credential-refresh SyncResponse: only netbirdConfig set (protocol.md §4.5). */
export function encodeConfigOnly(netbirdConfig: management.NetbirdConfig): Uint8Array {
  return management.SyncResponse.encode(management.SyncResponse.fromPartial({ netbirdConfig })).finish();
}

/**
 * The map a deleted peer gets before its stream is closed: current serial, no peers, no rules, and a
 * DNS config holding only the forwarder port (protocol.md §4.5 "End of stream").
 */
export function encodeDeletedPeerResponse(state: AccountState, peer: Peer, serial: number, fwdPort: number): Uint8Array {
  const map = management.NetworkMap.fromPartial({
    Serial: serial,
    peerConfig: peerConfigOf(state, peer),
    remotePeersIsEmpty: true,
    firewallRulesIsEmpty: true,
    routesFirewallRulesIsEmpty: true,
    DNSConfig: { ServiceEnable: false, NameServerGroups: [], CustomZones: [], ForwarderPort: fwdPort },
  });
  return management.SyncResponse.encode(
    management.SyncResponse.fromPartial({ peerConfig: map.peerConfig, remotePeersIsEmpty: true, NetworkMap: map, Version: 0 }),
  ).finish();
}
