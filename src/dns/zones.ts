/**
 * Local answers from DNSConfig.CustomZones (protocol.md §4.6.5): A/AAAA/CNAME/TXT/PTR records,
 * NXDOMAIN inside authoritative zones, fall-through for NonAuthoritative ones, and PTR records
 * synthesized from the A/AAAA records of authoritative zones.
 */
import { isIP } from 'node:net';
import { management } from '../proto/index.js';
import { ipToBytes } from '../shared/index.js';

export interface LocalRecord {
  name: string;
  /** RR type number. */
  type: number;
  ttl: number;
  /** Text data (address, target name or TXT string). */
  data: string;
}

export interface Zone {
  /** Lower case, no trailing dot. */
  domain: string;
  authoritative: boolean;
  names: Map<string, LocalRecord[]>;
  /** Names that exist without records of their own (the apex, empty non-terminals): NODATA, not NXDOMAIN. */
  empty: Set<string>;
}

/** The result of a local lookup; `undefined` from lookup() means "not ours, forward it". */
export interface LocalAnswer {
  rcode: 'NOERROR' | 'NXDOMAIN';
  authoritative: boolean;
  answers: LocalRecord[];
  /** Zone apex for the SOA of negative answers. */
  zone: string;
  /** The question was the zone's SOA: answer with the synthesized SOA. */
  soa?: boolean;
}

export const TYPE_A = 1;
export const TYPE_CNAME = 5;
export const TYPE_SOA = 6;
export const TYPE_PTR = 12;
export const TYPE_TXT = 16;
export const TYPE_AAAA = 28;
export const TYPE_ANY = 255;
const SUPPORTED = new Set([TYPE_A, TYPE_CNAME, TYPE_PTR, TYPE_TXT, TYPE_AAAA]);

/** Lower-case and strip one trailing dot: the form every name is compared in. */
export function normalizeName(name: string): string {
  const n = name.trim().toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

export function inZone(name: string, zone: string): boolean {
  return zone === '' || name === zone || name.endsWith('.' + zone);
}

/** Reverse-lookup name of an address ("4.3.2.1.in-addr.arpa", nibbles for IPv6). */
export function reverseName(ip: string): string {
  const b = ipToBytes(ip);
  if (b.length === 4) return `${b[3]}.${b[2]}.${b[1]}.${b[0]}.in-addr.arpa`;
  const nibbles: string[] = [];
  for (let i = 15; i >= 0; i--) nibbles.push((b[i]! & 15).toString(16), (b[i]! >> 4).toString(16));
  return `${nibbles.join('.')}.ip6.arpa`;
}

/** Address bytes of a reverse name, or undefined if it is not a complete one. */
export function reverseToBytes(name: string): Buffer | undefined {
  if (name.endsWith('.in-addr.arpa')) {
    const parts = name.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) < 256)) return undefined;
    return Buffer.from(parts.reverse().map(Number));
  }
  if (name.endsWith('.ip6.arpa')) {
    const parts = name.slice(0, -'.ip6.arpa'.length).split('.');
    if (parts.length !== 32 || !parts.every((p) => /^[0-9a-f]$/.test(p))) return undefined;
    const out = Buffer.alloc(16);
    for (let i = 0; i < 16; i++) out[15 - i] = parseInt(parts[2 * i]!, 16) | (parseInt(parts[2 * i + 1]!, 16) << 4);
    return out;
  }
  return undefined;
}

function prefixContains(prefix: { bytes: Buffer; len: number }, addr: Buffer): boolean {
  if (prefix.bytes.length !== addr.length) return false;
  let left = prefix.len;
  for (let i = 0; left > 0; i++, left -= 8) {
    const mask = left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff;
    if ((prefix.bytes[i]! & mask) !== (addr[i]! & mask)) return false;
  }
  return true;
}

export class ZoneSet {
  /** Longest domain first, so the most specific zone wins. */
  readonly zones: Zone[] = [];
  readonly ptr = new Map<string, LocalRecord>();
  private readonly reversePrefixes: Array<{ bytes: Buffer; len: number }> = [];
  readonly skipped: string[] = [];

  constructor(cfg: management.DNSConfig | undefined, reversePrefixes: readonly string[] = []) {
    const zones = cfg?.CustomZones ?? [];
    for (const cz of zones) {
      const domain = normalizeName(cz.Domain);
      if (domain === '') { this.skipped.push('zone with an empty domain'); continue; }
      // Old servers send one zone without the flag: it is authoritative whatever it says.
      const authoritative = zones.length === 1 || !cz.NonAuthoritative;
      const zone: Zone = { domain, authoritative, names: new Map(), empty: new Set([domain]) };
      for (const r of cz.Records) {
        const name = normalizeName(r.Name);
        if (!SUPPORTED.has(r.Type)) { this.skipped.push(`${name}: unsupported type ${r.Type}`); continue; }
        if (r.Class !== '' && r.Class.toUpperCase() !== 'IN') { this.skipped.push(`${name}: class ${r.Class}`); continue; }
        if (!inZone(name, domain)) { this.skipped.push(`${name}: outside zone ${domain}`); continue; }
        if ((r.Type === TYPE_A && isIP(r.RData) !== 4) || (r.Type === TYPE_AAAA && isIP(r.RData) !== 6)) {
          this.skipped.push(`${name}: bad address ${JSON.stringify(r.RData)}`); continue;
        }
        const data = r.Type === TYPE_CNAME || r.Type === TYPE_PTR ? normalizeName(r.RData) : r.RData;
        const rec: LocalRecord = { name, type: r.Type, ttl: Math.max(0, Math.min(r.TTL, 0x7fffffff)), data };
        const list = zone.names.get(name);
        if (list) list.push(rec); else zone.names.set(name, [rec]);
        for (let n = name; n.length > domain.length; n = n.slice(n.indexOf('.') + 1)) if (n !== name) zone.empty.add(n);
        if (authoritative && (r.Type === TYPE_A || r.Type === TYPE_AAAA)) {
          const rev = reverseName(r.RData);
          if (!this.ptr.has(rev)) this.ptr.set(rev, { name: rev, type: TYPE_PTR, ttl: rec.ttl, data: name });
        }
      }
      this.zones.push(zone);
    }
    this.zones.sort((a, b) => b.domain.length - a.domain.length);
    // Only answer for reverse space when we have peer records to answer from.
    if (this.ptr.size > 0) {
      for (const p of reversePrefixes) {
        const [addr, len] = p.split('/') as [string, string | undefined];
        try {
          const bytes = ipToBytes(addr);
          this.reversePrefixes.push({ bytes, len: len === undefined ? bytes.length * 8 : Number(len) });
        } catch { this.skipped.push(`bad reverse prefix ${p}`); }
      }
    }
  }

  /** Local answer for (normalized name, type), or undefined to forward. */
  lookup(name: string, type: number): LocalAnswer | undefined {
    if (type === TYPE_PTR || name.endsWith('.arpa')) {
      const rec = this.ptr.get(name);
      if (rec !== undefined) {
        return { rcode: 'NOERROR', authoritative: true, answers: type === TYPE_PTR || type === TYPE_ANY ? [rec] : [], zone: name };
      }
      const addr = reverseToBytes(name);
      if (addr !== undefined && this.reversePrefixes.some((p) => prefixContains(p, addr))) {
        return { rcode: 'NXDOMAIN', authoritative: true, answers: [], zone: name };
      }
    }
    const zone = this.zones.find((z) => inZone(name, z.domain));
    if (zone === undefined) return undefined;
    const answers: LocalRecord[] = [];
    let current = name;
    // Follow CNAMEs inside our zones a few hops, as an authoritative server would.
    for (let hop = 0; hop < 8; hop++) {
      const z = hop === 0 ? zone : this.zones.find((zz) => inZone(current, zz.domain));
      const recs = z?.names.get(current);
      if (recs === undefined) {
        if (hop > 0) break;
        if (zone.empty.has(name)) {
          return { rcode: 'NOERROR', authoritative: zone.authoritative, answers, zone: zone.domain, soa: name === zone.domain && (type === TYPE_SOA || type === TYPE_ANY) };
        }
        if (!zone.authoritative) return undefined; // user zone: let upstreams try
        return { rcode: 'NXDOMAIN', authoritative: true, answers, zone: zone.domain };
      }
      const exact = recs.filter((r) => r.type === type || type === TYPE_ANY);
      if (exact.length > 0) { answers.push(...exact); break; }
      const cname = recs.find((r) => r.type === TYPE_CNAME);
      if (cname === undefined) break;
      answers.push(cname);
      current = cname.data;
    }
    return { rcode: 'NOERROR', authoritative: zone.authoritative, answers, zone: zone.domain };
  }
}
