import { chmodSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The data directory holds the management database (peer keys, setup keys, PAT hashes, the embedded
 * IdP's signing key), its WAL, the traffic-event database and the server's secrets. None of it is
 * for other local users, so the directory is 0700 and every file in it 0600, and the process umask
 * is 077 so that files SQLite creates later (WAL, shared memory, journals) are private from birth.
 * Files an older version left readable are tightened (and named in the log).
 */
export function preparePrivateDataDir(dataDir: string, log: (msg: string) => void = () => {}): void {
  process.umask(0o077);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const dirMode = statSync(dataDir).mode & 0o777;
  if (dirMode & 0o077) {
    chmodSync(dataDir, dirMode & 0o700);
    log(`data directory ${dataDir} was readable by others (mode ${dirMode.toString(8)}); now ${(dirMode & 0o700).toString(8)}`);
  }
  for (const name of readdirSync(dataDir)) {
    const path = join(dataDir, name);
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st || !st.isFile() || (st.mode & 0o077) === 0) continue;
    chmodSync(path, st.mode & 0o700);
    log(`${path} was readable by others (mode ${(st.mode & 0o777).toString(8)}); now ${(st.mode & 0o700).toString(8)}`);
  }
}
