/**
 * The primitives WireGuard uses, taken from libsodium (sodium-native) and
 * @noble/hashes: X25519, ChaCha20-Poly1305 (IETF, 96-bit nonce),
 * XChaCha20-Poly1305, BLAKE2s (hash, keyed MAC, HMAC) and the HKDF built from
 * HMAC-BLAKE2s. Nothing here is home-made cryptography; this file only adapts
 * calling conventions. These helpers allocate and are meant for the handshake
 * path; the data path calls sodium directly with preallocated buffers.
 */
import { sodium } from './sodium.js';
import { generateKeyPair } from '../crypto/index.js';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';
import { KEY_LEN, MAC_LEN } from './constants.js';

export function hash(...parts: Uint8Array[]): Buffer {
  const h = blake2s.create();
  for (const p of parts) h.update(p);
  return toBuffer(h.digest());
}

/** Keyed BLAKE2s with a 16-byte output (WireGuard's MAC). */
export function mac(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = blake2s.create({ key, dkLen: MAC_LEN });
  for (const p of parts) h.update(p);
  return toBuffer(h.digest());
}

export function hmac(key: Uint8Array, data: Uint8Array): Buffer {
  return toBuffer(nobleHmac(blake2s, key, data));
}

const ONE = Uint8Array.of(1);

/** HKDF with HMAC-BLAKE2s (whitepaper's KDF_n); returns n 32-byte outputs. */
export function kdf(chainKey: Uint8Array, input: Uint8Array, n: 1 | 2 | 3): Buffer[] {
  const prk = hmac(chainKey, input);
  const out: Buffer[] = [];
  let prev = hmac(prk, ONE);
  out.push(prev);
  for (let i = 2; i <= n; i++) {
    const msg = Buffer.allocUnsafe(KEY_LEN + 1);
    prev.copy(msg, 0);
    msg[KEY_LEN] = i;
    prev = hmac(prk, msg);
    out.push(prev);
  }
  prk.fill(0);
  return out;
}

/** 96-bit IETF nonce: 32 zero bits then the 64-bit little-endian counter. */
export function writeNonce(nonce: Buffer, counter: number): void {
  nonce.writeUInt32LE(0, 0);
  nonce.writeUInt32LE(counter >>> 0, 4);
  nonce.writeUInt32LE(Math.floor(counter / 0x1_0000_0000) >>> 0, 8);
}

const hsNonce = Buffer.alloc(12);

/** AEAD encrypt `plain` into `out` (plain.length + 16 bytes). Handshake path. */
export function aeadSeal(out: Buffer, key: Buffer, counter: number, plain: Buffer, ad: Buffer): void {
  writeNonce(hsNonce, counter);
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out, plain, ad, null, hsNonce, key);
}

/** AEAD decrypt `sealed` into `out` (sealed.length - 16 bytes); false if the tag is wrong. */
export function aeadOpen(out: Buffer, key: Buffer, counter: number, sealed: Buffer, ad: Buffer): boolean {
  writeNonce(hsNonce, counter);
  try {
    sodium.crypto_aead_chacha20poly1305_ietf_decrypt(out, null, sealed, ad, hsNonce, key);
    return true;
  } catch {
    return false;
  }
}

export function xaeadSeal(out: Buffer, key: Buffer, nonce: Buffer, plain: Buffer, ad: Buffer): void {
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out, plain, ad, null, nonce, key);
}

export function xaeadOpen(out: Buffer, key: Buffer, nonce: Buffer, sealed: Buffer, ad: Buffer): boolean {
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, sealed, ad, nonce, key);
    return true;
  } catch {
    return false;
  }
}

/** X25519. Returns null for a low-order public key (all-zero shared secret), which WireGuard rejects. */
export function dh(privateKey: Buffer, publicKey: Buffer): Buffer | null {
  const out = Buffer.alloc(KEY_LEN);
  try {
    sodium.crypto_scalarmult(out, privateKey, publicKey);
  } catch {
    return null;
  }
  return out;
}

/** A fresh clamped private key (src/crypto owns key generation). */
export function generatePrivateKey(): Buffer {
  return generateKeyPair().privateKey;
}

export { publicKeyFromPrivate as publicKeyOf, parseKey as keyFromBase64, formatKey as keyToBase64 } from '../crypto/index.js';

export function randomBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  sodium.randombytes_buf(b);
  return b;
}

export function randomU32(): number {
  return sodium.randombytes_random() >>> 0;
}

/** Constant-time equality of two equal-length byte strings. */
export function equalCT(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

export function zero(b: Buffer | null | undefined): void {
  if (b) sodium.sodium_memzero(b);
}

/**
 * TAI64N label of `unixMs`. Like wireguard-go the nanoseconds are rounded
 * down to a 2^24 ns (~16.8 ms) grid so the timestamp does not leak a precise
 * clock; it only has to increase between two handshakes.
 */
export function tai64n(unixMs: number, out: Buffer = Buffer.alloc(12)): Buffer {
  const secs = Math.floor(unixMs / 1000);
  const nanos = Math.floor((unixMs - secs * 1000) * 1e6);
  // 2^62 + 10 + secs, big-endian over 8 bytes.
  const hi = 0x4000_0000 + Math.floor((secs + 10) / 0x1_0000_0000);
  const lo = (secs + 10) % 0x1_0000_0000;
  out.writeUInt32BE(hi >>> 0, 0);
  out.writeUInt32BE(lo >>> 0, 4);
  out.writeUInt32BE((nanos - (nanos % 0x100_0000)) >>> 0, 8);
  return out;
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}
