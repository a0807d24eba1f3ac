import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Password hashing for the embedded identity provider: scrypt (memory-hard, in node:crypto) with a
 * per-password random salt, stored as "scrypt$N$r$p$salt$hash" so the cost can be raised later
 * without breaking stored hashes.
 */

const N = 16384;
const R = 8;
const P = 1;
const KEYLEN = 32;

/** More password checks are waiting than the server takes on; the client should retry shortly. */
export class PasswordCheckBusyError extends Error {
  constructor() {
    super('too many password checks in progress; try again in a moment');
  }
}

/**
 * Each scrypt run takes ~16 MiB and a libuv thread for tens of milliseconds, so at most
 * MAX_RUNNING run at once and MAX_WAITING wait; beyond that callers get PasswordCheckBusyError
 * at once instead of queueing without bound (a flood of logins or invite acceptances would
 * otherwise grow memory and delay everyone's login indefinitely).
 */
const MAX_RUNNING = 4;
const MAX_WAITING = 64;
let running = 0;
const waiting: Array<() => void> = [];
const counters = { runs: 0, refused: 0 };

/** scrypt derivations run and refused (busy) since start, for metrics and tests. */
export function passwordCheckStats(): { runs: number; refused: number; running: number; waiting: number } {
  return { ...counters, running, waiting: waiting.length };
}

async function withScryptSlot<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= MAX_RUNNING) {
    if (waiting.length >= MAX_WAITING) {
      counters.refused++;
      throw new PasswordCheckBusyError();
    }
    await new Promise<void>((resolve) => waiting.push(resolve));
  } else running++;
  try {
    counters.runs++;
    return await fn();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  // Stored hashes carry their own cost; refuse absurd ones rather than let a bad row exhaust memory.
  if (!(n >= 2 && n <= 1 << 20 && r >= 1 && r <= 32 && p >= 1 && p <= 16)) return Promise.reject(new Error('unsupported password hash parameters'));
  return withScryptSlot(
    () =>
      new Promise((resolve, reject) =>
        scrypt(password, salt, KEYLEN, { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
      ),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, R, P);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const salt = Buffer.from(parts[4]!, 'base64');
  const expected = Buffer.from(parts[5]!, 'base64');
  const key = await derive(password, salt, n, r, p);
  return key.length === expected.length && timingSafeEqual(key, expected);
}
