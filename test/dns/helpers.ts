/** Loopback DNS client and fake upstream servers for the DNS tests. */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { management } from '../../src/proto/index.js';

export interface Reply {
  pkt: dnsPacket.DecodedPacket;
  rcode: number;
  aa: boolean;
  tc: boolean;
  raw: Buffer;
}

function parse(raw: Buffer): Reply {
  return { pkt: dnsPacket.decode(raw), rcode: raw[3]! & 0x0f, aa: (raw[2]! & 0x04) !== 0, tc: (raw[2]! & 0x02) !== 0, raw };
}

let nextId = 1;

export function encodeQuery(name: string, type: dnsPacket.RecordType, edns = false): Buffer {
  return dnsPacket.encode({
    type: 'query', id: (nextId = (nextId + 1) & 0xffff), flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
    additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [],
  });
}

export function queryRaw(port: number, msg: Buffer, timeoutMs = 3000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => { s.close(); resolve(undefined); }, timeoutMs);
    s.on('message', (m) => { clearTimeout(t); s.close(); resolve(m); });
    s.send(msg, port, '127.0.0.1');
  });
}

export async function query(port: number, name: string, type: dnsPacket.RecordType, opts: { tcp?: boolean; edns?: boolean } = {}): Promise<Reply> {
  const msg = encodeQuery(name, type, opts.edns);
  if (!opts.tcp) {
    const r = await queryRaw(port, msg);
    if (r === undefined) throw new Error(`no answer for ${name} ${type}`);
    assertId(r, msg);
    return parse(r);
  }
  const r = await new Promise<Buffer>((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const t = setTimeout(() => { c.destroy(); reject(new Error('tcp timeout')); }, 3000);
    c.on('connect', () => { const h = Buffer.alloc(2); h.writeUInt16BE(msg.length); c.write(Buffer.concat([h, msg])); });
    c.on('data', (d: Buffer) => {
      chunks.push(d);
      const all = Buffer.concat(chunks);
      if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) { clearTimeout(t); c.destroy(); resolve(all.subarray(2, 2 + all.readUInt16BE(0))); }
    });
    c.on('error', reject);
  });
  assertId(r, msg);
  return parse(r);
}

function assertId(resp: Buffer, q: Buffer): void {
  if (resp.readUInt16BE(0) !== q.readUInt16BE(0)) throw new Error('response ID does not match the query');
}

export interface FakeUpstream {
  port: number;
  /** Names asked (lower case, with transport). */
  seen: string[];
  close(): Promise<void>;
}

/**
 * A fake upstream on 127.0.0.1: answers every A question with `address` (TTL `ttl`), NXDOMAIN
 * for names starting with "nx.", or stays silent when `silent`.
 */
export async function fakeUpstream(opts: { address?: string; ttl?: number; silent?: boolean; tcp?: boolean } = {}): Promise<FakeUpstream> {
  const seen: string[] = [];
  const answer = (msg: Buffer): Buffer | undefined => {
    if (opts.silent) return undefined;
    const q = dnsPacket.decode(msg);
    const question = q.questions![0]!;
    const name = question.name.toLowerCase();
    seen.push(name);
    const nx = name.startsWith('nx.');
    return dnsPacket.encode({
      type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE | (nx ? 3 : 0), questions: q.questions,
      answers: !nx && question.type === 'A' ? [{ type: 'A', name: question.name, ttl: opts.ttl ?? 100, class: 'IN', data: opts.address ?? '192.0.2.1' }] : [],
      authorities: nx ? [{ type: 'SOA', name: 'example', ttl: 50, class: 'IN', data: { mname: 'ns.example', rname: 'h.example', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 40 } }] : [],
    });
  };
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  udp.on('message', (m, rinfo) => { const a = answer(m); if (a) udp.send(a, rinfo.port, rinfo.address); });
  const port = udp.address().port;
  let srv: net.Server | undefined;
  if (opts.tcp !== false) {
    const conns = new Set<net.Socket>();
    srv = net.createServer((c) => {
      conns.add(c);
      c.on('close', () => conns.delete(c));
      c.on('data', (d: Buffer) => {
        const a = answer(d.subarray(2));
        if (a) { const h = Buffer.alloc(2); h.writeUInt16BE(a.length); c.write(Buffer.concat([h, a])); }
      });
    });
    await new Promise<void>((r) => srv!.listen(port, '127.0.0.1', () => r()));
    const s = srv;
    return {
      port, seen,
      close: async () => {
        for (const c of conns) c.destroy();
        await new Promise<void>((r) => udp.close(() => r()));
        await new Promise<void>((r) => s.close(() => r()));
      },
    };
  }
  return { port, seen, close: () => new Promise<void>((r) => udp.close(() => r())) };
}

export function dnsConfig(p: Partial<management.DNSConfig>): management.DNSConfig {
  return { ServiceEnable: true, NameServerGroups: [], CustomZones: [], ForwarderPort: 0, ...p };
}

export function rec(Name: string, Type: number, RData: string, TTL = 300): management.SimpleRecord {
  return { Name, Type, Class: 'IN', TTL, RData };
}

export function nsGroup(ports: number[], p: Partial<management.NameServerGroup> = {}): management.NameServerGroup {
  return { NameServers: ports.map((Port) => ({ IP: '127.0.0.1', NSType: 1, Port })), Primary: false, Domains: [], SearchDomainsEnabled: false, ...p };
}
