import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A random secret generated once and kept (mode 0600) in the data dir, e.g. the relay and flow token secrets. */
export function loadOrCreateSecret(dataDir: string, file: string): string {
  const path = join(dataDir, file);
  if (existsSync(path)) {
    const s = readFileSync(path, 'utf8').trim();
    if (s !== '') return s;
  }
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('base64');
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, secret + '\n', { mode: 0o600 });
  renameSync(tmp, path);
  return secret;
}
