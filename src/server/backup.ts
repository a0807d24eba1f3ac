import BetterSqlite3 from 'better-sqlite3';
import { chmodSync, copyFileSync, existsSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { SQLITE_FILE } from '../management/index.js';

/**
 * `netbird-server backup` and `restore` for the SQLite store. A backup is one self-contained SQLite
 * file made with SQLite's online backup API (better-sqlite3 `.backup()`): consistent even while the
 * server runs and writes (WAL content included), no need to stop anything. A restore puts such a file
 * in place of management.db; it refuses while a server runs on the data directory, checks the file
 * is a sound netbird-ts database first, and keeps the database it replaces beside it.
 * PostgreSQL stores are backed up with pg_dump (see the README).
 */

/** Written by a running server into its data directory (its pid), so a restore can refuse. */
export const SERVER_PID_FILE = 'server.pid';

/** Tables every netbird-ts management database has (migration 0001 on). */
const REQUIRED_TABLES = ['kysely_migration', 'instance', 'accounts', 'users', 'peers', 'groups', 'policies', 'setup_keys'];

export class BackupError extends Error {}

export function writePidFile(dataDir: string): () => void {
  const path = join(dataDir, SERVER_PID_FILE);
  writeFileSync(path, `${process.pid}\n`, { mode: 0o600 });
  return () => {
    try {
      if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
    } catch {
      // already gone
    }
  };
}

/** The pid of a live server on `dataDir`, if any (a stale pid file from a crash is ignored). */
export function runningServerPid(dataDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dataDir, SERVER_PID_FILE), 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

/** Why `file` is not a usable netbird-ts database, or undefined if it is. */
export function checkDatabaseFile(file: string): string | undefined {
  let db: BetterSqlite3.Database;
  try {
    db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
  } catch (e) {
    return `cannot open it as SQLite: ${(e as Error).message}`;
  }
  try {
    let rows: Array<{ integrity_check: string }>;
    try {
      rows = db.pragma('integrity_check') as Array<{ integrity_check: string }>;
    } catch (e) {
      return `it is not an SQLite database (${(e as Error).message})`;
    }
    if (rows.length !== 1 || rows[0]!.integrity_check !== 'ok') {
      return `SQLite integrity check failed: ${rows.slice(0, 3).map((r) => r.integrity_check).join('; ')}`;
    }
    const tables = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((r) => r.name));
    const missing = REQUIRED_TABLES.filter((t) => !tables.has(t));
    if (missing.length) return `it is an SQLite database but not a netbird-ts management database (no ${missing.join(', ')} table${missing.length > 1 ? 's' : ''})`;
    const applied = (db.prepare('SELECT COUNT(*) AS n FROM kysely_migration').get() as { n: number }).n;
    if (applied === 0) return 'it has no applied schema migrations';
    return undefined;
  } finally {
    db.close();
  }
}

/**
 * Copies the live database of `dataDir` to `target` (online, consistent). Refuses to overwrite an
 * existing file. Returns the number of accounts and peers in the copy, for the operator.
 */
export async function backupSqlite(dataDir: string, target: string): Promise<{ accounts: number; peers: number; bytes: number }> {
  const source = join(dataDir, SQLITE_FILE);
  if (!existsSync(source)) throw new BackupError(`no database at ${source}; check --data-dir (PostgreSQL stores are backed up with pg_dump)`);
  if (existsSync(target)) throw new BackupError(`${target} exists already; choose a new file name (a backup never overwrites)`);
  const tmp = join(dirname(target), `.${basename(target)}.partial-${process.pid}`);
  const db = new BetterSqlite3(source, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    await db.backup(tmp);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new BackupError(`backup of ${source} failed: ${(e as Error).message}`);
  } finally {
    db.close();
  }
  chmodSync(tmp, 0o600);
  const problem = checkDatabaseFile(tmp);
  if (problem) {
    rmSync(tmp, { force: true });
    throw new BackupError(`the copy of ${source} is not sound (${problem}); the database itself may be damaged`);
  }
  renameSync(tmp, target);
  const copy = new BetterSqlite3(target, { readonly: true });
  try {
    const accounts = (copy.prepare('SELECT COUNT(*) AS n FROM accounts').get() as { n: number }).n;
    const peers = (copy.prepare('SELECT COUNT(*) AS n FROM peers').get() as { n: number }).n;
    return { accounts, peers, bytes: statSync(target).size };
  } finally {
    copy.close();
  }
}

/**
 * Puts the backup `file` in place of `dataDir`'s management.db. The server must be stopped; the
 * replaced database (with its WAL and shared-memory files) is renamed to `management.db.before-restore-<time>`.
 * Returns that name (undefined when there was no database).
 */
export function restoreSqlite(dataDir: string, file: string, now = new Date()): { keptAs: string | undefined } {
  const pid = runningServerPid(dataDir);
  if (pid !== undefined) throw new BackupError(`a netbird-server (pid ${pid}) is running on ${dataDir}; stop it first, then restore`);
  if (!existsSync(file)) throw new BackupError(`no such file: ${file}`);
  const problem = checkDatabaseFile(file);
  if (problem) throw new BackupError(`${file} cannot be restored: ${problem}. Nothing was changed.`);
  const live = join(dataDir, SQLITE_FILE);
  const staged = join(dataDir, `.${SQLITE_FILE}.restore-${process.pid}`);
  copyFileSync(file, staged);
  chmodSync(staged, 0o600);
  let keptAs: string | undefined;
  if (existsSync(live)) {
    keptAs = `${live}.before-restore-${now.toISOString().replace(/[:.]/g, '-')}`;
    renameSync(live, keptAs);
    // The WAL and shared memory belong to the database they were written for.
    for (const suffix of ['-wal', '-shm']) if (existsSync(live + suffix)) renameSync(live + suffix, keptAs + suffix);
  }
  renameSync(staged, live);
  return { keptAs };
}
