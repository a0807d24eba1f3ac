import type { RelayClient } from '../relay/index.js';
import type { Bind, Endpoint, PacketBatch, ReceiveHandler } from '../wireguard/index.js';

/** A remote peer reached through one relay connection. */
export class RelayEndpoint implements Endpoint {
  readonly key: string;
  constructor(
    readonly bind: RelayBind,
    readonly client: RelayClient,
    readonly peerId: Buffer,
  ) {
    this.key = `relay:${client.url}:${peerId.toString('hex')}`;
  }
  toString(): string {
    return this.client.instanceUrl || this.client.url;
  }
}

/** One packet batch over a transport payload view (relay messages arrive one at a time). */
class SingleBatch implements PacketBatch {
  buf: Buffer = Buffer.alloc(0);
  readonly offsets = new Uint32Array(1);
  readonly lengths = new Uint32Array(1);
  count = 1;
}

/**
 * WireGuard packets over NetBird relay connections (home and foreign relays): the device sees each remote
 * peer behind a relay as one Endpoint, so moving a peer between relay and UDP paths is just setPeerEndpoint.
 */
export class RelayBind implements Bind {
  readonly kind = 'relay';
  private handler: ReceiveHandler | undefined;
  private readonly batch = new SingleBatch();
  private readonly from: Endpoint[] = [];
  private readonly endpoints = new Map<RelayClient, Map<string, RelayEndpoint>>();

  setReceiveHandler(handler: ReceiveHandler): void {
    this.handler = handler;
  }

  /** Starts delivering the relay connection's transport messages to the device. */
  attach(client: RelayClient): void {
    if (this.endpoints.has(client)) return;
    this.endpoints.set(client, new Map());
    client.onTransport((src, payload) => {
      const h = this.handler;
      if (!h) return;
      this.batch.buf = payload;
      this.batch.offsets[0] = 0;
      this.batch.lengths[0] = payload.length;
      this.batch.count = 1;
      this.from[0] = this.endpointFor(client, src);
      h(this.batch, this.from);
    });
  }

  detach(client: RelayClient): void {
    client.onTransport(null);
    this.endpoints.delete(client);
  }

  /** The (cached) endpoint for a peer ID on a relay connection. */
  endpointFor(client: RelayClient, peerId: Buffer): RelayEndpoint {
    let byPeer = this.endpoints.get(client);
    if (!byPeer) {
      this.attach(client);
      byPeer = this.endpoints.get(client)!;
    }
    const k = peerId.toString('latin1');
    let ep = byPeer.get(k);
    if (!ep) {
      ep = new RelayEndpoint(this, client, Buffer.from(peerId));
      byPeer.set(k, ep);
    }
    return ep;
  }

  send(batch: PacketBatch, to: readonly Endpoint[]): void {
    for (let i = 0; i < batch.count; i++) {
      const ep = to[i] as RelayEndpoint;
      ep.client.send(ep.peerId, batch.buf, batch.offsets[i]!, batch.lengths[i]!);
    }
  }

  async close(): Promise<void> {
    for (const c of this.endpoints.keys()) c.onTransport(null);
    this.endpoints.clear();
  }
}
