/**
 * Connection tracking table: open addressing with linear probing over typed arrays, so a lookup
 * hashes a few numbers and compares words without creating objects. Deletion uses backward
 * shifting (no tombstones), which keeps probe chains short under churn.
 *
 * A key is (family, protocol, local address, remote address, local port, remote port) seen from
 * this peer, so both directions of a connection find the same slot without reordering.
 * ICMP echo uses (identifier, 0) as ports.
 */
import { randomFillSync, randomInt } from 'node:crypto';

export const ORIGIN_INGRESS = 1;
export const ORIGIN_EGRESS = 2;

export const TCP_SYN_SENT = 1;
export const TCP_ESTABLISHED = 2;
export const TCP_FIN_WAIT = 3;
export const TCP_TIME_WAIT = 4;

/** tflags bits: FIN seen from the local / remote side. */
export const FIN_LOCAL = 1;
export const FIN_REMOTE = 2;

export class ConnTable {
  readonly cap: number;
  readonly mask: number;
  readonly max: number;
  count = 0;
  private readonly seed: number;

  readonly used: Uint8Array;
  readonly hashes: Uint32Array;
  readonly fam: Uint8Array;
  readonly proto: Uint8Array;
  readonly state: Uint8Array;
  readonly tflags: Uint8Array;
  readonly origin: Uint8Array;
  readonly icmpType: Uint8Array;
  readonly icmpCode: Uint8Array;
  readonly local: Uint32Array;
  readonly remote: Uint32Array;
  readonly ports: Uint32Array;
  readonly gen: Uint32Array;
  readonly lastSeen: Float64Array;
  readonly rxPackets: Float64Array;
  readonly txPackets: Float64Array;
  readonly rxBytes: Float64Array;
  readonly txBytes: Float64Array;
  readonly flowIds: Buffer;
  readonly ruleIds: Array<Buffer | undefined>;

  /** Random bytes handed out 16 at a time as flow IDs; refilled in bulk. */
  private readonly idPool = Buffer.allocUnsafe(16 * 256);
  private idPos = this.idPool.length;

  constructor(maxEntries: number) {
    this.max = Math.max(1, maxEntries | 0);
    let cap = 16;
    while (cap < this.max * 2) cap *= 2;
    this.cap = cap;
    this.mask = cap - 1;
    // A per-table seed keeps remote peers from predicting slots and building long probe chains.
    this.seed = randomInt(0, 0x7fffffff);
    this.used = new Uint8Array(cap);
    this.hashes = new Uint32Array(cap);
    this.fam = new Uint8Array(cap);
    this.proto = new Uint8Array(cap);
    this.state = new Uint8Array(cap);
    this.tflags = new Uint8Array(cap);
    this.origin = new Uint8Array(cap);
    this.icmpType = new Uint8Array(cap);
    this.icmpCode = new Uint8Array(cap);
    this.local = new Uint32Array(cap * 4);
    this.remote = new Uint32Array(cap * 4);
    this.ports = new Uint32Array(cap);
    this.gen = new Uint32Array(cap);
    this.lastSeen = new Float64Array(cap);
    this.rxPackets = new Float64Array(cap);
    this.txPackets = new Float64Array(cap);
    this.rxBytes = new Float64Array(cap);
    this.txBytes = new Float64Array(cap);
    this.flowIds = Buffer.alloc(cap * 16);
    this.ruleIds = new Array<Buffer | undefined>(cap).fill(undefined);
  }

  hash(fam: number, proto: number, l: Uint32Array, r: Uint32Array, ports: number): number {
    let h = this.seed ^ Math.imul(fam * 256 + proto, 0x9e3779b1);
    h = Math.imul(h ^ l[0]!, 0x85ebca6b); h ^= h >>> 13;
    h = Math.imul(h ^ r[0]!, 0xc2b2ae35); h ^= h >>> 16;
    if (fam === 6) {
      for (let i = 1; i < 4; i++) {
        h = Math.imul(h ^ l[i]!, 0x85ebca6b); h ^= h >>> 13;
        h = Math.imul(h ^ r[i]!, 0xc2b2ae35); h ^= h >>> 16;
      }
    }
    h = Math.imul(h ^ ports, 0x27d4eb2f);
    h ^= h >>> 15;
    return h >>> 0;
  }

  /** Slot of the connection, or -1. */
  find(fam: number, proto: number, l: Uint32Array, r: Uint32Array, ports: number): number {
    const h = this.hash(fam, proto, l, r, ports);
    const mask = this.mask;
    const used = this.used, hashes = this.hashes, lw = this.local, rw = this.remote;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      if (used[i] === 0) return -1;
      if (hashes[i] === h && this.ports[i] === ports && this.proto[i] === proto && this.fam[i] === fam) {
        const o = i * 4;
        if (lw[o] === l[0] && rw[o] === r[0] && lw[o + 1] === l[1] && rw[o + 1] === r[1] &&
            lw[o + 2] === l[2] && rw[o + 2] === r[2] && lw[o + 3] === l[3] && rw[o + 3] === r[3]) return i;
      }
    }
  }

  /** Inserts a new connection (caller checked it is absent); -1 when the table is full. */
  insert(fam: number, proto: number, l: Uint32Array, r: Uint32Array, ports: number, origin: number, now: number, gen: number): number {
    if (this.count >= this.max) return -1;
    const h = this.hash(fam, proto, l, r, ports);
    const mask = this.mask;
    let i = h & mask;
    while (this.used[i] !== 0) i = (i + 1) & mask;
    this.used[i] = 1;
    this.hashes[i] = h;
    this.fam[i] = fam;
    this.proto[i] = proto;
    this.state[i] = 0;
    this.tflags[i] = 0;
    this.origin[i] = origin;
    this.icmpType[i] = 0;
    this.icmpCode[i] = 0;
    const o = i * 4;
    for (let k = 0; k < 4; k++) { this.local[o + k] = l[k]!; this.remote[o + k] = r[k]!; }
    this.ports[i] = ports;
    this.gen[i] = gen;
    this.lastSeen[i] = now;
    this.rxPackets[i] = 0; this.txPackets[i] = 0; this.rxBytes[i] = 0; this.txBytes[i] = 0;
    if (this.idPos >= this.idPool.length) { randomFillSync(this.idPool); this.idPos = 0; }
    this.idPool.copy(this.flowIds, i * 16, this.idPos, this.idPos + 16);
    this.idPos += 16;
    this.ruleIds[i] = undefined;
    this.count++;
    return i;
  }

  /** Removes slot i, shifting later members of its probe chain back. */
  remove(i: number): void {
    const mask = this.mask;
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (this.used[j] === 0) break;
      const home = this.hashes[j]! & mask;
      // Entry j may move into the hole only if its home slot is not inside (hole, j].
      const inRange = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (inRange) continue;
      this.move(j, hole);
      hole = j;
    }
    this.used[hole] = 0;
    this.ruleIds[hole] = undefined;
    this.count--;
  }

  private move(from: number, to: number): void {
    this.used[to] = 1;
    this.hashes[to] = this.hashes[from]!;
    this.fam[to] = this.fam[from]!;
    this.proto[to] = this.proto[from]!;
    this.state[to] = this.state[from]!;
    this.tflags[to] = this.tflags[from]!;
    this.origin[to] = this.origin[from]!;
    this.icmpType[to] = this.icmpType[from]!;
    this.icmpCode[to] = this.icmpCode[from]!;
    this.local.copyWithin(to * 4, from * 4, from * 4 + 4);
    this.remote.copyWithin(to * 4, from * 4, from * 4 + 4);
    this.ports[to] = this.ports[from]!;
    this.gen[to] = this.gen[from]!;
    this.lastSeen[to] = this.lastSeen[from]!;
    this.rxPackets[to] = this.rxPackets[from]!;
    this.txPackets[to] = this.txPackets[from]!;
    this.rxBytes[to] = this.rxBytes[from]!;
    this.txBytes[to] = this.txBytes[from]!;
    this.flowIds.copyWithin(to * 16, from * 16, from * 16 + 16);
    this.ruleIds[to] = this.ruleIds[from];
  }

  clear(): void {
    this.used.fill(0);
    this.ruleIds.fill(undefined);
    this.count = 0;
  }
}
