import sodium from 'sodium-native';
import { NONCE_LENGTH, TAG_LENGTH } from '../crypto/index.js';

/**
 * Byte-level helpers for the hot Sync path. A map push is built as one buffer with free room in
 * front ("headroom"); sealing then writes the EncryptedMessage header and nonce into that room and
 * encrypts the SyncResponse in place, so a push costs one allocation instead of four copies of a map
 * that may be megabytes long. The result is the exact EncryptedMessage wire encoding (field 1
 * wgPubKey, field 2 body = nonce || box) that grpc-js then frames.
 */

export function varintLength(n: number): number {
  let len = 1;
  while (n > 0x7f) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

export function writeVarint(buf: Uint8Array, pos: number, n: number): number {
  while (n > 0x7f) {
    buf[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/** Tag byte + length varint of a length-delimited field (field numbers < 16). */
export function fieldHeader(tag: number, len: number): Uint8Array {
  const out = new Uint8Array(1 + varintLength(len));
  out[0] = tag;
  writeVarint(out, 1, len);
  return out;
}

/** `msg` wrapped as a length-delimited field with `tag`. */
export function field(tag: number, msg: Uint8Array): Uint8Array {
  const head = 1 + varintLength(msg.length);
  const out = new Uint8Array(head + msg.length);
  out[0] = tag;
  writeVarint(out, 1, msg.length);
  out.set(msg, head);
  return out;
}

const KEY_TEXT_LENGTH = 44;
/** gRPC's message prefix: compressed flag and 32-bit big-endian length. */
export const GRPC_PREFIX_LENGTH = 5;
/**
 * Room for: the gRPC prefix (so the sealed message can go out without a copy, grpc-prefixed.ts),
 * wgPubKey field (2 + 44), body tag + up to 5-byte length, nonce, MAC.
 */
export const SYNC_HEADROOM = GRPC_PREFIX_LENGTH + 2 + KEY_TEXT_LENGTH + 1 + 5 + NONCE_LENGTH + TAG_LENGTH;

/** A frame holding `plain` after SYNC_HEADROOM free bytes. */
export function frameOf(plain: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(SYNC_HEADROOM + plain.length);
  out.set(plain, SYNC_HEADROOM);
  return out;
}

/** The per-session box key (crypto_box_beforenm) from src/crypto. */
export { boxSharedKey as boxBeforeNm } from '../crypto/index.js';

/**
 * Random nonces drawn from the system a few hundred at a time: one getrandom per message cost as
 * much as sealing a small map. Each nonce is handed out once.
 */
const NONCE_POOL = Buffer.alloc(NONCE_LENGTH * 512);
let noncePos = NONCE_POOL.length;

function takeNonce(into: Buffer): void {
  if (noncePos === NONCE_POOL.length) {
    sodium.randombytes_buf(NONCE_POOL);
    noncePos = 0;
  }
  NONCE_POOL.copy(into, 0, noncePos, noncePos + NONCE_LENGTH);
  NONCE_POOL.fill(0, noncePos, noncePos + NONCE_LENGTH);
  noncePos += NONCE_LENGTH;
}

/**
 * Seals the SyncResponse held in `frame` (after SYNC_HEADROOM) with the session's box key (from
 * boxBeforeNm) and returns the EncryptedMessage wire bytes (a view into `frame`). The body is
 * exactly what crypto_box_easy would produce: nonce || MAC || XSalsa20 ciphertext. The five bytes
 * in front of the view hold gRPC's message prefix (withGrpcPrefix).
 */
export function sealFrameInPlace(frame: Buffer, boxKey: Buffer, serverPublicText: string): Buffer {
  const plainLen = frame.length - SYNC_HEADROOM;
  const bodyLen = NONCE_LENGTH + TAG_LENGTH + plainLen;
  const start = SYNC_HEADROOM - NONCE_LENGTH - TAG_LENGTH - (2 + KEY_TEXT_LENGTH + 1 + varintLength(bodyLen));
  let pos = start;
  frame[pos++] = 0x0a;
  frame[pos++] = KEY_TEXT_LENGTH;
  pos += frame.write(serverPublicText, pos, KEY_TEXT_LENGTH, 'latin1');
  frame[pos++] = 0x12;
  pos = writeVarint(frame, pos, bodyLen);
  const nonce = frame.subarray(pos, pos + NONCE_LENGTH);
  takeNonce(nonce);
  // libsodium allows the ciphertext to overlap the message: here it starts 16 bytes (the MAC) before it.
  sodium.crypto_secretbox_easy(frame.subarray(pos + NONCE_LENGTH), frame.subarray(SYNC_HEADROOM), nonce, boxKey);
  const prefix = start - GRPC_PREFIX_LENGTH;
  frame[prefix] = 0; // not compressed
  frame.writeUInt32BE(frame.length - start, prefix + 1);
  return frame.subarray(start);
}

/** The gRPC-framed bytes (prefix + message) of a sealFrameInPlace result: a view, no copy. */
export function withGrpcPrefix(sealed: Buffer): Buffer {
  return Buffer.from(sealed.buffer, sealed.byteOffset - GRPC_PREFIX_LENGTH, sealed.length + GRPC_PREFIX_LENGTH);
}
