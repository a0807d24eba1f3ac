/**
 * Public face of the WireGuard component: the Device (TUN <-> filter <->
 * WireGuard <-> binds), its option and stats types, key helpers and the
 * transport seam types.
 */
export { Device, paddedLength } from './device.js';
export type {
  DeviceOptions, PeerConfig, PeerStats, DeviceStats, DropCounters, PacketFilter, DeviceLogger, KeyInput,
} from './device.js';
export type { Bind, UdpBind, Endpoint, PacketBatch, ReceiveHandler } from './bind.js';
export { DEFAULT_TIMERS, type TimerConfig } from './constants.js';
export { generatePrivateKey, publicKeyOf, keyFromBase64, keyToBase64 } from './crypto.js';
export { AllowedIps } from './allowedips.js';
export { parsePrefix, formatPrefix, type Prefix } from './ip.js';
export { MemoryBind, MemoryNetwork, MemoryTun, DgramBind, makeBatch, batchPackets } from './testing.js';
