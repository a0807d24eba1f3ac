/**
 * Allowed IPs: a path-compressed binary trie per address family giving the
 * longest-prefix match. The device uses it both ways: to pick the peer for an
 * outgoing packet's destination and to check that a decrypted packet's inner
 * source address belongs to the peer that sent it. Lookups read the address
 * straight out of the packet buffer (no allocation).
 */
import { parsePrefix, formatPrefix, type Prefix } from './ip.js';

class Node<T> {
  peer: T | null;
  readonly child: [Node<T> | null, Node<T> | null] = [null, null];
  constructor(
    readonly bits: Uint8Array,
    readonly cidr: number,
    peer: T | null,
  ) {
    this.peer = peer;
  }
}

function bitAt(key: Uint8Array, i: number): 0 | 1 {
  return ((key[i >> 3]! >> (7 - (i & 7))) & 1) as 0 | 1;
}

function commonBits(a: Uint8Array, b: Uint8Array, max: number): number {
  let n = 0;
  for (let i = 0; i < a.length && n < max; i++) {
    const x = a[i]! ^ b[i]!;
    if (x === 0) { n += 8; continue; }
    n += Math.clz32(x) - 24;
    break;
  }
  return n < max ? n : max;
}

/** True if the address at buf[off..] starts with the node's prefix. */
function matches(node: { bits: Uint8Array; cidr: number }, buf: Uint8Array, off: number): boolean {
  const full = node.cidr >> 3;
  const bits = node.bits;
  for (let i = 0; i < full; i++) if (bits[i] !== buf[off + i]) return false;
  const rem = node.cidr & 7;
  if (rem === 0) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return (buf[off + full]! & mask) === bits[full];
}

function masked(key: Uint8Array, cidr: number): Uint8Array {
  const out = Uint8Array.from(key);
  for (let i = 0; i < out.length; i++) {
    const b = cidr - i * 8;
    if (b >= 8) continue;
    out[i] = b <= 0 ? 0 : out[i]! & (0xff << (8 - b));
  }
  return out;
}

export class AllowedIps<T> {
  private root4: Node<T> | null = null;
  private root6: Node<T> | null = null;

  /** Adds or re-assigns a prefix to `peer` (a prefix belongs to exactly one peer). */
  insert(prefix: string | Prefix, peer: T): void {
    const p = typeof prefix === 'string' ? parsePrefix(prefix) : prefix;
    if (p.addr.length === 4) this.root4 = this.insertAt(this.root4, masked(p.addr, p.cidr), p.cidr, peer);
    else this.root6 = this.insertAt(this.root6, masked(p.addr, p.cidr), p.cidr, peer);
  }

  private insertAt(node: Node<T> | null, key: Uint8Array, cidr: number, peer: T): Node<T> {
    if (node === null) return new Node(key, cidr, peer);
    const cb = commonBits(node.bits, key, Math.min(node.cidr, cidr));
    if (cb === node.cidr) {
      if (node.cidr === cidr) {
        node.peer = peer;
        return node;
      }
      const b = bitAt(key, node.cidr);
      node.child[b] = this.insertAt(node.child[b], key, cidr, peer);
      return node;
    }
    const fresh = new Node<T>(key, cidr, peer);
    if (cb === cidr) {
      fresh.child[bitAt(node.bits, cidr)] = node;
      return fresh;
    }
    const mid = new Node<T>(masked(key, cb), cb, null);
    mid.child[bitAt(node.bits, cb)] = node;
    mid.child[bitAt(key, cb)] = fresh;
    return mid;
  }

  /** Longest-prefix match of the IPv4 address at buf[off..off+4]. */
  lookup4(buf: Uint8Array, off: number): T | null {
    return this.lookupIn(this.root4, buf, off, 32);
  }

  /** Longest-prefix match of the IPv6 address at buf[off..off+16]. */
  lookup6(buf: Uint8Array, off: number): T | null {
    return this.lookupIn(this.root6, buf, off, 128);
  }

  lookup(addr: Uint8Array): T | null {
    return addr.length === 4 ? this.lookup4(addr, 0) : this.lookup6(addr, 0);
  }

  private lookupIn(node: Node<T> | null, buf: Uint8Array, off: number, max: number): T | null {
    let found: T | null = null;
    while (node !== null && matches(node, buf, off)) {
      if (node.peer !== null) found = node.peer;
      if (node.cidr === max) break;
      const i = off + (node.cidr >> 3);
      node = node.child[(buf[i]! >> (7 - (node.cidr & 7))) & 1]!;
    }
    return found;
  }

  /** Removes every prefix owned by `peer`. */
  removePeer(peer: T): void {
    this.root4 = this.prune(this.root4, peer);
    this.root6 = this.prune(this.root6, peer);
  }

  /** Removes one exact prefix if present. */
  remove(prefix: string | Prefix): void {
    const p = typeof prefix === 'string' ? parsePrefix(prefix) : prefix;
    const key = masked(p.addr, p.cidr);
    let node = p.addr.length === 4 ? this.root4 : this.root6;
    while (node !== null && node.cidr <= p.cidr && matches(node, key, 0)) {
      if (node.cidr === p.cidr) {
        const owner = node.peer;
        node.peer = null;
        if (owner !== null) {
          this.root4 = this.prune(this.root4, null);
          this.root6 = this.prune(this.root6, null);
        }
        return;
      }
      node = node.child[bitAt(key, node.cidr)]!;
    }
  }

  /** Drops `peer` from nodes (if given) and collapses nodes that no longer carry information. */
  private prune(node: Node<T> | null, peer: T | null): Node<T> | null {
    if (node === null) return null;
    if (peer !== null && node.peer === peer) node.peer = null;
    node.child[0] = this.prune(node.child[0], peer);
    node.child[1] = this.prune(node.child[1], peer);
    if (node.peer !== null) return node;
    if (node.child[0] === null) return node.child[1];
    if (node.child[1] === null) return node.child[0];
    return node;
  }

  /** The prefixes owned by `peer`, formatted ("10.0.0.0/24", "fd00::/64"). */
  entriesFor(peer: T): string[] {
    const out: string[] = [];
    const walk = (n: Node<T> | null): void => {
      if (n === null) return;
      if (n.peer === peer) out.push(formatPrefix({ addr: n.bits, cidr: n.cidr }));
      walk(n.child[0]);
      walk(n.child[1]);
    };
    walk(this.root4);
    walk(this.root6);
    return out;
  }

  clear(): void {
    this.root4 = null;
    this.root6 = null;
  }
}
