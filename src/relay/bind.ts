/**
 * RelayBind: the WireGuard transport seam (src/wireguard/bind.ts) over one or
 * more RelayClients (home relay + foreign relays). An Endpoint is (client,
 * remote peer ID). Received transport messages are copied into a batch and
 * handed to the device once per socket read (microtask), so a burst of relayed
 * packets costs one device pass instead of one per packet.
 */
import type { Bind, Endpoint, PacketBatch, ReceiveHandler } from '../wireguard/index.js';
import { relayPeerId, relayPeerIdString } from '../crypto/index.js';
import type { RelayClient } from './client.js';
import { PEER_ID_LENGTH } from './codec.js';

export class RelayEndpoint implements Endpoint {
  readonly key: string;
  /** Next endpoint in the same hash bucket of the owning client's table. */
  nextInBucket: RelayEndpoint | null = null;
  constructor(
    readonly bind: RelayBind,
    readonly client: RelayClient,
    readonly peerId: Buffer,
  ) {
    this.key = `relay:${client.url}:${relayPeerIdString(peerId)}`;
  }
  toString(): string {
    return `${this.client.instanceUrl || this.client.url} (${relayPeerIdString(this.peerId).slice(0, 16)}…)`;
  }
}

const BATCH_PACKETS = 128;
const BATCH_BYTES = 256 * 1024;

interface ClientState {
  client: RelayClient;
  endpoints: Map<number, RelayEndpoint>;
}

function idKey(buf: Uint8Array, off: number): number {
  // 31 bits of the SHA-256 part of the peer ID: a small integer key, no allocation per lookup.
  return ((buf[off + 4]! | (buf[off + 5]! << 8) | (buf[off + 6]! << 16) | (buf[off + 7]! << 24)) >> 1) | 0;
}

export interface RelayBindOptions {
  /** Close the clients when the bind is closed (default true). */
  ownsClients?: boolean;
}

export class RelayBind implements Bind {
  readonly kind = 'relay';
  private handler: ReceiveHandler | null = null;
  private readonly clients = new Map<RelayClient, ClientState>();
  private readonly ownsClients: boolean;
  private readonly batch: { buf: Buffer; offsets: Uint32Array; lengths: Uint32Array; count: number };
  private readonly from: Endpoint[] = [];
  private used = 0;
  private flushQueued = false;
  private readonly flush = (): void => this.deliver();

  constructor(clients: RelayClient[] = [], opts: RelayBindOptions = {}) {
    this.ownsClients = opts.ownsClients ?? true;
    this.batch = { buf: Buffer.allocUnsafe(BATCH_BYTES), offsets: new Uint32Array(BATCH_PACKETS), lengths: new Uint32Array(BATCH_PACKETS), count: 0 };
    for (const c of clients) this.addClient(c);
  }

  setReceiveHandler(handler: ReceiveHandler): void {
    this.handler = handler;
  }

  /** Starts receiving transport messages of `client` through this bind. */
  addClient(client: RelayClient): void {
    if (this.clients.has(client)) return;
    const state: ClientState = { client, endpoints: new Map() };
    this.clients.set(client, state);
    client.onTransport((src, payload) => this.onTransport(state, src, payload));
  }

  removeClient(client: RelayClient): void {
    if (!this.clients.delete(client)) return;
    client.onTransport(null);
  }

  /** The endpoint for a remote peer (by WireGuard public key or relay peer ID) on `client`. */
  endpoint(client: RelayClient, peer: string | Uint8Array): RelayEndpoint {
    const state = this.clients.get(client);
    if (!state) throw new Error('RelayBind.endpoint: add the relay client to the bind first');
    const id = typeof peer === 'string' ? relayPeerId(peer) : Buffer.from(peer);
    if (id.length !== PEER_ID_LENGTH) throw new Error(`relay peer ID must be ${PEER_ID_LENGTH} bytes`);
    return this.lookupOrCreate(state, id, 0);
  }

  send(batch: PacketBatch, to: readonly Endpoint[]): void {
    for (let i = 0; i < batch.count; i++) {
      const ep = to[i] as RelayEndpoint | undefined;
      if (ep === undefined || ep.bind !== this) continue;
      // A false return means the relay is down or congested: the packet is dropped like on a lossy link.
      ep.client.send(ep.peerId, batch.buf, batch.offsets[i]!, batch.lengths[i]!);
    }
  }

  async close(): Promise<void> {
    const clients = [...this.clients.keys()];
    for (const c of clients) this.removeClient(c);
    this.handler = null;
    if (this.ownsClients) await Promise.all(clients.map((c) => c.close()));
  }

  private lookupOrCreate(state: ClientState, buf: Uint8Array, off: number): RelayEndpoint {
    const k = idKey(buf, off);
    let ep = state.endpoints.get(k) ?? null;
    while (ep !== null && Buffer.compare(ep.peerId, buf.subarray(off, off + PEER_ID_LENGTH)) !== 0) ep = ep.nextInBucket;
    if (ep !== null) return ep;
    const created = new RelayEndpoint(this, state.client, Buffer.from(buf.subarray(off, off + PEER_ID_LENGTH)));
    created.nextInBucket = state.endpoints.get(k) ?? null;
    state.endpoints.set(k, created);
    return created;
  }

  private lookup(state: ClientState, src: Buffer): RelayEndpoint {
    let ep = state.endpoints.get(idKey(src, 0)) ?? null;
    while (ep !== null && !ep.peerId.equals(src)) ep = ep.nextInBucket;
    return ep ?? this.lookupOrCreate(state, src, 0);
  }

  private onTransport(state: ClientState, src: Buffer, payload: Buffer): void {
    if (this.handler === null) return;
    if (this.batch.count === BATCH_PACKETS || this.used + payload.length > BATCH_BYTES) this.deliver();
    const i = this.batch.count;
    payload.copy(this.batch.buf, this.used);
    this.batch.offsets[i] = this.used;
    this.batch.lengths[i] = payload.length;
    this.from[i] = this.lookup(state, src);
    this.batch.count = i + 1;
    this.used += payload.length;
    if (!this.flushQueued) {
      this.flushQueued = true;
      // ws emits all messages of one socket read synchronously; deliver them together afterwards.
      queueMicrotask(this.flush);
    }
  }

  private deliver(): void {
    this.flushQueued = false;
    const n = this.batch.count;
    if (n === 0) return;
    const handler = this.handler;
    this.from.length = n;
    try {
      if (handler) handler(this.batch, this.from);
    } finally {
      this.batch.count = 0;
      this.used = 0;
    }
  }
}
