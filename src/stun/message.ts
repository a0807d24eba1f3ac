/**
 * STUN message coding (RFC 5389 / 8489), with the TURN (RFC 5766) and ICE
 * (RFC 8445) attribute numbers the project needs. Messages are small and
 * rare (binding requests, TURN control), so plain allocation is fine here;
 * TURN ChannelData on the data path is framed separately (see turn.ts).
 */
import { createHmac } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const MAGIC_COOKIE = 0x2112a442;
export const HEADER_LENGTH = 20;
const FINGERPRINT_XOR = 0x5354554e;

export const StunMethod = {
  Binding: 0x001,
  Allocate: 0x003,
  Refresh: 0x004,
  Send: 0x006,
  Data: 0x007,
  CreatePermission: 0x008,
  ChannelBind: 0x009,
} as const;

export const StunClass = {
  Request: 0x000,
  Indication: 0x010,
  SuccessResponse: 0x100,
  ErrorResponse: 0x110,
} as const;
export type StunClassValue = (typeof StunClass)[keyof typeof StunClass];

export const StunAttr = {
  MappedAddress: 0x0001,
  ChangeRequest: 0x0003,
  Username: 0x0006,
  MessageIntegrity: 0x0008,
  ErrorCode: 0x0009,
  UnknownAttributes: 0x000a,
  ChannelNumber: 0x000c,
  Lifetime: 0x000d,
  XorPeerAddress: 0x0012,
  Data: 0x0013,
  Realm: 0x0014,
  Nonce: 0x0015,
  XorRelayedAddress: 0x0016,
  RequestedTransport: 0x0019,
  XorMappedAddress: 0x0020,
  Priority: 0x0024,
  UseCandidate: 0x0025,
  Software: 0x8022,
  AlternateServer: 0x8023,
  Fingerprint: 0x8028,
  IceControlled: 0x8029,
  IceControlling: 0x802a,
} as const;

export interface StunAttribute {
  type: number;
  value: Buffer;
}

export interface StunMessage {
  /** Method, e.g. StunMethod.Binding. */
  method: number;
  /** Class, e.g. StunClass.Request. */
  cls: StunClassValue;
  /** 12 bytes (RFC 5389) or 16 bytes for RFC 3489 messages without the magic cookie. */
  transactionId: Buffer;
  attributes: StunAttribute[];
}

export interface TransportAddress {
  family: 4 | 6;
  address: string;
  port: number;
}

export class StunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StunError';
  }
}

export function messageType(method: number, cls: number): number {
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | cls;
}

function splitType(type: number): { method: number; cls: StunClassValue } {
  const method = (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
  return { method, cls: (type & 0x0110) as StunClassValue };
}

/**
 * Quick check whether a datagram looks like an RFC 5389 STUN message (top two
 * bits zero, magic cookie, 4-aligned length matching the datagram). Used to
 * demultiplex STUN from WireGuard on a shared socket.
 */
export function isStunMessage(buf: Uint8Array, length = buf.length): boolean {
  if (length < HEADER_LENGTH || (buf[0]! & 0xc0) !== 0) return false;
  if (buf[4] !== 0x21 || buf[5] !== 0x12 || buf[6] !== 0xa4 || buf[7] !== 0x42) return false;
  const len = (buf[2]! << 8) | buf[3]!;
  return (len & 3) === 0 && len + HEADER_LENGTH === length;
}

/** Parses a STUN message; null for anything malformed (garbage is dropped, not answered). */
export function decodeStun(buf: Buffer): StunMessage | null {
  if (buf.length < HEADER_LENGTH || (buf[0]! & 0xc0) !== 0) return null;
  const len = buf.readUInt16BE(2);
  if ((len & 3) !== 0 || len + HEADER_LENGTH !== buf.length) return null;
  const hasCookie = buf.readUInt32BE(4) === MAGIC_COOKIE;
  const { method, cls } = splitType(buf.readUInt16BE(0));
  const transactionId = Buffer.from(buf.subarray(hasCookie ? 8 : 4, 20));
  const attributes: StunAttribute[] = [];
  let off = HEADER_LENGTH;
  while (off < buf.length) {
    if (off + 4 > buf.length) return null;
    const type = buf.readUInt16BE(off);
    const alen = buf.readUInt16BE(off + 2);
    if (off + 4 + alen > buf.length) return null;
    attributes.push({ type, value: Buffer.from(buf.subarray(off + 4, off + 4 + alen)) });
    off += 4 + ((alen + 3) & ~3);
  }
  if (off !== buf.length) return null;
  return { method, cls, transactionId, attributes };
}

export function getAttr(msg: StunMessage, type: number): Buffer | undefined {
  for (const a of msg.attributes) if (a.type === type) return a.value;
  return undefined;
}

export interface EncodeOptions {
  /** Adds MESSAGE-INTEGRITY (HMAC-SHA1) with this key (short-term: password; long-term: MD5(user:realm:pass)). */
  integrityKey?: Uint8Array;
  /** Adds FINGERPRINT. */
  fingerprint?: boolean;
}

export function encodeStun(msg: StunMessage, opts: EncodeOptions = {}): Buffer {
  const legacy = msg.transactionId.length === 16;
  if (!legacy && msg.transactionId.length !== 12) throw new StunError('transaction ID must be 12 bytes (or 16 for RFC 3489)');
  let bodyLen = 0;
  for (const a of msg.attributes) bodyLen += 4 + ((a.value.length + 3) & ~3);
  const total = HEADER_LENGTH + bodyLen + (opts.integrityKey ? 24 : 0) + (opts.fingerprint ? 8 : 0);
  const out = Buffer.alloc(total);
  out.writeUInt16BE(messageType(msg.method, msg.cls), 0);
  if (!legacy) out.writeUInt32BE(MAGIC_COOKIE, 4);
  msg.transactionId.copy(out, legacy ? 4 : 8);
  let off = HEADER_LENGTH;
  for (const a of msg.attributes) {
    out.writeUInt16BE(a.type, off);
    out.writeUInt16BE(a.value.length, off + 2);
    a.value.copy(out, off + 4);
    off += 4 + ((a.value.length + 3) & ~3);
  }
  if (opts.integrityKey) {
    // The length field covers the MESSAGE-INTEGRITY attribute while hashing.
    out.writeUInt16BE(off + 24 - HEADER_LENGTH, 2);
    const mac = createHmac('sha1', opts.integrityKey).update(out.subarray(0, off)).digest();
    out.writeUInt16BE(StunAttr.MessageIntegrity, off);
    out.writeUInt16BE(20, off + 2);
    mac.copy(out, off + 4);
    off += 24;
  }
  if (opts.fingerprint) {
    out.writeUInt16BE(off + 8 - HEADER_LENGTH, 2);
    const crc = (crc32(out.subarray(0, off)) ^ FINGERPRINT_XOR) >>> 0;
    out.writeUInt16BE(StunAttr.Fingerprint, off);
    out.writeUInt16BE(4, off + 2);
    out.writeUInt32BE(crc, off + 4);
    off += 8;
  }
  out.writeUInt16BE(off - HEADER_LENGTH, 2);
  return out;
}

/** Offset of an attribute's header in raw message bytes, or -1. */
function findAttrOffset(buf: Buffer, type: number): number {
  let off = HEADER_LENGTH;
  while (off + 4 <= buf.length) {
    if (buf.readUInt16BE(off) === type) return off;
    off += 4 + ((buf.readUInt16BE(off + 2) + 3) & ~3);
  }
  return -1;
}

/**
 * True if the message has no FINGERPRINT, or a correct one. RFC 5389 puts FINGERPRINT last, but
 * NetBird's ICE (a pion fork) appends a comprehension-optional attribute after it (0x8100, the
 * candidate pair ID) and raises the header length: attributes past FINGERPRINT are accepted when all
 * are comprehension-optional, and the CRC is checked with the length the sender hashed.
 */
export function checkFingerprint(buf: Buffer): boolean {
  const off = findAttrOffset(buf, StunAttr.Fingerprint);
  if (off < 0) return true;
  if (off + 8 > buf.length || buf.readUInt16BE(off + 2) !== 4) return false;
  let prefix = buf.subarray(0, off);
  if (off + 8 !== buf.length) {
    for (let a = off + 8; a < buf.length; a += 4 + ((buf.readUInt16BE(a + 2) + 3) & ~3)) {
      if (a + 4 > buf.length || buf.readUInt16BE(a) < 0x8000) return false;
    }
    prefix = Buffer.from(prefix);
    prefix.writeUInt16BE(off + 8 - HEADER_LENGTH, 2);
  }
  return ((crc32(prefix) ^ FINGERPRINT_XOR) >>> 0) === buf.readUInt32BE(off + 4);
}

/** Verifies MESSAGE-INTEGRITY with the given key; false if absent or wrong. */
export function checkIntegrity(buf: Buffer, key: Uint8Array): boolean {
  const off = findAttrOffset(buf, StunAttr.MessageIntegrity);
  if (off < 0 || off + 24 > buf.length || buf.readUInt16BE(off + 2) !== 20) return false;
  const copy = Buffer.from(buf.subarray(0, off));
  copy.writeUInt16BE(off + 24 - HEADER_LENGTH, 2);
  const mac = createHmac('sha1', key).update(copy).digest();
  return mac.equals(buf.subarray(off + 4, off + 24));
}

function ipBytes(address: string): { family: 4 | 6; bytes: Buffer } {
  const v4 = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  if (/^\d+\.\d+\.\d+\.\d+$/.test(v4)) return { family: 4, bytes: Buffer.from(v4.split('.').map((x) => Number(x))) };
  // Expand IPv6 text (with :: and optional zone) into 16 bytes.
  const noZone = address.split('%')[0]!;
  const [head, tail] = noZone.includes('::') ? noZone.split('::') : [noZone, undefined];
  const parse = (s: string | undefined): number[] => (s ? s.split(':').filter((x) => x !== '') : []).map((h) => parseInt(h, 16));
  const h = parse(head);
  const t = parse(tail);
  const groups = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) throw new StunError(`bad IP address "${address}"`);
  const bytes = Buffer.alloc(16);
  groups.forEach((g, i) => bytes.writeUInt16BE(g, i * 2));
  return { family: 6, bytes };
}

function ipText(family: 4 | 6, bytes: Buffer): string {
  if (family === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** MAPPED-ADDRESS style value (no XOR). */
export function encodeAddress(addr: { address: string; port: number }): Buffer {
  const { family, bytes } = ipBytes(addr.address);
  const out = Buffer.alloc(4 + bytes.length);
  out[1] = family === 4 ? 0x01 : 0x02;
  out.writeUInt16BE(addr.port, 2);
  bytes.copy(out, 4);
  return out;
}

export function decodeAddress(value: Buffer): TransportAddress | null {
  if (value.length < 8) return null;
  const fam = value[1];
  if (fam === 0x01 && value.length === 8) return { family: 4, port: value.readUInt16BE(2), address: ipText(4, value.subarray(4, 8)) };
  if (fam === 0x02 && value.length === 20) return { family: 6, port: value.readUInt16BE(2), address: ipText(6, value.subarray(4, 20)) };
  return null;
}

function xorBytes(value: Buffer, transactionId: Buffer): void {
  value.writeUInt16BE(value.readUInt16BE(2) ^ (MAGIC_COOKIE >>> 16), 2);
  const mask = Buffer.alloc(16);
  mask.writeUInt32BE(MAGIC_COOKIE, 0);
  transactionId.copy(mask, 4);
  const n = value.length - 4;
  for (let i = 0; i < n; i++) value[4 + i]! ^= mask[i]!;
}

/** XOR-MAPPED-ADDRESS / XOR-PEER-ADDRESS / XOR-RELAYED-ADDRESS value. */
export function encodeXorAddress(addr: { address: string; port: number }, transactionId: Buffer): Buffer {
  const v = encodeAddress(addr);
  xorBytes(v, transactionId);
  return v;
}

export function decodeXorAddress(value: Buffer, transactionId: Buffer): TransportAddress | null {
  if (value.length !== 8 && value.length !== 20) return null;
  const v = Buffer.from(value);
  xorBytes(v, transactionId);
  return decodeAddress(v);
}

/** ERROR-CODE value: class/number + UTF-8 reason. */
export function encodeErrorCode(code: number, reason: string): Buffer {
  const r = Buffer.from(reason, 'utf8');
  const out = Buffer.alloc(4 + r.length);
  out[2] = Math.floor(code / 100);
  out[3] = code % 100;
  r.copy(out, 4);
  return out;
}

export function decodeErrorCode(value: Buffer): { code: number; reason: string } | null {
  if (value.length < 4) return null;
  return { code: (value[2]! & 7) * 100 + value[3]!, reason: value.toString('utf8', 4) };
}

/** Attribute types a receiver must understand (comprehension-required range). */
export function isComprehensionRequired(type: number): boolean {
  return type < 0x8000;
}
