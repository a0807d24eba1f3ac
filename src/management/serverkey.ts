import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type KeyPair, formatKey, generateKeyPair, keyPairFromPrivate, parseKey } from '../crypto/index.js';

/**
 * The management server's envelope key pair, persisted in the data dir so it survives restarts
 * (the reference regenerates it per boot; keeping it stable is harmless and lets clients that cached
 * it keep working). Written atomically with mode 0600.
 */
export const SERVER_KEY_FILE = 'management.key';

export function loadOrCreateServerKey(dataDir: string): KeyPair {
  const path = join(dataDir, SERVER_KEY_FILE);
  if (existsSync(path)) {
    const text = readFileSync(path, 'utf8').trim();
    try {
      return keyPairFromPrivate(parseKey(text, 'management server private key'));
    } catch (err) {
      throw new Error(`${path} does not hold a valid private key (${(err as Error).message}); restore it from a backup or delete it to generate a new one`);
    }
  }
  mkdirSync(dataDir, { recursive: true });
  const kp = generateKeyPair();
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, formatKey(kp.privateKey) + '\n', { mode: 0o600 });
  renameSync(tmp, path);
  return kp;
}
