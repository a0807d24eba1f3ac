/**
 * Compiles management FirewallRules (protocol.md §4.6.2) into an index that answers "may this
 * remote address open a new connection to this local port?" with a few hash lookups.
 *
 * Rules that share action, protocol, port range and PolicyID are merged into one group with an
 * address set, so "TCP 22 from these 500 peers" is one Set lookup rather than 500 comparisons.
 * Per protocol bucket, groups for single ports are indexed by port; ranges and "all ports" are
 * scanned (there are few of them). DROP groups are checked before ACCEPT groups.
 */
import { management } from '../proto/index.js';
import { decodeCompactPrefix, ipToBytes } from '../shared/index.js';

export const BUCKET_TCP = 0;
export const BUCKET_UDP = 1;
export const BUCKET_ICMP = 2;
export const BUCKET_OTHER = 3;

interface Prefix6 { w: Uint32Array; len: number }

export class RuleGroup {
  anyV4 = false;
  anyV6 = false;
  readonly hosts4 = new Set<number>();
  /** IPv6 hosts by a 32-bit hash of their words; collisions verified against the words. */
  readonly hosts6 = new Map<number, Uint32Array[]>();
  readonly prefixes4: Array<{ addr: number; mask: number }> = [];
  readonly prefixes6: Prefix6[] = [];
  constructor(
    readonly drop: boolean,
    readonly policyId: Buffer | undefined,
    readonly lo: number,
    readonly hi: number,
  ) {}

  addPrefix(bytes: Buffer, len: number): void {
    if (bytes.length === 4) {
      if (len === 0) { this.anyV4 = true; return; }
      const addr = bytes.readUInt32BE(0);
      if (len === 32) { this.hosts4.add(addr); return; }
      const mask = (0xffffffff << (32 - len)) >>> 0;
      this.prefixes4.push({ addr: (addr & mask) >>> 0, mask });
      return;
    }
    if (len === 0) { this.anyV6 = true; return; }
    const w = new Uint32Array(4);
    for (let i = 0; i < 4; i++) w[i] = bytes.readUInt32BE(i * 4);
    if (len === 128) {
      const h = hash6(w, 0);
      const list = this.hosts6.get(h);
      if (list) list.push(w); else this.hosts6.set(h, [w]);
      return;
    }
    this.prefixes6.push({ w, len });
  }

  /** Remote address match; `r` holds the address words (IPv4 in word 0). */
  matches(fam: number, r: Uint32Array): boolean {
    if (fam === 4) {
      if (this.anyV4) return true;
      const a = r[0]!;
      if (this.hosts4.has(a)) return true;
      const p4 = this.prefixes4;
      for (let i = 0; i < p4.length; i++) if (((a & p4[i]!.mask) >>> 0) === p4[i]!.addr) return true;
      return false;
    }
    if (this.anyV6) return true;
    if (this.hosts6.size > 0) {
      const list = this.hosts6.get(hash6(r, 0));
      if (list !== undefined) {
        for (let i = 0; i < list.length; i++) {
          const w = list[i]!;
          if (w[0] === r[0] && w[1] === r[1] && w[2] === r[2] && w[3] === r[3]) return true;
        }
      }
    }
    const p6 = this.prefixes6;
    for (let i = 0; i < p6.length; i++) if (prefix6Match(p6[i]!, r)) return true;
    return false;
  }
}

function hash6(w: Uint32Array, o: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < 4; i++) h = Math.imul(h ^ w[o + i]!, 0x01000193);
  return h >>> 0;
}

function prefix6Match(p: Prefix6, r: Uint32Array): boolean {
  let left = p.len;
  for (let i = 0; i < 4 && left > 0; i++) {
    const bits = left >= 32 ? 32 : left;
    const mask = bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    if (((r[i]! ^ p.w[i]!) & mask) >>> 0 !== 0) return false;
    left -= bits;
  }
  return true;
}

export class Bucket {
  readonly dropExact = new Map<number, RuleGroup[]>();
  readonly dropRanged: RuleGroup[] = [];
  readonly acceptExact = new Map<number, RuleGroup[]>();
  readonly acceptRanged: RuleGroup[] = [];
  /** Whether the groups are indexed by port (TCP/UDP) or cover the whole protocol. */
  constructor(readonly ported: boolean) {}

  add(g: RuleGroup): void {
    if (this.ported && g.lo === g.hi) {
      const m = g.drop ? this.dropExact : this.acceptExact;
      const list = m.get(g.lo);
      if (list) list.push(g); else m.set(g.lo, [g]);
    } else {
      (g.drop ? this.dropRanged : this.acceptRanged).push(g);
    }
  }
}

function firstMatch(exact: Map<number, RuleGroup[]>, ranged: RuleGroup[], ported: boolean, port: number, fam: number, r: Uint32Array): RuleGroup | undefined {
  if (ported && exact.size > 0) {
    const list = exact.get(port);
    if (list !== undefined) for (let i = 0; i < list.length; i++) if (list[i]!.matches(fam, r)) return list[i];
  }
  for (let i = 0; i < ranged.length; i++) {
    const g = ranged[i]!;
    if (ported && (port < g.lo || port > g.hi)) continue;
    if (g.matches(fam, r)) return g;
  }
  return undefined;
}

/** What the compiled rules say about a new inbound connection. */
export const VERDICT_NO_MATCH = 0;
export const VERDICT_ACCEPT = 1;
export const VERDICT_DROP = 2;

export class CompiledRules {
  readonly buckets: Bucket[] = [new Bucket(true), new Bucket(true), new Bucket(false), new Bucket(false)];
  /** PolicyID of the group that decided the last evaluate() call (undefined when none). */
  lastRuleId: Buffer | undefined = undefined;
  accepted = 0;
  rejected = 0;
  readonly rejections: string[] = [];

  evaluate(bucket: number, port: number, fam: number, remote: Uint32Array): number {
    const b = this.buckets[bucket]!;
    let g = firstMatch(b.dropExact, b.dropRanged, b.ported, port, fam, remote);
    if (g !== undefined) { this.lastRuleId = g.policyId; return VERDICT_DROP; }
    g = firstMatch(b.acceptExact, b.acceptRanged, b.ported, port, fam, remote);
    if (g !== undefined) { this.lastRuleId = g.policyId; return VERDICT_ACCEPT; }
    this.lastRuleId = undefined;
    return VERDICT_NO_MATCH;
  }
}

/** Port range of a rule per §4.6.2: PortInfo (port, or range with both ends non-zero), else Port text, else all. */
export function rulePorts(rule: management.FirewallRule): [number, number] | string {
  const pi = rule.PortInfo;
  if (pi !== undefined) {
    if (pi.port !== undefined && pi.port !== 0) {
      if (pi.port > 65535) return `port ${pi.port} out of range`;
      return [pi.port, pi.port];
    }
    if (pi.range !== undefined && pi.range.start !== 0 && pi.range.end !== 0) {
      const { start, end } = pi.range;
      if (start > end || end > 65535) return `bad port range ${start}-${end}`;
      return [start, end];
    }
  }
  const text = rule.Port.trim();
  if (text !== '') {
    if (!/^\d+$/.test(text)) return `bad port ${JSON.stringify(rule.Port)}`;
    const p = Number(text);
    if (p > 65535) return `port ${p} out of range`;
    if (p !== 0) return [p, p];
  }
  return [0, 65535];
}

/** Remote prefixes of a rule: sourcePrefixes (compact) if present, else PeerIP (address or CIDR). */
function rulePrefixes(rule: management.FirewallRule): Array<[Buffer, number]> | string {
  const out: Array<[Buffer, number]> = [];
  if (rule.sourcePrefixes.length > 0) {
    for (const sp of rule.sourcePrefixes) {
      let cidr: string;
      try { cidr = decodeCompactPrefix(sp); } catch (e) { return (e as Error).message; }
      const [addr, len] = cidr.split('/') as [string, string];
      out.push([ipToBytes(addr), Number(len)]);
    }
    return out;
  }
  const text = rule.PeerIP.trim();
  if (text === '') return 'no PeerIP or sourcePrefixes';
  const [addr, lenText] = text.split('/') as [string, string | undefined];
  let bytes: Buffer;
  try { bytes = ipToBytes(addr); } catch (e) { return (e as Error).message; }
  const max = bytes.length * 8;
  let len = lenText === undefined ? max : Number(lenText);
  if (!Number.isInteger(len) || len < 0 || len > max) return `bad prefix length in ${JSON.stringify(text)}`;
  // "0.0.0.0" and "::" as bare addresses are the any-peer wildcard.
  if (lenText === undefined && bytes.every((x) => x === 0)) len = 0;
  out.push([bytes, len]);
  return out;
}

/**
 * Builds the index. Only Direction=IN rules are used: OUT rules describe our own connections,
 * which a stateful filter allows and tracks anyway. Invalid rules are skipped and listed in
 * `rejections`.
 */
export function compileRules(rules: readonly management.FirewallRule[]): CompiledRules {
  const c = new CompiledRules();
  const groups = new Map<string, RuleGroup>();
  rules.forEach((rule, idx) => {
    const reject = (why: string): void => { c.rejected++; c.rejections.push(`rule ${idx}: ${why}`); };
    if (rule.Direction !== management.RuleDirection.IN && rule.Direction !== management.RuleDirection.OUT) return reject(`unknown direction ${rule.Direction}`);
    if (rule.Action !== management.RuleAction.ACCEPT && rule.Action !== management.RuleAction.DROP) return reject(`unknown action ${rule.Action}`);
    const proto = rule.Protocol;
    if (proto !== management.RuleProtocol.ALL && proto !== management.RuleProtocol.TCP && proto !== management.RuleProtocol.UDP && proto !== management.RuleProtocol.ICMP) {
      return reject(`unsupported protocol ${proto}`);
    }
    const ports = rulePorts(rule);
    if (typeof ports === 'string') return reject(ports);
    const prefixes = rulePrefixes(rule);
    if (typeof prefixes === 'string') return reject(prefixes);
    if (rule.Direction === management.RuleDirection.OUT) { c.accepted++; return; }
    const drop = rule.Action === management.RuleAction.DROP;
    const pid = rule.PolicyID !== undefined && rule.PolicyID.length > 0 ? Buffer.from(rule.PolicyID) : undefined;
    const allPorts = ports[0] === 0 && ports[1] === 65535;
    const targets: number[] = [];
    if (proto === management.RuleProtocol.TCP) targets.push(BUCKET_TCP);
    else if (proto === management.RuleProtocol.UDP) targets.push(BUCKET_UDP);
    else if (proto === management.RuleProtocol.ICMP) targets.push(BUCKET_ICMP);
    // An ALL rule limited to ports can only mean TCP/UDP; without ports it covers every protocol.
    else targets.push(...(allPorts ? [BUCKET_TCP, BUCKET_UDP, BUCKET_ICMP, BUCKET_OTHER] : [BUCKET_TCP, BUCKET_UDP]));
    for (const t of targets) {
      const ported = t === BUCKET_TCP || t === BUCKET_UDP;
      const lo = ported ? ports[0] : 0, hi = ported ? ports[1] : 65535;
      const key = `${t}|${drop ? 1 : 0}|${lo}-${hi}|${pid ? pid.toString('hex') : ''}`;
      let g = groups.get(key);
      if (g === undefined) {
        g = new RuleGroup(drop, pid, lo, hi);
        groups.set(key, g);
        c.buckets[t]!.add(g);
      }
      for (const [bytes, len] of prefixes) g.addPrefix(bytes, len);
    }
    c.accepted++;
  });
  return c;
}

/** Route firewall rules compiled per destination prefix (protocol.md §4.6.4). */
export class CompiledRouteRules {
  readonly entries: Array<{ destination: RuleGroup; rules: CompiledRules }> = [];
  lastRuleId: Buffer | undefined = undefined;
  accepted = 0;
  rejected = 0;
  readonly rejections: string[] = [];

  /** A new forwarded connection from `remote` to `local` (the routed destination): DROP wins over ACCEPT. */
  evaluate(bucket: number, port: number, fam: number, remote: Uint32Array, local: Uint32Array): number {
    let verdict = VERDICT_NO_MATCH;
    let ruleId: Buffer | undefined;
    for (let i = 0; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (!e.destination.matches(fam, local)) continue;
      const v = e.rules.evaluate(bucket, port, fam, remote);
      if (v === VERDICT_DROP) {
        this.lastRuleId = e.rules.lastRuleId;
        return VERDICT_DROP;
      }
      if (v === VERDICT_ACCEPT && verdict === VERDICT_NO_MATCH) {
        verdict = VERDICT_ACCEPT;
        ruleId = e.rules.lastRuleId;
      }
    }
    this.lastRuleId = ruleId;
    return verdict;
  }
}

/**
 * Builds the route index: rules are grouped by destination (a dynamic rule's destination is any
 * address: its domains are not resolved here), and each group's sources, protocols and ports are
 * compiled like inbound FirewallRules.
 */
export function compileRouteRules(rules: readonly management.RouteFirewallRule[]): CompiledRouteRules {
  const c = new CompiledRouteRules();
  const byDestination = new Map<string, management.FirewallRule[]>();
  rules.forEach((r, idx) => {
    const dests = r.isDynamic ? ['0.0.0.0/0', '::/0'] : [r.destination.trim()];
    for (const d of dests) {
      const [addr, len] = d.split('/') as [string, string | undefined];
      let bytes: Buffer;
      try { bytes = ipToBytes(addr); } catch { c.rejected++; c.rejections.push(`route rule ${idx}: bad destination ${JSON.stringify(r.destination)}`); return; }
      const bits = len === undefined ? bytes.length * 8 : Number(len);
      if (!Number.isInteger(bits) || bits < 0 || bits > bytes.length * 8) { c.rejected++; c.rejections.push(`route rule ${idx}: bad destination ${JSON.stringify(r.destination)}`); return; }
      const key = `${addr}/${bits}`;
      let list = byDestination.get(key);
      if (!list) byDestination.set(key, (list = []));
      for (const src of r.sourceRanges) {
        list.push(management.FirewallRule.fromPartial({
          PeerIP: src, Direction: management.RuleDirection.IN, Action: r.action, Protocol: r.protocol, PortInfo: r.portInfo, PolicyID: r.PolicyID,
        }));
      }
    }
  });
  for (const [key, list] of byDestination) {
    const [addr, bits] = key.split('/') as [string, string];
    const destination = new RuleGroup(false, undefined, 0, 65535);
    destination.addPrefix(ipToBytes(addr), Number(bits));
    const compiled = compileRules(list);
    c.accepted += compiled.accepted;
    c.rejected += compiled.rejected;
    c.rejections.push(...compiled.rejections);
    c.entries.push({ destination, rules: compiled });
  }
  return c;
}
