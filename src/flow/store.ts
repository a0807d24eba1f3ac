/**
 * Storage of received flow events on Kysely (SQLite through better-sqlite3, or PostgreSQL through pg).
 * Writes are batched: a record waits in memory until a batch is full or the flush timer fires, and its
 * add() promise settles only once the batch is in the database, so the receiver acks only stored events.
 * Memory is bounded: when maxPending records are waiting, add() itself waits (backpressure).
 */
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, sql } from 'kysely';
import type { Migration, MigrationProvider, SelectQueryBuilder } from 'kysely';
import type { FlowDirection, FlowEventRecord, FlowEventType } from './model.js';
import { FLOW_DIRECTION_NUMBER, FLOW_TYPE_NUMBER, flowDirectionFromNumber, flowTypeFromNumber } from './model.js';

export const FLOW_EVENTS_TABLE = 'flow_events';
const MIGRATION_TABLE = 'flow_kysely_migration';
const MIGRATION_LOCK_TABLE = 'flow_kysely_migration_lock';

/** Row of flow_events. Times are ms since epoch (bigint), so both engines compare them the same way. */
interface FlowEventsTable {
  event_id: string;
  reporter_key: string;
  reporter_id: string | null;
  account_id: string | null;
  user_id: string | null;
  flow_id: string;
  type: number;
  rule_id: string | null;
  direction: number;
  protocol: number;
  source_ip: string;
  dest_ip: string;
  source_port: number | null;
  dest_port: number | null;
  icmp_type: number | null;
  icmp_code: number | null;
  rx_packets: number | string;
  tx_packets: number | string;
  rx_bytes: number | string;
  tx_bytes: number | string;
  source_resource_id: string | null;
  dest_resource_id: string | null;
  num_of_starts: number | string;
  num_of_ends: number | string;
  num_of_drops: number | string;
  timestamp: number | string;
  window_start: number | string;
  window_end: number | string;
  received_at: number | string;
  seq: number;
}
interface FlowDb {
  flow_events: FlowEventsTable;
}

const migrations: Record<string, Migration> = {
  '2026_11_25_001_flow_events': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable(FLOW_EVENTS_TABLE)
        .addColumn('event_id', 'varchar(128)', (c) => c.primaryKey())
        .addColumn('reporter_key', 'varchar(64)', (c) => c.notNull())
        .addColumn('reporter_id', 'varchar(255)')
        .addColumn('account_id', 'varchar(255)')
        .addColumn('user_id', 'varchar(255)')
        .addColumn('flow_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('type', 'integer', (c) => c.notNull())
        .addColumn('rule_id', 'varchar(255)')
        .addColumn('direction', 'integer', (c) => c.notNull())
        .addColumn('protocol', 'integer', (c) => c.notNull())
        .addColumn('source_ip', 'varchar(64)', (c) => c.notNull())
        .addColumn('dest_ip', 'varchar(64)', (c) => c.notNull())
        .addColumn('source_port', 'integer')
        .addColumn('dest_port', 'integer')
        .addColumn('icmp_type', 'integer')
        .addColumn('icmp_code', 'integer')
        .addColumn('rx_packets', 'bigint', (c) => c.notNull())
        .addColumn('tx_packets', 'bigint', (c) => c.notNull())
        .addColumn('rx_bytes', 'bigint', (c) => c.notNull())
        .addColumn('tx_bytes', 'bigint', (c) => c.notNull())
        .addColumn('source_resource_id', 'varchar(255)')
        .addColumn('dest_resource_id', 'varchar(255)')
        .addColumn('num_of_starts', 'bigint', (c) => c.notNull())
        .addColumn('num_of_ends', 'bigint', (c) => c.notNull())
        .addColumn('num_of_drops', 'bigint', (c) => c.notNull())
        .addColumn('timestamp', 'bigint', (c) => c.notNull())
        .addColumn('window_start', 'bigint', (c) => c.notNull())
        .addColumn('window_end', 'bigint', (c) => c.notNull())
        .addColumn('received_at', 'bigint', (c) => c.notNull())
        // Insertion order, to page stably among events with equal timestamps. Set by the writer.
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('flow_events_timestamp_idx').on(FLOW_EVENTS_TABLE).columns(['timestamp', 'seq']).execute();
      await db.schema.createIndex('flow_events_account_idx').on(FLOW_EVENTS_TABLE).columns(['account_id', 'timestamp']).execute();
      await db.schema.createIndex('flow_events_reporter_idx').on(FLOW_EVENTS_TABLE).columns(['reporter_id', 'timestamp']).execute();
      await db.schema.createIndex('flow_events_received_idx').on(FLOW_EVENTS_TABLE).column('received_at').execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable(FLOW_EVENTS_TABLE).execute();
    },
  },
};

const migrationProvider: MigrationProvider = { getMigrations: async () => migrations };

/** Creates or upgrades the flow tables (own migration bookkeeping tables, so it coexists with others). */
export async function migrateFlowStore<DB>(db: Kysely<DB>): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: migrationProvider,
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`flow store migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Filters of GET /api/events/network-traffic, already parsed. All optional; combined with AND. */
export interface FlowEventQuery {
  /** 1-based; default 1. */
  readonly page?: number;
  /** Default 50, at most FLOW_QUERY_MAX_PAGE_SIZE. */
  readonly pageSize?: number;
  /** Only events of this account (the REST layer passes the caller's account). */
  readonly accountId?: string;
  /** The reporting peer: matches its peer ID or its base64 public key. */
  readonly peer?: string;
  readonly reporterId?: string;
  readonly reporterKey?: string;
  readonly userId?: string;
  readonly sourceId?: string;
  readonly destinationId?: string;
  /** Inclusive bounds on the event timestamp (ms since epoch or Date). */
  readonly startDate?: Date | number;
  readonly endDate?: Date | number;
  readonly type?: FlowEventType;
  readonly protocol?: number;
  readonly direction?: FlowDirection;
  /** Substring of flow ID, addresses, reporter ID or key. */
  readonly search?: string;
}

export interface FlowEventPage {
  readonly data: FlowEventRecord[];
  readonly page: number;
  readonly pageSize: number;
  readonly totalRecords: number;
  readonly totalPages: number;
}

export const FLOW_QUERY_DEFAULT_PAGE_SIZE = 50;
export const FLOW_QUERY_MAX_PAGE_SIZE = 50_000;

/** What a flow receiver needs to keep events. */
export interface FlowStore {
  /** Resolves once the record is stored (duplicates by eventId are ignored); waits while the buffer is full. */
  add(record: FlowEventRecord): Promise<void>;
  /** Newest first. */
  query(q?: FlowEventQuery): Promise<FlowEventPage>;
  /** Deletes events received before `cutoffMs`; returns how many. */
  deleteOlderThan(cutoffMs: number): Promise<number>;
  /** Writes everything buffered now. */
  flush(): Promise<void>;
  /** Flushes and stops timers (and closes the database when the store opened it). */
  close(): Promise<void>;
}

export class FlowStoreClosedError extends Error {
  constructor() {
    super('flow store is closed');
    this.name = 'FlowStoreClosedError';
  }
}

export interface KyselyFlowStoreOptions<DB = unknown> {
  /** A Kysely instance (SQLite or PostgreSQL), or a SQLite file path (":memory:" works) the store opens and owns. */
  readonly db: Kysely<DB> | string;
  /** Rows per INSERT; a full batch is written at once. Default 500. */
  readonly batchSize?: number;
  /** A partial batch is written after this long. Default 200 ms. */
  readonly flushIntervalMs?: number;
  /** Records waiting or being written before add() waits. Default 20 000. */
  readonly maxPending?: number;
  /** Delete events received more than this many days ago; 0/undefined keeps everything. */
  readonly retentionDays?: number;
  /** How often the retention sweep runs. Default 1 h. */
  readonly retentionIntervalMs?: number;
  readonly now?: () => number;
  readonly onError?: (err: unknown) => void;
}

interface Pending {
  readonly record: FlowEventRecord;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

function num(v: number | string | bigint | null): number {
  return v === null ? 0 : Number(v);
}

function toMs(d: Date | number): number {
  return typeof d === 'number' ? d : d.getTime();
}

export class KyselyFlowStore implements FlowStore {
  private readonly db: Kysely<FlowDb>;
  private readonly owned: boolean;
  private readonly batchSize: number;
  private readonly flushIntervalMs: number;
  private readonly maxPending: number;
  private readonly now: () => number;
  private readonly onError: (err: unknown) => void;
  private buffer: Pending[] = [];
  /** Records accepted and not yet settled (buffered + being written): the memory bound. */
  private pending = 0;
  private spaceWaiters: Array<() => void> = [];
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private seq: number;

  private constructor(db: Kysely<FlowDb>, owned: boolean, opts: KyselyFlowStoreOptions<unknown>, seqStart: number) {
    this.db = db;
    this.owned = owned;
    this.batchSize = Math.max(1, opts.batchSize ?? 500);
    this.flushIntervalMs = Math.max(0, opts.flushIntervalMs ?? 200);
    this.maxPending = Math.max(this.batchSize, opts.maxPending ?? 20_000);
    this.now = opts.now ?? Date.now;
    this.onError = opts.onError ?? (() => {});
    this.seq = seqStart;
    const days = opts.retentionDays ?? 0;
    if (days > 0) {
      const sweep = (): void => {
        this.deleteOlderThan(this.now() - days * 86_400_000).catch(this.onError);
      };
      sweep();
      this.retentionTimer = setInterval(sweep, opts.retentionIntervalMs ?? 3_600_000);
      this.retentionTimer.unref();
    }
  }

  /** Opens (and migrates) a store. */
  static async open<DB>(opts: KyselyFlowStoreOptions<DB>): Promise<KyselyFlowStore> {
    let db: Kysely<FlowDb>;
    let owned = false;
    if (typeof opts.db === 'string') {
      const sqlite = new Database(opts.db);
      try {
        sqlite.pragma('journal_mode = WAL');
      } catch (err) {
        sqlite.close();
        throw err;
      }
      db = new Kysely<FlowDb>({ dialect: new SqliteDialect({ database: sqlite }) });
      owned = true;
    } else {
      db = opts.db as unknown as Kysely<FlowDb>;
    }
    try {
      await migrateFlowStore(db);
      const row = await db.selectFrom('flow_events').select((eb) => eb.fn.max('seq').as('m')).executeTakeFirst();
      const seqStart = row?.m == null ? 0 : Number(row.m);
      return new KyselyFlowStore(db, owned, opts as KyselyFlowStoreOptions<unknown>, seqStart);
    } catch (err) {
      if (owned) await db.destroy();
      throw err;
    }
  }

  /** The Kysely instance (for tests and for sharing with other components). */
  get kysely(): Kysely<unknown> {
    return this.db as unknown as Kysely<unknown>;
  }

  /** Records accepted but not yet stored. */
  get pendingCount(): number {
    return this.pending;
  }

  async add(record: FlowEventRecord): Promise<void> {
    while (this.pending >= this.maxPending) {
      if (this.closed) throw new FlowStoreClosedError();
      await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
    }
    if (this.closed) throw new FlowStoreClosedError();
    this.pending++;
    return new Promise<void>((resolve, reject) => {
      this.buffer.push({ record, resolve, reject });
      if (this.buffer.length >= this.batchSize) this.kick();
      else this.arm();
    });
  }

  private arm(): void {
    if (this.timer || this.flushing) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.kick();
    }, this.flushIntervalMs);
  }

  private kick(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.flushing) return;
    this.flushing = this.drain(this.closed).finally(() => {
      this.flushing = undefined;
      if (this.buffer.length >= this.batchSize || (this.closed && this.buffer.length > 0)) this.kick();
      else if (this.buffer.length > 0) this.arm();
    });
  }

  /** Writes full batches back to back; with `all`, also the partial tail. */
  private async drain(all: boolean): Promise<void> {
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, this.batchSize);
      try {
        await this.insert(batch.map((p) => p.record));
        for (const p of batch) p.resolve();
      } catch (err) {
        this.onError(err);
        for (const p of batch) p.reject(err);
      }
      this.pending -= batch.length;
      const waiters = this.spaceWaiters.splice(0, batch.length);
      for (const w of waiters) w();
      // Without `all`, a partial tail waits for its timer (or for more records).
      if (this.buffer.length < this.batchSize && !all) break;
    }
  }

  private async insert(records: FlowEventRecord[]): Promise<void> {
    const seen = new Set<string>();
    const rows: FlowEventsTable[] = [];
    for (const r of records) {
      if (seen.has(r.eventId)) continue;
      seen.add(r.eventId);
      rows.push({
        event_id: r.eventId,
        reporter_key: r.reporterKey,
        reporter_id: r.reporterId,
        account_id: r.accountId,
        user_id: r.userId,
        flow_id: r.flowId,
        type: r.type ? FLOW_TYPE_NUMBER[r.type] : 0,
        rule_id: r.ruleId,
        direction: r.direction ? FLOW_DIRECTION_NUMBER[r.direction] : 0,
        protocol: r.protocol,
        source_ip: r.sourceIp,
        dest_ip: r.destIp,
        source_port: r.sourcePort,
        dest_port: r.destPort,
        icmp_type: r.icmpType,
        icmp_code: r.icmpCode,
        rx_packets: r.rxPackets,
        tx_packets: r.txPackets,
        rx_bytes: r.rxBytes,
        tx_bytes: r.txBytes,
        source_resource_id: r.sourceResourceId,
        dest_resource_id: r.destResourceId,
        num_of_starts: r.numOfStarts,
        num_of_ends: r.numOfEnds,
        num_of_drops: r.numOfDrops,
        timestamp: r.timestamp,
        window_start: r.windowStart,
        window_end: r.windowEnd,
        received_at: r.receivedAt,
        seq: ++this.seq,
      });
    }
    await this.db
      .insertInto('flow_events')
      .values(rows)
      .onConflict((oc) => oc.column('event_id').doNothing())
      .execute();
  }

  async flush(): Promise<void> {
    for (;;) {
      if (this.flushing) await this.flushing.catch(() => {});
      if (this.buffer.length === 0 && !this.flushing) return;
      if (!this.flushing) {
        if (this.timer) {
          clearTimeout(this.timer);
          this.timer = undefined;
        }
        this.flushing = this.drain(true).finally(() => {
          this.flushing = undefined;
        });
      }
    }
  }

  private filtered(q: FlowEventQuery): SelectQueryBuilder<FlowDb, 'flow_events', object> {
    let b = this.db.selectFrom('flow_events') as SelectQueryBuilder<FlowDb, 'flow_events', object>;
    if (q.accountId !== undefined) b = b.where('account_id', '=', q.accountId);
    if (q.peer !== undefined) {
      const peer = q.peer;
      b = b.where((eb) => eb.or([eb('reporter_id', '=', peer), eb('reporter_key', '=', peer)]));
    }
    if (q.reporterId !== undefined) b = b.where('reporter_id', '=', q.reporterId);
    if (q.reporterKey !== undefined) b = b.where('reporter_key', '=', q.reporterKey);
    if (q.userId !== undefined) b = b.where('user_id', '=', q.userId);
    if (q.sourceId !== undefined) b = b.where('source_resource_id', '=', q.sourceId);
    if (q.destinationId !== undefined) b = b.where('dest_resource_id', '=', q.destinationId);
    if (q.startDate !== undefined) b = b.where('timestamp', '>=', toMs(q.startDate));
    if (q.endDate !== undefined) b = b.where('timestamp', '<=', toMs(q.endDate));
    if (q.type !== undefined) b = b.where('type', '=', FLOW_TYPE_NUMBER[q.type]);
    if (q.protocol !== undefined) b = b.where('protocol', '=', q.protocol);
    if (q.direction !== undefined) b = b.where('direction', '=', FLOW_DIRECTION_NUMBER[q.direction]);
    if (q.search !== undefined && q.search !== '') {
      // LIKE with the user's text escaped, so % and _ match themselves.
      const pattern = '%' + q.search.replace(/[\\%_]/g, (c) => '\\' + c) + '%';
      b = b.where((eb) =>
        eb.or(
          (['flow_id', 'source_ip', 'dest_ip', 'reporter_id', 'reporter_key', 'user_id'] as const).map(
            (col) => sql<boolean>`${sql.ref(col)} like ${pattern} escape '\\'`,
          ),
        ),
      );
    }
    return b;
  }

  async query(q: FlowEventQuery = {}): Promise<FlowEventPage> {
    const page = Math.max(1, Math.floor(q.page ?? 1));
    const pageSize = Math.min(FLOW_QUERY_MAX_PAGE_SIZE, Math.max(1, Math.floor(q.pageSize ?? FLOW_QUERY_DEFAULT_PAGE_SIZE)));
    const countRow = await this.filtered(q)
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirst();
    const totalRecords = num((countRow as { n: number | string | bigint } | undefined)?.n ?? 0);
    const rows = await this.filtered(q)
      .selectAll()
      .orderBy('timestamp', 'desc')
      .orderBy('seq', 'desc')
      .limit(pageSize)
      .offset((page - 1) * pageSize)
      .execute();
    return {
      data: rows.map(rowToRecord),
      page,
      pageSize,
      totalRecords,
      totalPages: Math.ceil(totalRecords / pageSize),
    };
  }

  async deleteOlderThan(cutoffMs: number): Promise<number> {
    const r = await this.db.deleteFrom('flow_events').where('received_at', '<', cutoffMs).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async close(): Promise<void> {
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    this.retentionTimer = undefined;
    await this.flush();
    this.closed = true;
    // Anyone still waiting for space learns that the store is gone.
    for (const w of this.spaceWaiters.splice(0)) w();
    if (this.owned) await this.db.destroy();
  }
}

function rowToRecord(r: FlowEventsTable): FlowEventRecord {
  return {
    eventId: r.event_id,
    reporterKey: r.reporter_key,
    reporterId: r.reporter_id,
    accountId: r.account_id,
    userId: r.user_id,
    flowId: r.flow_id,
    type: flowTypeFromNumber(Number(r.type)) ?? null,
    ruleId: r.rule_id,
    direction: flowDirectionFromNumber(Number(r.direction)) ?? null,
    protocol: Number(r.protocol),
    sourceIp: r.source_ip,
    destIp: r.dest_ip,
    sourcePort: r.source_port === null ? null : Number(r.source_port),
    destPort: r.dest_port === null ? null : Number(r.dest_port),
    icmpType: r.icmp_type === null ? null : Number(r.icmp_type),
    icmpCode: r.icmp_code === null ? null : Number(r.icmp_code),
    rxPackets: num(r.rx_packets),
    txPackets: num(r.tx_packets),
    rxBytes: num(r.rx_bytes),
    txBytes: num(r.tx_bytes),
    sourceResourceId: r.source_resource_id,
    destResourceId: r.dest_resource_id,
    numOfStarts: num(r.num_of_starts),
    numOfEnds: num(r.num_of_ends),
    numOfDrops: num(r.num_of_drops),
    timestamp: num(r.timestamp),
    windowStart: num(r.window_start),
    windowEnd: num(r.window_end),
    receivedAt: num(r.received_at),
  };
}
