import { createHash, randomBytes, randomInt, randomUUID } from 'node:crypto';
import { ManagementError } from './types.js';

/**
 * Small pure helpers: ids, IPv4 arithmetic inside the overlay, DNS labels, setup-key hashing.
 */

const ID_ALPHABET = '0123456789abcdefghijklmnopqrstuv';

/** A 20-character opaque id (base32hex like the reference's xid): 6 bytes of time + 6 random. */
export function newId(): string {
  const buf = Buffer.alloc(12);
  buf.writeUIntBE(Date.now(), 0, 6);
  randomBytes(6).copy(buf, 6);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ID_ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += ID_ALPHABET[(value << (5 - bits)) & 31];
  return out.slice(0, 20);
}

// ---------- IPv4 ----------

export function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new ManagementError('invalid_argument', `invalid IPv4 address ${JSON.stringify(ip)}`);
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) throw new ManagementError('invalid_argument', `invalid IPv4 address ${JSON.stringify(ip)}`);
    const v = Number(p);
    if (v > 255) throw new ManagementError('invalid_argument', `invalid IPv4 address ${JSON.stringify(ip)}`);
    n = n * 256 + v;
  }
  return n;
}

export function intToIp(n: number): string {
  return `${Math.floor(n / 16777216) & 255}.${Math.floor(n / 65536) & 255}.${Math.floor(n / 256) & 255}.${n & 255}`;
}

export interface Ipv4Prefix {
  base: number;
  bits: number;
}

export function parseCidr(cidr: string): Ipv4Prefix {
  const [addr, len] = cidr.split('/');
  const bits = Number(len);
  if (addr === undefined || len === undefined || !Number.isInteger(bits) || bits < 0 || bits > 32) {
    throw new ManagementError('invalid_argument', `invalid IPv4 prefix ${JSON.stringify(cidr)}`);
  }
  const size = 2 ** (32 - bits);
  const base = Math.floor(ipToInt(addr) / size) * size;
  return { base, bits };
}

export function cidrContains(prefix: Ipv4Prefix, ip: number): boolean {
  const size = 2 ** (32 - prefix.bits);
  return ip >= prefix.base && ip < prefix.base + size;
}

/** The CGNAT range every account network lives in. */
export const OVERLAY_SUPERNET = parseCidr('100.64.0.0/10');

/** A random /16 inside 100.64.0.0/10, as the reference picks for new accounts. */
export function randomAccountNetwork(): string {
  return `100.${64 + randomInt(64)}.0.0/16`;
}

/**
 * Picks a free host address in `network` at random (avoiding network and broadcast addresses),
 * falling back to a linear scan from a random start once random probes keep colliding.
 */
export function allocateIp(network: string, taken: ReadonlySet<string>): string {
  const prefix = parseCidr(network);
  const size = 2 ** (32 - prefix.bits);
  if (size < 4) throw new ManagementError('failed_precondition', `account network ${network} is too small`);
  const hosts = size - 2;
  if (taken.size >= hosts) throw new ManagementError('failed_precondition', `no free IP left in account network ${network}`);
  for (let i = 0; i < 64; i++) {
    const ip = intToIp(prefix.base + 1 + randomInt(hosts));
    if (!taken.has(ip)) return ip;
  }
  const start = randomInt(hosts);
  for (let i = 0; i < hosts; i++) {
    const ip = intToIp(prefix.base + 1 + ((start + i) % hosts));
    if (!taken.has(ip)) return ip;
  }
  throw new ManagementError('failed_precondition', `no free IP left in account network ${network}`);
}

/** Mask length of a CIDR string ("100.64.0.0/16" -> 16). */
export function cidrBits(cidr: string): number {
  return parseCidr(cidr).bits;
}

// ---------- DNS labels ----------

/** Turns a hostname into a DNS label: lower case, only a-z 0-9 '-', no leading/trailing '-', <= 63. */
export function dnsLabelFromHostname(hostname: string): string {
  let label = hostname
    .toLowerCase()
    .split('.')[0]!
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+|-+$/g, '');
  label = label.slice(0, 63).replace(/-+$/g, '');
  return label === '' ? 'peer' : label;
}

/** First free of label, label-1, label-2, ... label-999 (suffix keeps the total within 63 chars). */
export function uniqueDnsLabel(base: string, taken: ReadonlySet<string>): string {
  if (!taken.has(base)) return base;
  for (let i = 1; i <= 999; i++) {
    const suffix = `-${i}`;
    const candidate = base.slice(0, 63 - suffix.length).replace(/-+$/g, '') + suffix;
    if (!taken.has(candidate)) return candidate;
  }
  // Every numbered variant is taken: fall back to a random suffix, still unique.
  for (;;) {
    const candidate = base.slice(0, 56).replace(/-+$/g, '') + '-' + randomBytes(3).toString('hex');
    if (!taken.has(candidate)) return candidate;
  }
}

const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Validates an extra DNS label (punycode, may contain dots separating labels). */
export function isValidDnsLabel(label: string): boolean {
  return label.length <= 253 && label.split('.').every((l) => LABEL_RE.test(l));
}

export function isValidDomain(domain: string): boolean {
  return domain.length > 0 && domain.length <= 253 && domain.split('.').every((l) => LABEL_RE.test(l));
}

// ---------- setup keys ----------

/** A new setup key: an upper-case UUID (management-api.md §3). */
export function newSetupKey(): string {
  return randomUUID().toUpperCase();
}

/** base64(SHA-256(upper-case key)) as the server stores and compares it (protocol.md §4.3). */
export function hashSetupKey(key: string): string {
  return createHash('sha256').update(key.trim().toUpperCase(), 'utf8').digest('base64');
}

export function maskSetupKey(key: string): string {
  return key.slice(0, 5) + '****';
}

// ---------- versions ----------

/** Compares dotted versions; dev/ci builds count as newest (protocol.md §4.8). Returns <0, 0, >0. */
export function compareVersion(version: string, min: string): number {
  if (isDevVersion(version)) return 1;
  const a = parseVersion(version);
  const b = parseVersion(min);
  if (!a || !b) return -1;
  for (let i = 0; i < 3; i++) {
    if (a[i]! !== b[i]!) return a[i]! - b[i]!;
  }
  return 0;
}

export function isDevVersion(version: string): boolean {
  return version.startsWith('development') || version.startsWith('dev-') || version.startsWith('ci-');
}

/** Parsed versions by text: an account has a handful of agent versions, compared for every map. */
const parsedVersions = new Map<string, [number, number, number] | undefined>();

function parseVersion(v: string): [number, number, number] | undefined {
  if (parsedVersions.has(v)) return parsedVersions.get(v);
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(v.trim());
  const out: [number, number, number] | undefined = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
  // Bounded: version strings come from peers; past the bound, parse without keeping.
  if (parsedVersions.size < 4096) parsedVersions.set(v, out);
  return out;
}
