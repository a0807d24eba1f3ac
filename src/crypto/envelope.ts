import { hsalsa } from '@noble/ciphers/salsa.js';
import sodium from 'sodium-native';
import { KEY_LENGTH } from './keys.js';

/**
 * The NaCl-box envelope used by Management and Signal (protocol.md §3):
 * body = nonce(24) || tag(16) || XSalsa20 ciphertext.
 */

export const NONCE_LENGTH = 24;
export const TAG_LENGTH = 16;
export const ENVELOPE_OVERHEAD = NONCE_LENGTH + TAG_LENGTH;

/** The envelope could not be opened: too short, tampered, or sealed for another key. */
export class EnvelopeError extends Error {
  override readonly name = 'EnvelopeError';
}

function checkKey(key: Uint8Array, what: string): void {
  if (key.length !== KEY_LENGTH) throw new EnvelopeError(`${what} must be ${KEY_LENGTH} bytes, got ${key.length}`);
}

/** An envelope's buffer with its nonce in place: `nonce`, or random. */
function envelopeBody(plainLength: number, nonce: Uint8Array | undefined): { body: Buffer; n: Buffer } {
  const body = Buffer.alloc(ENVELOPE_OVERHEAD + plainLength);
  const n = body.subarray(0, NONCE_LENGTH);
  if (nonce) {
    if (nonce.length !== NONCE_LENGTH) throw new EnvelopeError(`nonce must be ${NONCE_LENGTH} bytes`);
    n.set(nonce);
  } else {
    sodium.randombytes_buf(n);
  }
  return { body, n };
}

/** Seals `plaintext` from `senderPrivate` to `recipientPublic`. `nonce` is random unless given (tests only). */
export function sealEnvelope(plaintext: Uint8Array, recipientPublic: Uint8Array, senderPrivate: Uint8Array, nonce?: Uint8Array): Buffer {
  checkKey(recipientPublic, 'recipient public key');
  checkKey(senderPrivate, 'sender private key');
  const { body, n } = envelopeBody(plaintext.length, nonce);
  sodium.crypto_box_easy(body.subarray(NONCE_LENGTH), Buffer.from(plaintext), n, Buffer.from(recipientPublic), Buffer.from(senderPrivate));
  return body;
}

/** Opens an envelope sealed by `senderPublic` for `recipientPrivate`; throws EnvelopeError on any failure. */
export function openEnvelope(body: Uint8Array, senderPublic: Uint8Array, recipientPrivate: Uint8Array): Buffer {
  checkKey(senderPublic, 'sender public key');
  checkKey(recipientPrivate, 'recipient private key');
  if (body.length < ENVELOPE_OVERHEAD) {
    throw new EnvelopeError(`encrypted body too short: ${body.length} bytes, need at least ${ENVELOPE_OVERHEAD}`);
  }
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const out = Buffer.alloc(b.length - ENVELOPE_OVERHEAD);
  const ok = sodium.crypto_box_open_easy(out, b.subarray(NONCE_LENGTH), b.subarray(0, NONCE_LENGTH), Buffer.from(senderPublic), Buffer.from(recipientPrivate));
  if (!ok) throw new EnvelopeError('cannot decrypt message: authentication failed (wrong key or tampered body)');
  return out;
}

const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]); // "expand 32-byte k"

/**
 * NaCl's crypto_box_beforenm: HSalsa20(X25519(ownPrivate, peerPublic), 0^16), the XSalsa20-Poly1305 key
 * that crypto_box uses between a pair in both directions. Precompute it once per session and seal many
 * messages with crypto_secretbox (same bytes as crypto_box). sodium-native lacks beforenm, so HSalsa20
 * comes from the audited @noble/ciphers.
 */
export function boxSharedKey(peerPublic: Uint8Array, ownPrivate: Uint8Array): Buffer {
  checkKey(peerPublic, 'peer public key');
  checkKey(ownPrivate, 'own private key');
  const shared = Buffer.alloc(32);
  sodium.crypto_scalarmult(shared, Buffer.from(ownPrivate), Buffer.from(peerPublic));
  const k = new Uint32Array(shared.buffer.slice(shared.byteOffset, shared.byteOffset + 32));
  const out = new Uint32Array(8);
  hsalsa(SIGMA, k, new Uint32Array(4), out);
  shared.fill(0);
  k.fill(0);
  return Buffer.from(out.buffer);
}

/**
 * sealEnvelope with the pair's precomputed box key (boxSharedKey): the same bytes, without the
 * X25519 multiplication per message.
 */
export function sealEnvelopeWithKey(plaintext: Uint8Array, sharedKey: Uint8Array, nonce?: Uint8Array): Buffer {
  checkKey(sharedKey, 'shared box key');
  const { body, n } = envelopeBody(plaintext.length, nonce);
  sodium.crypto_secretbox_easy(body.subarray(NONCE_LENGTH), Buffer.from(plaintext), n, Buffer.from(sharedKey));
  return body;
}

/** openEnvelope with the pair's precomputed box key (boxSharedKey). */
export function openEnvelopeWithKey(body: Uint8Array, sharedKey: Uint8Array): Buffer {
  checkKey(sharedKey, 'shared box key');
  if (body.length < ENVELOPE_OVERHEAD) {
    throw new EnvelopeError(`encrypted body too short: ${body.length} bytes, need at least ${ENVELOPE_OVERHEAD}`);
  }
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const out = Buffer.alloc(b.length - ENVELOPE_OVERHEAD);
  const ok = sodium.crypto_secretbox_open_easy(out, b.subarray(NONCE_LENGTH), b.subarray(0, NONCE_LENGTH), Buffer.from(sharedKey));
  if (!ok) throw new EnvelopeError('cannot decrypt message: authentication failed (wrong key or tampered body)');
  return out;
}

/** The encode/decode pair of a ts-proto message type. */
export interface MessageCodec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

/** Serializes a protobuf message and seals it. */
export function sealMessage<T>(codec: MessageCodec<T>, message: T, recipientPublic: Uint8Array, senderPrivate: Uint8Array): Buffer {
  return sealEnvelope(codec.encode(message).finish(), recipientPublic, senderPrivate);
}

/** Opens an envelope and parses the protobuf message inside; a parse failure is an EnvelopeError too. */
export function openMessage<T>(codec: MessageCodec<T>, body: Uint8Array, senderPublic: Uint8Array, recipientPrivate: Uint8Array): T {
  return decodeOpened(codec, openEnvelope(body, senderPublic, recipientPrivate));
}

/** openMessage with the pair's precomputed box key (boxSharedKey). */
export function openMessageWithKey<T>(codec: MessageCodec<T>, body: Uint8Array, sharedKey: Uint8Array): T {
  return decodeOpened(codec, openEnvelopeWithKey(body, sharedKey));
}

/** sealMessage with the pair's precomputed box key (boxSharedKey). */
export function sealMessageWithKey<T>(codec: MessageCodec<T>, message: T, sharedKey: Uint8Array): Buffer {
  return sealEnvelopeWithKey(codec.encode(message).finish(), sharedKey);
}

function decodeOpened<T>(codec: MessageCodec<T>, plain: Buffer): T {
  try {
    return codec.decode(plain);
  } catch (err) {
    throw new EnvelopeError(`decrypted message is not valid protobuf: ${(err as Error).message}`);
  }
}
