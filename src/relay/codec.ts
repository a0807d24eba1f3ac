/**
 * Relay message framing (protocol.md §7.2): a 2-byte header (version, type)
 * followed by a type-specific body. One relay message = one binary WebSocket
 * message, so the codec works on whole buffers.
 */

export const RELAY_VERSION = 1;

export const MsgType = {
  Unknown: 0,
  Hello: 1,
  HelloResponse: 2,
  Transport: 3,
  Close: 4,
  HealthCheck: 5,
  Auth: 6,
  AuthResponse: 7,
  SubscribePeerState: 8,
  UnsubscribePeerState: 9,
  PeersOnline: 10,
  PeersWentOffline: 11,
} as const;
export type MsgTypeValue = (typeof MsgType)[keyof typeof MsgType];

export const HEADER_LENGTH = 2;
export const PEER_ID_LENGTH = 36;
/** Auth magic, the STUN magic cookie reused by the reference. */
export const AUTH_MAGIC = Buffer.from([0x21, 0x12, 0xa4, 0x42]);
/** Largest Auth message the server accepts (token <= 170 bytes). */
export const MAX_AUTH_MESSAGE = 212;
export const MAX_AUTH_RESPONSE = 8192;
/** Server read buffer: any other message must fit. */
export const MAX_MESSAGE = 8820;
/** Transport header = 2 + 36; largest WebSocket payload a peer can relay. */
export const TRANSPORT_HEADER_LENGTH = HEADER_LENGTH + PEER_ID_LENGTH;
export const MAX_TRANSPORT_PAYLOAD = MAX_MESSAGE - TRANSPORT_HEADER_LENGTH;
/** Peer lists are split into messages of at most this many IDs. */
export const MAX_PEERS_PER_MESSAGE = 244;

/** Constant messages, shared and never mutated. */
export const HEALTH_CHECK_MSG: Buffer = Buffer.from([RELAY_VERSION, MsgType.HealthCheck]);
export const CLOSE_MSG: Buffer = Buffer.from([RELAY_VERSION, MsgType.Close]);

export class RelayProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RelayProtocolError';
  }
}

/** Auth: 01 06 | magic(4) | peerID(36) | token. */
export function encodeAuth(peerId: Uint8Array, token: Uint8Array): Buffer {
  if (peerId.length !== PEER_ID_LENGTH) throw new RelayProtocolError(`peer ID must be ${PEER_ID_LENGTH} bytes`);
  const len = HEADER_LENGTH + AUTH_MAGIC.length + PEER_ID_LENGTH + token.length;
  if (len > MAX_AUTH_MESSAGE) throw new RelayProtocolError(`relay token too long (${token.length} bytes, max ${MAX_AUTH_MESSAGE - 42})`);
  const out = Buffer.allocUnsafe(len);
  out[0] = RELAY_VERSION;
  out[1] = MsgType.Auth;
  AUTH_MAGIC.copy(out, 2);
  out.set(peerId, 6);
  out.set(token, 6 + PEER_ID_LENGTH);
  return out;
}

export interface AuthFields {
  /** View into the message; copy to keep. */
  peerId: Buffer;
  /** View into the message; copy to keep. */
  token: Buffer;
}

/** Parses an Auth message (header included); null if malformed or oversized. */
export function decodeAuth(msg: Buffer): AuthFields | null {
  if (msg.length > MAX_AUTH_MESSAGE || msg.length < HEADER_LENGTH + 4 + PEER_ID_LENGTH + 1) return null;
  if (msg[0] !== RELAY_VERSION || msg[1] !== MsgType.Auth) return null;
  if (msg.compare(AUTH_MAGIC, 0, 4, 2, 6) !== 0) return null;
  return { peerId: msg.subarray(6, 6 + PEER_ID_LENGTH), token: msg.subarray(6 + PEER_ID_LENGTH) };
}

export function encodeAuthResponse(instanceUrl: string): Buffer {
  const url = Buffer.from(instanceUrl, 'utf8');
  if (url.length < 1 || url.length + HEADER_LENGTH > MAX_AUTH_RESPONSE) throw new RelayProtocolError('instance URL must be 1..8190 bytes');
  const out = Buffer.allocUnsafe(HEADER_LENGTH + url.length);
  out[0] = RELAY_VERSION;
  out[1] = MsgType.AuthResponse;
  url.copy(out, HEADER_LENGTH);
  return out;
}

export function decodeAuthResponse(msg: Buffer): string | null {
  if (msg.length < HEADER_LENGTH + 1 || msg.length > MAX_AUTH_RESPONSE) return null;
  if (msg[0] !== RELAY_VERSION || msg[1] !== MsgType.AuthResponse) return null;
  return msg.toString('utf8', HEADER_LENGTH);
}

/** Writes a Transport message into `out` at 0; returns its length. */
export function writeTransport(out: Buffer, peerId: Uint8Array, payload: Uint8Array, payloadOffset = 0, payloadLength = payload.length - payloadOffset): number {
  out[0] = RELAY_VERSION;
  out[1] = MsgType.Transport;
  out.set(peerId, HEADER_LENGTH);
  out.set(payloadOffset === 0 && payloadLength === payload.length ? payload : payload.subarray(payloadOffset, payloadOffset + payloadLength), TRANSPORT_HEADER_LENGTH);
  return TRANSPORT_HEADER_LENGTH + payloadLength;
}

export function encodeTransport(peerId: Uint8Array, payload: Uint8Array): Buffer {
  if (payload.length > MAX_TRANSPORT_PAYLOAD) throw new RelayProtocolError(`transport payload too large (${payload.length} > ${MAX_TRANSPORT_PAYLOAD})`);
  const out = Buffer.allocUnsafe(TRANSPORT_HEADER_LENGTH + payload.length);
  writeTransport(out, peerId, payload);
  return out;
}

/**
 * Encodes a peer-list message (Subscribe/Unsubscribe/PeersOnline/PeersWentOffline),
 * split into messages of at most MAX_PEERS_PER_MESSAGE IDs. Empty input gives no message.
 */
export function encodePeerList(type: MsgTypeValue, peerIds: readonly Uint8Array[]): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < peerIds.length; i += MAX_PEERS_PER_MESSAGE) {
    const n = Math.min(MAX_PEERS_PER_MESSAGE, peerIds.length - i);
    const msg = Buffer.allocUnsafe(HEADER_LENGTH + n * PEER_ID_LENGTH);
    msg[0] = RELAY_VERSION;
    msg[1] = type;
    for (let j = 0; j < n; j++) {
      const id = peerIds[i + j]!;
      if (id.length !== PEER_ID_LENGTH) throw new RelayProtocolError(`peer ID must be ${PEER_ID_LENGTH} bytes`);
      msg.set(id, HEADER_LENGTH + j * PEER_ID_LENGTH);
    }
    out.push(msg);
  }
  return out;
}

/** Splits a peer-list message body into IDs (copies); null if the length is not a multiple of 36. */
export function decodePeerList(msg: Buffer): Buffer[] | null {
  const body = msg.length - HEADER_LENGTH;
  if (body < 0 || body % PEER_ID_LENGTH !== 0) return null;
  const ids: Buffer[] = [];
  for (let off = HEADER_LENGTH; off < msg.length; off += PEER_ID_LENGTH) ids.push(Buffer.from(msg.subarray(off, off + PEER_ID_LENGTH)));
  return ids;
}

/** Parses rel://host[:port] / rels://host[:port] into the WebSocket URL (§7.1). */
export function relayWebSocketUrl(relayUrl: string): { wsUrl: string; tls: boolean; host: string; port: number } {
  let u: URL;
  try {
    u = new URL(relayUrl);
  } catch {
    throw new RelayProtocolError(`bad relay URL "${relayUrl}": expected rel://host[:port] or rels://host[:port]`);
  }
  let tls: boolean;
  if (u.protocol === 'rels:' || u.protocol === 'wss:' || u.protocol === 'https:') tls = true;
  else if (u.protocol === 'rel:' || u.protocol === 'ws:' || u.protocol === 'http:') tls = false;
  else throw new RelayProtocolError(`bad relay URL scheme "${u.protocol}": expected rel:// or rels://`);
  const port = u.port !== '' ? Number(u.port) : tls ? 443 : 80;
  const host = u.hostname;
  const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return { wsUrl: `${tls ? 'wss' : 'ws'}://${hostPart}:${port}/relay`, tls, host: host.replace(/^\[|\]$/g, ''), port };
}
