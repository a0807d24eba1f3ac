/**
 * Upstream selection (NameServerGroups, protocol.md §4.6.5), forwarding over UDP/TCP with
 * timeouts and failover, and a small TTL-respecting response cache.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { randomInt } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { management } from '../proto/index.js';
import { inZone, normalizeName } from './zones.js';

export interface Upstream {
  ip: string;
  port: number;
}

export interface UpstreamRoute {
  /** Normalized match domain. */
  domain: string;
  servers: Upstream[];
}

export class UpstreamTable {
  /** Match-domain routes, longest domain first. */
  readonly routes: UpstreamRoute[] = [];
  readonly primary: Upstream[] = [];
  readonly skipped: string[] = [];

  constructor(cfg: management.DNSConfig | undefined, exclude: (u: Upstream) => boolean) {
    for (const g of cfg?.NameServerGroups ?? []) {
      const servers: Upstream[] = [];
      for (const ns of g.NameServers) {
        if (ns.NSType !== 1) { this.skipped.push(`${ns.IP}: unsupported NSType ${ns.NSType}`); continue; }
        if (net.isIP(ns.IP) === 0) { this.skipped.push(`bad nameserver address ${JSON.stringify(ns.IP)}`); continue; }
        const u = { ip: ns.IP, port: ns.Port > 0 && ns.Port < 65536 ? ns.Port : 53 };
        if (exclude(u)) { this.skipped.push(`${ns.IP}:${u.port} is this resolver itself`); continue; }
        servers.push(u);
      }
      if (servers.length === 0) continue;
      if (g.Primary) this.primary.push(...servers);
      for (const d of g.Domains) {
        const domain = normalizeName(d);
        if (domain !== '') this.routes.push({ domain, servers });
      }
      if (!g.Primary && g.Domains.length === 0) this.skipped.push('non-primary group without domains');
    }
    this.routes.sort((a, b) => b.domain.length - a.domain.length);
  }

  /** Servers for a name: most specific match domain, else the primary group, else `fallback`. */
  pick(name: string, fallback: Upstream[]): Upstream[] {
    for (const r of this.routes) if (inZone(name, r.domain)) return r.servers;
    return this.primary.length > 0 ? this.primary : fallback;
  }
}

function sameAddress(a: string, b: string): boolean {
  const strip = (s: string): string => (s.startsWith('::ffff:') ? s.slice(7) : s).toLowerCase();
  return strip(a) === strip(b);
}

/** One UDP exchange with a fresh socket (random source port) and random ID; undefined on timeout. */
export function queryUdp(query: Buffer, server: Upstream, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(net.isIPv6(server.ip) ? 'udp6' : 'udp4');
    const id = randomInt(0, 0x10000);
    const msg = Buffer.from(query);
    msg.writeUInt16BE(id, 0);
    let done = false;
    const finish = (r: Buffer | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.close();
      resolve(r);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    sock.on('error', () => finish(undefined));
    sock.on('message', (resp, rinfo) => {
      // Ignore anything that is not the answer from the server we asked.
      if (resp.length < 12 || resp.readUInt16BE(0) !== id || rinfo.port !== server.port || !sameAddress(rinfo.address, server.ip)) return;
      finish(resp);
    });
    sock.send(msg, server.port, server.ip, (err) => { if (err) finish(undefined); });
  });
}

/** One TCP exchange (2-byte length framing); undefined on timeout or error. */
export function queryTcp(query: Buffer, server: Upstream, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const id = randomInt(0, 0x10000);
    const msg = Buffer.alloc(query.length + 2);
    msg.writeUInt16BE(query.length, 0);
    query.copy(msg, 2);
    msg.writeUInt16BE(id, 2);
    const chunks: Buffer[] = [];
    let have = 0;
    let done = false;
    const sock = net.connect({ host: server.ip, port: server.port });
    const finish = (r: Buffer | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    sock.on('connect', () => sock.write(msg));
    sock.on('error', () => finish(undefined));
    sock.on('close', () => finish(undefined));
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      have += d.length;
      if (have < 2) return;
      const all = Buffer.concat(chunks);
      const len = all.readUInt16BE(0);
      if (all.length < len + 2) return;
      const resp = all.subarray(2, 2 + len);
      finish(resp.length >= 12 && resp.readUInt16BE(0) === id ? Buffer.from(resp) : undefined);
    });
  });
}

interface CacheEntry {
  response: Buffer;
  storedAt: number;
  expiresAt: number;
}

/** Response cache keyed by question; TTLs are counted down on the way out. */
export class DnsCache {
  private readonly map = new Map<string, CacheEntry>();
  hits = 0;
  misses = 0;

  constructor(private readonly maxEntries: number, private readonly maxTtlS: number, private readonly now: () => number) {}

  static key(name: string, type: string, cls: string, dnssecOk: boolean): string {
    return `${name}|${type}|${cls}|${dnssecOk ? 1 : 0}`;
  }

  get(key: string, id: number): Buffer | undefined {
    const e = this.map.get(key);
    const now = this.now();
    if (e === undefined || e.expiresAt <= now) {
      if (e !== undefined) this.map.delete(key);
      this.misses++;
      return undefined;
    }
    this.map.delete(key);
    this.map.set(key, e); // LRU: most recently used last
    const elapsed = Math.floor((now - e.storedAt) / 1000);
    let pkt: dnsPacket.DecodedPacket;
    try { pkt = dnsPacket.decode(e.response); } catch { this.map.delete(key); return undefined; }
    const age = (list: dnsPacket.Answer[] | undefined): void => {
      for (const a of list ?? []) if (a.type !== 'OPT' && 'ttl' in a) a.ttl = Math.max(0, (a.ttl ?? 0) - elapsed);
    };
    age(pkt.answers); age(pkt.authorities); age(pkt.additionals);
    pkt.id = id;
    this.hits++;
    const out = dnsPacket.encode(pkt);
    // dns-packet keeps the rcode inside flags; make sure it survived the round trip.
    out[3] = (out[3]! & 0xf0) | (e.response[3]! & 0x0f);
    return out;
  }

  /** Stores a NOERROR/NXDOMAIN, non-truncated response for its minimum TTL. */
  put(key: string, response: Buffer): void {
    if (this.maxEntries <= 0 || response.length < 12) return;
    const rcode = response[3]! & 0x0f;
    if ((rcode !== 0 && rcode !== 3) || (response[2]! & 0x02) !== 0) return;
    let pkt: dnsPacket.DecodedPacket;
    try { pkt = dnsPacket.decode(response); } catch { return; }
    let ttl = Infinity;
    const answers = pkt.answers ?? [];
    for (const a of answers) if (a.type !== 'OPT' && 'ttl' in a) ttl = Math.min(ttl, a.ttl ?? 0);
    if (answers.length === 0 || rcode === 3) {
      // Negative answers are cached for the SOA's negative TTL (RFC 2308), or not at all.
      const soa = (pkt.authorities ?? []).find((a): a is dnsPacket.SoaAnswer => a.type === 'SOA');
      if (soa === undefined) return;
      ttl = Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0);
    }
    ttl = Math.min(ttl, this.maxTtlS);
    if (!(ttl > 0)) return;
    const now = this.now();
    this.map.delete(key);
    this.map.set(key, { response: Buffer.from(response), storedAt: now, expiresAt: now + ttl * 1000 });
    while (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
  }

  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}
