/**
 * Two-namespace WireGuard labs over one veth pair, for interop tests and benchmarks:
 *
 *   underlay  a:eth0 10.1.0.1/24, fd01::1/64  <->  b:eth0 10.1.0.2/24, fd01::2/64
 *   tunnel    a 10.10.0.1/24, fd10::1/64     <->  b 10.10.0.2/24, fd10::2/64
 *
 * `oursVsWireguardGo`: our Device (running in this Node process, TUN + UDP socket created inside
 * namespace a) against wireguard-go in b. `wireguardGoPair`: wireguard-go on both sides (reference).
 * `oursPair`: our `netbird wg-quick` on both sides, one process each.
 */
import { Device, type TimerConfig } from '../../src/wireguard/index.js';
import { openTun, createUdpBind, type LinuxTunDevice, type LinuxUdpBind } from '../../src/tun/index.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Lab, LabProcess, Netns } from './index.js';
import { WireguardGo, wgKeys, type WgKeys } from './wireguard.js';

export const A_UNDERLAY = '10.1.0.1';
export const B_UNDERLAY = '10.1.0.2';
export const A_TUN = '10.10.0.1';
export const B_TUN = '10.10.0.2';
export const A_TUN6 = 'fd10::1';
export const B_TUN6 = 'fd10::2';
export const WG_PORT = 51820;

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export interface PairOptions {
  /** Which side knows the other's endpoint (so can initiate). Default both. */
  initiator?: 'a' | 'b' | 'both';
  mtu?: number;
  timers?: Partial<TimerConfig>;
  persistentKeepalive?: number;
  /** Namespace name tag (see underlay). */
  tag?: string;
  /** Carry WireGuard over the IPv6 underlay (fd01::1 <-> fd01::2) instead of IPv4. */
  underlay6?: boolean;
  /** Packets per TUN read batch on our side (default 128). */
  tunBatchSize?: number;
}

/** Namespaces "<tag>a" and "<tag>b" joined by a veth pair (tag lets one lab hold several pairs). */
export async function underlay(lab: Lab, tag = ''): Promise<{ a: Netns; b: Netns }> {
  const a = await lab.ns(`${tag}a`);
  const b = await lab.ns(`${tag}b`);
  await lab.link(a, 'eth0', [`${A_UNDERLAY}/24`, 'fd01::1/64'], b, 'eth0', [`${B_UNDERLAY}/24`, 'fd01::2/64']);
  return { a, b };
}

export interface OursVsGo {
  a: Netns;
  b: Netns;
  keysA: WgKeys;
  keysB: WgKeys;
  device: Device;
  tun: LinuxTunDevice;
  bind: LinuxUdpBind;
  wg: WireguardGo;
}

export async function oursVsWireguardGo(lab: Lab, opts: PairOptions = {}): Promise<OursVsGo> {
  const { a, b } = await underlay(lab, opts.tag);
  const keysA = wgKeys();
  const keysB = wgKeys();
  const init = opts.initiator ?? 'both';
  const mtu = opts.mtu ?? 1420;
  const wg = await WireguardGo.start(b, {
    privateKey: keysB.privateKey,
    listenPort: WG_PORT,
    addresses: [`${B_TUN}/24`, `${B_TUN6}/64`],
    mtu,
    peers: [{
      publicKey: keysA.publicKey,
      allowedIps: [`${A_TUN}/32`, `${A_TUN6}/128`],
      endpoint: init === 'a' ? undefined : opts.underlay6 ? `[fd01::1]:${WG_PORT}` : `${A_UNDERLAY}:${WG_PORT}`,
    }],
  });
  const tun = await openTun({ name: 'wgnb0', mtu, addresses: [`${A_TUN}/24`, `${A_TUN6}/64`], netns: a.name, batchSize: opts.tunBatchSize });
  let bind: LinuxUdpBind;
  try {
    bind = await createUdpBind({ port: WG_PORT, netns: a.name });
  } catch (e) {
    await tun.close();
    throw e;
  }
  const device = new Device({ privateKey: keysA.privateKey, tun, binds: [bind], timers: opts.timers });
  try {
    device.setPeer({
      publicKey: keysB.publicKey,
      allowedIps: [`${B_TUN}/32`, `${B_TUN6}/128`],
      endpoint: init === 'b' ? undefined : bind.endpoint(opts.underlay6 ? `[fd01::2]:${WG_PORT}` : `${B_UNDERLAY}:${WG_PORT}`),
      persistentKeepalive: opts.persistentKeepalive,
    });
  } catch (e) {
    await device.close();
    throw e;
  }
  return { a, b, keysA, keysB, device, tun, bind, wg };
}

export interface GoVsGo {
  a: Netns;
  b: Netns;
  wgA: WireguardGo;
  wgB: WireguardGo;
}

export async function wireguardGoPair(lab: Lab, opts: { mtu?: number; tag?: string } = {}): Promise<GoVsGo> {
  const { a, b } = await underlay(lab, opts.tag);
  const keysA = wgKeys();
  const keysB = wgKeys();
  const mtu = opts.mtu ?? 1420;
  const wgA = await WireguardGo.start(a, {
    privateKey: keysA.privateKey,
    listenPort: WG_PORT,
    addresses: [`${A_TUN}/24`, `${A_TUN6}/64`],
    mtu,
    peers: [{ publicKey: keysB.publicKey, allowedIps: [`${B_TUN}/32`, `${B_TUN6}/128`], endpoint: `${B_UNDERLAY}:${WG_PORT}` }],
  });
  const wgB = await WireguardGo.start(b, {
    privateKey: keysB.privateKey,
    listenPort: WG_PORT,
    addresses: [`${B_TUN}/24`, `${B_TUN6}/64`],
    mtu,
    peers: [{ publicKey: keysA.publicKey, allowedIps: [`${A_TUN}/32`, `${A_TUN6}/128`], endpoint: `${A_UNDERLAY}:${WG_PORT}` }],
  });
  return { a, b, wgA, wgB };
}

export interface OursPair {
  a: Netns;
  b: Netns;
  procA: LabProcess;
  procB: LabProcess;
}

/**
 * Our WireGuard on both sides, each in its own process: `netbird wg-quick` (src/wgquick/main.ts
 * through tsx) with a generated config in namespaces a and b. Extra environment (e.g.
 * NETBIRD_UDP_GSO=0) goes to both processes.
 */
export async function oursPair(lab: Lab, opts: { tag?: string; mtu?: number; env?: NodeJS.ProcessEnv } = {}): Promise<OursPair> {
  const { a, b } = await underlay(lab, opts.tag);
  const ka = wgKeys();
  const kb = wgKeys();
  const dir = lab.tmpdir();
  const conf = (k: WgKeys, peer: WgKeys, addr: string, addr6: string, peerAddr: string, peerAddr6: string, ep: string): string =>
    `[Interface]\nPrivateKey = ${k.privateKey}\nAddress = ${addr}/24, ${addr6}/64\nListenPort = ${WG_PORT}\nMTU = ${opts.mtu ?? 1420}\n` +
    `[Peer]\nPublicKey = ${peer.publicKey}\nAllowedIPs = ${peerAddr}/32, ${peerAddr6}/128\nEndpoint = ${ep}:${WG_PORT}\n`;
  writeFileSync(join(dir, 'wgnba.conf'), conf(ka, kb, A_TUN, A_TUN6, B_TUN, B_TUN6, B_UNDERLAY));
  writeFileSync(join(dir, 'wgnbb.conf'), conf(kb, ka, B_TUN, B_TUN6, A_TUN, A_TUN6, A_UNDERLAY));
  const env = { ...process.env, ...(opts.env ?? {}) };
  const main = join(repoRoot, 'src/wgquick/main.ts');
  const procA = a.spawn(process.execPath, ['--import', 'tsx', main, join(dir, 'wgnba.conf')], { env, cwd: repoRoot });
  const procB = b.spawn(process.execPath, ['--import', 'tsx', main, join(dir, 'wgnbb.conf')], { env, cwd: repoRoot });
  await procA.waitFor(/: up/, 30_000);
  await procB.waitFor(/: up/, 30_000);
  return { a, b, procA, procB };
}
