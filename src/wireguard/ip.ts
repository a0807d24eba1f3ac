/** Address parsing and IP header helpers (no allocation on the packet path). */
import { isIPv4, isIPv6 } from 'node:net';

export interface Prefix {
  /** 4 or 16 bytes, host bits cleared. */
  readonly addr: Uint8Array;
  readonly cidr: number;
}

export function parseIPv4(s: string): Uint8Array | null {
  if (!isIPv4(s)) return null;
  const parts = s.split('.');
  return Uint8Array.from(parts, (p) => Number(p));
}

export function parseIPv6(s: string): Uint8Array | null {
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (!isIPv6(s)) return null;
  const out = new Uint8Array(16);
  let tail = s;
  // An embedded IPv4 suffix ("::ffff:1.2.3.4") becomes two hextets.
  const lastColon = s.lastIndexOf(':');
  const maybeV4 = s.slice(lastColon + 1);
  if (maybeV4.includes('.')) {
    const v4 = parseIPv4(maybeV4);
    if (!v4) return null;
    tail = s.slice(0, lastColon + 1) + ((v4[0]! << 8) | v4[1]!).toString(16) + ':' + ((v4[2]! << 8) | v4[3]!).toString(16);
  }
  const halves = tail.split('::');
  const head = halves[0] ? halves[0].split(':') : [];
  const rest = halves.length > 1 && halves[1] ? halves[1].split(':') : [];
  const groups = [...head, ...new Array<string>(8 - head.length - rest.length).fill('0'), ...rest];
  if (groups.length !== 8) return null;
  for (let i = 0; i < 8; i++) {
    const v = parseInt(groups[i]!, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  }
  return out;
}

/** Parses "a.b.c.d/n", "x::y/n" or a bare address (full-length prefix). Host bits are cleared. */
export function parsePrefix(s: string): Prefix {
  const slash = s.indexOf('/');
  const ipPart = (slash >= 0 ? s.slice(0, slash) : s).trim();
  const addr = parseIPv4(ipPart) ?? parseIPv6(ipPart);
  if (!addr) throw new Error(`invalid allowed IP ${JSON.stringify(s)}: expected an IPv4 or IPv6 address with optional /prefix`);
  const max = addr.length * 8;
  let cidr = max;
  if (slash >= 0) {
    const c = s.slice(slash + 1).trim();
    if (!/^\d{1,3}$/.test(c) || Number(c) > max) throw new Error(`invalid prefix length in ${JSON.stringify(s)}: expected 0..${max}`);
    cidr = Number(c);
  }
  maskInPlace(addr, cidr);
  return { addr, cidr };
}

export function maskInPlace(addr: Uint8Array, cidr: number): void {
  for (let i = 0; i < addr.length; i++) {
    const bitsHere = cidr - i * 8;
    if (bitsHere >= 8) continue;
    addr[i] = bitsHere <= 0 ? 0 : addr[i]! & (0xff << (8 - bitsHere));
  }
}

export function formatAddr(addr: Uint8Array): string {
  if (addr.length === 4) return addr.join('.');
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((addr[i]! << 8) | addr[i + 1]!).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return g.join(':');
  return g.slice(0, best).join(':') + '::' + g.slice(best + bestLen).join(':');
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddr(p.addr)}/${p.cidr}`;
}
