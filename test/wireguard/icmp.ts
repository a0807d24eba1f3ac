/** Minimal ICMP/ICMPv6 echo handling for interop tests (answers pings that arrive on a MemoryTun). */

function sum16(buf: Buffer, start: number, end: number, acc = 0): number {
  for (let i = start; i + 1 < end; i += 2) acc += buf.readUInt16BE(i);
  if ((end - start) & 1) acc += buf[end - 1]! << 8;
  return acc;
}

function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return ~acc & 0xffff;
}

export function ipv4Checksum(p: Buffer): void {
  p.writeUInt16BE(0, 10);
  p.writeUInt16BE(fold(sum16(p, 0, 20)), 10);
}

/** Builds an ICMP echo request (IPv4). */
export function echoRequest4(src: string, dst: string, id: number, seq: number, payload = Buffer.from('netbird-ts')): Buffer {
  const p = Buffer.alloc(28 + payload.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = 1;
  Buffer.from(src.split('.').map(Number)).copy(p, 12);
  Buffer.from(dst.split('.').map(Number)).copy(p, 16);
  p[20] = 8;
  p.writeUInt16BE(id, 24);
  p.writeUInt16BE(seq, 26);
  payload.copy(p, 28);
  p.writeUInt16BE(fold(sum16(p, 20, p.length)), 22);
  ipv4Checksum(p);
  return p;
}

/** If `pkt` is an echo request (v4 or v6), returns the matching reply; else null. */
export function echoReply(pkt: Buffer): Buffer | null {
  const v = pkt[0]! >> 4;
  if (v === 4 && pkt[9] === 1) {
    const ihl = (pkt[0]! & 15) * 4;
    if (pkt[ihl] !== 8) return null;
    const r = Buffer.from(pkt);
    pkt.copy(r, 12, 16, 20);
    pkt.copy(r, 16, 12, 16);
    r[ihl] = 0;
    r.writeUInt16BE(0, ihl + 2);
    r.writeUInt16BE(fold(sum16(r, ihl, r.length)), ihl + 2);
    ipv4Checksum(r);
    return r;
  }
  if (v === 6 && pkt[6] === 58 && pkt[40] === 128) {
    const r = Buffer.from(pkt);
    pkt.copy(r, 8, 24, 40);
    pkt.copy(r, 24, 8, 24);
    r[40] = 129;
    r.writeUInt16BE(0, 42);
    const len = r.length - 40;
    // Pseudo-header: src, dst, upper-layer length, next header 58.
    let acc = sum16(r, 8, 40);
    acc += (len >>> 16) + (len & 0xffff) + 58;
    acc = sum16(r, 40, r.length, acc);
    r.writeUInt16BE(fold(acc), 42);
    return r;
  }
  return null;
}

/** True if `pkt` is an IPv4 ICMP echo reply with the given id and seq. */
export function isEchoReply4(pkt: Buffer, id: number, seq: number): boolean {
  return pkt[0]! >> 4 === 4 && pkt[9] === 1 && pkt[20] === 0 && pkt.readUInt16BE(24) === id && pkt.readUInt16BE(26) === seq;
}
