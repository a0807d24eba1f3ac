import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Relay peer ID (protocol.md §7.3): "sha-" || SHA-256(base64 key text). */
export const RELAY_PEER_ID_LENGTH = 36;
const PEER_ID_PREFIX = Buffer.from('sha-', 'ascii');

export function relayPeerId(publicKeyBase64: string): Buffer {
  const id = Buffer.alloc(RELAY_PEER_ID_LENGTH);
  PEER_ID_PREFIX.copy(id, 0);
  createHash('sha256').update(publicKeyBase64, 'ascii').digest().copy(id, 4);
  return id;
}

/** Printable form used in logs: "sha-" + base64(digest). */
export function relayPeerIdString(peerId: Uint8Array): string {
  return 'sha-' + Buffer.from(peerId.subarray(4)).toString('base64');
}

/** A relay token as Management hands it out in RelayConfig (§7.6). */
export interface RelayToken {
  /** Decimal Unix expiry time in seconds. */
  readonly payload: string;
  /** Standard base64 of HMAC-SHA256(SHA-256(secret), payload). */
  readonly signature: string;
}

export const RELAY_TOKEN_ALGORITHM_HMAC_SHA256 = 1;

function relayHmacKey(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

function signRelayPayload(secret: string, payload: string): Buffer {
  return createHmac('sha256', relayHmacKey(secret)).update(payload, 'ascii').digest();
}

/** Issues a token valid for `ttlSeconds` from `nowSeconds`. */
export function issueRelayToken(secret: string, ttlSeconds: number, nowSeconds = Math.floor(Date.now() / 1000)): RelayToken {
  const payload = String(Math.floor(nowSeconds + ttlSeconds));
  return { payload, signature: signRelayPayload(secret, payload).toString('base64') };
}

/** The binary token a client sends in the relay Auth message: 0x01 || sig(32) || payload. */
export function relayTokenBinary(token: RelayToken): Buffer {
  const sig = Buffer.from(token.signature, 'base64');
  if (sig.length !== 32) throw new Error('relay token signature must decode to 32 bytes');
  return Buffer.concat([Buffer.from([RELAY_TOKEN_ALGORITHM_HMAC_SHA256]), sig, Buffer.from(token.payload, 'ascii')]);
}

export type RelayTokenCheck = { ok: true; expiresAt: number } | { ok: false; reason: string };

/** Validates a binary relay token as the relay server does (§7.6). */
export function verifyRelayToken(secret: string, token: Uint8Array, nowSeconds = Math.floor(Date.now() / 1000)): RelayTokenCheck {
  if (token.length < 1 + 32 + 10) return { ok: false, reason: 'token too short' };
  if (token[0] !== RELAY_TOKEN_ALGORITHM_HMAC_SHA256) return { ok: false, reason: `unsupported token algorithm ${token[0]}` };
  const sig = token.subarray(1, 33);
  const payload = Buffer.from(token.subarray(33)).toString('ascii');
  const expected = signRelayPayload(secret, payload);
  if (!timingSafeEqual(expected, sig)) return { ok: false, reason: 'bad token signature' };
  if (!/^-?\d{1,19}$/.test(payload)) return { ok: false, reason: 'token payload is not a number' };
  const expiresAt = Number(payload);
  if (nowSeconds > expiresAt) return { ok: false, reason: 'token expired' };
  return { ok: true, expiresAt };
}
