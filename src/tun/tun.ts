import type { PacketBatch } from '../wireguard/bind.js';
import type { TunDevice } from './types.js';
import { native, type NativeReader, type TunOffloadStats } from './native.js';
import { inNetns } from './netns.js';
import { addAddress, ipCmd } from './ip.js';

/**
 * Bytes left free in front of every packet the TUN reader delivers, so the
 * WireGuard device can write its 16-byte data-message header in place
 * (packet at offsets[i]; header at offsets[i] - 16). Also TUN_TAILROOM bytes
 * after the MTU for padding + the 16-byte AEAD tag.
 */
export const TUN_HEADROOM = 32;
export const TUN_TAILROOM = 32;

export interface OpenTunOptions {
  /** Interface name (<= 15 characters). */
  name: string;
  /** Default 1420 (WireGuard over IPv4/IPv6 on a 1500-byte path). */
  mtu?: number;
  /** CIDR addresses, IPv4 and/or IPv6, e.g. ["100.64.0.1/16", "fd00::1/64"]. */
  addresses?: readonly string[];
  /** Create the device inside this network namespace (name as in `ip netns`). */
  netns?: string;
  /** Max packets per read batch (default 128). */
  batchSize?: number;
  /** IFF_MULTI_QUEUE: allows opening the same name again for more queues (default false). */
  multiQueue?: boolean;
  /**
   * TUN offload (IFF_VNET_HDR + TSO/checksum offload): the kernel hands over TCP super-packets
   * of up to 64 KiB, split into MTU-sized packets in the addon, and consecutive TCP segments we
   * write are merged into one GSO frame (like GRO). Saves most TUN syscalls and kernel TCP work
   * on both sides. Default: NETBIRD_TUN_OFFLOAD env "1"/"0", else on.
   */
  offload?: boolean;
}

export interface LinuxTunDevice extends TunDevice {
  readonly fd: number;
  /** TSO offload active (see OpenTunOptions.offload). */
  readonly offload: boolean;
  readonly netns: string | undefined;
  /** Adds another CIDR address to the device. */
  addAddress(cidr: string): Promise<void>;
}

class LinuxTun implements LinuxTunDevice {
  readonly name: string;
  readonly mtu: number;
  readonly fd: number;
  readonly netns: string | undefined;
  private readonly batch: PacketBatch;
  private readonly slot: number;
  private reader: NativeReader | undefined;
  private handler: ((batch: PacketBatch) => void) | undefined;
  private closed = false;
  private readonly vnet: boolean;
  readonly offload: boolean;

  constructor(fd: number, name: string, mtu: number, netns: string | undefined, batchSize: number, vnet: boolean, tso: boolean) {
    this.fd = fd;
    this.vnet = vnet;
    this.offload = tso;
    this.name = name;
    this.mtu = mtu;
    this.netns = netns;
    // Slot = headroom + MTU + tailroom, 64-byte aligned. Reads never exceed the MTU.
    this.slot = Math.ceil((TUN_HEADROOM + mtu + TUN_TAILROOM) / 64) * 64;
    const offsets = new Uint32Array(batchSize);
    for (let i = 0; i < batchSize; i++) offsets[i] = i * this.slot + TUN_HEADROOM;
    this.batch = { buf: Buffer.allocUnsafe(batchSize * this.slot), offsets, lengths: new Uint32Array(batchSize), count: 0 };
  }

  setReadHandler(handler: (batch: PacketBatch) => void): void {
    this.handler = handler;
    if (this.reader || this.closed) return;
    const addon = native();
    const b = this.batch;
    const onBatch = (count: number): void => {
      b.count = count;
      this.handler?.(b);
    };
    this.reader = new addon.Reader(this.vnet ? 'tun-vnet' : 'tun', this.fd, b.buf, b.offsets, this.mtu, b.lengths, null, b.offsets.length, onBatch);
    this.reader.start();
  }

  write(batch: PacketBatch): void {
    if (this.closed || batch.count === 0) return;
    native().tunWrite(this.fd, batch.buf, batch.offsets, batch.lengths, batch.count, this.vnet, this.vnet);
  }

  async addAddress(cidr: string): Promise<void> {
    await addAddress(this.name, cidr, this.netns);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reader?.stop();
    this.reader = undefined;
    // Closing the last fd of a non-persistent TUN removes the interface (and its routes).
    native().closeFd(this.fd);
  }
}

/**
 * Creates a layer-3 TUN device (IFF_TUN | IFF_NO_PI, nonblocking), sets MTU
 * and addresses and brings it up. Reading starts when a read handler is set.
 * Needs CAP_NET_ADMIN (root).
 */
export async function openTun(opts: OpenTunOptions): Promise<LinuxTunDevice> {
  const mtu = opts.mtu ?? 1420;
  if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535) throw new Error(`bad MTU ${mtu}: use 576..65535`);
  const batchSize = Math.min(opts.batchSize ?? 128, native().MAX_BATCH);
  const envOffload = process.env.NETBIRD_TUN_OFFLOAD;
  const offload = opts.offload ?? (envOffload === undefined ? true : envOffload === '1');
  const { fd, name, vnet, tso } = inNetns(opts.netns, () => {
    try {
      return native().tunOpen(opts.name, opts.multiQueue ?? false, offload);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'EPERM' || err.code === 'EACCES') throw new Error(`cannot create TUN device ${opts.name}: ${err.message} (needs root / CAP_NET_ADMIN)`);
      if (err.code === 'EBUSY') throw new Error(`cannot create TUN device ${opts.name}: ${err.message} (name already in use?)`);
      throw err;
    }
  });
  const dev = new LinuxTun(fd, name, mtu, opts.netns, batchSize, vnet, tso);
  try {
    await ipCmd(['link', 'set', 'dev', name, 'mtu', String(mtu)], opts.netns);
    for (const a of opts.addresses ?? []) await dev.addAddress(a);
    await ipCmd(['link', 'set', 'dev', name, 'up'], opts.netns);
  } catch (e) {
    await dev.close();
    throw e;
  }
  return dev;
}

/** Process-wide TUN offload counters: TSO super-packets read and split, GSO frames written. */
export function tunOffloadStats(): TunOffloadStats {
  return native().tunOffloadStats();
}
