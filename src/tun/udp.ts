import { isIPv4, isIPv6 } from 'node:net';
import type { Bind, Endpoint, PacketBatch, ReceiveHandler, UdpBind } from '../wireguard/bind.js';
import { native, type NativeReader, type NativeUdpSender } from './native.js';
import { inNetns } from './netns.js';

// Address record layout shared with the addon (see native/netbird_native.cc):
// [0] family 4|6, [2..3] port (network order), [4..7] IPv4 or [4..19] IPv6, [20..23] scope id.
const ADDR_SIZE = 24;
const MAX_CACHED_ENDPOINTS = 8192;

/** A UDP endpoint: one object per remote address, reused for every packet from it. */
export class UdpEndpoint implements Endpoint {
  readonly bind: Bind;
  readonly key: string;
  /** Address record in the addon's layout (ADDR_SIZE bytes). */
  readonly raw: Uint8Array;
  readonly host: string;
  readonly port: number;
  /** Collision chain for IPv6 hash buckets. */
  next: UdpEndpoint | undefined;
  private readonly text: string;

  constructor(bind: Bind, raw: Uint8Array) {
    this.bind = bind;
    this.raw = raw;
    this.port = (raw[2]! << 8) | raw[3]!;
    if (raw[0] === 4) {
      this.host = `${raw[4]}.${raw[5]}.${raw[6]}.${raw[7]}`;
      this.text = `${this.host}:${this.port}`;
    } else {
      const parts: string[] = [];
      for (let i = 0; i < 8; i++) parts.push(((raw[4 + 2 * i]! << 8) | raw[5 + 2 * i]!).toString(16));
      // Shorten the longest run of zero groups to "::" (RFC 5952).
      let best = -1, bestLen = 1;
      for (let i = 0; i < 8; ) {
        if (parts[i] !== '0') { i++; continue; }
        let j = i;
        while (j < 8 && parts[j] === '0') j++;
        if (j - i > bestLen) { best = i; bestLen = j - i; }
        i = j;
      }
      this.host = best < 0 ? parts.join(':') : `${parts.slice(0, best).join(':')}::${parts.slice(best + bestLen).join(':')}`;
      this.text = `[${this.host}]:${this.port}`;
    }
    this.key = `udp:${this.text}`;
  }

  toString(): string {
    return this.text;
  }
}

/** Hash of an address record; IPv4 exact (addr*65536+port), IPv6 a 32-bit FNV-1a offset above 2^48. */
function addrHash(a: Uint8Array, o: number): number {
  if (a[o] === 4) return ((a[o + 4]! << 24) >>> 0) * 65536 + ((a[o + 5]! << 16) | (a[o + 6]! << 8) | a[o + 7]!) * 65536 + ((a[o + 2]! << 8) | a[o + 3]!);
  let h = 0x811c9dc5;
  for (let i = 2; i < 24; i++) h = Math.imul(h ^ a[o + i]!, 0x01000193);
  return 281474976710656 + (h >>> 0);
}

function sameAddr(raw: Uint8Array, a: Uint8Array, o: number): boolean {
  for (let i = 0; i < ADDR_SIZE; i++) if (raw[i] !== a[o + i]) return false;
  return true;
}

export interface UdpBindOptions {
  /** Local port; 0 = any. */
  port: number;
  /** Local address; default: dual-stack any (IPv4 + IPv6). "0.0.0.0" = IPv4 only. */
  host?: string;
  /** Open the socket inside this network namespace. */
  netns?: string;
  /** SO_RCVBUF/SO_SNDBUF in bytes (default 4 MiB; forced past rmem_max when root). */
  bufferBytes?: number;
  /** Max packets per recvmmsg/sendmmsg (default 128). */
  batchSize?: number;
  /** Largest datagram accepted (default 2048); larger ones are dropped. */
  maxPacket?: number;
  /**
   * UDP GSO (UDP_SEGMENT) for sending runs of same-size packets to one destination as one
   * datagram the kernel splits (default: NETBIRD_UDP_GSO env "1"/"0", else on). Falls back to
   * plain sends by itself where the path refuses it.
   */
  gso?: boolean;
  /**
   * UDP GRO: let the kernel hand over runs of packets from one sender as one datagram (split
   * here), e.g. the GSO sends of another netbird peer (default: NETBIRD_UDP_GRO env, else on).
   * Costs 64 KiB of receive buffer per batch slot.
   */
  gro?: boolean;
}

export interface LinuxUdpBind extends UdpBind {
  readonly family: 4 | 6;
  readonly rcvbuf: number;
  readonly sndbuf: number;
  /** Number of endpoint objects cached. */
  readonly endpointCount: number;
  /** UDP GSO currently used for sending. */
  readonly gso: boolean;
  /** UDP GRO enabled for receiving. */
  readonly gro: boolean;
}

class LinuxUdp implements LinuxUdpBind {
  readonly kind = 'udp' as const;
  readonly port: number;
  readonly family: 4 | 6;
  readonly rcvbuf: number;
  readonly sndbuf: number;
  private readonly fd: number;
  private readonly sender: NativeUdpSender;
  private reader: NativeReader | undefined;
  private handler: ReceiveHandler | undefined;
  private readonly rx: PacketBatch;
  private readonly rxAddrs: Uint8Array;
  private readonly from: Endpoint[];
  private txAddrs: Uint8Array;
  private readonly cache = new Map<number, UdpEndpoint>();
  private slab: { buf: Uint8Array; used: number } = { buf: new Uint8Array(ADDR_SIZE * 256), used: 0 };
  private closed = false;

  readonly gro: boolean;

  constructor(fd: number, port: number, family: 4 | 6, rcvbuf: number, sndbuf: number, batchSize: number, maxPacket: number, gso: boolean, gro: boolean) {
    this.fd = fd;
    this.port = port;
    this.family = family;
    this.rcvbuf = rcvbuf;
    this.sndbuf = sndbuf;
    const addon = native();
    this.sender = new addon.UdpSender(fd, family, gso);
    this.gro = gro && addon.udpEnableGro(fd);
    // With GRO a slot takes a whole coalesced datagram (<= 64 KiB) and holds up to 128 packets.
    const slots = this.gro ? Math.min(batchSize, 64) : batchSize;
    const slot = this.gro ? 65536 : Math.ceil(maxPacket / 64) * 64;
    const capacity = this.gro ? slots * 128 : slots;
    const offsets = new Uint32Array(capacity);
    for (let i = 0; i < slots; i++) offsets[i] = i * slot;
    this.rx = { buf: Buffer.allocUnsafe(slots * slot), offsets, lengths: new Uint32Array(capacity), count: 0 };
    this.rxAddrs = new Uint8Array(capacity * ADDR_SIZE);
    this.from = new Array<Endpoint>(capacity);
    this.txAddrs = new Uint8Array(batchSize * ADDR_SIZE);
    this.reader = new addon.Reader(this.gro ? 'udp-gro' : 'udp', fd, this.rx.buf, offsets, slot, this.rx.lengths, this.rxAddrs, slots, (n) => this.onBatch(n));
  }

  get gso(): boolean {
    return this.sender.gso;
  }

  get endpointCount(): number {
    return this.cache.size;
  }

  setReceiveHandler(handler: ReceiveHandler): void {
    this.handler = handler;
    this.reader?.start();
  }

  private onBatch(count: number): void {
    const from = this.from;
    const a = this.rxAddrs;
    let prev: UdpEndpoint | undefined;
    for (let i = 0; i < count; i++) {
      const o = i * ADDR_SIZE;
      // Bursts usually come from one peer: compare with the previous packet's endpoint first.
      from[i] = prev !== undefined && sameAddr(prev.raw, a, o) ? prev : (prev = this.lookup(a, o));
    }
    this.rx.count = count;
    // from[] keeps its full length (no resizing per batch); entries past count are stale.
    this.handler?.(this.rx, from);
  }

  /** Finds or creates the endpoint for the address record at a[o..o+24). */
  private lookup(a: Uint8Array, o: number): UdpEndpoint {
    const h = addrHash(a, o);
    let ep = this.cache.get(h);
    for (let e = ep; e !== undefined; e = e.next) if (sameAddr(e.raw, a, o)) return e;
    if (this.cache.size >= MAX_CACHED_ENDPOINTS) {
      // Spoofed sources must not grow memory without bound. Endpoints already handed out stay
      // valid (the device compares endpoints by key); new packets just get fresh objects.
      this.cache.clear();
      ep = undefined;
    }
    if (this.slab.used + ADDR_SIZE > this.slab.buf.length) this.slab = { buf: new Uint8Array(ADDR_SIZE * 256), used: 0 };
    const raw = this.slab.buf.subarray(this.slab.used, this.slab.used + ADDR_SIZE);
    this.slab.used += ADDR_SIZE;
    raw.set(a.subarray(o, o + ADDR_SIZE));
    const created = new UdpEndpoint(this, raw);
    created.next = ep;
    this.cache.set(h, created);
    return created;
  }

  endpoint(hostPort: string): Endpoint {
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(hostPort) ?? /^([^:]+):(\d+)$/.exec(hostPort);
    if (!m) throw new Error(`bad endpoint "${hostPort}": use host:port or [ipv6]:port`);
    const host = m[1]!;
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw new Error(`bad port in endpoint "${hostPort}"`);
    const rec = new Uint8Array(ADDR_SIZE);
    rec[2] = port >> 8;
    rec[3] = port & 0xff;
    if (isIPv4(host)) {
      rec[0] = 4;
      host.split('.').forEach((x, i) => (rec[4 + i] = Number(x)));
    } else if (isIPv6(host.split('%')[0]!)) {
      rec[0] = 6;
      const [addr, zone] = host.split('%') as [string, string | undefined];
      writeIPv6(addr, rec, 4);
      if (zone !== undefined) {
        if (!/^\d+$/.test(zone)) throw new Error(`endpoint "${hostPort}": use a numeric IPv6 zone index`);
        new DataView(rec.buffer).setUint32(20, Number(zone), true);
      }
      // ::ffff:a.b.c.d arrives from the kernel as family 4: normalise so it hits the same cache entry.
      if (rec.subarray(4, 14).every((b) => b === 0) && rec[14] === 0xff && rec[15] === 0xff) {
        rec.copyWithin(4, 16, 20);
        rec.fill(0, 8);
        rec[0] = 4;
      }
    } else {
      throw new Error(`endpoint "${hostPort}" is not a literal IP address (resolve host names first)`);
    }
    if (rec[0] === 6 && this.family === 4) throw new Error(`endpoint ${hostPort} is IPv6 but this socket is IPv4-only`);
    return this.lookup(rec, 0);
  }

  send(batch: PacketBatch, to: readonly Endpoint[]): void {
    if (this.closed || batch.count === 0) return;
    const n = batch.count;
    if (this.txAddrs.length < n * ADDR_SIZE) this.txAddrs = new Uint8Array(n * ADDR_SIZE);
    const t = this.txAddrs;
    for (let i = 0; i < n; i++) {
      const ep = to[i] as UdpEndpoint;
      t.set(ep.raw, i * ADDR_SIZE);
    }
    this.sender.send(batch.buf, batch.offsets, batch.lengths, n, t);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reader?.stop();
    this.reader = undefined;
    native().closeFd(this.fd);
  }
}

function writeIPv6(addr: string, out: Uint8Array, o: number): void {
  let s = addr;
  const tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    tail.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
    s = s.slice(0, s.length - v4[1]!.length);
    if (s.endsWith(':') && !s.endsWith('::')) s = s.slice(0, -1);
  }
  const [head, rest] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const h = head ? head.split(':').map((x) => parseInt(x, 16)) : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':').map((x) => parseInt(x, 16)) : [];
  const groups = [...h, ...new Array<number>(8 - h.length - r.length - tail.length).fill(0), ...r, ...tail];
  for (let i = 0; i < 8; i++) {
    out[o + 2 * i] = groups[i]! >> 8;
    out[o + 2 * i + 1] = groups[i]! & 0xff;
  }
}

/**
 * Opens a UDP socket for WireGuard: dual-stack by default, 4 MiB buffers,
 * batched recvmmsg/sendmmsg, receiving on the main loop via the addon.
 */
export async function createUdpBind(opts: UdpBindOptions): Promise<LinuxUdpBind> {
  const addon = native();
  const bufBytes = opts.bufferBytes ?? 4 * 1024 * 1024;
  const batchSize = Math.min(opts.batchSize ?? 128, addon.MAX_BATCH);
  const maxPacket = opts.maxPacket ?? 2048;
  const s = inNetns(opts.netns, () => {
    const host = opts.host ?? '';
    try {
      return addon.udpOpen(host === '::' ? '' : host, opts.port, bufBytes);
    } catch (e) {
      // IPv6 disabled in this kernel/namespace: fall back to IPv4 only.
      if (host === '' && /Address family|not supported|Cannot assign/i.test((e as Error).message)) return addon.udpOpen('0.0.0.0', opts.port, bufBytes);
      throw new Error(`cannot open UDP port ${opts.port}${host ? ` on ${host}` : ''}: ${(e as Error).message}`);
    }
  });
  const envGso = process.env.NETBIRD_UDP_GSO;
  const gso = opts.gso ?? (envGso === undefined ? true : envGso === '1');
  const envGro = process.env.NETBIRD_UDP_GRO;
  const gro = opts.gro ?? (envGro === undefined ? true : envGro === '1');
  return new LinuxUdp(s.fd, s.port, s.family, s.rcvbuf, s.sndbuf, batchSize, maxPacket, gso, gro);
}
