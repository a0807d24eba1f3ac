import sodium from 'sodium-native';

/** A Curve25519 (WireGuard) key pair; raw 32-byte keys. */
export interface KeyPair {
  readonly privateKey: Buffer;
  readonly publicKey: Buffer;
}

export const KEY_LENGTH = 32;

/** Thrown when a key given by a user or a peer is not a 32-byte standard-base64 key. */
export class KeyFormatError extends Error {
  override readonly name = 'KeyFormatError';
}

const BASE64_KEY = /^[A-Za-z0-9+/]{43}=$/;

/** Derives the public key of a WireGuard private key (X25519 clamps the scalar internally). */
export function publicKeyFromPrivate(privateKey: Uint8Array): Buffer {
  if (privateKey.length !== KEY_LENGTH) throw new KeyFormatError(`private key must be ${KEY_LENGTH} bytes, got ${privateKey.length}`);
  const pub = Buffer.alloc(KEY_LENGTH);
  sodium.crypto_scalarmult_base(pub, Buffer.from(privateKey));
  return pub;
}

/** A fresh key pair, private key clamped as `wg genkey` does. */
export function generateKeyPair(): KeyPair {
  const privateKey = Buffer.alloc(KEY_LENGTH);
  sodium.randombytes_buf(privateKey);
  privateKey[0]! &= 248;
  privateKey[31]! = (privateKey[31]! & 127) | 64;
  return { privateKey, publicKey: publicKeyFromPrivate(privateKey) };
}

/** Key pair from a stored private key. */
export function keyPairFromPrivate(privateKey: Uint8Array): KeyPair {
  return { privateKey: Buffer.from(privateKey), publicKey: publicKeyFromPrivate(privateKey) };
}

/**
 * Parses a WireGuard key written as standard base64 with padding (44 characters).
 * `what` names the key in the error message ("private key", "peer public key", ...).
 */
export function parseKey(text: string, what = 'key'): Buffer {
  const trimmed = typeof text === 'string' ? text.trim() : '';
  if (!BASE64_KEY.test(trimmed)) {
    throw new KeyFormatError(
      `invalid ${what}: expected 44 characters of standard base64 ending in "=" (as printed by "wg genkey"/"wg pubkey"), got ${JSON.stringify(String(text).slice(0, 60))}`,
    );
  }
  const raw = Buffer.from(trimmed, 'base64');
  // A 43rd character whose low bits are set would decode the same but is not canonical.
  if (raw.length !== KEY_LENGTH || raw.toString('base64') !== trimmed) {
    throw new KeyFormatError(`invalid ${what}: not a canonical base64 encoding of 32 bytes`);
  }
  return raw;
}

/** Formats a raw 32-byte key as standard base64 with padding. */
export function formatKey(key: Uint8Array): string {
  if (key.length !== KEY_LENGTH) throw new KeyFormatError(`key must be ${KEY_LENGTH} bytes, got ${key.length}`);
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('base64');
}

/** True if `text` is a valid WireGuard key in base64. */
export function isValidKey(text: string): boolean {
  try {
    parseKey(text);
    return true;
  } catch {
    return false;
  }
}
