/**
 * The sodium-native functions this folder uses, typed here because
 * @types/sodium-native predates the IETF ChaCha20-Poly1305 bindings that
 * sodium-native 5 ships.
 */
import sodiumNative from 'sodium-native';

export interface SodiumSubset {
  crypto_aead_chacha20poly1305_ietf_encrypt(c: Buffer, m: Buffer, ad: Buffer | null, nsec: null, npub: Buffer, k: Buffer): number;
  /** Throws if the tag does not verify. */
  crypto_aead_chacha20poly1305_ietf_decrypt(m: Buffer, nsec: null, c: Buffer, ad: Buffer | null, npub: Buffer, k: Buffer): number;
  crypto_aead_xchacha20poly1305_ietf_encrypt(c: Buffer, m: Buffer, ad: Buffer | null, nsec: null, npub: Buffer, k: Buffer): number;
  crypto_aead_xchacha20poly1305_ietf_decrypt(m: Buffer, nsec: null, c: Buffer, ad: Buffer | null, npub: Buffer, k: Buffer): number;
  crypto_scalarmult(q: Buffer, n: Buffer, p: Buffer): void;
  crypto_scalarmult_base(q: Buffer, n: Buffer): void;
  randombytes_buf(b: Buffer): void;
  randombytes_random(): number;
  sodium_memzero(b: Buffer): void;
}

export const sodium = sodiumNative as unknown as SodiumSubset;
