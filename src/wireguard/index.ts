/**
 * Public face of the WireGuard component: the Device (TUN <-> filter <->
 * WireGuard <-> binds), its option and stats types, key helpers and the
 * transport seam types.
 *
 *   const dev = new Device({ privateKey, tun, binds: [udp], timers?, logger? });
 *   dev.setPeer({ publicKey, allowedIps: ['100.64.0.2/32'], endpoint: udp.endpoint('203.0.113.5:51820'),
 *                 persistentKeepalive: 25, presharedKey? });   // add or update (allowed IPs replaced)
 *   dev.setPeerEndpoint(publicKey, relayBind.endpointFor(...)); // move a peer to another path
 *   dev.initiateHandshake(publicKey);                          // optional: start now instead of on traffic
 *   dev.setFilter({ inbound(pkt) { return true; }, outbound(pkt) { return true; } });
 *   dev.peerStats(publicKey); dev.stats();                     // counters, last handshake, drops by reason
 *   dev.removePeer(publicKey); dev.setPrivateKey(k); await dev.close(); // close() also closes TUN and binds
 *
 * Binds must not call the receive handler synchronously from inside send()
 * (it works, but costs a copy). Keys are 32-byte Buffers or WireGuard base64.
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
