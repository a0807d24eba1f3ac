import { isIPv6 } from 'node:net';
import { unmapIPv4 } from '../shared/index.js';

/**
 * Admission control for the server's one TCP listener. A connection is "pending" from the moment it
 * is accepted until it makes its first complete request (an HTTP/1.1 request or upgrade, or an
 * HTTP/2 stream: a gRPC call or an HTTP/2 REST request). Pending connections cost a socket and a
 * file descriptor but have proven nothing, so they are bounded:
 *
 * - each has a deadline (`timeoutMs`) by which it must make that request, counted from accept and
 *   not reset by traffic, so a slowloris client trickling header bytes is cut like a silent one;
 * - one client address (IPv4 address, IPv6 /64) may hold `perAddress` pending connections, and all
 *   clients together `total`. Over a limit the OLDEST pending connection of the busiest address is
 *   closed to make room, never the new one: a legitimate client sends its request right after
 *   connecting, so it leaves the pending set before a flood can push it out, even when the flood
 *   comes from the same address. Refusing new connections instead (what a plain cap does) would let
 *   1,024 idle sockets lock everyone out.
 * - a connection that completed a protocol handshake (the full HTTP/2 client preface, or a TLS
 *   handshake) but still waits for a round trip before its request (gRPC clients wait for the
 *   server's SETTINGS) moves to a second tier with its own per-address allowance, so silent or
 *   trickling sockets, which never get that far, cannot push it out.
 *
 * Connections that made a request are no longer counted here: long-lived gRPC Sync streams, relay
 * WebSockets and keep-alive HTTP are governed by their own protocols' timeouts.
 */

export interface AdmissionLimits {
  /** Pending connections allowed per client address (IPv6: per /64). */
  perAddress: number;
  /** Pending connections allowed in all. */
  total: number;
  /** Time from accept to the first complete request. */
  timeoutMs: number;
}

export const DEFAULT_ADMISSION: AdmissionLimits = { perAddress: 64, total: 1024, timeoutMs: 10_000 };

const TRIM_DELAY_MS = 20;
const BURST = 4;

export interface AdmissionStats {
  pending: number;
  /** Pending connections closed to make room for newer ones. */
  evicted: number;
  /** Pending connections closed because they made no request in time. */
  timedOut: number;
}

interface Entry {
  key: string;
  tier: 0 | 1;
  deadline: number;
  close: () => void;
}

interface Hooks {
  active(): void;
  handshaken(): void;
}

/** Property under which an admitted socket (and any stream wrapping it) carries its admission hooks. */
const HOOKS = Symbol('netbird.admission');

interface Marked {
  [HOOKS]?: Hooks;
}

function hooksOf(socket: unknown): Hooks | undefined {
  if (socket === null || typeof socket !== 'object') return undefined;
  // Node's HTTP/2 wraps a stream that is not a socket (our replay stream) in a JSStreamSocket,
  // which keeps the original as `stream`.
  const inner = (socket as { stream?: unknown }).stream;
  return (socket as Marked)[HOOKS] ?? (inner !== null && typeof inner === 'object' ? (inner as Marked)[HOOKS] : undefined);
}

/**
 * Records that `socket` (a net/TLS socket, a stream wrapping one, or HTTP/2's proxy of either)
 * made a valid request, so it leaves the pending set. Unknown objects are ignored.
 */
export function markActive(socket: unknown): void {
  hooksOf(socket)?.active();
}

/** Records that `socket` completed a protocol handshake (HTTP/2 preface, TLS) and awaits its first request. */
export function markHandshaken(socket: unknown): void {
  hooksOf(socket)?.handshaken();
}

/** Makes `wrapper` (a TLS socket or replay stream built on an admitted socket) report for it. */
export function shareAdmission(from: object, wrapper: object): void {
  const hooks = (from as Marked)[HOOKS];
  if (hooks) (wrapper as Marked)[HOOKS] = hooks;
}

/** The address a limit applies to: IPv4 address, IPv6 /64 (one subscriber's usual allocation). */
export function addressKey(remote: string | undefined): string {
  if (!remote) return '?';
  const v4 = unmapIPv4(remote);
  if (v4 !== remote || !isIPv6(remote)) return v4;
  const [head = '', tail] = remote.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':') + '::/64';
}

export class ConnectionAdmission {
  // Map and Set iterate in insertion order, so the first entries are the oldest.
  private readonly pending = new Map<object, Entry>();
  private readonly byKey = new Map<string, [Set<object>, Set<object>]>();
  private readonly sweeper: NodeJS.Timeout;
  private trimTimer: NodeJS.Timeout | undefined;
  private evicted = 0;
  private timedOut = 0;

  constructor(
    readonly limits: AdmissionLimits = DEFAULT_ADMISSION,
    private readonly now: () => number = Date.now,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(50, Math.min(1000, limits.timeoutMs / 4)));
    this.sweeper.unref();
  }

  /**
   * Takes a freshly accepted connection into the pending set (making room if a limit is reached).
   * `close` ends it; `remoteAddress` is the peer's address.
   */
  admit(socket: object, remoteAddress: string | undefined, close: () => void): void {
    const key = addressKey(remoteAddress);
    if (this.pending.size >= this.limits.total) {
      let busiest: [Set<object>, Set<object>] | undefined;
      let most = 0;
      for (const tiers of this.byKey.values()) {
        const n = tiers[0].size + tiers[1].size;
        if (n > most) [busiest, most] = [tiers, n];
      }
      if (busiest) this.evictOldest(busiest[0].size > 0 ? busiest[0] : busiest[1]);
    }
    const own = this.tiers(key)[0];
    own.add(socket);
    this.pending.set(socket, { key, tier: 0, deadline: this.now() + this.limits.timeoutMs, close });
    (socket as Marked)[HOOKS] = { active: () => this.release(socket), handshaken: () => this.promote(socket) };
    this.overAddressLimit(own);
  }

  /** The connection completed a protocol handshake: it moves to the second tier (same deadline). */
  promote(socket: object): void {
    const e = this.pending.get(socket);
    if (!e || e.tier === 1) return;
    const tiers = this.tiers(e.key);
    tiers[0].delete(socket);
    e.tier = 1;
    tiers[1].add(socket);
    this.overAddressLimit(tiers[1]);
  }

  /**
   * The per-address limit is enforced a moment later (TRIM_DELAY_MS), not at accept: the accept loop
   * can take many flood connections right after a legitimate one before that one's request is read,
   * and trimming at once would close it for being the oldest. A hard limit of BURST times the
   * allowance still applies at once.
   */
  private overAddressLimit(set: Set<object>): void {
    if (set.size <= this.limits.perAddress) return;
    if (set.size > this.limits.perAddress * BURST) this.evictOldest(set);
    if (!this.trimTimer) {
      this.trimTimer = setTimeout(() => {
        this.trimTimer = undefined;
        for (const tiers of [...this.byKey.values()]) {
          for (const set of tiers) while (set.size > this.limits.perAddress) this.evictOldest(set);
        }
      }, TRIM_DELAY_MS);
      this.trimTimer.unref();
    }
  }

  private tiers(key: string): [Set<object>, Set<object>] {
    let t = this.byKey.get(key);
    if (!t) this.byKey.set(key, (t = [new Set(), new Set()]));
    return t;
  }

  /** The connection made its first request (or closed): it is no longer pending. Idempotent. */
  release(socket: object): void {
    const e = this.pending.get(socket);
    if (!e) return;
    this.pending.delete(socket);
    const tiers = this.byKey.get(e.key);
    if (!tiers) return;
    tiers[e.tier].delete(socket);
    if (tiers[0].size === 0 && tiers[1].size === 0) this.byKey.delete(e.key);
  }

  stats(): AdmissionStats {
    return { pending: this.pending.size, evicted: this.evicted, timedOut: this.timedOut };
  }

  close(): void {
    clearInterval(this.sweeper);
    clearTimeout(this.trimTimer);
  }

  private evictOldest(set: Set<object>): void {
    const oldest = set.values().next().value;
    if (oldest === undefined) return;
    const e = this.pending.get(oldest);
    this.release(oldest);
    this.evicted++;
    e?.close();
  }

  private sweep(): void {
    const now = this.now();
    for (const [socket, e] of this.pending) {
      if (e.deadline > now) break; // deadlines grow with insertion order
      this.release(socket);
      this.timedOut++;
      e.close();
    }
  }
}
