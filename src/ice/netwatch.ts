/** Notices host address changes (new Wi-Fi, DHCP renew, VPN up) so ICE can regather. */
import { networkInterfaces } from 'node:os';
import { inNetns } from '../tun/index.js';

/** The interface addresses as seen in `netns` (getifaddrs runs synchronously on this thread). */
export function interfacesIn(netns: string | undefined): NodeJS.Dict<import('node:os').NetworkInterfaceInfo[]> {
  return netns ? inNetns(netns, () => networkInterfaces()) : networkInterfaces();
}

function snapshot(exclude: ReadonlySet<string>, netns: string | undefined): string {
  const out: string[] = [];
  for (const [name, addrs] of Object.entries(interfacesIn(netns))) {
    if (exclude.has(name)) continue;
    for (const a of addrs ?? []) if (!a.internal) out.push(`${name}/${a.address}`);
  }
  return out.sort().join(',');
}

/** Polls the interface addresses every intervalMs (default 5 s); calls onChange when the set differs. Returns stop(). */
export function watchHostAddresses(
  onChange: () => void,
  opts: { intervalMs?: number; excludeInterfaces?: readonly string[]; netns?: string } = {},
): () => void {
  const exclude = new Set(opts.excludeInterfaces ?? []);
  let last = snapshot(exclude, opts.netns);
  const timer = setInterval(() => {
    const now = snapshot(exclude, opts.netns);
    if (now === last) return;
    last = now;
    onChange();
  }, opts.intervalMs ?? 5000);
  timer.unref();
  return () => clearInterval(timer);
}
