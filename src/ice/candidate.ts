/**
 * ICE candidates: priorities and foundations (RFC 8445 §5.1.2, §5.1.1.3) and
 * the SDP-attribute text form NetBird sends in CANDIDATE bodies (protocol.md
 * §6.3, RFC 8839 grammar, as Pion ICE writes it):
 *
 *   <foundation> <component> <udp|tcp> <priority> <address> <port> typ <type> [raddr <a> rport <p>] [<ext> <value>]...
 */
import { crc32 } from 'node:zlib';
import { isIP } from 'node:net';

export type CandidateType = 'host' | 'srflx' | 'prflx' | 'relay';

export interface Candidate {
  foundation: string;
  /** 1 = RTP; NetBird only uses component 1. */
  component: number;
  /** Lower case: 'udp' (or 'tcp', which we parse but never use). */
  protocol: 'udp' | 'tcp';
  priority: number;
  address: string;
  port: number;
  type: CandidateType;
  relatedAddress?: string;
  relatedPort?: number;
  /** Extension attributes in order (generation, ufrag, network-id, tcptype, ...), kept for round trips. */
  extensions: [string, string][];
}

export class CandidateParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CandidateParseError';
  }
}

/** RFC 8445 §5.1.2.2 recommended type preferences. */
export const TYPE_PREFERENCE: Record<CandidateType, number> = { host: 126, prflx: 110, srflx: 100, relay: 0 };

/** priority = 2^24 * typePref + 2^8 * localPref + (256 - component). */
export function candidatePriority(type: CandidateType, localPreference = 65535, component = 1): number {
  return TYPE_PREFERENCE[type] * 0x1000000 + (localPreference & 0xffff) * 0x100 + (256 - component);
}

/**
 * Same foundation = same type, base address, server and protocol (RFC 8445 §5.1.1.3); a CRC-32 of
 * those as decimal text, the style Pion uses, so the string stays short and token-safe.
 */
export function candidateFoundation(type: CandidateType, baseAddress: string, protocol = 'udp', server = ''): string {
  return String(crc32(Buffer.from(`${type}${baseAddress}${protocol}${server}`)) >>> 0);
}

/** RFC 8445 §6.1.2.3: pair priority from the controlling (g) and controlled (d) candidate priorities. */
export function pairPriority(g: number, d: number): number {
  return 2 ** 32 * Math.min(g, d) + 2 * Math.max(g, d) + (g > d ? 1 : 0);
}

/** The candidate in the §6.3 text form (no "candidate:" prefix). */
export function formatCandidate(c: Candidate): string {
  let s = `${c.foundation} ${c.component} ${c.protocol} ${c.priority} ${c.address} ${c.port} typ ${c.type}`;
  // Pion writes tcptype before raddr/rport; keep that order so strings round-trip.
  for (const [k, v] of c.extensions) if (k === 'tcptype') s += ` ${k} ${v}`;
  if (c.relatedAddress !== undefined && c.relatedPort !== undefined) s += ` raddr ${c.relatedAddress} rport ${c.relatedPort}`;
  for (const [k, v] of c.extensions) if (k !== 'tcptype') s += ` ${k} ${v}`;
  return s;
}

const TYPES = new Set<string>(['host', 'srflx', 'prflx', 'relay']);
const TOKEN = /^[\x21-\x7e]+$/;

function parsePort(text: string, what: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new CandidateParseError(`bad ${what} "${text}"`);
  const n = Number(text);
  if (n > 65535) throw new CandidateParseError(`bad ${what} "${text}"`);
  return n;
}

/**
 * Parses a candidate attribute (with or without "candidate:" / "a=candidate:"). Unknown extension
 * pairs are kept but otherwise ignored; addresses may be IPs or (mDNS) host names.
 */
export function parseCandidate(text: string): Candidate {
  let s = text.trim();
  if (s.startsWith('a=')) s = s.slice(2);
  if (s.toLowerCase().startsWith('candidate:')) s = s.slice('candidate:'.length);
  const f = s.split(/\s+/);
  if (f.length < 8) throw new CandidateParseError(`candidate "${text}" has ${f.length} fields, need at least 8`);
  const [foundation, compText, proto, prioText, address, portText, typ, typeText] = f as [string, string, string, string, string, string, string, string];
  if (!TOKEN.test(foundation) || foundation.length > 32) throw new CandidateParseError(`bad foundation "${foundation}"`);
  if (!/^\d{1,3}$/.test(compText) || Number(compText) < 1 || Number(compText) > 256) throw new CandidateParseError(`bad component "${compText}"`);
  const protocol = proto.toLowerCase();
  if (protocol !== 'udp' && protocol !== 'tcp') throw new CandidateParseError(`unsupported transport "${proto}"`);
  if (!/^\d{1,10}$/.test(prioText) || Number(prioText) > 0xffffffff) throw new CandidateParseError(`bad priority "${prioText}"`);
  if (typ !== 'typ') throw new CandidateParseError(`expected "typ", got "${typ}"`);
  if (!TYPES.has(typeText)) throw new CandidateParseError(`unknown candidate type "${typeText}"`);
  const c: Candidate = {
    foundation,
    component: Number(compText),
    protocol,
    priority: Number(prioText),
    address,
    port: parsePort(portText, 'port'),
    type: typeText as CandidateType,
    extensions: [],
  };
  for (let i = 8; i < f.length; i += 2) {
    const k = f[i]!;
    const v = f[i + 1];
    if (v === undefined) throw new CandidateParseError(`extension "${k}" without a value`);
    if (k === 'raddr') c.relatedAddress = v;
    else if (k === 'rport') c.relatedPort = parsePort(v, 'rport');
    else c.extensions.push([k, v]);
  }
  return c;
}

/** True if the candidate names a literal IP (not an mDNS/.local host name we cannot resolve). */
export function hasLiteralAddress(c: Candidate): boolean {
  return isIP(c.address) !== 0;
}

/** "1.2.3.4:5" / "[::1]:5". */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
