import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import {
  FLOW_QUERY_DEFAULT_PAGE_SIZE,
  FlowQueryError,
  KyselyFlowStore,
  parseNetworkTrafficQuery,
  toNetworkTrafficEvent,
  toNetworkTrafficEventsResponse,
} from '../../src/flow/index.js';
import type { FlowEventRecord, KyselyFlowStoreOptions } from '../../src/flow/index.js';
import { dsnWithDatabase, pgUnavailableReason, startPgCluster, type PgCluster } from '../management/pg-cluster.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 20, 12, 0, 0);
let seq = 0;

function rec(o: Partial<FlowEventRecord> = {}): FlowEventRecord {
  const n = ++seq;
  return {
    eventId: n.toString(16).padStart(32, '0'),
    reporterKey: 'A'.repeat(43) + '=',
    reporterId: 'peer-a',
    accountId: 'acc-1',
    userId: 'user-1',
    flowId: '00000000-0000-4000-8000-' + n.toString(16).padStart(12, '0'),
    type: 'start',
    ruleId: 'policy-1',
    direction: 'egress',
    protocol: 6,
    sourceIp: '100.64.0.1',
    destIp: '100.64.0.2',
    sourcePort: 40000,
    destPort: 443,
    icmpType: null,
    icmpCode: null,
    rxPackets: 10,
    txPackets: 12,
    rxBytes: 5_000_000_000, // > 2^32: bigint columns
    txBytes: 2000,
    sourceResourceId: 'peer-a',
    destResourceId: 'peer-b',
    numOfStarts: 1,
    numOfEnds: 0,
    numOfDrops: 0,
    timestamp: T0 + n * 1000,
    windowStart: T0 + n * 1000 - 500,
    windowEnd: T0 + n * 1000,
    receivedAt: Date.now(),
    ...o,
  };
}

interface Backend {
  /** Opens a store on a fresh, empty database. */
  open(opts?: Omit<KyselyFlowStoreOptions, 'db'>): Promise<KyselyFlowStore>;
  /** Opens another store on the same database as the last open(). */
  reopen(opts?: Omit<KyselyFlowStoreOptions, 'db'>): Promise<KyselyFlowStore>;
  cleanup(): Promise<void>;
}

function sqliteBackend(): Backend {
  const dir = mkdtempSync(join(tmpdir(), 'nbfl-store-'));
  let n = 0;
  let file = '';
  const opened: KyselyFlowStore[] = [];
  return {
    async open(opts = {}) {
      file = join(dir, `flow-${++n}.db`);
      const s = await KyselyFlowStore.open({ ...opts, db: file });
      opened.push(s);
      return s;
    },
    async reopen(opts = {}) {
      const s = await KyselyFlowStore.open({ ...opts, db: file });
      opened.push(s);
      return s;
    },
    async cleanup() {
      for (const s of opened) await s.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function pgBackend(cluster: () => PgCluster): Backend {
  let n = 0;
  let current: Kysely<unknown> | undefined;
  const dbs: Array<Kysely<unknown>> = [];
  const opened: KyselyFlowStore[] = [];
  const conn = (database: string): pg.PoolConfig => ({ connectionString: dsnWithDatabase(cluster().dsn, database), max: 4 });
  return {
    async open(opts = {}) {
      const name = `nbfl_${process.pid}_${++n}`;
      const admin = new pg.Client(conn('postgres'));
      await admin.connect();
      await admin.query(`CREATE DATABASE ${name}`);
      await admin.end();
      current = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool(conn(name)) }) });
      dbs.push(current);
      const s = await KyselyFlowStore.open({ ...opts, db: current });
      opened.push(s);
      return s;
    },
    async reopen(opts = {}) {
      const s = await KyselyFlowStore.open({ ...opts, db: current! });
      opened.push(s);
      return s;
    },
    async cleanup() {
      for (const s of opened) await s.close().catch(() => {});
      for (const d of dbs) await d.destroy().catch(() => {});
    },
  };
}

function storeTests(b: () => Backend): void {
  test('add is idempotent on event_id; values round-trip (bigint counters too)', async () => {
    const s = await b().open({ flushIntervalMs: 5 });
    const r = rec({ icmpType: null });
    await Promise.all([s.add(r), s.add(r)]);
    await s.add(r);
    const page = await s.query();
    assert.equal(page.totalRecords, 1);
    assert.deepEqual(page.data[0], r);
    // migration is repeatable: a second store on the same database sees the data
    const s2 = await b().reopen();
    assert.equal((await s2.query()).totalRecords, 1);
  });

  test('batches: a full batch is written at once, a partial one on the timer', async () => {
    const s = await b().open({ batchSize: 10, flushIntervalMs: 400 });
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 10 }, () => s.add(rec())));
    assert.ok(Date.now() - t0 < 300, `full batch took ${Date.now() - t0} ms`);
    let done = false;
    const p = s.add(rec()).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(done, false, 'a partial batch waits for the timer');
    assert.equal((await s.query()).totalRecords, 10);
    await p;
    assert.ok(Date.now() - t0 >= 390);
    assert.equal((await s.query()).totalRecords, 11);
    // flush() writes the tail now
    const q = s.add(rec());
    await s.flush();
    await q;
    assert.equal((await s.query()).totalRecords, 12);
  });

  test('bounded memory: a flood never holds more than maxPending records, and all get stored', async () => {
    const s = await b().open({ batchSize: 50, maxPending: 200, flushIntervalMs: 5 });
    let maxSeen = 0;
    let sampling = true;
    const sample = (): void => {
      maxSeen = Math.max(maxSeen, s.pendingCount);
      if (sampling) setImmediate(sample);
    };
    sample();
    const N = 3000;
    const all = Array.from({ length: N }, () => s.add(rec()));
    maxSeen = Math.max(maxSeen, s.pendingCount);
    assert.equal(s.pendingCount, 200, 'the first maxPending are accepted, the rest wait');
    await Promise.all(all);
    sampling = false;
    assert.ok(maxSeen <= 200, `pending reached ${maxSeen}`);
    assert.equal((await s.query({ pageSize: 1 })).totalRecords, N);
  });

  test('retention: deleteOlderThan and the periodic sweep remove old events', async () => {
    const now = Date.now();
    const s = await b().open({ flushIntervalMs: 5 });
    await Promise.all([
      s.add(rec({ receivedAt: now - 40 * DAY })),
      s.add(rec({ receivedAt: now - 10 * DAY })),
      s.add(rec({ receivedAt: now - 1 * DAY })),
      s.add(rec({ receivedAt: now })),
    ]);
    assert.equal(await s.deleteOlderThan(now - 30 * DAY), 1);
    assert.equal((await s.query()).totalRecords, 3);
    const swept = await b().reopen({ retentionDays: 7, retentionIntervalMs: 50, now: () => now });
    for (let i = 0; i < 100 && (await swept.query()).totalRecords !== 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await swept.query()).totalRecords, 2);
    // later sweeps catch up with newly aged events
    await swept.add(rec({ receivedAt: now - 8 * DAY }));
    for (let i = 0; i < 100 && (await swept.query()).totalRecords !== 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await swept.query()).totalRecords, 2);
  });

  test('query: filters and paging', async () => {
    const s = await b().open({ flushIntervalMs: 5, batchSize: 100 });
    const recs: FlowEventRecord[] = [];
    for (let i = 0; i < 30; i++) {
      recs.push(
        rec({
          reporterId: i % 3 === 0 ? 'peer-a' : 'peer-b',
          reporterKey: i % 3 === 0 ? 'KEY-A' : 'KEY-B',
          userId: i % 2 === 0 ? 'user-1' : 'user-2',
          accountId: i < 25 ? 'acc-1' : 'acc-2',
          type: (['start', 'end', 'drop'] as const)[i % 3],
          protocol: i % 5 === 0 ? 1 : 6,
          direction: i % 4 === 0 ? 'ingress' : 'egress',
          sourceIp: i === 7 ? '10.99.0.7' : '100.64.0.1',
          sourceResourceId: `src-${i % 2}`,
          destResourceId: `dst-${i % 3}`,
          timestamp: T0 + i * 60_000,
        }),
      );
    }
    await Promise.all(recs.map((r) => s.add(r)));
    const count = async (q: Parameters<typeof s.query>[0]): Promise<number> => (await s.query(q)).totalRecords;
    const expect = (f: (r: FlowEventRecord, i: number) => boolean): number => recs.filter(f).length;
    assert.equal(await count({}), 30);
    assert.equal(await count({ accountId: 'acc-1' }), 25);
    assert.equal(await count({ peer: 'peer-a' }), expect((_, i) => i % 3 === 0));
    assert.equal(await count({ peer: 'KEY-B' }), expect((_, i) => i % 3 !== 0), 'peer matches the public key too');
    assert.equal(await count({ reporterId: 'peer-b' }), 20);
    assert.equal(await count({ userId: 'user-2' }), 15);
    assert.equal(await count({ type: 'drop' }), 10);
    assert.equal(await count({ protocol: 1 }), 6);
    assert.equal(await count({ direction: 'ingress' }), 8);
    assert.equal(await count({ sourceId: 'src-1' }), 15);
    assert.equal(await count({ destinationId: 'dst-2' }), 10);
    assert.equal(await count({ startDate: T0 + 10 * 60_000, endDate: new Date(T0 + 19 * 60_000) }), 10, 'inclusive range');
    assert.equal(await count({ search: '10.99.' }), 1);
    assert.equal(await count({ search: '%' }), 0, 'LIKE wildcards in search match literally');
    assert.equal(await count({ userId: 'user-1', type: 'start', accountId: 'acc-1' }), expect((r, i) => i % 2 === 0 && i % 3 === 0 && i < 25));

    const p1 = await s.query({ page: 1, pageSize: 7 });
    assert.deepEqual([p1.page, p1.pageSize, p1.totalRecords, p1.totalPages], [1, 7, 30, 5]);
    assert.equal(p1.data[0]!.timestamp, T0 + 29 * 60_000, 'newest first');
    const seen = new Set<string>();
    for (let p = 1; p <= 5; p++) {
      const page = await s.query({ page: p, pageSize: 7 });
      assert.equal(page.data.length, p < 5 ? 7 : 2);
      for (const r of page.data) seen.add(r.eventId);
      for (let i = 1; i < page.data.length; i++) assert.ok(page.data[i - 1]!.timestamp >= page.data[i]!.timestamp);
    }
    assert.equal(seen.size, 30, 'pages do not overlap');
    const beyond = await s.query({ page: 9, pageSize: 7 });
    assert.deepEqual([beyond.data.length, beyond.totalRecords, beyond.totalPages], [0, 30, 5]);
    assert.equal((await s.query()).pageSize, FLOW_QUERY_DEFAULT_PAGE_SIZE);
  });
}

describe('flow store on SQLite (better-sqlite3)', () => {
  let backend: Backend;
  before(() => {
    backend = sqliteBackend();
  });
  after(async () => backend.cleanup());
  storeTests(() => backend);

  test(':memory: works and the JSON response has NetBird\'s shape', async () => {
    const s = await KyselyFlowStore.open({ db: ':memory:', flushIntervalMs: 1 });
    try {
      await s.add(rec({ type: 'end', numOfStarts: 1, numOfEnds: 1, direction: 'ingress', protocol: 1, sourcePort: null, destPort: null, icmpType: 8, icmpCode: 0 }));
      await s.add(rec({ sourceIp: 'fd00::1', destIp: 'fd00::2', reporterId: null, userId: null, ruleId: null, sourceResourceId: null }));
      const page = await s.query({ pageSize: 10 });
      const json = toNetworkTrafficEventsResponse(page, {
        endpoint: (id, ip) => (id === 'peer-b' ? { id, type: 'PEER', name: 'laptop', os: 'Linux', dnsLabel: 'laptop.netbird.cloud' } : ip === '100.64.0.1' ? { name: 'server' } : undefined),
        user: (id) => ({ email: `${id}@example.com`, name: 'User One' }),
        policy: (id) => ({ name: `name of ${id}` }),
      });
      assert.deepEqual(Object.keys(json).sort(), ['data', 'page', 'page_size', 'total_pages', 'total_records']);
      assert.deepEqual([json.page, json.page_size, json.total_records, json.total_pages], [1, 10, 2, 1]);
      const [v6, icmp] = json.data;
      assert.deepEqual(Object.keys(icmp!).sort(), [
        'destination', 'direction', 'events', 'flow_id', 'icmp', 'num_of_drops', 'num_of_ends', 'num_of_starts', 'policy', 'protocol',
        'reporter_id', 'rx_bytes', 'rx_packets', 'source', 'tx_bytes', 'tx_packets', 'user', 'window_end', 'window_start',
      ]);
      assert.deepEqual(Object.keys(icmp!.source).sort(), ['address', 'dns_label', 'geo_location', 'id', 'name', 'os', 'type']);
      assert.deepEqual(icmp!.source.geo_location, { city_name: '', country_code: '' });
      assert.equal(icmp!.direction, 'INGRESS');
      assert.deepEqual(icmp!.icmp, { type: 8, code: 0 });
      assert.equal(icmp!.source.address, '100.64.0.1');
      assert.equal(icmp!.source.name, 'server');
      assert.deepEqual(icmp!.destination, {
        id: 'peer-b', type: 'PEER', name: 'laptop', geo_location: { city_name: '', country_code: '' }, os: 'Linux', address: '100.64.0.2', dns_label: 'laptop.netbird.cloud',
      });
      assert.deepEqual(icmp!.user, { id: 'user-1', email: 'user-1@example.com', name: 'User One' });
      assert.deepEqual(icmp!.policy, { id: 'policy-1', name: 'name of policy-1' });
      assert.equal(icmp!.reporter_id, 'peer-a');
      assert.deepEqual(icmp!.events.map((e) => e.type).sort(), ['TYPE_END', 'TYPE_START']);
      assert.match(icmp!.window_start, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(icmp!.rx_bytes, 5_000_000_000);
      assert.equal(v6!.source.address, '[fd00::1]:40000');
      assert.equal(v6!.destination.address, '[fd00::2]:443');
      assert.equal(v6!.direction, 'EGRESS');
      assert.equal(v6!.reporter_id, 'A'.repeat(43) + '=', 'falls back to the reporter key');
      assert.deepEqual(v6!.policy, { id: '', name: '' });
      assert.deepEqual(v6!.events, [{ type: 'TYPE_START', timestamp: new Date(page.data[0]!.timestamp).toISOString() }]);
      assert.equal(toNetworkTrafficEvent(page.data[0]!).source.type, 'UNKNOWN');
    } finally {
      await s.close();
    }
  });
});

const pgSkip = pgUnavailableReason();
describe('flow store on PostgreSQL (pg)', { skip: pgSkip ?? false }, () => {
  let cluster: PgCluster | undefined;
  let backend: Backend;
  before(async () => {
    cluster = await startPgCluster();
    backend = pgBackend(() => cluster!);
  });
  after(async () => {
    await backend?.cleanup();
    await cluster?.stop();
  });
  storeTests(() => backend);
});
if (pgSkip) console.log(`# ${pgSkip}`);

test('REST query parsing: names, values and errors', () => {
  const q = parseNetworkTrafficQuery({
    page: '2', page_size: '25', user_id: 'u1', reporter_id: 'peer-x', source_id: 's', destination_id: 'd', protocol: '17',
    type: 'TYPE_DROP', direction: 'EGRESS', search: '100.64', start_date: '2026-01-01T00:00:00Z', end_date: '2026-01-02T00:00:00Z',
    connection_type: 'P2P',
  });
  assert.deepEqual(q, {
    page: 2, pageSize: 25, userId: 'u1', peer: 'peer-x', sourceId: 's', destinationId: 'd', protocol: 17, type: 'drop',
    direction: 'egress', search: '100.64', startDate: Date.UTC(2026, 0, 1), endDate: Date.UTC(2026, 0, 2),
  });
  assert.deepEqual(parseNetworkTrafficQuery({}), { page: 1, pageSize: 50 });
  assert.deepEqual(parseNetworkTrafficQuery({ type: ['TYPE_START', 'TYPE_END'], page: '' }), { page: 1, pageSize: 50, type: 'start' });
  for (const bad of [{ page: '0' }, { page: 'x' }, { page_size: '50001' }, { protocol: '256' }, { type: 'FOO' }, { direction: 'up' },
    { start_date: 'yesterday' }, { start_date: '2026-01-02T00:00:00Z', end_date: '2026-01-01T00:00:00Z' }]) {
    assert.throws(() => parseNetworkTrafficQuery(bad), FlowQueryError, JSON.stringify(bad));
  }
});
