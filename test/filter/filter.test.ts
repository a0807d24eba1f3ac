import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PacketFilter, type FilterEvent, type FilterOptions } from '../../src/filter/index.js';
import { management } from '../../src/proto/index.js';
import { encodeCompactPrefix } from '../../src/shared/index.js';
import { ACK, FIN, PSH, RST, SYN, icmpUnreachable, ip, ping, rule, tcp, udp } from './packets.js';

const ME = '100.64.0.1', PEER = '100.64.0.2', OTHER = '100.64.0.3';
const ME6 = 'fd00::1', PEER6 = 'fd00::2', OTHER6 = 'fd00::3';
const { TCP, UDP, ICMP, ALL, UNKNOWN } = management.RuleProtocol;
const { DROP } = management.RuleAction;

function mk(opts: FilterOptions = {}): { f: PacketFilter; clock: { t: number } } {
  const clock = { t: 1_000_000 };
  const f = new PacketFilter({ sweepIntervalMs: 0, now: () => clock.t, ...opts });
  return { f, clock };
}

/** "Group peers may SSH to me": TCP 22 from PEER (v4 via PeerIP, v6 via sourcePrefixes). */
const sshRules = [
  rule({ PeerIP: PEER, Protocol: TCP, PortInfo: { port: 22 }, PolicyID: Buffer.from('ssh-policy') }),
  rule({ sourcePrefixes: [encodeCompactPrefix(`${PEER6}/128`)], Protocol: TCP, PortInfo: { port: 22 }, PolicyID: Buffer.from('ssh-policy') }),
];

test('TCP 22 from a group peer is accepted, other ports, other peers and ping are dropped', () => {
  const { f } = mk();
  const r = f.setRules(sshRules, { rulesIsEmpty: false });
  assert.equal(r.rejected, 0);
  assert.equal(f.inbound(tcp(PEER, ME, 40000, 22, SYN)), true);
  assert.equal(f.inbound(tcp(PEER, ME, 40001, 80, SYN)), false);
  assert.equal(f.inbound(tcp(OTHER, ME, 40002, 22, SYN)), false);
  assert.equal(f.inbound(ping(PEER, ME, 7)), false);
  assert.equal(f.inbound(udp(PEER, ME, 5000, 22)), false);
  // IPv6 likewise.
  assert.equal(f.inbound(tcp(PEER6, ME6, 40000, 22, SYN)), true);
  assert.equal(f.inbound(tcp(PEER6, ME6, 40000, 80, SYN)), false);
  assert.equal(f.inbound(tcp(OTHER6, ME6, 40000, 22, SYN)), false);
  assert.equal(f.inbound(ping(PEER6, ME6, 7)), false);
  const s = f.stats();
  assert.equal(s.accepted, 2);
  assert.equal(s.dropped.default, 7);
  assert.equal(s.connections, 2);
});

test('replies to our own outbound connections are accepted (conntrack), unrelated packets are not', () => {
  const { f } = mk();
  f.setRules(sshRules, { rulesIsEmpty: false });
  // TCP: we connect out to PEER:443.
  assert.equal(f.outbound(tcp(ME, PEER, 50000, 443, SYN)), true);
  assert.equal(f.inbound(tcp(PEER, ME, 443, 50000, SYN | ACK)), true);
  assert.equal(f.outbound(tcp(ME, PEER, 50000, 443, ACK)), true);
  assert.equal(f.inbound(tcp(PEER, ME, 443, 50000, ACK | PSH, 100)), true);
  assert.equal(f.inbound(tcp(PEER, ME, 443, 50001, ACK)), false, 'different port is not the same connection');
  assert.equal(f.inbound(tcp(OTHER, ME, 443, 50000, ACK)), false, 'different peer is not the same connection');
  // UDP.
  assert.equal(f.outbound(udp(ME, PEER, 53000, 53)), true);
  assert.equal(f.inbound(udp(PEER, ME, 53, 53000)), true);
  assert.equal(f.inbound(udp(PEER, ME, 53, 53001)), false);
  // ICMP echo by identifier, v4 and v6.
  assert.equal(f.outbound(ping(ME, PEER, 99)), true);
  assert.equal(f.inbound(ping(PEER, ME, 99, true)), true);
  assert.equal(f.inbound(ping(PEER, ME, 98, true)), false);
  assert.equal(f.outbound(ping(ME6, PEER6, 5)), true);
  assert.equal(f.inbound(ping(PEER6, ME6, 5, true)), true);
  // ICMP error about our UDP flow is related; one about an unknown flow is not.
  assert.equal(f.inbound(icmpUnreachable(PEER, ME, udp(ME, PEER, 53000, 53))), true);
  assert.equal(f.inbound(icmpUnreachable(PEER, ME, udp(ME, PEER, 53999, 53))), false);
  // Inbound-accepted SSH: our replies go out and its further packets come in.
  assert.equal(f.inbound(tcp(PEER, ME, 41000, 22, SYN)), true);
  assert.equal(f.outbound(tcp(ME, PEER, 22, 41000, SYN | ACK)), true);
  assert.equal(f.inbound(tcp(PEER, ME, 41000, 22, ACK)), true);
});

test('DROP beats ACCEPT regardless of order; port ranges; any-peer wildcard', () => {
  const { f } = mk();
  f.setRules([
    rule({ PeerIP: '0.0.0.0', Protocol: TCP, PortInfo: { range: { start: 8000, end: 8100 } }, PolicyID: Buffer.from('web') }),
    rule({ PeerIP: OTHER, Protocol: TCP, Action: DROP, Port: '8080', PolicyID: Buffer.from('block-other') }),
    rule({ sourcePrefixes: [encodeCompactPrefix('::/0')], Protocol: UDP, PortInfo: { range: { start: 0, end: 0 } } }),
  ], { rulesIsEmpty: false });
  assert.equal(f.inbound(tcp(PEER, ME, 1, 8000, SYN)), true);
  assert.equal(f.inbound(tcp(PEER, ME, 1, 8100, SYN)), true);
  assert.equal(f.inbound(tcp(PEER, ME, 1, 8101, SYN)), false);
  assert.equal(f.inbound(tcp(PEER, ME, 1, 7999, SYN)), false);
  assert.equal(f.inbound(tcp(OTHER, ME, 1, 8081, SYN)), true, 'wildcard covers every peer');
  assert.equal(f.inbound(tcp(OTHER, ME, 2, 8080, SYN)), false, 'the DROP rule wins');
  assert.equal(f.stats().dropped.rule, 1);
  // v4 wildcard does not open v6; the ::/0 UDP rule covers all ports of any v6 peer but not v4.
  assert.equal(f.inbound(tcp(PEER6, ME6, 1, 8000, SYN)), false);
  assert.equal(f.inbound(udp(OTHER6, ME6, 1, 12345)), true);
  assert.equal(f.inbound(udp(OTHER, ME, 1, 12345)), false);
});

test('ALL and ICMP protocol rules, PeerIP CIDR, and rejected rules', () => {
  const { f } = mk();
  const r = f.setRules([
    rule({ PeerIP: PEER, Protocol: ALL }),
    rule({ PeerIP: '100.64.1.0/24', Protocol: ICMP }),
    rule({ PeerIP: OTHER, Protocol: UNKNOWN }),
    rule({ PeerIP: 'not-an-ip', Protocol: TCP }),
    rule({ PeerIP: OTHER, Protocol: TCP, Port: 'abc' }),
  ], { rulesIsEmpty: false });
  assert.equal(r.accepted, 2);
  assert.equal(r.rejected, 3);
  assert.equal(f.inbound(tcp(PEER, ME, 1, 9999, SYN)), true);
  assert.equal(f.inbound(udp(PEER, ME, 1, 9999)), true);
  assert.equal(f.inbound(ping(PEER, ME, 1)), true);
  assert.equal(f.inbound(ip(PEER, ME, 47, Buffer.alloc(8))), true, 'GRE under an ALL rule');
  assert.equal(f.inbound(ping('100.64.1.77', ME, 1)), true);
  assert.equal(f.inbound(tcp('100.64.1.77', ME, 1, 22, SYN)), false);
  assert.equal(f.inbound(tcp(OTHER, ME, 1, 22, SYN)), false, 'UNKNOWN-protocol rule must not allow anything');
});

test('OUT rules are ignored by the stateful filter', () => {
  const { f } = mk();
  f.setRules([rule({ PeerIP: PEER, Protocol: ALL, Direction: management.RuleDirection.OUT })], { rulesIsEmpty: false });
  assert.equal(f.inbound(tcp(PEER, ME, 1, 22, SYN)), false);
  assert.equal(f.outbound(tcp(ME, OTHER, 1, 22, SYN)), true, 'outbound is always allowed');
});

test('empty rule list: deny all new inbound with the IsEmpty flag, allow all without it', () => {
  const { f } = mk();
  f.setRules([], { rulesIsEmpty: true });
  assert.equal(f.inbound(tcp(PEER, ME, 1, 22, SYN)), false);
  assert.equal(f.inbound(ping(PEER, ME, 1)), false);
  assert.equal(f.outbound(ping(ME, PEER, 3)), true);
  assert.equal(f.inbound(ping(PEER, ME, 3, true)), true, 'replies still come back');
  f.setRules([], { rulesIsEmpty: false });
  assert.equal(f.inbound(tcp(PEER, ME, 1, 22, SYN)), true);
  assert.equal(f.inbound(udp(OTHER6, ME6, 1, 5)), true);
  // A fresh filter allows everything until rules arrive.
  const g = mk().f;
  assert.equal(g.inbound(tcp(PEER, ME, 1, 22, SYN)), true);
});

test('rule changes revoke inbound connections that are no longer allowed', () => {
  const { f } = mk();
  f.setRules(sshRules, { rulesIsEmpty: false });
  assert.equal(f.inbound(tcp(PEER, ME, 40000, 22, SYN)), true);
  assert.equal(f.outbound(tcp(ME, PEER, 22, 40000, SYN | ACK)), true);
  assert.equal(f.outbound(tcp(ME, PEER, 50000, 443, SYN)), true, 'our own connection');
  f.setRules([], { rulesIsEmpty: true });
  assert.equal(f.inbound(tcp(PEER, ME, 40000, 22, ACK)), false);
  assert.equal(f.inbound(tcp(PEER, ME, 443, 50000, SYN | ACK)), true, 'our own connection survives');
  // Our later packets on the revoked connection must not re-admit the peer.
  f.outbound(tcp(ME, PEER, 22, 40000, ACK | PSH, 10));
  assert.equal(f.inbound(tcp(PEER, ME, 40000, 22, ACK)), false);
});

test('TCP close: RST ends at once, FIN both ways goes to time-wait, a new SYN reopens', () => {
  const { f, clock } = mk({ tcpTimeWaitMs: 5_000, tcpEstablishedMs: 3_600_000 });
  const ends: FilterEvent[] = [];
  f.onEvent((e) => { if (e.type === 'end') ends.push(e); });
  f.setRules([], { rulesIsEmpty: true });
  f.outbound(tcp(ME, PEER, 50000, 80, SYN));
  f.inbound(tcp(PEER, ME, 80, 50000, SYN | ACK));
  assert.equal(f.inbound(tcp(PEER, ME, 80, 50000, RST)), true, 'the RST itself passes');
  assert.equal(ends.length, 1);
  assert.equal(f.connectionCount, 0);
  assert.equal(f.inbound(tcp(PEER, ME, 80, 50000, ACK)), false);

  f.outbound(tcp(ME, PEER, 50001, 80, SYN));
  f.inbound(tcp(PEER, ME, 80, 50001, SYN | ACK));
  f.outbound(tcp(ME, PEER, 50001, 80, FIN | ACK));
  f.inbound(tcp(PEER, ME, 80, 50001, FIN | ACK));
  assert.equal(f.outbound(tcp(ME, PEER, 50001, 80, ACK)), true);
  clock.t += 4_000;
  assert.equal(f.sweep(), 0);
  clock.t += 2_000;
  assert.equal(f.sweep(), 1, 'time-wait expires after tcpTimeWaitMs, not the established timeout');
  assert.equal(f.inbound(tcp(PEER, ME, 80, 50001, ACK)), false);

  // A new SYN on a 5-tuple in time-wait starts a new connection (new flow id).
  const starts: FilterEvent[] = [];
  f.onEvent((e) => { if (e.type === 'start') starts.push(e); });
  f.outbound(tcp(ME, PEER, 50002, 80, SYN));
  f.inbound(tcp(PEER, ME, 80, 50002, SYN | ACK));
  f.outbound(tcp(ME, PEER, 50002, 80, FIN | ACK));
  f.inbound(tcp(PEER, ME, 80, 50002, FIN | ACK));
  f.outbound(tcp(ME, PEER, 50002, 80, SYN));
  assert.equal(starts.length, 2);
  assert.notDeepEqual(starts[0]!.flowId, starts[1]!.flowId);
  assert.equal(f.connectionCount, 1);
});

test('conntrack expiry per protocol and bounded table', () => {
  const { f, clock } = mk({ udpMs: 30_000, icmpMs: 10_000, maxConnections: 4 });
  f.setRules([], { rulesIsEmpty: true });
  f.outbound(udp(ME, PEER, 1000, 53));
  f.outbound(ping(ME, PEER, 1));
  clock.t += 15_000;
  f.sweep();
  assert.equal(f.inbound(ping(PEER, ME, 1, true)), false, 'ICMP expired');
  assert.equal(f.inbound(udp(PEER, ME, 53, 1000)), true, 'UDP still alive and refreshed');
  clock.t += 29_000;
  f.sweep();
  assert.equal(f.inbound(udp(PEER, ME, 53, 1000)), true);
  clock.t += 31_000;
  f.sweep();
  assert.equal(f.inbound(udp(PEER, ME, 53, 1000)), false, 'UDP expired');
  assert.equal(f.stats().expired, 2);
  // Fill the table: the 5th connection passes outbound but is not tracked, so its reply is dropped.
  for (let i = 0; i < 5; i++) assert.equal(f.outbound(udp(ME, PEER, 2000 + i, 53)), true);
  assert.equal(f.connectionCount, 4);
  assert.equal(f.stats().untracked, 1);
  for (let i = 0; i < 4; i++) assert.equal(f.inbound(udp(PEER, ME, 53, 2000 + i)), true);
  assert.equal(f.inbound(udp(PEER, ME, 53, 2004)), false);
});

test('table survives heavy churn (backward-shift deletion keeps entries findable)', () => {
  const { f } = mk({ maxConnections: 64 });
  f.setRules([], { rulesIsEmpty: true });
  const alive = new Set<number>();
  let seed = 42;
  const rnd = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let round = 0; round < 3000; round++) {
    const port = 1 + Math.floor(rnd() * 300);
    if (alive.has(port)) {
      // Close one connection by RST: removes a single slot from the middle of probe chains.
      assert.equal(f.inbound(tcp(PEER, ME, 9, port, RST)), true);
      alive.delete(port);
    } else if (alive.size < 64) {
      f.outbound(tcp(ME, PEER, port, 9, SYN));
      alive.add(port);
    }
    if (round % 10 === 0) {
      for (let p = 1; p <= 300; p++) assert.equal(f.inbound(tcp(PEER, ME, 9, p, SYN | ACK)), alive.has(p), `port ${p} round ${round}`);
    }
    assert.equal(f.connectionCount, alive.size);
  }
});

test('fragments: later fragments follow the first fragment verdict', () => {
  const { f } = mk();
  f.setRules([rule({ PeerIP: PEER, Protocol: UDP, Port: '5000' })], { rulesIsEmpty: false });
  const first = ip(PEER, ME, 17, Buffer.concat([udp(PEER, ME, 1, 5000).subarray(20), Buffer.alloc(16)]), { mf: true, id: 77 });
  assert.equal(f.inbound(first), true);
  assert.equal(f.inbound(ip(PEER, ME, 17, Buffer.alloc(100), { fragOffset: 3, id: 77 })), true);
  assert.equal(f.inbound(ip(PEER, ME, 17, Buffer.alloc(100), { fragOffset: 3, id: 78 })), false);
  assert.equal(f.inbound(ip(OTHER, ME, 17, Buffer.alloc(100), { fragOffset: 3, id: 77 })), false);
  // IPv6 fragment header.
  f.setRules([rule({ PeerIP: PEER6, Protocol: UDP, Port: '5000' })], { rulesIsEmpty: false });
  const first6 = ip(PEER6, ME6, 17, Buffer.concat([udp(PEER6, ME6, 1, 5000).subarray(40), Buffer.alloc(16)]), { mf: true, id: 9 });
  assert.equal(f.inbound(first6), true);
  assert.equal(f.inbound(ip(PEER6, ME6, 17, Buffer.alloc(64), { fragOffset: 10, id: 9 })), true);
  assert.equal(f.inbound(ip(PEER6, ME6, 17, Buffer.alloc(64), { fragOffset: 10, id: 10 })), false);
  assert.equal(f.stats().dropped.fragment, 3);
  assert.equal(f.outbound(ip(ME, PEER, 17, Buffer.alloc(64), { fragOffset: 10, id: 1 })), true, 'our own fragments pass');
});

test('events: start/end with per-connection counters and rule id, drop with the deciding rule', () => {
  const { f, clock } = mk({ udpMs: 1000 });
  const evs: FilterEvent[] = [];
  const off = f.onEvent((e) => evs.push(e));
  f.setRules([
    ...sshRules,
    rule({ PeerIP: OTHER, Protocol: ALL, Action: DROP, PolicyID: Buffer.from('deny-other') }),
  ], { rulesIsEmpty: false });
  const syn = tcp(PEER, ME, 40000, 22, SYN);
  f.inbound(syn);
  const synack = tcp(ME, PEER, 22, 40000, SYN | ACK);
  f.outbound(synack);
  const data = tcp(PEER, ME, 40000, 22, ACK | PSH, 50);
  f.inbound(data);
  f.inbound(tcp(PEER, ME, 40000, 22, RST));
  f.inbound(ping(OTHER, ME, 1));
  f.inbound(tcp(PEER, ME, 1, 80, SYN));
  f.outbound(udp(ME6, 'fd00::9', 5, 6, 10));
  clock.t += 2000; f.sweep();
  assert.deepEqual(evs.map((e) => e.type), ['start', 'end', 'drop', 'drop', 'start', 'end']);
  const [start, end, drop1, drop2, ustart, uend] = evs as [FilterEvent, FilterEvent, FilterEvent, FilterEvent, FilterEvent, FilterEvent];
  assert.equal(start.direction, 'ingress');
  assert.equal(start.ruleId?.toString(), 'ssh-policy');
  assert.deepEqual([...start.srcIp], [100, 64, 0, 2]);
  assert.deepEqual([...start.dstIp], [100, 64, 0, 1]);
  assert.equal(start.srcPort, 40000); assert.equal(start.dstPort, 22); assert.equal(start.protocol, 6);
  assert.equal(start.flowId.length, 16);
  assert.deepEqual(end.flowId, start.flowId, 'same flow id at start and end');
  assert.equal(end.rxPackets, 3); assert.equal(end.txPackets, 1);
  assert.equal(end.rxBytes, syn.length + data.length + 40); assert.equal(end.txBytes, synack.length);
  assert.equal(drop1.ruleId?.toString(), 'deny-other');
  assert.equal(drop1.protocol, 1); assert.equal(drop1.icmpType, 8);
  assert.equal(drop2.ruleId, undefined, 'default deny has no rule');
  assert.equal(drop2.dstPort, 80);
  assert.notDeepEqual(drop1.flowId, drop2.flowId);
  assert.equal(ustart.direction, 'egress'); assert.equal(ustart.srcIp.length, 16);
  assert.equal(uend.txPackets, 1); assert.equal(uend.txBytes, 58);
  off();
  f.inbound(ping(OTHER, ME, 2));
  assert.equal(evs.length, 6, 'unsubscribed');
});

test('random bytes never throw (property)', () => {
  const { f } = mk({ maxConnections: 128 });
  f.setRules(sshRules, { rulesIsEmpty: false });
  fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 120 }), fc.boolean(), (bytes, dir) => {
    const b = Buffer.from(bytes);
    const r = dir ? f.inbound(b) : f.outbound(b);
    assert.equal(typeof r, 'boolean');
  }), { numRuns: 3000 });
  // Random bytes behind a valid IPv4/IPv6 version nibble exercise the header walkers.
  fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 120 }), fc.constantFrom(0x45, 0x46, 0x60), (bytes, first) => {
    const b = Buffer.from(bytes); b[0] = first;
    f.inbound(b); f.outbound(b);
  }), { numRuns: 3000 });
  f.close();
});

test('IPv6 extension headers are walked; ICMPv6 errors about our flows are related', () => {
  const { f } = mk();
  f.setRules(sshRules, { rulesIsEmpty: false });
  // Hop-by-hop options header (8 bytes) in front of TCP to port 22 / 80.
  const withHbh = (dport: number): Buffer => {
    const pkt = tcp(PEER6, ME6, 40000, dport, SYN);
    const hbh = Buffer.alloc(8); hbh[0] = 6; // next header TCP, length 0 => 8 bytes
    const out = Buffer.concat([pkt.subarray(0, 40), hbh, pkt.subarray(40)]);
    out[6] = 0; out.writeUInt16BE(out.length - 40, 4);
    return out;
  };
  assert.equal(f.inbound(withHbh(22)), true);
  assert.equal(f.inbound(withHbh(80)), false);
  assert.equal(f.outbound(udp(ME6, PEER6, 5353, 53)), true);
  assert.equal(f.inbound(icmpUnreachable(PEER6, ME6, udp(ME6, PEER6, 5353, 53))), true);
  assert.equal(f.inbound(icmpUnreachable(PEER6, ME6, udp(ME6, PEER6, 5354, 53))), false);
  // Truncated headers are malformed, not accepted.
  assert.equal(f.inbound(withHbh(22).subarray(0, 50)), false);
  assert.ok(f.stats().dropped.malformed >= 1);
});

test('forwarded traffic (a routing peer) is judged by the route firewall rules, ours by the peer rules', () => {
  const { f } = mk();
  const LAN_HOST = '192.168.50.10', OTHER_LAN = '10.9.0.1';
  f.setLocalAddresses([ME, ME6]);
  f.setRules(sshRules, { rulesIsEmpty: false });
  f.setRouteRules([
    management.RouteFirewallRule.fromPartial({
      sourceRanges: [`${PEER}/32`], destination: '192.168.50.0/24', protocol: TCP, portInfo: { port: 80 },
      PolicyID: Buffer.from('lan-web'), RouteID: 'route-1',
    }),
    management.RouteFirewallRule.fromPartial({
      sourceRanges: [`${PEER}/32`], destination: '192.168.50.10/32', protocol: TCP, portInfo: { port: 81 },
      action: DROP, PolicyID: Buffer.from('deny-81'),
    }),
  ], { rulesIsEmpty: true });
  // Routed: the route rule (port 80 into the LAN prefix, from PEER only).
  assert.equal(f.inbound(tcp(PEER, LAN_HOST, 40000, 80, SYN)), true);
  assert.equal(f.inbound(tcp(PEER, LAN_HOST, 40001, 22, SYN)), false, 'peer rules do not open routed ports');
  assert.equal(f.inbound(tcp(OTHER, LAN_HOST, 40002, 80, SYN)), false, 'source not in the rule');
  assert.equal(f.inbound(tcp(PEER, OTHER_LAN, 40003, 80, SYN)), false, 'destination outside the routed prefix');
  // Routed DROP for a narrower destination wins; ACCEPT of the wide prefix still covers port 80 there.
  const events: FilterEvent[] = [];
  f.onEvent((e) => events.push(e));
  assert.equal(f.inbound(tcp(PEER, LAN_HOST, 40004, 81, SYN)), false);
  assert.equal(events.at(-1)?.type, 'drop');
  assert.equal(Buffer.from(events.at(-1)?.ruleId ?? []).toString(), 'deny-81');
  // To our own address: peer rules only (the route rule's port 80 does not open us).
  assert.equal(f.inbound(tcp(PEER, ME, 40005, 22, SYN)), true);
  assert.equal(f.inbound(tcp(PEER, ME, 40006, 80, SYN)), false);
  // The routed connection is tracked: the LAN's reply goes back out, and the next packets come in.
  assert.equal(f.outbound(tcp(LAN_HOST, PEER, 80, 40000, SYN | ACK)), true);
  assert.equal(f.inbound(tcp(PEER, LAN_HOST, 40000, 80, ACK)), true);
  // Route rules removed (empty with the IsEmpty flag): routed connections are revoked, ours stay.
  f.setRouteRules([], { rulesIsEmpty: true });
  assert.equal(f.inbound(tcp(PEER, LAN_HOST, 40000, 80, ACK)), false);
  assert.equal(f.inbound(tcp(PEER, ME, 40005, 22, ACK)), true);
  // An old server (no flag, no rules): forwarding is allowed.
  f.setRouteRules([], { rulesIsEmpty: false });
  assert.equal(f.inbound(tcp(OTHER, OTHER_LAN, 40007, 9, SYN)), true);
});
