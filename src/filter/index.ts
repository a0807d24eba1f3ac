/**
 * Stateful userspace packet filter for the WireGuard data path (protocol.md §4.6.2).
 *
 * - Outbound (our TUN -> a peer): always allowed; new connections are tracked so their replies
 *   come back in. OUT rules are therefore not needed and ignored.
 * - Inbound (a peer -> our TUN): packets of a tracked connection pass; anything else is a new
 *   connection judged by the IN rules (DROP before ACCEPT), tracked when accepted.
 * - Empty rule list: with `rulesIsEmpty` every new inbound connection is denied; without it (an
 *   ancient server) everything is allowed.
 * - Forwarded traffic (inbound to an address that is not ours, once `setLocalAddresses` named
 *   ours): judged by the route firewall rules instead (§4.6.4), with the same empty-list rule.
 *
 * The per-packet path parses headers by offset into a reused parser, hashes the 5-tuple into a
 * typed-array table and allocates nothing; objects are made only for flow events. Expiry runs in
 * a periodic sweep, not per-packet timers.
 */
import { randomBytes } from 'node:crypto';
import { management } from '../proto/index.js';
import {
  ConnTable, FIN_LOCAL, FIN_REMOTE, ORIGIN_EGRESS, ORIGIN_INGRESS, TCP_ESTABLISHED, TCP_FIN_WAIT, TCP_SYN_SENT, TCP_TIME_WAIT,
} from './conntrack.js';
import {
  FRAG_FIRST, FRAG_LATER, PROTO_TCP, PROTO_UDP, PacketParser, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, wordsToBytes,
} from './packet.js';
import {
  BUCKET_ICMP, BUCKET_OTHER, BUCKET_TCP, BUCKET_UDP, CompiledRouteRules, CompiledRules, VERDICT_ACCEPT, VERDICT_DROP, compileRouteRules, compileRules,
} from './rules.js';
import { ipToBytes } from '../shared/index.js';

export interface FilterOptions {
  /** Maximum tracked connections (default 65536). When full, new connections pass untracked. */
  maxConnections?: number;
  /** Idle timeouts in milliseconds. */
  tcpHandshakeMs?: number;
  tcpEstablishedMs?: number;
  tcpFinMs?: number;
  tcpTimeWaitMs?: number;
  udpMs?: number;
  icmpMs?: number;
  otherMs?: number;
  /** How long a first fragment's verdict covers the later fragments of the same datagram. */
  fragmentMs?: number;
  /** Sweep period (default 10 s); 0 disables the timer (call sweep() yourself). */
  sweepIntervalMs?: number;
  /** Clock in milliseconds (tests inject one). */
  now?: () => number;
}

export type FlowEventType = 'start' | 'end' | 'drop';
export type FlowDirection = 'ingress' | 'egress';

/** One connection start/end or drop, for flow reporting (protocol.md §8). */
export interface FilterEvent {
  type: FlowEventType;
  /** 16 random bytes identifying the connection (fresh for each drop). */
  flowId: Buffer;
  /** PolicyID of the rule that decided, when one did. */
  ruleId: Buffer | undefined;
  direction: FlowDirection;
  /** IP protocol number (1, 6, 17, 58, ...). */
  protocol: number;
  /** Initiator and responder addresses as raw 4- or 16-byte values. */
  srcIp: Buffer;
  dstIp: Buffer;
  srcPort: number;
  dstPort: number;
  icmpType: number;
  icmpCode: number;
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
  /** Milliseconds (filter clock) when the event happened. */
  timestamp: number;
}

export type DropReason = 'rule' | 'default' | 'malformed' | 'fragment';

export interface FilterStats {
  accepted: number;
  dropped: Record<DropReason, number>;
  /** Connections currently tracked. */
  connections: number;
  /** New connections accepted but not tracked because the table was full. */
  untracked: number;
  started: number;
  ended: number;
  expired: number;
}

export interface SetRulesResult {
  /** Rules taken (IN rules indexed, OUT rules acknowledged). */
  accepted: number;
  /** Rules refused (unknown protocol, bad address/port), with reasons. */
  rejected: number;
  rejections: string[];
}

const MODE_RULES = 0;
const MODE_ALLOW_ALL = 1;
const CLOCK_TICK_MS = 250;

const FRAG_SLOTS = 64;
const FRAG_WORDS = 11; // fam, proto, id, src[4], dst[4]; expiry kept in a Float64Array

export class PacketFilter {
  private readonly opts: Required<Omit<FilterOptions, 'now'>>;
  private readonly nowFn: (() => number) | undefined;
  /** Coarse clock (ms) refreshed by a timer; a typed-array cell so reading it never boxes. */
  private readonly clock = new Float64Array(1);
  private clockTimer: NodeJS.Timeout | undefined;
  private readonly ct: ConnTable;
  private readonly p = new PacketParser();
  private readonly inner = new PacketParser();
  private rules: CompiledRules = compileRules([]);
  private mode = MODE_ALLOW_ALL;
  private routeRules: CompiledRouteRules = compileRouteRules([]);
  private routeMode = MODE_ALLOW_ALL;
  /** Our own IPv4 addresses, and IPv6 ones as 4 words each; both empty = every address is ours. */
  private local4 = new Uint32Array(0);
  private local6 = new Uint32Array(0);
  private gen = 1;
  private readonly listeners: Array<(ev: FilterEvent) => void> = [];
  private timer: NodeJS.Timeout | undefined;

  private readonly fragKeys = new Uint32Array(FRAG_SLOTS * FRAG_WORDS);
  private readonly fragExpiry = new Float64Array(FRAG_SLOTS);
  private fragNext = 0;

  private accepted = 0;
  private readonly dropped: Record<DropReason, number> = { rule: 0, default: 0, malformed: 0, fragment: 0 };
  private untracked = 0;
  private started = 0;
  private ended = 0;
  private expired = 0;

  constructor(options: FilterOptions = {}) {
    this.opts = {
      maxConnections: options.maxConnections ?? 65536,
      tcpHandshakeMs: options.tcpHandshakeMs ?? 60_000,
      tcpEstablishedMs: options.tcpEstablishedMs ?? 2 * 3600_000,
      tcpFinMs: options.tcpFinMs ?? 60_000,
      tcpTimeWaitMs: options.tcpTimeWaitMs ?? 10_000,
      udpMs: options.udpMs ?? 60_000,
      icmpMs: options.icmpMs ?? 30_000,
      otherMs: options.otherMs ?? 60_000,
      fragmentMs: options.fragmentMs ?? 30_000,
      sweepIntervalMs: options.sweepIntervalMs ?? 10_000,
    };
    this.nowFn = options.now;
    this.clock[0] = Date.now();
    if (this.nowFn === undefined) {
      this.clockTimer = setInterval(() => { this.clock[0] = Date.now(); }, CLOCK_TICK_MS);
      this.clockTimer.unref();
    }
    this.ct = new ConnTable(this.opts.maxConnections);
    if (this.opts.sweepIntervalMs > 0) {
      this.timer = setInterval(() => this.sweep(), this.opts.sweepIntervalMs);
      this.timer.unref();
    }
  }

  /**
   * Replaces the rule set atomically. Connections that were let in by the old rules are checked
   * against the new ones on their next packet and cut if no longer allowed.
   */
  setRules(rules: readonly management.FirewallRule[], opts: { rulesIsEmpty: boolean }): SetRulesResult {
    const compiled = compileRules(rules);
    // Empty list without the flag = ancient server: allow everything (§4.6.2).
    this.mode = rules.length === 0 && !opts.rulesIsEmpty ? MODE_ALLOW_ALL : MODE_RULES;
    this.rules = compiled;
    this.gen = (this.gen + 1) >>> 0 || 1;
    return { accepted: compiled.accepted, rejected: compiled.rejected, rejections: compiled.rejections.slice() };
  }

  /**
   * Replaces the route firewall rules (applied to traffic we forward as a routing peer). Empty list
   * without `rulesIsEmpty` = old server: forward everything.
   */
  setRouteRules(rules: readonly management.RouteFirewallRule[], opts: { rulesIsEmpty: boolean }): SetRulesResult {
    const compiled = compileRouteRules(rules);
    this.routeMode = rules.length === 0 && !opts.rulesIsEmpty ? MODE_ALLOW_ALL : MODE_RULES;
    this.routeRules = compiled;
    this.gen = (this.gen + 1) >>> 0 || 1;
    return { accepted: compiled.accepted, rejected: compiled.rejected, rejections: compiled.rejections.slice() };
  }

  /** Our overlay addresses: inbound packets to any other address are forwarded traffic. */
  setLocalAddresses(addrs: readonly string[]): void {
    const v4: number[] = [];
    const v6: number[] = [];
    for (const a of addrs) {
      const b = ipToBytes(a);
      if (b.length === 4) v4.push(b.readUInt32BE(0));
      else for (let j = 0; j < 4; j++) v6.push(b.readUInt32BE(j * 4));
    }
    this.local4 = Uint32Array.from(v4);
    this.local6 = Uint32Array.from(v6);
    this.gen = (this.gen + 1) >>> 0 || 1;
  }

  /** Subscribes to flow events; returns an unsubscribe function. */
  onEvent(cb: (ev: FilterEvent) => void): () => void {
    this.listeners.push(cb);
    return () => {
      const i = this.listeners.indexOf(cb);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Decrypted packet from a peer, about to be written to our TUN. */
  inbound(pkt: Buffer): boolean {
    return this.handle(pkt, true);
  }

  /** Packet read from our TUN, about to be sent to a peer. */
  outbound(pkt: Buffer): boolean {
    return this.handle(pkt, false);
  }

  stats(): FilterStats {
    return {
      accepted: this.accepted, dropped: { ...this.dropped }, connections: this.ct.count, untracked: this.untracked,
      started: this.started, ended: this.ended, expired: this.expired,
    };
  }

  /** Number of tracked connections. */
  get connectionCount(): number {
    return this.ct.count;
  }

  /** Removes idle connections (emitting 'end'); returns how many. Runs on the sweep timer. */
  sweep(): number {
    const ct = this.ct;
    if (this.nowFn === undefined) this.clock[0] = Date.now();
    const now = this.now();
    let n = 0;
    for (let i = 0; i < ct.cap;) {
      if (ct.used[i] !== 0 && now - ct.lastSeen[i]! >= this.timeoutOf(i)) {
        this.endSlot(i);
        this.expired++;
        n++;
        continue; // the backward shift may have moved another entry into slot i
      }
      i++;
    }
    return n;
  }

  /** Stops the sweep timer and ends every tracked connection (emitting 'end'). */
  close(): void {
    if (this.timer !== undefined) { clearInterval(this.timer); this.timer = undefined; }
    if (this.clockTimer !== undefined) { clearInterval(this.clockTimer); this.clockTimer = undefined; }
    for (let i = 0; i < this.ct.cap;) {
      if (this.ct.used[i] !== 0) { this.endSlot(i); continue; }
      i++;
    }
  }

  // ---- internals ----

  /**
   * Current time in ms. Date.now() per packet would allocate a heap number each time (measured
   * with --trace-gc), so the data path reads a cell that a timer refreshes every CLOCK_TICK_MS;
   * connection timeouts are seconds, so the coarseness does not matter.
   */
  private now(): number {
    return this.nowFn === undefined ? this.clock[0]! : this.nowFn();
  }

  private timeoutOf(i: number): number {
    const ct = this.ct;
    const proto = ct.proto[i]!;
    if (proto === PROTO_TCP) {
      const s = ct.state[i]!;
      if (s === TCP_ESTABLISHED) return this.opts.tcpEstablishedMs;
      if (s === TCP_FIN_WAIT) return this.opts.tcpFinMs;
      if (s === TCP_TIME_WAIT) return this.opts.tcpTimeWaitMs;
      return this.opts.tcpHandshakeMs;
    }
    if (proto === PROTO_UDP) return this.opts.udpMs;
    if ((proto === 1 && ct.fam[i] === 4) || (proto === 58 && ct.fam[i] === 6)) return this.opts.icmpMs;
    return this.opts.otherMs;
  }

  private handle(pkt: Buffer, dirIn: boolean): boolean {
    const p = this.p;
    const len = pkt.length;
    if (!p.parse(pkt, 0, len, false)) {
      this.dropped.malformed++;
      return false;
    }
    if (p.frag === FRAG_LATER) return this.laterFragment(dirIn);

    const local = dirIn ? p.dst : p.src;
    const remote = dirIn ? p.src : p.dst;
    const proto = p.proto;
    let track = true;
    let startable = true;
    let ports = 0;
    let bucket = BUCKET_OTHER;
    let localPort = 0;
    if (proto === PROTO_TCP || proto === PROTO_UDP) {
      localPort = dirIn ? p.dport : p.sport;
      const remotePort = dirIn ? p.sport : p.dport;
      ports = ((localPort << 16) | remotePort) >>> 0;
      bucket = proto === PROTO_TCP ? BUCKET_TCP : BUCKET_UDP;
      // A lone RST never opens a connection. Our own TCP connections are tracked from their SYN
      // only: picking up an outbound mid-stream flow would re-admit a peer whose inbound
      // connection a rule change just revoked. (Inbound mid-stream pickup is fine: the rules
      // were checked.)
      if (proto === PROTO_TCP && ((p.tcpFlags & TCP_RST) !== 0 || (!dirIn && (p.tcpFlags & TCP_SYN) === 0))) startable = false;
    } else if (p.isIcmp()) {
      bucket = BUCKET_ICMP;
      if (p.isEchoRequest() || p.isEchoReply()) {
        ports = (p.icmpId << 16) >>> 0;
        startable = p.isEchoRequest();
      } else {
        track = false;
        if (dirIn && p.isIcmpError() && this.relatedError(pkt, len)) return this.accept();
      }
    }

    const routed = dirIn && this.isForwarded(p.fam, local);
    if (track) {
      const ct = this.ct;
      let slot = ct.find(p.fam, proto, local, remote, ports);
      if (slot >= 0) {
        const now = this.now();
        // Rules changed since an inbound-opened connection was admitted: re-check it.
        if (ct.gen[slot] !== this.gen) {
          if (ct.origin[slot] === ORIGIN_INGRESS && this.judge(routed, bucket, ct.ports[slot]! >>> 16, p.fam, remote, local) !== VERDICT_ACCEPT) {
            this.endSlot(slot);
            slot = -1;
          } else {
            ct.gen[slot] = this.gen;
          }
        }
        if (slot >= 0 && proto === PROTO_TCP && (p.tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN && ct.state[slot]! >= TCP_FIN_WAIT) {
          // A fresh SYN on a closing 5-tuple starts a new connection.
          this.endSlot(slot);
          slot = -1;
        }
        if (slot >= 0) {
          ct.lastSeen[slot] = now;
          if (dirIn) { ct.rxPackets[slot]!++; ct.rxBytes[slot]! += len; } else { ct.txPackets[slot]!++; ct.txBytes[slot]! += len; }
          if (proto === PROTO_TCP) this.tcpUpdate(slot, dirIn);
          if (dirIn && p.frag === FRAG_FIRST) this.rememberFragment();
          return this.accept();
        }
      }
    }

    // A new connection (or an untracked ICMP message).
    let ruleId: Buffer | undefined;
    if (dirIn) {
      const v = this.judge(routed, bucket, localPort, p.fam, remote, local);
      const decided = routed ? this.routeRules.lastRuleId : this.rules.lastRuleId;
      if (v !== VERDICT_ACCEPT) {
        this.dropped[v === VERDICT_DROP ? 'rule' : 'default']++;
        if (this.listeners.length > 0) this.emitDrop(len, v === VERDICT_DROP ? decided : undefined);
        return false;
      }
      ruleId = decided;
    }
    if (dirIn && p.frag === FRAG_FIRST) this.rememberFragment();
    if (!track || !startable) return this.accept();
    const now = this.now();
    const slot = this.ct.insert(p.fam, proto, local, remote, ports, dirIn ? ORIGIN_INGRESS : ORIGIN_EGRESS, now, this.gen);
    if (slot < 0) {
      this.untracked++;
      return this.accept();
    }
    const ct = this.ct;
    ct.ruleIds[slot] = ruleId;
    ct.icmpType[slot] = p.icmpType;
    ct.icmpCode[slot] = p.icmpCode;
    if (dirIn) { ct.rxPackets[slot] = 1; ct.rxBytes[slot] = len; } else { ct.txPackets[slot] = 1; ct.txBytes[slot] = len; }
    if (proto === PROTO_TCP) {
      // Mid-stream pickup (no SYN) counts as established; a SYN starts the handshake.
      ct.state[slot] = (p.tcpFlags & TCP_SYN) !== 0 ? TCP_SYN_SENT : TCP_ESTABLISHED;
      this.tcpUpdate(slot, dirIn);
    }
    this.started++;
    if (this.listeners.length > 0) this.emitSlot('start', slot);
    return this.accept();
  }

  /** Verdict for a new inbound connection: route rules for forwarded traffic, peer rules otherwise. */
  private judge(routed: boolean, bucket: number, port: number, fam: number, remote: Uint32Array, local: Uint32Array): number {
    if (routed) {
      if (this.routeMode === MODE_ALLOW_ALL) { this.routeRules.lastRuleId = undefined; return VERDICT_ACCEPT; }
      return this.routeRules.evaluate(bucket, port, fam, remote, local);
    }
    if (this.mode === MODE_ALLOW_ALL) { this.rules.lastRuleId = undefined; return VERDICT_ACCEPT; }
    return this.rules.evaluate(bucket, port, fam, remote);
  }

  /** Whether `addr` (the packet's destination) is none of our own addresses; false until they are known. */
  private isForwarded(fam: number, addr: Uint32Array): boolean {
    const v4 = this.local4, v6 = this.local6;
    if (v4.length === 0 && v6.length === 0) return false;
    if (fam === 4) {
      for (let i = 0; i < v4.length; i++) if (v4[i] === addr[0]) return false;
      return true;
    }
    for (let i = 0; i < v6.length; i += 4) {
      if (v6[i] === addr[0] && v6[i + 1] === addr[1] && v6[i + 2] === addr[2] && v6[i + 3] === addr[3]) return false;
    }
    return true;
  }

  private accept(): boolean {
    this.accepted++;
    return true;
  }

  private tcpUpdate(slot: number, dirIn: boolean): void {
    const ct = this.ct;
    const f = this.p.tcpFlags;
    if ((f & TCP_RST) !== 0) {
      this.endSlot(slot);
      return;
    }
    const s = ct.state[slot]!;
    if (s === TCP_SYN_SENT) {
      // Any packet from the responder side completes the handshake as far as we care.
      const fromResponder = ct.origin[slot] === ORIGIN_EGRESS ? dirIn : !dirIn;
      if (fromResponder) ct.state[slot] = TCP_ESTABLISHED;
    }
    if ((f & TCP_FIN) !== 0) {
      const bits = ct.tflags[slot]! | (dirIn ? FIN_REMOTE : FIN_LOCAL);
      ct.tflags[slot] = bits;
      ct.state[slot] = bits === (FIN_LOCAL | FIN_REMOTE) ? TCP_TIME_WAIT : TCP_FIN_WAIT;
    }
  }

  /** Inbound ICMP error quoting a packet of a connection we track (we sent the quoted packet). */
  private relatedError(pkt: Buffer, len: number): boolean {
    const p = this.p;
    const q = this.inner;
    const off = p.l4off + 8;
    if (off >= len || !q.parse(pkt, off, len - off, true) || q.fam !== p.fam) return false;
    let ports = 0;
    if (q.proto === PROTO_TCP || q.proto === PROTO_UDP) ports = ((q.sport << 16) | q.dport) >>> 0;
    else if (q.isEchoRequest() || q.isEchoReply()) ports = (q.icmpId << 16) >>> 0;
    return this.ct.find(q.fam, q.proto, q.src, q.dst, ports) >= 0;
  }

  private rememberFragment(): void {
    const p = this.p;
    const i = this.fragNext;
    this.fragNext = (i + 1) % FRAG_SLOTS;
    const k = this.fragKeys, o = i * FRAG_WORDS;
    k[o] = p.fam; k[o + 1] = p.proto; k[o + 2] = p.fragId;
    for (let j = 0; j < 4; j++) { k[o + 3 + j] = p.src[j]!; k[o + 7 + j] = p.dst[j]!; }
    this.fragExpiry[i] = this.now() + this.opts.fragmentMs;
  }

  /**
   * Fragments after the first carry no ports. Outbound ones are ours and pass; inbound ones pass
   * only if the first fragment of the same datagram was accepted recently.
   */
  private laterFragment(dirIn: boolean): boolean {
    if (!dirIn || this.mode === MODE_ALLOW_ALL) return this.accept();
    const p = this.p;
    const k = this.fragKeys;
    const now = this.now();
    for (let i = 0; i < FRAG_SLOTS; i++) {
      const o = i * FRAG_WORDS;
      if (this.fragExpiry[i]! > now && k[o] === p.fam && k[o + 1] === p.proto && k[o + 2] === p.fragId &&
          k[o + 3] === p.src[0] && k[o + 4] === p.src[1] && k[o + 5] === p.src[2] && k[o + 6] === p.src[3] &&
          k[o + 7] === p.dst[0] && k[o + 8] === p.dst[1] && k[o + 9] === p.dst[2] && k[o + 10] === p.dst[3]) {
        return this.accept();
      }
    }
    this.dropped.fragment++;
    return false;
  }

  private endSlot(slot: number): void {
    if (this.listeners.length > 0) this.emitSlot('end', slot);
    this.ended++;
    this.ct.remove(slot);
  }

  private emitSlot(type: FlowEventType, slot: number): void {
    const now = this.now();
    const ct = this.ct;
    const fam = ct.fam[slot]!;
    const ingress = ct.origin[slot] === ORIGIN_INGRESS;
    const localIp = wordsToBytes(fam, ct.local, slot * 4);
    const remoteIp = wordsToBytes(fam, ct.remote, slot * 4);
    const ports = ct.ports[slot]!;
    const lport = ports >>> 16, rport = ports & 0xffff;
    const proto = ct.proto[slot]!;
    const l4 = proto === PROTO_TCP || proto === PROTO_UDP;
    this.emit({
      type,
      flowId: Buffer.from(ct.flowIds.subarray(slot * 16, slot * 16 + 16)),
      ruleId: ct.ruleIds[slot],
      direction: ingress ? 'ingress' : 'egress',
      protocol: proto,
      srcIp: ingress ? remoteIp : localIp,
      dstIp: ingress ? localIp : remoteIp,
      srcPort: l4 ? (ingress ? rport : lport) : 0,
      dstPort: l4 ? (ingress ? lport : rport) : 0,
      icmpType: ct.icmpType[slot]!,
      icmpCode: ct.icmpCode[slot]!,
      rxPackets: ct.rxPackets[slot]!, txPackets: ct.txPackets[slot]!,
      rxBytes: ct.rxBytes[slot]!, txBytes: ct.txBytes[slot]!,
      timestamp: now,
    });
  }

  private emitDrop(len: number, ruleId: Buffer | undefined): void {
    const p = this.p;
    const flowId = randomBytes(16);
    this.emit({
      type: 'drop', flowId, ruleId, direction: 'ingress', protocol: p.proto,
      srcIp: p.addrBytes(p.src), dstIp: p.addrBytes(p.dst), srcPort: p.sport, dstPort: p.dport,
      icmpType: p.icmpType, icmpCode: p.icmpCode, rxPackets: 1, txPackets: 0, rxBytes: len, txBytes: 0,
      timestamp: this.now(),
    });
  }

  private emit(ev: FilterEvent): void {
    for (const cb of this.listeners) {
      try { cb(ev); } catch { /* a faulty listener must not break the data path */ }
    }
  }
}

export { compileRules } from './rules.js';
