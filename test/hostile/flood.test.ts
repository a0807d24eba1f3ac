// Issue 15 item 1: a flood of idle and slow (slowloris) connections from one process must neither
// lock other clients out of the one port nor hold sockets forever. The real server runs as a child
// process; the flood, the /health probes, a gRPC Sync stream and relay WebSockets all come from here
// (one address, 127.0.0.1), so the server cannot tell the flood from the legitimate clients by address.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { TestPeer, tempDir } from '../management/helpers.js';
import { health, healthDuring, spawnServer, startFlood } from './harness.js';

const HANDSHAKE_TIMEOUT_S = 3;
const FLOOD_MS = 9000;

const longestOf = (xs: number[]): number => xs.reduce((a, b) => Math.max(a, b), 0);

const relayErrors: string[] = [];
function relayOpens(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/relay`, { handshakeTimeout: 4000 });
    ws.on('open', () => {
      ws.close();
      resolve(true);
    });
    ws.on('error', (e) => {
      relayErrors.push(e.message);
      resolve(false);
    });
  });
}

test('a sustained flood of 1,500 idle and slow connections (1,200 silent, 300 slowloris) from one process: /health, gRPC and relay keep being served; flood sockets are cut at the handshake deadline', { timeout: 90_000 }, async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const dataDir = join(tmp.dir, 'data');
  const key = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'server', 'run-cli.ts'), 'setup-keys', 'create', '--reusable', '--data-dir', dataDir], { encoding: 'utf8' });
  assert.equal(key.status, 0, key.stderr);
  const srv = await spawnServer({ dataDir, env: { NETBIRD_HANDSHAKE_TIMEOUT: String(HANDSHAKE_TIMEOUT_S) } });
  t.after(() => srv.stop());
  assert.ok(await health(srv.port));

  // A peer with a live Sync stream before the flood starts.
  const peer = new TestPeer(`127.0.0.1:${srv.port}`, 'steady');
  t.after(() => peer.close());
  await peer.login(key.stdout.trim());
  const inbox = await peer.sync();
  await inbox.next();
  const syncEnded = (): boolean => inbox.ended !== undefined;

  const flood = startFlood(srv.port, { idle: 1200, slow: 300, trickleMs: 1000 });
  try {
    await new Promise((r) => setTimeout(r, 1000)); // let the flood build up
    assert.ok(flood.stats.opened >= 1500, `the flood did not get going (${flood.stats.opened} connections opened)`);
    const probes = healthDuring(srv.port, FLOOD_MS - 1000);
    // Meanwhile new gRPC calls and relay WebSockets from the same address get through.
    const later = new TestPeer(`127.0.0.1:${srv.port}`, 'during-flood');
    t.after(() => later.close());
    const grpcOk = await later.serverKey().then(
      () => true,
      () => false,
    );
    const relayResults: boolean[] = [];
    for (let i = 0; i < 5; i++) {
      relayResults.push(await relayOpens(srv.port));
      await new Promise((r) => setTimeout(r, 500));
    }
    const h = await probes;
    const stats = await flood.stop();
    const rss = srv.rss();
    t.diagnostic(
      `/health during flood: ${h.ok}/${h.total} (${(h.rate * 100).toFixed(1)}%); flood opened ${stats.opened}, peak ${stats.peakOpen} open, ` +
        `server closed ${stats.closedByServer} (idle ${stats.lifetimes.idle.length}, slow ${stats.lifetimes.slow.length}), ` +
        `longest idle ${longestOf(stats.lifetimes.idle)} ms, longest slow ${longestOf(stats.lifetimes.slow)} ms; relay ${relayResults.filter(Boolean).length}/5 ${relayErrors.join('; ')}; rss ${(rss / 1048576).toFixed(0)} MB`,
    );
    assert.ok(h.total >= 15, `only ${h.total} probes ran`);
    assert.ok(h.rate >= 0.9, `/health answered ${h.ok}/${h.total} during the flood`);
    assert.ok(grpcOk, 'a new gRPC call failed during the flood');
    assert.ok(relayResults.filter(Boolean).length >= 4, `relay WebSockets: ${relayResults.join(',')}`);
    assert.equal(syncEnded(), false, `the Sync stream opened before the flood was cut: ${JSON.stringify(inbox.ended)} ${String(inbox.ended)}`);
    // Slow and idle connections were cut by the deadline (generous slack for a loaded machine),
    // the slow ones although they kept sending bytes.
    assert.ok(stats.lifetimes.slow.length >= 250, `only ${stats.lifetimes.slow.length} slow connections were closed by the server`);
    assert.ok(stats.lifetimes.idle.length >= 1000, `only ${stats.lifetimes.idle.length} idle connections were closed by the server`);
    for (const kind of ['idle', 'slow'] as const) {
      const longest = longestOf(stats.lifetimes[kind]);
      assert.ok(longest <= (HANDSHAKE_TIMEOUT_S + 4) * 1000, `a ${kind} connection was held ${longest} ms`);
    }
    assert.ok(rss < 400 * 1048576, `server RSS ${rss} bytes after the flood`);
  } finally {
    await flood.stop();
  }
  // Afterwards everything is back to normal.
  assert.ok(await health(srv.port));
  assert.equal(syncEnded(), false);
});
