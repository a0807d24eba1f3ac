/**
 * `netbird wg-quick <file.conf>`: brings up one WireGuard interface from a
 * wg-quick(8) style file with our userspace device, stays in the foreground,
 * and removes the interface on SIGINT/SIGTERM.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Device, type DeviceLogger } from '../wireguard/index.js';
import { openTun, createUdpBind, addRoute, type LinuxTunDevice, type LinuxUdpBind } from '../tun/index.js';
import { parseWgQuickConfig, WgQuickConfigError, type WgQuickConfig } from './config.js';

export { parseWgQuickConfig, WgQuickConfigError, type WgQuickConfig, type WgQuickPeer } from './config.js';

export const WG_QUICK_HELP = `Usage: netbird wg-quick [--verbose] <file.conf>

Brings up a WireGuard interface from a wg-quick style configuration file using
netbird's userspace WireGuard (no kernel module needed), and keeps it up until
you press Ctrl-C or send SIGTERM; then the interface and its routes are removed.

The interface is named after the file: /etc/wireguard/wg0.conf -> wg0
(at most 15 characters of letters, digits and _=+.-).

Supported keys:
  [Interface]  PrivateKey (required), Address (CIDR, IPv4/IPv6, may repeat),
               ListenPort (default: random), MTU (default 1420)
  [Peer]       PublicKey (required), PresharedKey, AllowedIPs (may repeat),
               Endpoint (host:port or [ipv6]:port), PersistentKeepalive (seconds)
  DNS, Table, PreUp, PostUp, PreDown, PostDown, SaveConfig, FwMark are accepted and ignored.

A route into the interface is added for every AllowedIPs prefix except /0
(routing everything through the tunnel needs policy routing; add it yourself).

Options:
  --verbose   log handshakes and device events to stderr
  --help      show this text

Needs root (CAP_NET_ADMIN) for the TUN device. Exit status: 0 after a clean
shutdown, 1 on errors, 2 on bad usage.`;

const NAME_RE = /^[a-zA-Z0-9_=+.-]{1,15}$/;

function ifaceName(file: string): string {
  const name = basename(file).replace(/\.conf$/, '');
  if (!NAME_RE.test(name)) {
    throw new Error(`cannot name an interface after "${basename(file)}": rename the file to <name>.conf with a name of 1-15 letters, digits or _=+.-`);
  }
  return name;
}

async function resolveEndpoint(ep: string): Promise<string> {
  const m = /^\[(.+)\]:(\d+)$/.exec(ep) ?? /^(.+):(\d+)$/.exec(ep);
  const host = m![1]!;
  const port = m![2]!;
  if (isIP(host.split('%')[0]!)) return ep;
  try {
    const r = await lookup(host);
    return r.family === 6 ? `[${r.address}]:${port}` : `${r.address}:${port}`;
  } catch (e) {
    throw new Error(`cannot resolve Endpoint host "${host}": ${(e as Error).message}`);
  }
}

/** Brings the interface up; returns a function that tears it down. */
export async function bringUp(
  cfg: WgQuickConfig,
  name: string,
  opts: { netns?: string; logger?: DeviceLogger } = {},
): Promise<{ device: Device; tun: LinuxTunDevice; bind: LinuxUdpBind; down: () => Promise<void> }> {
  const endpoints = await Promise.all(cfg.peers.map((p) => (p.endpoint ? resolveEndpoint(p.endpoint) : Promise.resolve(undefined))));
  const tun = await openTun({ name, mtu: cfg.interface.mtu ?? 1420, addresses: cfg.interface.addresses, netns: opts.netns });
  let bind: LinuxUdpBind;
  try {
    bind = await createUdpBind({ port: cfg.interface.listenPort ?? 0, netns: opts.netns });
  } catch (e) {
    await tun.close();
    throw e;
  }
  const device = new Device({ privateKey: cfg.interface.privateKey, tun, binds: [bind], logger: opts.logger });
  try {
    cfg.peers.forEach((p, i) => {
      device.setPeer({
        publicKey: p.publicKey,
        allowedIps: p.allowedIps,
        endpoint: endpoints[i] ? bind.endpoint(endpoints[i]!) : undefined,
        persistentKeepalive: p.persistentKeepalive,
        presharedKey: p.presharedKey,
      });
    });
    for (const p of cfg.peers) {
      for (const cidr of p.allowedIps) {
        if (cidr.endsWith('/0')) continue;
        await addRoute(name, cidr, opts.netns);
      }
    }
  } catch (e) {
    await device.close();
    throw e;
  }
  // Closing the TUN fd deletes the interface, and with it its addresses and routes.
  return { device, tun, bind, down: () => device.close() };
}

export async function runWgQuick(argv: string[]): Promise<number> {
  let verbose = false;
  const files: string[] = [];
  for (const a of argv) {
    if (a === '--help' || a === '-h') {
      console.log(WG_QUICK_HELP);
      return 0;
    }
    if (a === '--verbose' || a === '-v') verbose = true;
    else if (a.startsWith('-')) {
      console.error(`netbird wg-quick: unknown option ${a} (see --help)`);
      return 2;
    } else files.push(a);
  }
  if (files.length !== 1) {
    console.error('netbird wg-quick: expected exactly one configuration file, e.g. `netbird wg-quick wg0.conf` (see --help)');
    return 2;
  }
  const file = files[0]!;
  let cfg: WgQuickConfig;
  let name: string;
  try {
    name = ifaceName(file);
    cfg = parseWgQuickConfig(await readFile(file, 'utf8'), file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') console.error(`netbird wg-quick: ${file}: no such file`);
    else console.error(`netbird wg-quick: ${err instanceof WgQuickConfigError ? '' : `${file}: `}${err.message}`);
    return 1;
  }
  if (cfg.ignored.length) console.error(`netbird wg-quick: ignoring ${[...new Set(cfg.ignored)].join(', ')}`);
  for (const p of cfg.peers) {
    if (p.allowedIps.some((c) => c.endsWith('/0'))) {
      console.error(`netbird wg-quick: peer ${p.publicKey}: not adding a route for a /0 AllowedIPs (policy routing is not implemented)`);
    }
  }
  const logger: DeviceLogger | undefined = verbose
    ? { debug: (m) => console.error(m), info: (m) => console.error(m), warn: (m) => console.error(m) }
    : { debug: () => undefined, info: () => undefined, warn: (m) => console.error(m) };
  let up: Awaited<ReturnType<typeof bringUp>>;
  try {
    up = await bringUp(cfg, name, { logger });
  } catch (e) {
    console.error(`netbird wg-quick: cannot bring up ${name}: ${(e as Error).message}`);
    return 1;
  }
  console.log(`${name}: up, public key ${up.device.publicKey}, listening on UDP ${up.bind.port}, ${cfg.peers.length} peer(s); Ctrl-C to stop`);
  await new Promise<void>((resolve) => {
    const stop = (sig: NodeJS.Signals): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      console.log(`${name}: ${sig}, removing interface`);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await up.down();
  return 0;
}
