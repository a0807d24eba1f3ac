/**
 * Linux OS plumbing for the data path: TUN devices and batched UDP sockets
 * (native addon in native/), plus `ip` helpers for addresses and routes.
 */
export type { TunDevice } from './types.js';
export { openTun, tunOffloadStats, TUN_HEADROOM, TUN_TAILROOM, type OpenTunOptions, type LinuxTunDevice } from './tun.js';
export type { TunOffloadStats } from './native.js';
export { createUdpBind, UdpEndpoint, type UdpBindOptions, type LinuxUdpBind } from './udp.js';
export { addRoute, delRoute, addAddress, ipCmd, cidrFamily } from './ip.js';
export { inNetns } from './netns.js';
