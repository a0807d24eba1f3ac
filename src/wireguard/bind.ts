/**
 * The transport seam between the WireGuard device and the network.
 *
 * A device can use several binds at once (the shared UDP socket, a relay
 * connection, an ICE/TURN path). Every packet received is tagged with the
 * Endpoint it came from; the device stores that Endpoint on the peer
 * (roaming) and later sends back through `endpoint.bind`. So a peer's path can
 * change (UDP -> relay -> ICE) without the device knowing which kind it is.
 *
 * Batches: packets move in batches to amortise syscalls. A PacketBatch is a
 * view over reusable storage and is only valid during the callback that
 * delivered it; copy what you need to keep.
 */

/** A set of packets laid out in one backing buffer. */
export interface PacketBatch {
  /** Backing storage. Packet i is buf.subarray(offsets[i], offsets[i] + lengths[i]). */
  readonly buf: Buffer;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  /** Number of valid packets in the batch. */
  count: number;
}

/** Where a packet came from / goes to. Created by a Bind; compare by `key`. */
export interface Endpoint {
  /** The bind that can reach this endpoint. */
  readonly bind: Bind;
  /** Stable identity, e.g. "udp:203.0.113.5:51820" or "relay:sha-...". */
  readonly key: string;
  /** Human-readable form for status output (e.g. "203.0.113.5:51820"). */
  toString(): string;
}

export type ReceiveHandler = (batch: PacketBatch, from: readonly Endpoint[]) => void;

export interface Bind {
  /** Short name for status/logs: "udp", "relay", "ice". */
  readonly kind: string;
  /** Register the single receive handler (the device). from[i] is the source of packet i. */
  setReceiveHandler(handler: ReceiveHandler): void;
  /**
   * Send packets 0..batch.count-1 of `batch`, packet i to `to[i]` (all of which
   * belong to this bind). Must not retain `batch` after returning.
   */
  send(batch: PacketBatch, to: readonly Endpoint[]): void;
  close(): Promise<void>;
}

/** A bind backed by a UDP socket, which also parses "host:port" endpoints. */
export interface UdpBind extends Bind {
  readonly kind: 'udp';
  /** Bound local port (after open). */
  readonly port: number;
  /** Endpoint for a literal address; IPv6 as "[::1]:51820". */
  endpoint(hostPort: string): Endpoint;
}
