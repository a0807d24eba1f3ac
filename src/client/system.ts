import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { management } from '../proto/index.js';

/**
 * The NetBird agent version we declare to management. The server gates features on it (protocol.md §4.8):
 * >= 0.48.0 gets port ranges, >= 0.29.3 no legacy top-level remotePeers. We implement what those imply.
 */
export const NETBIRD_COMPAT_VERSION = '0.60.0';

function osRelease(): { name: string; version: string } {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    const get = (k: string): string => (new RegExp(`^${k}=(.*)$`, 'm').exec(text)?.[1] ?? '').replace(/^"|"$/g, '');
    return { name: get('NAME') || 'Linux', version: get('VERSION_ID') };
  } catch {
    return { name: 'Linux', version: '' };
  }
}

/** Local interface addresses (no loopback, no link-local) with their MACs. */
function networkAddresses(): management.NetworkAddress[] {
  const out: management.NetworkAddress[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if (a.family === 'IPv6' && a.address.toLowerCase().startsWith('fe80')) continue;
      if (a.family === 'IPv4' && a.address.startsWith('169.254.')) continue;
      out.push({ netIP: a.cidr ?? a.address, mac: a.mac });
    }
  }
  return out;
}

/** PeerSystemMeta describing this machine, as the reference client reports it. */
export function systemMeta(opts: { hostname?: string; uiVersion?: string } = {}): management.PeerSystemMeta {
  const rel = osRelease();
  return management.PeerSystemMeta.fromPartial({
    hostname: opts.hostname ?? os.hostname(),
    goOS: 'linux',
    kernel: os.type(),
    core: rel.version,
    platform: os.machine(),
    OS: rel.name,
    netbirdVersion: NETBIRD_COMPAT_VERSION,
    uiVersion: opts.uiVersion ?? '',
    kernelVersion: os.release(),
    OSVersion: rel.version,
    networkAddresses: networkAddresses(),
    // We read sourcePrefixes; no IPv6 overlay yet. Legacy (expanded) network map format.
    capabilities: [management.PeerCapability.PeerCapabilitySourcePrefixes],
    syncMessageVersion: 0,
  });
}
