/**
 * The shared WireGuard/ICE UDP socket (protocol.md §6.3): a UdpBind wrapper
 * that hands STUN datagrams to the ICE agents and everything else to the
 * WireGuard device. ICE candidates therefore carry the WireGuard port, and the
 * path ICE proves is directly usable as a WireGuard Endpoint of the socket.
 *
 * Data path: batches without STUN pass through untouched; a batch with STUN
 * is re-indexed into preallocated arrays (same packet buffer), so nothing is
 * allocated per WireGuard packet. Sends go straight to the inner bind (the
 * endpoints belong to it).
 */
import type { Endpoint, PacketBatch, ReceiveHandler, UdpBind } from '../wireguard/index.js';
import { transactionKey, stunClassOf, usernameOf } from './checks.js';

/** Something that can send STUN for an ICE candidate base and name WireGuard endpoints on it. */
export interface IceBase {
  readonly kind: 'udp' | 'relay';
  sendStun(buf: Buffer, address: string, port: number): void;
  /** The WireGuard endpoint for a remote transport address reached through this base. */
  endpointFor(address: string, port: number): Endpoint;
}

/** Receives STUN datagrams (copies) for one ICE agent. */
export interface StunSink {
  onStun(buf: Buffer, address: string, port: number, base: IceBase): void;
}

const MAGIC = [0x21, 0x12, 0xa4, 0x42] as const;

/** isStunMessage for packet i of a batch, without making a view. */
function isStunAt(b: Buffer, o: number, len: number): boolean {
  if (len < 20 || (b[o]! & 0xc0) !== 0) return false;
  if (b[o + 4] !== MAGIC[0] || b[o + 5] !== MAGIC[1] || b[o + 6] !== MAGIC[2] || b[o + 7] !== MAGIC[3]) return false;
  const l = (b[o + 2]! << 8) | b[o + 3]!;
  return (l & 3) === 0 && l + 20 === len;
}

/** host/port of a UDP endpoint: UdpEndpoint has them; otherwise parse its text form. */
export function endpointAddress(ep: Endpoint): { address: string; port: number } {
  const e = ep as Endpoint & { host?: unknown; port?: unknown };
  if (typeof e.host === 'string' && typeof e.port === 'number') return { address: e.host, port: e.port };
  const t = ep.toString();
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(t) ?? /^([^:]+):(\d+)$/.exec(t);
  return m ? { address: m[1]!, port: Number(m[2]) } : { address: '', port: 0 };
}

export class IceMux implements UdpBind, IceBase {
  readonly kind = 'udp' as const;
  private handler: ReceiveHandler | null = null;
  private readonly byUfrag = new Map<string, StunSink>();
  private readonly byTransaction = new Map<string, StunSink>();
  // Re-indexed view of a batch that contained STUN (grown to the inner batch size once).
  private offsets = new Uint32Array(0);
  private lengths = new Uint32Array(0);
  private from: Endpoint[] = [];
  private readonly view: PacketBatch;
  private readonly one: PacketBatch = { buf: Buffer.alloc(0), offsets: new Uint32Array(1), lengths: new Uint32Array(1), count: 1 };
  private readonly oneTo: Endpoint[] = [];
  /** STUN datagrams no agent claimed (unknown ufrag / transaction). */
  unclaimedStun = 0;
  stunReceived = 0;

  constructor(readonly inner: UdpBind) {
    this.view = { buf: Buffer.alloc(0), offsets: this.offsets, lengths: this.lengths, count: 0 };
    inner.setReceiveHandler((batch, from) => this.onBatch(batch, from));
  }

  get port(): number {
    return this.inner.port;
  }

  /** Address family of the socket (6 = dual-stack). */
  get family(): 4 | 6 {
    const f = (this.inner as UdpBind & { family?: unknown }).family;
    return f === 4 ? 4 : 6;
  }

  setReceiveHandler(handler: ReceiveHandler): void {
    this.handler = handler;
  }

  send(batch: PacketBatch, to: readonly Endpoint[]): void {
    this.inner.send(batch, to);
  }

  endpoint(hostPort: string): Endpoint {
    return this.inner.endpoint(hostPort);
  }

  endpointFor(address: string, port: number): Endpoint {
    return this.inner.endpoint(address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);
  }

  close(): Promise<void> {
    this.byUfrag.clear();
    this.byTransaction.clear();
    return this.inner.close();
  }

  /** Requests whose USERNAME starts with "<ufrag>:" go to `sink`. */
  register(ufrag: string, sink: StunSink): void {
    this.byUfrag.set(ufrag, sink);
  }

  unregister(ufrag: string, sink: StunSink): void {
    if (this.byUfrag.get(ufrag) === sink) this.byUfrag.delete(ufrag);
  }

  /** Answers (and indications) with this transaction ID (hex) go to `sink`. */
  expect(tid: string, sink: StunSink): void {
    this.byTransaction.set(tid, sink);
  }

  forget(tid: string): void {
    this.byTransaction.delete(tid);
  }

  sendStun(buf: Buffer, address: string, port: number): void {
    let ep: Endpoint;
    try {
      ep = this.endpointFor(address, port);
    } catch {
      return; // e.g. IPv6 target on an IPv4-only socket: unreachable from this base
    }
    const one = this.one as { buf: Buffer } & PacketBatch;
    one.buf = buf;
    one.offsets[0] = 0;
    one.lengths[0] = buf.length;
    one.count = 1;
    this.oneTo[0] = ep;
    this.inner.send(one, this.oneTo);
    one.buf = Buffer.alloc(0);
  }

  /** Hands WireGuard packets that arrived another way (TURN relay) to the device. */
  deliver(batch: PacketBatch, from: readonly Endpoint[]): void {
    this.handler?.(batch, from);
  }

  private onBatch(batch: PacketBatch, from: readonly Endpoint[]): void {
    const b = batch.buf;
    const n = batch.count;
    let first = -1;
    for (let i = 0; i < n; i++) {
      if (isStunAt(b, batch.offsets[i]!, batch.lengths[i]!)) {
        first = i;
        break;
      }
    }
    if (first < 0) {
      this.handler?.(batch, from);
      return;
    }
    if (this.offsets.length < batch.offsets.length) {
      this.offsets = new Uint32Array(batch.offsets.length);
      this.lengths = new Uint32Array(batch.offsets.length);
      this.from = new Array<Endpoint>(batch.offsets.length);
      (this.view as { offsets: Uint32Array }).offsets = this.offsets;
      (this.view as { lengths: Uint32Array }).lengths = this.lengths;
    }
    let k = 0;
    for (let i = 0; i < first; i++) {
      this.offsets[k] = batch.offsets[i]!;
      this.lengths[k] = batch.lengths[i]!;
      this.from[k++] = from[i]!;
    }
    for (let i = first; i < n; i++) {
      const o = batch.offsets[i]!;
      const len = batch.lengths[i]!;
      if (isStunAt(b, o, len)) {
        this.routeStun(Buffer.from(b.subarray(o, o + len)), from[i]!);
        continue;
      }
      this.offsets[k] = o;
      this.lengths[k] = len;
      this.from[k++] = from[i]!;
    }
    if (k === 0 || this.handler === null) return;
    (this.view as { buf: Buffer }).buf = b;
    this.view.count = k;
    this.handler(this.view, this.from);
  }

  private routeStun(buf: Buffer, ep: Endpoint): void {
    this.stunReceived++;
    const { address, port } = endpointAddress(ep);
    let sink: StunSink | undefined;
    if (stunClassOf(buf) === 0) {
      const user = usernameOf(buf);
      const colon = user.indexOf(':');
      sink = colon > 0 ? this.byUfrag.get(user.slice(0, colon)) : undefined;
    } else {
      sink = this.byTransaction.get(transactionKey(buf));
    }
    if (sink === undefined) {
      this.unclaimedStun++;
      return;
    }
    try {
      sink.onStun(buf, address, port, this);
    } catch {
      // An agent's bug must not break the WireGuard receive path.
    }
  }
}
