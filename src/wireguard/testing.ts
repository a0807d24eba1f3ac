/**
 * In-memory fakes of the device's seams (a TUN and binds on a simulated
 * network) for tests and examples. Delivery is asynchronous (setImmediate),
 * as a real socket's would be, so a bind never calls the device re-entrantly.
 */
import type { TunDevice } from '../tun/types.js';
import { createSocket, type Socket } from 'node:dgram';
import type { Bind, Endpoint, PacketBatch, ReceiveHandler, UdpBind } from './bind.js';

/** Copies packets into one fresh PacketBatch. */
export function makeBatch(packets: readonly Buffer[]): PacketBatch {
  const total = packets.reduce((n, p) => n + p.length, 0);
  const buf = Buffer.alloc(Math.max(total, 1));
  const offsets = new Uint32Array(packets.length);
  const lengths = new Uint32Array(packets.length);
  let o = 0;
  packets.forEach((p, i) => {
    p.copy(buf, o);
    offsets[i] = o;
    lengths[i] = p.length;
    o += p.length;
  });
  return { buf, offsets, lengths, count: packets.length };
}

/** Copies the packets out of a batch. */
export function batchPackets(batch: PacketBatch): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < batch.count; i++) {
    out.push(Buffer.from(batch.buf.subarray(batch.offsets[i]!, batch.offsets[i]! + batch.lengths[i]!)));
  }
  return out;
}

class MemoryEndpoint implements Endpoint {
  readonly key: string;
  constructor(readonly bind: MemoryBind, readonly address: string) {
    this.key = `${bind.kind}:${address}`;
  }
  toString(): string {
    return this.address;
  }
}

/** What a network hook sees; return false to drop the packet. */
export type PacketHook = (pkt: Buffer, from: string, to: string) => boolean;

/** A switch joining MemoryBinds by address. */
export class MemoryNetwork {
  private readonly binds = new Map<string, MemoryBind>();
  /** Called for every packet in flight (tests tap, drop or mutate traffic here). */
  hook: PacketHook | null = null;
  delivered = 0;

  bind(address: string, kind = 'mem'): MemoryBind {
    if (this.binds.has(address)) throw new Error(`address ${address} already in use`);
    const b = new MemoryBind(this, address, kind);
    this.binds.set(address, b);
    return b;
  }

  /** @internal */
  unregister(address: string): void {
    this.binds.delete(address);
  }

  /** @internal Deliver from `from` to `to` on the next turn of the event loop. */
  transmit(pkts: Buffer[], from: string, tos: string[]): void {
    setImmediate(() => {
      const byDest = new Map<string, Buffer[]>();
      pkts.forEach((p, i) => {
        const to = tos[i]!;
        if (this.hook && !this.hook(p, from, to)) return;
        let l = byDest.get(to);
        if (!l) byDest.set(to, (l = []));
        l.push(p);
      });
      for (const [to, list] of byDest) {
        const dst = this.binds.get(to);
        if (!dst) continue;
        this.delivered += list.length;
        dst.deliver(list, from);
      }
    });
  }

  /** Inject raw datagrams into `to` as if sent from `from` (attack traffic in tests). */
  inject(to: string, from: string, pkts: Buffer[]): void {
    const dst = this.binds.get(to);
    if (dst) dst.deliver(pkts, from);
  }
}

export class MemoryBind implements Bind {
  private handler: ReceiveHandler | null = null;
  private readonly endpoints = new Map<string, MemoryEndpoint>();
  closed = false;
  sent = 0;

  constructor(private readonly net: MemoryNetwork, readonly address: string, readonly kind: string) {}

  /** Endpoint for a peer address on the same network (cached: same object for the same address). */
  endpoint(address: string): Endpoint {
    let ep = this.endpoints.get(address);
    if (!ep) this.endpoints.set(address, (ep = new MemoryEndpoint(this, address)));
    return ep;
  }

  setReceiveHandler(handler: ReceiveHandler): void {
    this.handler = handler;
  }

  send(batch: PacketBatch, to: readonly Endpoint[]): void {
    if (this.closed) return;
    const pkts = batchPackets(batch);
    const tos: string[] = [];
    for (let i = 0; i < batch.count; i++) {
      const ep = to[i];
      if (!(ep instanceof MemoryEndpoint) || ep.bind !== this) throw new Error('endpoint does not belong to this bind');
      tos.push(ep.address);
    }
    this.sent += pkts.length;
    this.net.transmit(pkts, this.address, tos);
  }

  /** @internal */
  deliver(pkts: Buffer[], from: string): void {
    if (this.closed || !this.handler || pkts.length === 0) return;
    const ep = this.endpoint(from);
    this.handler(makeBatch(pkts), pkts.map(() => ep));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.net.unregister(this.address);
  }
}

/** A TUN stand-in: `inject` plays the kernel sending packets, `written` collects what the device wrote. */
export class MemoryTun implements TunDevice {
  private handler: ((batch: PacketBatch) => void) | null = null;
  readonly written: Buffer[] = [];
  private waiters: Array<() => void> = [];
  closed = false;

  constructor(readonly name = 'memtun0', readonly mtu = 1420) {}

  setReadHandler(handler: (batch: PacketBatch) => void): void {
    this.handler = handler;
  }

  write(batch: PacketBatch): void {
    this.written.push(...batchPackets(batch));
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Hands packets to the device as if read from the kernel. */
  inject(pkts: Buffer[]): void {
    if (!this.handler) throw new Error('no read handler: construct the Device first');
    this.handler(makeBatch(pkts));
  }

  /** Resolves once at least `n` packets have been written in total (rejects after `ms`). */
  waitFor(n: number, ms = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.written.length >= n) {
          clearTimeout(timer);
          resolve();
        } else this.waiters.push(check);
      };
      const timer = setTimeout(() => reject(new Error(`timeout: ${this.written.length}/${n} packets written to ${this.name}`)), ms);
      check();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/**
 * A plain node:dgram UdpBind: one syscall per packet, so only for tests and
 * as a fallback; the production bind batches in native code (src/tun).
 */
export class DgramBind implements UdpBind {
  readonly kind = 'udp' as const;
  private handler: ReceiveHandler | null = null;
  private readonly endpoints = new Map<string, DgramEndpoint>();
  private readonly rx: PacketBatch = { buf: Buffer.alloc(65536), offsets: new Uint32Array(1), lengths: new Uint32Array(1), count: 1 };
  private readonly rxFrom: Endpoint[] = [];
  private constructor(private readonly sock: Socket) {
    sock.on('message', (msg, rinfo) => {
      if (!this.handler) return;
      const ep = this.endpointFor(rinfo.address, rinfo.port);
      msg.copy(this.rx.buf, 0);
      this.rx.lengths[0] = msg.length;
      this.rxFrom[0] = ep;
      this.handler(this.rx, this.rxFrom);
    });
  }

  static async open(port = 0, host = '127.0.0.1'): Promise<DgramBind> {
    const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, host, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    return new DgramBind(sock);
  }

  get port(): number {
    return this.sock.address().port;
  }

  private endpointFor(address: string, port: number): DgramEndpoint {
    const k = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
    let ep = this.endpoints.get(k);
    if (!ep) this.endpoints.set(k, (ep = new DgramEndpoint(this, address, port, k)));
    return ep;
  }

  endpoint(hostPort: string): Endpoint {
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(hostPort) ?? /^([^:]+):(\d+)$/.exec(hostPort);
    if (!m) throw new Error(`invalid endpoint ${JSON.stringify(hostPort)}: expected host:port or [v6]:port`);
    return this.endpointFor(m[1]!, Number(m[2]));
  }

  setReceiveHandler(handler: ReceiveHandler): void {
    this.handler = handler;
  }

  send(batch: PacketBatch, to: readonly Endpoint[]): void {
    for (let i = 0; i < batch.count; i++) {
      const ep = to[i] as DgramEndpoint;
      // dgram copies synchronously only for a single Buffer; copy so the caller may reuse its batch.
      const o = batch.offsets[i]!;
      this.sock.send(Buffer.from(batch.buf.subarray(o, o + batch.lengths[i]!)), ep.port, ep.address);
    }
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => this.sock.close(() => r()));
  }
}

class DgramEndpoint implements Endpoint {
  readonly key: string;
  constructor(readonly bind: DgramBind, readonly address: string, readonly port: number, private readonly text: string) {
    this.key = `udp:${text}`;
  }
  toString(): string {
    return this.text;
  }
}
