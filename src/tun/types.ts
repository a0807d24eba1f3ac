import type { PacketBatch } from '../wireguard/bind.js';

/**
 * A layer-3 TUN device (IFF_TUN | IFF_NO_PI): raw IPv4/IPv6 packets in both
 * directions, read and written in batches.
 */
export interface TunDevice {
  readonly name: string;
  readonly mtu: number;
  /** Register the handler that receives batches of packets the kernel sent into the device. */
  setReadHandler(handler: (batch: PacketBatch) => void): void;
  /** Write packets 0..batch.count-1 to the kernel. Must not retain `batch`. */
  write(batch: PacketBatch): void;
  close(): Promise<void>;
}
