/**
 * A TURN allocation as an ICE candidate base and a WireGuard Bind: control
 * messages via the STUN TurnClient, checks and WireGuard packets as
 * ChannelData (one channel per remote address) on its own native UDP socket.
 * Packets received on a channel go to the owning agent (STUN) or to the
 * WireGuard device through the IceMux (everything else).
 */
import { EventEmitter } from 'node:events';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Socket } from 'node:dgram';
import {
  StunAttr, StunClass, StunMethod, TurnClient, decodeStun, decodeXorAddress, getAttr, isStunMessage, type TransportAddress,
} from '../stun/index.js';
import { createUdpBind } from '../tun/index.js';
import type { Bind, Endpoint, PacketBatch, ReceiveHandler, UdpBind } from '../wireguard/index.js';
import type { IceBase, IceMux, StunSink } from './mux.js';

export class TurnEndpoint implements Endpoint {
  readonly key: string;
  private readonly text: string;
  constructor(
    readonly bind: TurnRelay,
    readonly channel: number,
    readonly address: string,
    readonly port: number,
  ) {
    this.text = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
    this.key = `turn:${bind.id}:${this.text}`;
  }
  toString(): string {
    return `${this.text} via TURN ${this.bind.serverText}`;
  }
}

interface Channel {
  ep: TurnEndpoint;
  ready: Promise<void>;
  bound: boolean;
}

/** dgram-like adapter so the TurnClient speaks through our native socket to the server. */
class ServerSocket extends EventEmitter {
  private readonly one: PacketBatch = { buf: Buffer.alloc(0), offsets: new Uint32Array(1), lengths: new Uint32Array(1), count: 1 };
  constructor(
    private readonly sock: UdpBind,
    private readonly server: Endpoint,
  ) {
    super();
  }
  send(msg: Buffer | Buffer[], ..._rest: unknown[]): void {
    const buf = Array.isArray(msg) ? Buffer.concat(msg) : msg;
    (this.one as { buf: Buffer }).buf = buf;
    this.one.lengths[0] = buf.length;
    this.sock.send(this.one, [this.server]);
  }
}

const TX_PACKETS = 64;
const TX_SLOT = 2048;
let nextId = 1;

export interface TurnRelayOptions {
  host: string;
  port: number;
  username: string;
  password: string;
  /** Open the relay socket in this network namespace (tests). */
  netns?: string;
  timeoutMs?: number;
}

export class TurnRelay implements Bind, IceBase {
  readonly kind = 'relay' as const;
  readonly id = nextId++;
  readonly serverText: string;
  relayed: TransportAddress | null = null;
  mapped: TransportAddress | null = null;
  private readonly client: TurnClient;
  private readonly adapter: ServerSocket;
  private readonly channels = new Map<string, Channel>();
  private readonly byNumber = new Map<number, Channel>();
  private nextChannel = 0x4000;
  private refreshTimer: NodeJS.Timeout | null = null;
  private sink: StunSink | null = null;
  /** Reports problems (for the agent's debug log). */
  onError: ((msg: string) => void) | null = null;
  private mux: IceMux | null = null;
  private closed = false;
  // Preallocated batches: received WireGuard packets (views into the socket's buffer) and framed sends.
  private rxOffsets = new Uint32Array(0);
  private rxLengths = new Uint32Array(0);
  private rxFrom: Endpoint[] = [];
  private readonly rxView: PacketBatch = { buf: Buffer.alloc(0), offsets: new Uint32Array(0), lengths: new Uint32Array(0), count: 0 };
  private readonly tx: PacketBatch = { buf: Buffer.allocUnsafe(TX_PACKETS * TX_SLOT), offsets: new Uint32Array(TX_PACKETS), lengths: new Uint32Array(TX_PACKETS), count: 0 };
  private readonly txTo: Endpoint[] = new Array<Endpoint>(TX_PACKETS);

  private constructor(
    private readonly sock: UdpBind,
    private readonly server: Endpoint,
    serverIp: string,
    opts: TurnRelayOptions,
  ) {
    this.serverText = `${serverIp}:${opts.port}`;
    for (let i = 0; i < TX_PACKETS; i++) {
      this.tx.offsets[i] = i * TX_SLOT;
      this.txTo[i] = server;
    }
    this.adapter = new ServerSocket(sock, server);
    this.client = new TurnClient({
      host: serverIp,
      port: opts.port,
      username: opts.username,
      password: opts.password,
      socket: this.adapter as unknown as Socket,
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    });
    sock.setReceiveHandler((batch, from) => this.onBatch(batch, from));
  }

  /** Opens a socket and allocates a relayed address on the TURN server. */
  static async open(opts: TurnRelayOptions): Promise<TurnRelay> {
    const ip = isIP(opts.host) ? opts.host : (await lookup(opts.host, { family: 4 })).address;
    const sock = await createUdpBind({ port: 0, host: '0.0.0.0', netns: opts.netns, gso: false, gro: false, bufferBytes: 1 << 20 });
    const relay = new TurnRelay(sock, sock.endpoint(`${ip}:${opts.port}`), ip, opts);
    try {
      relay.relayed = await relay.client.allocate();
      relay.mapped = relay.client.mapped;
    } catch (e) {
      await relay.close();
      throw e;
    }
    // Channel bindings last 10 min and permissions 5 min: rebinding refreshes both.
    relay.refreshTimer = setInterval(() => relay.refreshChannels(), 4 * 60_000);
    relay.refreshTimer.unref();
    return relay;
  }

  /** STUN arriving on a channel goes to `sink`; WireGuard packets to the device through `mux`. */
  attach(sink: StunSink, mux: IceMux): void {
    this.sink = sink;
    this.mux = mux;
  }

  setReceiveHandler(_handler: ReceiveHandler): void {
    // Received packets are delivered through the IceMux handler (the device's), see attach().
  }

  /** Binds (once) a channel to a remote address; resolves when the server confirmed it. */
  channelFor(address: string, port: number): Channel {
    const k = `${address}|${port}`;
    let ch = this.channels.get(k);
    if (ch) return ch;
    if (this.nextChannel > 0x7fff) throw new Error('TURN: out of channel numbers');
    const ep = new TurnEndpoint(this, this.nextChannel++, address, port);
    const created: Channel = { ep, bound: false, ready: Promise.resolve() };
    created.ready = this.client.channelBind(ep.channel, { address, port }).then(() => {
      created.bound = true;
    });
    created.ready.catch((e: Error) => {
      this.onError?.(`channel bind to ${address}:${port}: ${e.message}`);
      // Failed bind: forget it so a later check tries again.
      if (this.channels.get(k) === created) this.channels.delete(k);
    });
    this.channels.set(k, created);
    this.byNumber.set(ep.channel, created);
    return created;
  }

  sendStun(buf: Buffer, address: string, port: number): void {
    if (this.closed) return;
    let ch: Channel;
    try {
      ch = this.channelFor(address, port);
    } catch {
      return;
    }
    if (ch.bound) this.sendFramed(ch.ep.channel, buf, 0, buf.length);
    else ch.ready.then(() => this.sendFramed(ch.ep.channel, buf, 0, buf.length), () => undefined);
  }

  endpointFor(address: string, port: number): Endpoint {
    return this.channelFor(address, port).ep;
  }

  send(batch: PacketBatch, to: readonly Endpoint[]): void {
    if (this.closed) return;
    const tx = this.tx;
    let k = 0;
    for (let i = 0; i < batch.count; i++) {
      const ep = to[i] as TurnEndpoint;
      const len = batch.lengths[i]!;
      if (len + 4 > TX_SLOT) continue;
      const o = tx.offsets[k]!;
      tx.buf.writeUInt16BE(ep.channel, o);
      tx.buf.writeUInt16BE(len, o + 2);
      batch.buf.copy(tx.buf, o + 4, batch.offsets[i]!, batch.offsets[i]! + len);
      tx.lengths[k] = len + 4;
      if (++k === TX_PACKETS) {
        tx.count = k;
        this.sock.send(tx, this.txTo);
        k = 0;
      }
    }
    if (k > 0) {
      tx.count = k;
      this.sock.send(tx, this.txTo);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    await this.client.close().catch(() => undefined);
    await this.sock.close();
  }

  private sendFramed(channel: number, data: Buffer, off: number, len: number): void {
    if (this.closed) return;
    const frame = Buffer.allocUnsafe(4 + len);
    frame.writeUInt16BE(channel, 0);
    frame.writeUInt16BE(len, 2);
    data.copy(frame, 4, off, off + len);
    this.adapter.send(frame);
  }

  private onDataIndication(buf: Buffer): void {
    const msg = decodeStun(buf);
    if (msg === null || msg.method !== StunMethod.Data || msg.cls !== StunClass.Indication) return;
    const peer = decodeXorAddress(getAttr(msg, StunAttr.XorPeerAddress) ?? Buffer.alloc(0), msg.transactionId);
    const data = getAttr(msg, StunAttr.Data);
    if (peer === null || data === undefined) return;
    if (isStunMessage(data)) {
      this.sink?.onStun(data, peer.address, peer.port, this);
      return;
    }
    // Rare (a peer talking before our channel exists): deliver as a one-packet batch; the endpoint binds a channel.
    const ep = this.endpointFor(peer.address, peer.port);
    this.mux?.deliver({ buf: data, offsets: Uint32Array.of(0), lengths: Uint32Array.of(data.length), count: 1 }, [ep]);
  }

  private refreshChannels(): void {
    for (const ch of this.channels.values()) {
      void this.client.channelBind(ch.ep.channel, { address: ch.ep.address, port: ch.ep.port }).catch(() => undefined);
    }
  }

  private onBatch(batch: PacketBatch, from: readonly Endpoint[]): void {
    const b = batch.buf;
    if (this.rxOffsets.length < batch.offsets.length) {
      this.rxOffsets = new Uint32Array(batch.offsets.length);
      this.rxLengths = new Uint32Array(batch.offsets.length);
      this.rxFrom = new Array<Endpoint>(batch.offsets.length);
      (this.rxView as { offsets: Uint32Array }).offsets = this.rxOffsets;
      (this.rxView as { lengths: Uint32Array }).lengths = this.rxLengths;
    }
    let k = 0;
    for (let i = 0; i < batch.count; i++) {
      if (from[i]!.key !== this.server.key) continue; // only the server talks to this socket
      const o = batch.offsets[i]!;
      const len = batch.lengths[i]!;
      if (len >= 4 && (b[o]! & 0xc0) === 0x40) {
        const ch = this.byNumber.get((b[o]! << 8) | b[o + 1]!);
        const plen = (b[o + 2]! << 8) | b[o + 3]!;
        if (ch === undefined || plen + 4 > len) {
          this.onError?.(`dropped ChannelData ch=${(b[o]! << 8) | b[o + 1]!} plen=${plen} len=${len}`);
          continue;
        }
        const p = o + 4;
        if (plen >= 20 && (b[p]! & 0xc0) === 0 && b[p + 4] === 0x21 && b[p + 5] === 0x12 && b[p + 6] === 0xa4 && b[p + 7] === 0x42) {
          this.sink?.onStun(Buffer.from(b.subarray(p, p + plen)), ch.ep.address, ch.ep.port, this);
          continue;
        }
        this.rxOffsets[k] = p;
        this.rxLengths[k] = plen;
        this.rxFrom[k++] = ch.ep;
      } else if (len >= 20 && b[o] === 0x00 && b[o + 1] === 0x17) {
        // Data indication: from a peer address without a channel yet (e.g. a peer-reflexive one).
        this.onDataIndication(Buffer.from(b.subarray(o, o + len)));
      } else {
        this.adapter.emit('message', Buffer.from(b.subarray(o, o + len)));
      }
    }
    if (k > 0 && this.mux) {
      (this.rxView as { buf: Buffer }).buf = b;
      this.rxView.count = k;
      this.mux.deliver(this.rxView, this.rxFrom);
    }
  }
}
