/** Crafted IPv4/IPv6 packets for filter tests (checksums left zero: the filter does not check them). */
import { ipToBytes } from '../../src/shared/index.js';
import { management } from '../../src/proto/index.js';

export const FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10;

function l4Tcp(sport: number, dport: number, flags: number, payload = 0): Buffer {
  const b = Buffer.alloc(20 + payload);
  b.writeUInt16BE(sport, 0); b.writeUInt16BE(dport, 2);
  b[12] = 5 << 4; b[13] = flags;
  return b;
}
function l4Udp(sport: number, dport: number, payload = 0): Buffer {
  const b = Buffer.alloc(8 + payload);
  b.writeUInt16BE(sport, 0); b.writeUInt16BE(dport, 2); b.writeUInt16BE(8 + payload, 4);
  return b;
}
function l4Icmp(type: number, code: number, id: number, seq = 1, rest?: Buffer): Buffer {
  const b = Buffer.alloc(8);
  b[0] = type; b[1] = code; b.writeUInt16BE(id, 4); b.writeUInt16BE(seq, 6);
  return rest ? Buffer.concat([b, rest]) : b;
}

export function ip(src: string, dst: string, proto: number, l4: Buffer, opts: { fragOffset?: number; mf?: boolean; id?: number } = {}): Buffer {
  const s = ipToBytes(src), d = ipToBytes(dst);
  if (s.length === 4) {
    const h = Buffer.alloc(20);
    h[0] = 0x45; h.writeUInt16BE(20 + l4.length, 2); h.writeUInt16BE(opts.id ?? 0x1234, 4);
    h.writeUInt16BE(((opts.mf ? 0x2000 : 0) | ((opts.fragOffset ?? 0) & 0x1fff)), 6);
    h[8] = 64; h[9] = proto; s.copy(h, 12); d.copy(h, 16);
    return Buffer.concat([h, l4]);
  }
  const h = Buffer.alloc(40);
  h[0] = 0x60; h[7] = 64; s.copy(h, 8); d.copy(h, 24);
  if (opts.fragOffset !== undefined || opts.mf) {
    h.writeUInt16BE(8 + l4.length, 4); h[6] = 44;
    const fh = Buffer.alloc(8);
    fh[0] = proto; fh.writeUInt16BE(((opts.fragOffset ?? 0) << 3) | (opts.mf ? 1 : 0), 2); fh.writeUInt32BE(opts.id ?? 0x1234, 4);
    return Buffer.concat([h, fh, l4]);
  }
  h.writeUInt16BE(l4.length, 4); h[6] = proto;
  return Buffer.concat([h, l4]);
}

export const tcp = (src: string, dst: string, sport: number, dport: number, flags: number, payload = 0): Buffer =>
  ip(src, dst, 6, l4Tcp(sport, dport, flags, payload));
export const udp = (src: string, dst: string, sport: number, dport: number, payload = 0): Buffer =>
  ip(src, dst, 17, l4Udp(sport, dport, payload));
export const ping = (src: string, dst: string, id: number, reply = false): Buffer => {
  const v6 = src.includes(':');
  return ip(src, dst, v6 ? 58 : 1, l4Icmp(v6 ? (reply ? 129 : 128) : (reply ? 0 : 8), 0, id));
};
/** ICMP error (port unreachable) from `src` quoting `quoted`. */
export const icmpUnreachable = (src: string, dst: string, quoted: Buffer): Buffer => {
  const v6 = src.includes(':');
  return ip(src, dst, v6 ? 58 : 1, l4Icmp(v6 ? 1 : 3, v6 ? 4 : 3, 0, 0, quoted.subarray(0, v6 ? 48 : 28)));
};

export function rule(p: Partial<management.FirewallRule>): management.FirewallRule {
  return {
    PeerIP: '', Direction: management.RuleDirection.IN, Action: management.RuleAction.ACCEPT,
    Protocol: management.RuleProtocol.ALL, Port: '', PortInfo: undefined, PolicyID: Buffer.alloc(0),
    customProtocol: 0, sourcePrefixes: [], ...p,
  };
}
