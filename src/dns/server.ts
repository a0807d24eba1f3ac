/**
 * The local DNS resolver on the overlay address (protocol.md §4.6.5): answers names from the
 * managed custom zones, synthesizes PTR records for peers, and forwards everything else to the
 * nameserver groups or, without a primary group, to the host's original resolvers.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { management } from '../proto/index.js';
import { DnsCache, Upstream, UpstreamTable, queryTcp, queryUdp } from './upstream.js';
import { LocalAnswer, LocalRecord, TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_CNAME, TYPE_PTR, TYPE_SOA, TYPE_TXT, ZoneSet, normalizeName } from './zones.js';

export interface DnsLogger {
  debug(msg: string): void;
  warn(msg: string): void;
}

export interface DnsServerOptions {
  /** Address to listen on (the overlay IP in production). */
  host: string;
  /** Port (53 in production; 0 picks a free one, see address()). */
  port: number;
  /** The host's own resolvers, used when no primary nameserver group exists. */
  hostResolvers?: Upstream[];
  /** Serve TCP as well (default true). */
  tcp?: boolean;
  /** Per-upstream attempt timeout (default 2000 ms). */
  upstreamTimeoutMs?: number;
  /** Cached responses (default 1000; 0 disables the cache). */
  cacheSize?: number;
  /** Longest time anything is cached, whatever its TTL (default 3600 s). */
  cacheMaxTtlS?: number;
  /** Concurrent forwarded queries; beyond this clients get SERVFAIL (default 512). */
  maxInflight?: number;
  logger?: DnsLogger;
  now?: () => number;
}

export interface DnsConfigOptions {
  /** Overlay prefixes (e.g. "100.64.0.0/10", "fd00:1234::/64") whose reverse names are answered locally. */
  reversePrefixes?: string[];
}

export interface DnsServerStats {
  queries: number;
  local: number;
  forwarded: number;
  cacheHits: number;
  nxdomain: number;
  servfail: number;
  formerr: number;
}

const TYPE_NAMES: Record<number, dnsPacket.RecordType> = {
  [TYPE_A]: 'A', [TYPE_AAAA]: 'AAAA', [TYPE_CNAME]: 'CNAME', [TYPE_PTR]: 'PTR', [TYPE_TXT]: 'TXT',
};
const TYPE_NUMBERS: Record<string, number> = { A: TYPE_A, AAAA: TYPE_AAAA, CNAME: TYPE_CNAME, PTR: TYPE_PTR, TXT: TYPE_TXT, SOA: TYPE_SOA, ANY: TYPE_ANY };

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

/** A bare header reply (FORMERR, SERVFAIL...) echoing the query's ID, RD bit and question. */
function errorReply(query: Buffer, rcode: number): Buffer | undefined {
  if (query.length < 12) return undefined;
  let question: dnsPacket.Question[] = [];
  try { question = dnsPacket.decode(query).questions ?? []; } catch { /* header-only reply */ }
  const out = dnsPacket.encode({
    type: 'response', id: query.readUInt16BE(0),
    flags: (query[2]! & 0x01 ? dnsPacket.RECURSION_DESIRED : 0) | dnsPacket.RECURSION_AVAILABLE | rcode,
    questions: question.length === 1 ? question : [],
  });
  return out;
}

export class DnsServer {
  private readonly opts: Required<Omit<DnsServerOptions, 'logger' | 'now' | 'hostResolvers'>>;
  private readonly log: DnsLogger | undefined;
  private readonly now: () => number;
  private zones = new ZoneSet(undefined);
  private upstreams: UpstreamTable;
  private hostResolvers: Upstream[];
  private readonly cache: DnsCache;
  private udp: dgram.Socket | undefined;
  private tcpServer: net.Server | undefined;
  private readonly tcpConns = new Set<net.Socket>();
  private inflight = 0;
  private boundPort = 0;
  private readonly counters: DnsServerStats = { queries: 0, local: 0, forwarded: 0, cacheHits: 0, nxdomain: 0, servfail: 0, formerr: 0 };

  constructor(options: DnsServerOptions) {
    this.opts = {
      host: options.host, port: options.port, tcp: options.tcp ?? true,
      upstreamTimeoutMs: options.upstreamTimeoutMs ?? 2000, cacheSize: options.cacheSize ?? 1000,
      cacheMaxTtlS: options.cacheMaxTtlS ?? 3600, maxInflight: options.maxInflight ?? 512,
    };
    this.log = options.logger;
    this.now = options.now ?? Date.now;
    this.cache = new DnsCache(this.opts.cacheSize, this.opts.cacheMaxTtlS, this.now);
    this.hostResolvers = this.filterSelf(options.hostResolvers ?? []);
    this.upstreams = new UpstreamTable(undefined, (u) => this.isSelf(u));
  }

  /** Binds UDP (and TCP) on host:port. */
  async start(): Promise<void> {
    if (this.udp !== undefined) return;
    const udp = dgram.createSocket({ type: net.isIPv6(this.opts.host) ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(this.opts.port, this.opts.host, () => { udp.off('error', reject); resolve(); });
    });
    udp.on('error', (e) => this.log?.warn(`dns: udp socket error: ${e.message}`));
    udp.on('message', (msg, rinfo) => {
      void this.handle(msg, 'udp').then((resp) => {
        if (resp !== undefined && this.udp !== undefined) this.udp.send(resp, rinfo.port, rinfo.address);
      });
    });
    this.udp = udp;
    this.boundPort = udp.address().port;
    if (this.opts.tcp) {
      const srv = net.createServer((c) => this.serveTcp(c));
      try {
        await new Promise<void>((resolve, reject) => {
          srv.once('error', reject);
          srv.listen(this.boundPort, this.opts.host, () => { srv.off('error', reject); resolve(); });
        });
      } catch (e) {
        udp.close();
        this.udp = undefined;
        throw e;
      }
      this.tcpServer = srv;
    }
  }

  async stop(): Promise<void> {
    const udp = this.udp, srv = this.tcpServer;
    this.udp = undefined;
    this.tcpServer = undefined;
    for (const c of this.tcpConns) c.destroy();
    this.tcpConns.clear();
    if (udp !== undefined) await new Promise<void>((r) => udp.close(() => r()));
    if (srv !== undefined) await new Promise<void>((r) => srv.close(() => r()));
  }

  /** The bound address (port resolved when 0 was asked for). */
  address(): { host: string; port: number } {
    return { host: this.opts.host, port: this.boundPort };
  }

  /** Applies a DNSConfig from the network map; returns what was skipped and why. */
  setConfig(cfg: management.DNSConfig, options: DnsConfigOptions = {}): { skipped: string[] } {
    const zones = new ZoneSet(cfg, options.reversePrefixes ?? []);
    const upstreams = new UpstreamTable(cfg, (u) => this.isSelf(u));
    this.zones = zones;
    this.upstreams = upstreams;
    this.cache.clear();
    return { skipped: [...zones.skipped, ...upstreams.skipped] };
  }

  /** The resolvers the host used before we took over (forward target without a primary group). */
  setHostResolvers(list: Upstream[]): void {
    this.hostResolvers = this.filterSelf(list);
    this.cache.clear();
  }

  stats(): DnsServerStats {
    return { ...this.counters, cacheHits: this.cache.hits };
  }

  /** Answers one DNS message (exposed for in-process callers and tests). */
  async handle(query: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    this.counters.queries++;
    let pkt: dnsPacket.DecodedPacket;
    try {
      pkt = dnsPacket.decode(query);
    } catch {
      this.counters.formerr++;
      return errorReply(query, RCODE.FORMERR);
    }
    if (pkt.type === 'response') return undefined;
    const opcode = (query[2]! >> 3) & 0x0f;
    if (opcode !== 0) return errorReply(query, RCODE.NOTIMP);
    const questions = pkt.questions ?? [];
    if (questions.length !== 1) {
      this.counters.formerr++;
      return errorReply(query, RCODE.FORMERR);
    }
    const q = questions[0]!;
    const name = normalizeName(q.name);
    const opt = (pkt.additionals ?? []).find((a): a is dnsPacket.OptAnswer => a.type === 'OPT');
    const maxUdp = opt !== undefined ? Math.max(512, opt.udpPayloadSize ?? 512) : 512;

    const qclass = q.class ?? 'IN';
    const typeNum = TYPE_NUMBERS[q.type] ?? (typeof q.type === 'number' ? q.type : -1);
    const local = qclass === 'IN' || qclass === 'ANY' ? this.zones.lookup(name, typeNum) : undefined;
    if (local !== undefined) {
      this.counters.local++;
      if (local.rcode === 'NXDOMAIN') this.counters.nxdomain++;
      return this.localReply(pkt, q, local, opt !== undefined, transport === 'udp' ? maxUdp : 65535);
    }

    const dnssecOk = opt !== undefined && (((opt as { flags?: number }).flags ?? 0) & dnsPacket.DNSSEC_OK) !== 0;
    const key = DnsCache.key(name, String(q.type), qclass, dnssecOk);
    const cached = this.cache.get(key, pkt.id ?? 0);
    if (cached !== undefined && (transport === 'tcp' || cached.length <= maxUdp)) return cached;

    const servers = this.upstreams.pick(name, this.hostResolvers);
    if (servers.length === 0 || this.inflight >= this.opts.maxInflight) {
      this.counters.servfail++;
      return errorReply(query, RCODE.SERVFAIL);
    }
    this.inflight++;
    this.counters.forwarded++;
    try {
      for (const s of servers) {
        let resp = transport === 'tcp'
          ? await queryTcp(query, s, this.opts.upstreamTimeoutMs)
          : await queryUdp(query, s, this.opts.upstreamTimeoutMs);
        // A truncated UDP answer: fetch the full one over TCP so the cache gets the whole thing.
        if (resp !== undefined && transport === 'udp' && (resp[2]! & 0x02) !== 0) {
          const full = await queryTcp(query, s, this.opts.upstreamTimeoutMs);
          if (full !== undefined) { this.cache.put(key, full); if (full.length <= maxUdp) resp = full; }
        } else if (resp !== undefined) {
          this.cache.put(key, resp);
        }
        if (resp === undefined) { this.log?.debug(`dns: upstream ${s.ip}:${s.port} did not answer ${name}`); continue; }
        if ((resp[3]! & 0x0f) === RCODE.SERVFAIL && s !== servers[servers.length - 1]) continue;
        resp.writeUInt16BE(pkt.id ?? 0, 0);
        return resp;
      }
      this.counters.servfail++;
      return errorReply(query, RCODE.SERVFAIL);
    } finally {
      this.inflight--;
    }
  }

  private localReply(pkt: dnsPacket.DecodedPacket, q: dnsPacket.Question, local: LocalAnswer, edns: boolean, maxSize: number): Buffer {
    const answers: dnsPacket.Answer[] = local.answers.map((r) => toAnswer(r, q));
    const authorities: dnsPacket.Answer[] = [];
    const soa: dnsPacket.Answer = {
      type: 'SOA', name: local.zone, ttl: 60, class: 'IN',
      data: { mname: local.zone, rname: `hostmaster.${local.zone}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 60 },
    };
    if (local.soa) answers.push(soa);
    // Negative answers carry the zone SOA so stub resolvers can cache them (RFC 2308).
    else if (answers.length === 0) authorities.push(soa);
    const rd = pkt.flags !== undefined && (pkt.flags & dnsPacket.RECURSION_DESIRED) !== 0;
    const flags = (local.authoritative ? dnsPacket.AUTHORITATIVE_ANSWER : 0) | (rd ? dnsPacket.RECURSION_DESIRED : 0) |
      dnsPacket.RECURSION_AVAILABLE | (local.rcode === 'NXDOMAIN' ? RCODE.NXDOMAIN : 0);
    const additionals: dnsPacket.Answer[] = edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [];
    const reply: dnsPacket.Packet = { type: 'response', id: pkt.id ?? 0, flags, questions: [q], answers, authorities, additionals };
    let out = dnsPacket.encode(reply);
    if (out.length > maxSize) {
      out = dnsPacket.encode({ ...reply, flags: flags | dnsPacket.TRUNCATED_RESPONSE, answers: [], authorities: [] });
    }
    return out;
  }

  private serveTcp(c: net.Socket): void {
    this.tcpConns.add(c);
    c.setTimeout(10_000, () => c.destroy());
    let buf: Buffer = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = Buffer.from(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        void this.handle(msg, 'tcp').then((resp) => {
          if (resp === undefined || c.destroyed) return;
          const head = Buffer.alloc(2);
          head.writeUInt16BE(resp.length, 0);
          c.write(Buffer.concat([head, resp]));
        });
      }
    });
    c.on('error', () => c.destroy());
    c.on('close', () => this.tcpConns.delete(c));
  }

  private isSelf(u: Upstream): boolean {
    return u.ip === this.opts.host && (u.port === this.opts.port || (this.boundPort !== 0 && u.port === this.boundPort));
  }

  private filterSelf(list: Upstream[]): Upstream[] {
    return list.filter((u) => net.isIP(u.ip) !== 0 && !this.isSelf(u));
  }
}

function toAnswer(r: LocalRecord, q: dnsPacket.Question): dnsPacket.Answer {
  const type = TYPE_NAMES[r.type]!;
  // Keep the asker's spelling for the owner of the first answer (0x20-style case echo).
  const name = normalizeName(q.name) === r.name ? q.name.replace(/\.$/, '') : r.name;
  if (type === 'TXT') return { type: 'TXT', name, ttl: r.ttl, class: 'IN', data: r.data };
  return { type: type as dnsPacket.StringRecordType, name, ttl: r.ttl, class: 'IN', data: r.data };
}
