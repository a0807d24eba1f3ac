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
/** Room for: wgPubKey field (2 + 44), body tag + up to 5-byte length, nonce, MAC. */
export const SYNC_HEADROOM = 2 + KEY_TEXT_LENGTH + 1 + 5 + NONCE_LENGTH + TAG_LENGTH;

/** A frame holding `plain` after SYNC_HEADROOM free bytes. */
export function frameOf(plain: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(SYNC_HEADROOM + plain.length);
  out.set(plain, SYNC_HEADROOM);
  return out;
}

const rotl = (v: number, c: number): number => (v << c) | (v >>> (32 - c));

/**
 * NaCl's crypto_box_beforenm: the XSalsa20-Poly1305 key both sides of a box derive,
 * HSalsa20(X25519(ourPrivate, theirPublic), 0^16). sodium-native does not expose it, so HSalsa20 is
 * written out here (checked against libsodium's crypto_box and the spec's Appendix A.1 vector in
 * test/management/wire.test.ts). A Sync session computes it once and seals every push with
 * crypto_secretbox, saving one scalar multiplication per message.
 */
export function boxBeforeNm(theirPublic: Uint8Array, ourPrivate: Uint8Array): Buffer {
  const shared = Buffer.alloc(32);
  sodium.crypto_scalarmult(shared, Buffer.from(ourPrivate), Buffer.from(theirPublic));
  const k = new Uint32Array(8);
  for (let i = 0; i < 8; i++) k[i] = shared.readUInt32LE(i * 4);
  shared.fill(0);
  // HSalsa20 with a zero 16-byte input: "expand 32-byte k" constants on the diagonal.
  let x0 = 0x61707865, x5 = 0x3320646e, x10 = 0x79622d32, x15 = 0x6b206574;
  let x1 = k[0]!, x2 = k[1]!, x3 = k[2]!, x4 = k[3]!;
  let x11 = k[4]!, x12 = k[5]!, x13 = k[6]!, x14 = k[7]!;
  let x6 = 0, x7 = 0, x8 = 0, x9 = 0;
  k.fill(0);
  for (let i = 0; i < 20; i += 2) {
    x4 ^= rotl((x0 + x12) | 0, 7); x8 ^= rotl((x4 + x0) | 0, 9); x12 ^= rotl((x8 + x4) | 0, 13); x0 ^= rotl((x12 + x8) | 0, 18);
    x9 ^= rotl((x5 + x1) | 0, 7); x13 ^= rotl((x9 + x5) | 0, 9); x1 ^= rotl((x13 + x9) | 0, 13); x5 ^= rotl((x1 + x13) | 0, 18);
    x14 ^= rotl((x10 + x6) | 0, 7); x2 ^= rotl((x14 + x10) | 0, 9); x6 ^= rotl((x2 + x14) | 0, 13); x10 ^= rotl((x6 + x2) | 0, 18);
    x3 ^= rotl((x15 + x11) | 0, 7); x7 ^= rotl((x3 + x15) | 0, 9); x11 ^= rotl((x7 + x3) | 0, 13); x15 ^= rotl((x11 + x7) | 0, 18);
    x1 ^= rotl((x0 + x3) | 0, 7); x2 ^= rotl((x1 + x0) | 0, 9); x3 ^= rotl((x2 + x1) | 0, 13); x0 ^= rotl((x3 + x2) | 0, 18);
    x6 ^= rotl((x5 + x4) | 0, 7); x7 ^= rotl((x6 + x5) | 0, 9); x4 ^= rotl((x7 + x6) | 0, 13); x5 ^= rotl((x4 + x7) | 0, 18);
    x11 ^= rotl((x10 + x9) | 0, 7); x8 ^= rotl((x11 + x10) | 0, 9); x9 ^= rotl((x8 + x11) | 0, 13); x10 ^= rotl((x9 + x8) | 0, 18);
    x12 ^= rotl((x15 + x14) | 0, 7); x13 ^= rotl((x12 + x15) | 0, 9); x14 ^= rotl((x13 + x12) | 0, 13); x15 ^= rotl((x14 + x13) | 0, 18);
  }
  const out = Buffer.alloc(32);
  [x0, x5, x10, x15, x6, x7, x8, x9].forEach((w, i) => out.writeUInt32LE(w >>> 0, i * 4));
  return out;
}

/**
 * Seals the SyncResponse held in `frame` (after SYNC_HEADROOM) with the session's box key (from
 * boxBeforeNm) and returns the EncryptedMessage wire bytes (a view into `frame`). The body is
 * exactly what crypto_box_easy would produce: nonce || MAC || XSalsa20 ciphertext.
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
  sodium.randombytes_buf(nonce);
  // libsodium allows the ciphertext to overlap the message: here it starts 16 bytes (the MAC) before it.
  sodium.crypto_secretbox_easy(frame.subarray(pos + NONCE_LENGTH), frame.subarray(SYNC_HEADROOM), nonce, boxKey);
  return frame.subarray(start);
}
