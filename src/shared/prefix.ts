import { isIPv4, isIPv6 } from 'node:net';

/**
 * The compact IP prefix of protocol.md §2.4: address bytes followed by one prefix-length byte
 * (5 bytes for IPv4, 17 for IPv6). IPv4-mapped IPv6 is written as plain IPv4.
 */

export class PrefixFormatError extends Error {
  override readonly name = 'PrefixFormatError';
}

/** "::ffff:a.b.c.d" (IPv4-mapped IPv6, as dual-stack sockets report IPv4 peers) -> "a.b.c.d"; others unchanged. */
export function unmapIPv4(ip: string): string {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(ip) ? ip.slice(7) : ip;
}

/** Raw bytes of an IP address (4 or 16); IPv4-mapped IPv6 becomes 4 bytes. */
export function ipToBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) throw new PrefixFormatError(`not an IP address: ${JSON.stringify(ip)}`);
  const v4 = unmapIPv4(ip);
  if (v4 !== ip) return ipToBytes(v4);
  let text = ip;
  const v4tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4tail) {
    const b = ipToBytes(v4tail[1]!);
    text = text.slice(0, -v4tail[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const groups = tail === undefined ? headParts : [...headParts, ...new Array<string>(8 - headParts.length - tailParts.length).fill('0'), ...tailParts];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** Text form of a 4- or 16-byte address. */
export function bytesToIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw new PrefixFormatError(`an IP address has 4 or 16 bytes, got ${bytes.length}`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Encodes "100.64.0.5/32" (or a bare address, taken as a host prefix) into the compact form. */
export function encodeCompactPrefix(cidr: string): Buffer {
  const [addr, lenText] = cidr.split('/') as [string, string | undefined];
  const ip = ipToBytes(addr);
  const max = ip.length * 8;
  const len = lenText === undefined ? max : Number(lenText);
  if (!Number.isInteger(len) || len < 0 || len > max || (lenText !== undefined && !/^\d+$/.test(lenText))) {
    throw new PrefixFormatError(`invalid prefix length in ${JSON.stringify(cidr)}`);
  }
  return Buffer.concat([ip, Buffer.from([len])]);
}

/** Decodes a compact prefix back to CIDR text. */
export function decodeCompactPrefix(bytes: Uint8Array): string {
  if (bytes.length !== 5 && bytes.length !== 17) throw new PrefixFormatError(`a compact prefix has 5 or 17 bytes, got ${bytes.length}`);
  const len = bytes[bytes.length - 1]!;
  if (len > (bytes.length - 1) * 8) throw new PrefixFormatError(`prefix length ${len} too long for the address family`);
  return `${bytesToIp(bytes.subarray(0, bytes.length - 1))}/${len}`;
}
