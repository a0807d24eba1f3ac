/** Notices host address changes (new Wi-Fi, DHCP renew, VPN up) so ICE can regather. */
import { networkInterfaces } from 'node:os';

function snapshot(exclude: ReadonlySet<string>): string {
  const out: string[] = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (exclude.has(name)) continue;
    for (const a of addrs ?? []) if (!a.internal) out.push(`${name}/${a.address}`);
  }
  return out.sort().join(',');
}

/** Polls the interface addresses every intervalMs (default 5 s); calls onChange when the set differs. Returns stop(). */
export function watchHostAddresses(onChange: () => void, opts: { intervalMs?: number; excludeInterfaces?: readonly string[] } = {}): () => void {
  const exclude = new Set(opts.excludeInterfaces ?? []);
  let last = snapshot(exclude);
  const timer = setInterval(() => {
    const now = snapshot(exclude);
    if (now === last) return;
    last = now;
    onChange();
  }, opts.intervalMs ?? 5000);
  timer.unref();
  return () => clearInterval(timer);
}
