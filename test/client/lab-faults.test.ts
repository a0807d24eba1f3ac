// Faults: restart netbird-server (management, signal and relay), restart a peer's daemon. The mesh must
// recover without user action; the time it takes is measured and reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeshLab } from './mesh-lab.js';

const RECOVERY_BOUND_MS = 60_000;

test('the mesh recovers from a server restart and a peer restart without user action', { timeout: 300_000 }, async (t) => {
  const mesh = await MeshLab.create('nbcf');
  t.after(() => mesh.cleanup());
  const a = await mesh.addPeer('fa');
  const b = await mesh.addPeer('fb');
  await Promise.all([mesh.up(a), mesh.up(b)]);
  assert.ok(await mesh.waitMesh(1, 60_000), `mesh did not form\n${mesh.logs()}`);
  const ipB = await mesh.ip(b);
  const ipA = await mesh.ip(a);

  // 1. netbird-server restart (same data dir): management, signal and relay all go away and come back.
  await mesh.server.kill();
  const t0 = Date.now();
  await mesh.startServer();
  const serverBack = await a.nat.host.waitPing(ipB, RECOVERY_BOUND_MS);
  const serverMs = Date.now() - t0;
  assert.ok(serverBack, `no connectivity ${RECOVERY_BOUND_MS} ms after the server restart\n${mesh.logs()}`);
  assert.ok(await mesh.waitMesh(1, 30_000), 'status does not show the peers connected again');
  const st = await mesh.status(a);
  assert.equal(st.management.connected, true);
  assert.equal(st.signal.connected, true);
  t.diagnostic(`recovered from a server restart in ${serverMs} ms`);

  // 2. A peer's daemon dies and is started again: it reconnects by itself (connectOnStart) with the same address.
  await b.daemon.kill();
  const t1 = Date.now();
  await mesh.startDaemon(b);
  const peerBack = await a.nat.host.waitPing(ipB, RECOVERY_BOUND_MS);
  const peerMs = Date.now() - t1;
  assert.ok(peerBack, `no connectivity ${RECOVERY_BOUND_MS} ms after the peer restart\n${mesh.logs()}`);
  assert.equal(await mesh.ip(b), ipB);
  assert.ok(await b.nat.host.waitPing(ipA, 10_000));
  t.diagnostic(`recovered from a peer restart in ${peerMs} ms`);
});
