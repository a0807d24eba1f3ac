import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { LATEST_MIGRATION, migrationProvider } from './migrations.js';
import { Queries } from './queries.js';
import type { Database } from './schema.js';

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
      if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
      const database = new BetterSqlite3(options.path);
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
      throw err;
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
