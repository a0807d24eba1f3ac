/**
 * Typed loader for the native addon (native/netbird_native.cc, built by
 * node-gyp into build/Release). Loaded lazily so that importing src/tun on a
 * machine without the addon fails only when a TUN/UDP object is created, with
 * a message that says how to build it.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeReader {
  start(): void;
  /** Stops polling for good (does not close the fd). */
  stop(): void;
}

export interface NativeUdpSender {
  /** UDP GSO in use (turned off by the addon if the path refuses it). */
  readonly gso: boolean;
  send(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, addrs: Uint8Array): number;
}

/** Process-wide TUN offload counters (frames = super-packets, segments = packets in them). */
export interface TunOffloadStats {
  /** The kernel refused a merged GSO write once; merging is off since. */
  groDisabled: boolean;
  groFrames: number;
  groSegments: number;
  tsoFrames: number;
  tsoSegments: number;
}

export interface NativeAddon {
  tunOpen(name: string, multiQueue: boolean, offload: boolean): { fd: number; name: string; vnet: boolean; tso: boolean };
  tunWrite(fd: number, buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, vnet: boolean, gro: boolean): number;
  tunOffloadStats(): TunOffloadStats;
  closeFd(fd: number): void;
  setNetns(fd: number): void;
  udpEnableGro(fd: number): boolean;
  udpOpen(host: string, port: number, bufBytes: number): { fd: number; port: number; family: 4 | 6; rcvbuf: number; sndbuf: number };
  UdpSender: new (fd: number, family: 4 | 6, gso: boolean) => NativeUdpSender;
  Reader: new (
    mode: 'tun' | 'tun-vnet' | 'udp' | 'udp-gro',
    fd: number,
    buf: Uint8Array,
    offsets: Uint32Array,
    slotSize: number,
    lengths: Uint32Array,
    addrs: Uint8Array | null,
    maxBatch: number,
    onBatch: (count: number) => void,
  ) => NativeReader;
  readonly ADDR_SIZE: number;
  readonly MAX_BATCH: number;
}

let cached: NativeAddon | undefined;

/** Repo root: the nearest ancestor of this file holding binding.gyp (works from src/ and dist/src/). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

export function native(): NativeAddon {
  if (cached) return cached;
  const root = repoRoot();
  const file = join(root, 'build', 'Release', 'netbird_native.node');
  if (!existsSync(file)) {
    throw new Error(`native addon not built (${file} missing): run \`node native/build.mjs\` in ${root} (needs g++, make, python3)`);
  }
  const require = createRequire(import.meta.url);
  cached = require(file) as NativeAddon;
  return cached;
}
