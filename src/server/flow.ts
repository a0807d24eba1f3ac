import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { KyselyFlowStore, createFlowReceiver, type FlowReceiver } from '../flow/index.js';
import type { AccountManager, InfraConfig } from '../management/index.js';
import { loadOrCreateSecret } from './secrets.js';

export const FLOW_SECRET_FILE = 'flow.secret';
export const FLOW_SQLITE_FILE = 'flow.db';

export interface FlowCollectorOptions {
  dataDir: string;
  /** Store events in this PostgreSQL database instead of a SQLite file in the data dir. */
  postgresDsn?: string;
  /** URL peers stream events to (this server). */
  url: string;
  intervalSeconds?: number;
  /** Delete events older than this; default 30 days. */
  retentionDays?: number;
  /** Looked up per reporting peer (management starts after the collector: it needs the collector's FlowConfig). */
  manager: () => AccountManager | undefined;
  log?: (msg: string) => void;
}

/**
 * The traffic-event collector of netbird-server (protocol.md §8): the flow.FlowService receiver on the
 * shared gRPC server, its store, and the FlowConfig settings management hands to peers.
 */
export class FlowCollector {
  private constructor(
    readonly receiver: FlowReceiver,
    readonly store: KyselyFlowStore,
    readonly infra: NonNullable<InfraConfig['flow']>,
  ) {}

  static async start(o: FlowCollectorOptions): Promise<FlowCollector> {
    const secret = loadOrCreateSecret(o.dataDir, FLOW_SECRET_FILE);
    const db = o.postgresDsn
      ? new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: o.postgresDsn, max: 4 }) }) })
      : join(o.dataDir, FLOW_SQLITE_FILE);
    const open = (): Promise<KyselyFlowStore> => KyselyFlowStore.open({
      db,
      retentionDays: o.retentionDays ?? 30,
      onError: (e) => o.log?.(`flow store: ${String(e)}`),
    });
    let store: KyselyFlowStore;
    try {
      store = await open();
    } catch (err) {
      // Traffic events are a log, not state: a damaged flow.db must not keep the VPN down. Keep it
      // aside for inspection and start an empty one.
      if (typeof db !== 'string' || !/^SQLITE_(CORRUPT|NOTADB)/.test((err as { code?: string }).code ?? '')) throw err;
      const aside = `${db}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      for (const suffix of ['', '-wal', '-shm']) if (existsSync(db + suffix)) renameSync(db + suffix, aside + suffix);
      o.log?.(`flow store: ${db} is damaged (${(err as Error).message}); moved it to ${aside} and started an empty one (earlier traffic events are in that file)`);
      store = await open();
    }
    const receiver = createFlowReceiver({
      secret,
      store,
      resolveReporter: (key) => {
        const ref = o.manager()?.findPeerByKey(key);
        return ref ? { peerId: ref.peer.id, accountId: ref.state.id, userId: ref.peer.userId } : undefined;
      },
    });
    return new FlowCollector(receiver, store, { url: o.url, secret, intervalSeconds: o.intervalSeconds });
  }

  async close(): Promise<void> {
    this.receiver.close();
    await this.store.close();
  }
}
