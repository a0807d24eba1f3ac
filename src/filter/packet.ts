/**
 * Allocation-free IPv4/IPv6 header parser for the packet filter. One instance is reused for
 * every packet: parse() overwrites its fields, so the hot path reads numbers, never objects.
 */

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

/** Fragment position of the parsed packet. */
export const FRAG_NONE = 0;
export const FRAG_FIRST = 1;
export const FRAG_LATER = 2;

function u32(b: Buffer, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export class PacketParser {
  /** 4 or 6. */
  fam = 0;
  /** Transport protocol number (after IPv6 extension headers). */
  proto = 0;
  /** Addresses as big-endian words; IPv4 uses word 0 and leaves 1..3 zero. */
  readonly src = new Uint32Array(4);
  readonly dst = new Uint32Array(4);
  sport = 0;
  dport = 0;
  icmpType = 0;
  icmpCode = 0;
  /** ICMP echo identifier (only for echo request/reply). */
  icmpId = 0;
  tcpFlags = 0;
  frag = FRAG_NONE;
  fragId = 0;
  /** Offset of the transport header. */
  l4off = 0;

  /**
   * Parses the IP header at b[off..off+len). With `inner` (the quoted packet inside an ICMP
   * error) the transport header may be cut short; only the first 4 bytes (ports) are needed.
   * Returns false for packets too short or malformed to be judged.
   */
  parse(b: Buffer, off: number, len: number, inner: boolean): boolean {
    if (len < 1) return false;
    const end = off + len;
    const v = b[off]! >> 4;
    this.sport = 0; this.dport = 0; this.icmpType = 0; this.icmpCode = 0; this.icmpId = 0;
    this.tcpFlags = 0; this.frag = FRAG_NONE; this.fragId = 0;
    if (v === 4) {
      if (len < 20) return false;
      const ihl = (b[off]! & 15) * 4;
      if (ihl < 20 || ihl > len) return false;
      this.fam = 4;
      this.proto = b[off + 9]!;
      const src = this.src, dst = this.dst;
      src[0] = u32(b, off + 12); src[1] = 0; src[2] = 0; src[3] = 0;
      dst[0] = u32(b, off + 16); dst[1] = 0; dst[2] = 0; dst[3] = 0;
      const ff = (b[off + 6]! << 8) | b[off + 7]!;
      this.fragId = (b[off + 4]! << 8) | b[off + 5]!;
      if ((ff & 0x1fff) !== 0) { this.frag = FRAG_LATER; this.l4off = off + ihl; return true; }
      if ((ff & 0x2000) !== 0) this.frag = FRAG_FIRST;
      return this.parseL4(b, off + ihl, end, inner);
    }
    if (v === 6) {
      if (len < 40) return false;
      this.fam = 6;
      const src = this.src, dst = this.dst;
      for (let i = 0; i < 4; i++) { src[i] = u32(b, off + 8 + i * 4); dst[i] = u32(b, off + 24 + i * 4); }
      let nh = b[off + 6]!;
      let p = off + 40;
      // Walk a bounded number of extension headers to find the transport header.
      for (let n = 0; n < 8; n++) {
        if (nh === 0 || nh === 43 || nh === 60) {
          if (p + 8 > end) return false;
          const next = b[p]!;
          p += (b[p + 1]! + 1) * 8;
          nh = next;
        } else if (nh === 51) {
          if (p + 8 > end) return false;
          const next = b[p]!;
          p += (b[p + 1]! + 2) * 4;
          nh = next;
        } else if (nh === 44) {
          if (p + 8 > end) return false;
          const next = b[p]!;
          const fo = (b[p + 2]! << 8) | b[p + 3]!;
          this.fragId = u32(b, p + 4);
          p += 8;
          nh = next;
          if ((fo >> 3) !== 0) { this.frag = FRAG_LATER; this.proto = nh; this.l4off = p; return true; }
          if ((fo & 1) !== 0) this.frag = FRAG_FIRST;
        } else {
          break;
        }
      }
      if (p > end) return false;
      this.proto = nh;
      return this.parseL4(b, p, end, inner);
    }
    return false;
  }

  private parseL4(b: Buffer, p: number, end: number, inner: boolean): boolean {
    this.l4off = p;
    const avail = end - p;
    const proto = this.proto;
    if (proto === PROTO_TCP) {
      if (avail < (inner ? 4 : 20)) return false;
      this.sport = (b[p]! << 8) | b[p + 1]!;
      this.dport = (b[p + 2]! << 8) | b[p + 3]!;
      if (!inner) this.tcpFlags = b[p + 13]!;
      return true;
    }
    if (proto === PROTO_UDP) {
      if (avail < (inner ? 4 : 8)) return false;
      this.sport = (b[p]! << 8) | b[p + 1]!;
      this.dport = (b[p + 2]! << 8) | b[p + 3]!;
      return true;
    }
    if ((proto === PROTO_ICMP && this.fam === 4) || (proto === PROTO_ICMPV6 && this.fam === 6)) {
      if (avail < 8) return false;
      this.icmpType = b[p]!;
      this.icmpCode = b[p + 1]!;
      this.icmpId = (b[p + 4]! << 8) | b[p + 5]!;
      return true;
    }
    return true;
  }

  /** ICMP/ICMPv6 echo request. */
  isEchoRequest(): boolean {
    return this.fam === 4 ? this.proto === PROTO_ICMP && this.icmpType === 8 : this.proto === PROTO_ICMPV6 && this.icmpType === 128;
  }

  /** ICMP/ICMPv6 echo reply. */
  isEchoReply(): boolean {
    return this.fam === 4 ? this.proto === PROTO_ICMP && this.icmpType === 0 : this.proto === PROTO_ICMPV6 && this.icmpType === 129;
  }

  /** ICMP error messages that quote the offending packet (unreachable, time exceeded, ...). */
  isIcmpError(): boolean {
    if (this.fam === 4) return this.proto === PROTO_ICMP && (this.icmpType === 3 || this.icmpType === 11 || this.icmpType === 12);
    return this.proto === PROTO_ICMPV6 && this.icmpType >= 1 && this.icmpType <= 4;
  }

  isIcmp(): boolean {
    return this.fam === 4 ? this.proto === PROTO_ICMP : this.proto === PROTO_ICMPV6;
  }

  /** Raw address bytes (4 or 16) of a parsed address; allocates, for events only. */
  addrBytes(w: Uint32Array): Buffer {
    return wordsToBytes(this.fam, w, 0);
  }
}

/** Raw address bytes from words at w[o..o+4). Allocates; used for events, not per packet. */
export function wordsToBytes(fam: number, w: Uint32Array, o: number): Buffer {
  const out = Buffer.allocUnsafe(fam === 4 ? 4 : 16);
  const n = fam === 4 ? 1 : 4;
  for (let i = 0; i < n; i++) out.writeUInt32BE(w[o + i]!, i * 4);
  return out;
}
