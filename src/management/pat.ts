import { createHash, randomBytes } from 'node:crypto';
import type { PersonalAccessToken } from './types.js';
import { ManagementError } from './types.js';
import { newId } from './util.js';

/**
 * Personal access tokens' format ("nbp_" + secret + checksum) and new token records; the random
 * base62 secrets are also those of invite links.
 */

const PAT_PREFIX = 'nbp_';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(text: string): number {
  let c = 0xffffffff;
  for (const byte of Buffer.from(text, 'utf8')) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function base62(n: number, width: number): string {
  let out = '';
  while (n > 0) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out.padStart(width, '0');
}

export function randomBase62(len: number): string {
  // Rejection sampling keeps the distribution uniform (248 = 4 * 62).
  let out = '';
  while (out.length < len) {
    for (const b of randomBytes(len * 2)) {
      if (b < 248 && out.length < len) out += BASE62[b % 62];
    }
  }
  return out;
}

/** A new PAT: "nbp_" + 30 random base62 characters + 6-character base62 CRC32 of the secret. */
export function newPersonalAccessToken(): string {
  const secret = randomBase62(30);
  return PAT_PREFIX + secret + base62(crc32(secret), 6);
}

/** Shape and checksum check of a plain PAT (rejects typos before any lookup). */
export function isWellFormedPat(token: string): boolean {
  if (!token.startsWith(PAT_PREFIX) || token.length !== PAT_PREFIX.length + 36) return false;
  const secret = token.slice(4, 34);
  if (!/^[0-9A-Za-z]+$/.test(token.slice(4))) return false;
  return base62(crc32(secret), 6) === token.slice(34);
}

export function hashPersonalAccessToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64');
}

/** A new token record for `userId` (name and lifetime checked) and its plain text. */
export function buildToken(accountId: string, userId: string, name: string, expiresInDays: number, createdBy: string, now: number): { plain: string; token: PersonalAccessToken } {
  if (typeof name !== 'string' || name.trim() === '') throw new ManagementError('unprocessable', 'name: token name must not be empty');
  if (!Number.isInteger(expiresInDays) || expiresInDays < 1 || expiresInDays > 365) {
    throw new ManagementError('unprocessable', 'expires_in: must be a whole number of days between 1 and 365');
  }
  const plain = newPersonalAccessToken();
  const token: PersonalAccessToken = {
    id: newId(),
    accountId,
    userId,
    name: name.trim(),
    hashedToken: hashPersonalAccessToken(plain),
    expiresAt: now + expiresInDays * 86_400_000,
    createdBy,
    createdAt: now,
    lastUsed: 0,
  };
  return { plain, token };
}
