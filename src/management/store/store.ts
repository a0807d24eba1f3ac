import { existsSync, mkdirSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { LATEST_MIGRATION, migrationProvider } from './migrations.js';
import { Queries } from './queries.js';
import type { Database } from './schema.js';
import { ManagementError } from '../types.js';

export { OBJECT_TABLE } from './records.js';
export type { AccountData, AccountObjects, LocalCredential, ObjectKind } from './records.js';
export { Queries } from './queries.js';

/**
 * Persistence of the management domain through one Kysely query layer, on SQLite (default, a file in
 * the data dir) or PostgreSQL (when a DSN is given).
 *
 * Durability (SQLite): WAL journal with synchronous=FULL, so every committed transaction has been
 * fsynced to the WAL before commit returns; a kill -9 (or even power loss) cannot lose it. NORMAL would
 * survive kill -9 too (the WAL write reaches the OS before commit returns) but not power loss; the
 * extra fsync per commit costs little for a control plane whose writes are registrations and admin edits.
 */

export type StoreOptions = { kind: 'sqlite'; path: string } | { kind: 'postgres'; dsn: string };

/** An open store: queries outside a transaction plus `transaction()`. */
export class Store extends Queries {
  private constructor(
    private readonly kysely: Kysely<Database>,
    readonly kind: 'sqlite' | 'postgres',
  ) {
    super(kysely);
  }

  /** Opens (and migrates) a store. */
  static async open(options: StoreOptions): Promise<Store> {
    let kysely: Kysely<Database>;
    if (options.kind === 'sqlite') {
      if (options.path !== ':memory:') {
        mkdirSync(dirname(options.path), { recursive: true });
        preflightSqliteFile(options.path);
      }
      let database: BetterSqlite3.Database;
      try {
        database = new BetterSqlite3(options.path);
        // A truncated or overwritten file often opens fine and fails on first read: check it now.
        const check = database.pragma('quick_check', { simple: true });
        if (check !== 'ok') throw Object.assign(new Error(String(check)), { code: 'SQLITE_CORRUPT' });
      } catch (err) {
        throw unreadableSqliteFile(options.path, err);
      }
      database.pragma('journal_mode = WAL');
      database.pragma('synchronous = FULL');
      database.pragma('foreign_keys = ON');
      // Another process (e.g. `netbird-server setup-keys create` next to a running server) may hold
      // the write lock briefly; wait instead of failing.
      database.pragma('busy_timeout = 5000');
      kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
    } else {
      const pool = new pg.Pool({
        connectionString: options.dsn,
        max: 10,
        // BIGINT columns hold Unix ms and counters, all far below 2^53: parse them as numbers.
        types: {
          getTypeParser: ((oid: number, format?: string) =>
            oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
        },
      });
      kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    }
    const store = new Store(kysely, options.kind);
    try {
      await store.migrate();
    } catch (err) {
      await kysely.destroy();
      throw options.kind === 'sqlite' ? unreadableSqliteFile(options.path, err) : err;
    }
    return store;
  }

  /** Applies pending migrations; returns the name of the newest applied one. */
  async migrate(): Promise<string> {
    const migrator = new Migrator({ db: this.kysely, provider: migrationProvider });
    const { error, results } = await migrator.migrateToLatest();
    if (error) {
      const failed = results?.find((r) => r.status === 'Error');
      throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${(error as Error).message ?? String(error)}`);
    }
    return LATEST_MIGRATION;
  }

  /** Runs `fn` in one transaction: all its writes commit together or not at all. */
  async transaction<T>(fn: (q: Queries) => Promise<T>): Promise<T> {
    return this.kysely.transaction().execute((trx) => fn(new Queries(trx)));
  }

  async close(): Promise<void> {
    await this.kysely.destroy();
  }
}

/**
 * Refuses to start on a SQLite file that lost data, rather than silently starting a new instance
 * whose first `/api/setup` would take over (an empty file) or running without recent writes (a
 * deleted write-ahead log: SQLite leaves -shm and -wal together until a clean close).
 */
function preflightSqliteFile(path: string): void {
  const name = basename(path);
  const restore = `restore a backup with "netbird-server restore FILE --data-dir ${dirname(path)}"`;
  if (existsSync(path) && statSync(path).size === 0) {
    throw new ManagementError('failed_precondition',
      `${path} is empty (0 bytes): the database was truncated or not copied whole, and starting on it would make a new instance that orphans every peer. ` +
      `${restore[0]!.toUpperCase()}${restore.slice(1)}; or, only if this really is a new instance, delete ${name}.`);
  }
  if (existsSync(`${path}-shm`) && !existsSync(`${path}-wal`) && existsSync(path)) {
    throw new ManagementError('failed_precondition',
      `${path}-wal is missing while ${name}-shm is there: the write-ahead log was deleted after an unclean stop, so the most recent changes are gone. ` +
      `${restore[0]!.toUpperCase()}${restore.slice(1)}; or, to accept the loss and go on with what ${name} holds, delete ${path}-shm and start again.`);
  }
}

/** A clear error for a database file SQLite cannot read (truncated, overwritten, not a database). */
function unreadableSqliteFile(path: string, err: unknown): Error {
  const code = (err as { code?: string }).code ?? '';
  if (!/^SQLITE_(CORRUPT|NOTADB)/.test(code)) return err as Error;
  return new ManagementError('failed_precondition',
    `${path} is damaged (${(err as Error).message}): SQLite cannot read it. Restore a backup with "netbird-server restore FILE --data-dir ${dirname(path)}" ` +
    `(the damaged file is kept aside), or move ${basename(path)} away to start a new, empty instance.`);
}
