// End to end with the real daemon: two peers behind cone NATs (netbird-server with its embedded STUN)
// go P2P over ICE; cutting the direct UDP path with nftables moves them to the NetBird relay within a
// measured bound, restoring it brings P2P back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeshLab, NODE, SERVER } from '../client/mesh-lab.js';
import { waitUntil } from '../lab/index.js';
import type { PeerStatusJson } from '../../src/client/status.js';

async function peerOf(mesh: MeshLab, m: MeshLab['members'][number]): Promise<PeerStatusJson | undefined> {
  try {
    return (await mesh.status(m)).peers.details[0];
  } catch {
    return undefined;
  }
}

test('two NATed daemons: P2P via ICE, relay fallback when the direct path is cut, P2P again when restored', { timeout: 180_000 }, async (t) => {
  const mesh = await MeshLab.create('nbic');
  t.after(() => mesh.cleanup());
  // Restart the server with its embedded STUN advertised to peers (management `stuns`).
  await mesh.server.kill();
  mesh.server = mesh.srv.host.spawn(NODE, [...SERVER, '--data-dir', mesh.dataDir, '--listen', '0.0.0.0:33073', '--public-host', mesh.srv.ip, '--stun-port', '3478']);
  await mesh.server.waitFor(/listening on/, 30_000);
  const a = await mesh.addPeer('ia', 'cone');
  const b = await mesh.addPeer('ib', 'cone');
  const t0 = Date.now();
  await Promise.all([mesh.up(a), mesh.up(b)]);

  const p2p = async (): Promise<boolean> => {
    const [x, y] = await Promise.all([peerOf(mesh, a), peerOf(mesh, b)]);
    return x?.connectionType === 'P2P' && y?.connectionType === 'P2P' && x.status === 'Connected' && y.status === 'Connected';
  };
  assert.ok(await waitUntil(p2p, 60_000, 200), `never P2P\n${mesh.logs()}`);
  t.diagnostic(`P2P on both ${Date.now() - t0} ms after netbird up`);
  const pa = (await peerOf(mesh, a))!;
  assert.equal(pa.iceCandidateType.local, 'srflx');
  assert.equal(pa.iceCandidateType.remote, 'srflx');
  assert.equal(pa.iceCandidateEndpoint.remote.split(':')[0], b.nat.publicIp);
  assert.equal(pa.iceCandidateEndpoint.local.split(':')[0], a.nat.publicIp);
  assert.equal(pa.relayAddress, '');
  assert.ok(pa.latency > 0, 'latency from the ICE round trip');
  const ipB = await mesh.ip(b);
  assert.ok(await a.nat.host.waitPing(ipB, 10_000), 'ping over the direct path');

  // Cut: A's NAT router drops all UDP to and from B's public address (the relay runs over TCP).
  const cut = Date.now();
  const cutRules = `table ip nbiccut {
  chain cut {
    type filter hook forward priority -10; policy accept;
    ip daddr ${b.nat.publicIp} meta l4proto udp drop
    ip saddr ${b.nat.publicIp} meta l4proto udp drop
  }
}
`;
  await a.nat.router!.nft(cutRules);
  const relayed = async (): Promise<boolean> => {
    const [x, y] = await Promise.all([peerOf(mesh, a), peerOf(mesh, b)]);
    return x?.connectionType === 'Relayed' && y?.connectionType === 'Relayed';
  };
  assert.ok(await waitUntil(relayed, 30_000, 200), `did not fall back to the relay\n${mesh.logs()}`);
  const toRelay = Date.now() - cut;
  assert.ok(await a.nat.host.waitPing(ipB, 10_000), 'ping through the relay');
  const pingRelay = Date.now() - cut;
  t.diagnostic(`direct path cut: both Relayed after ${toRelay} ms, ping through the relay after ${pingRelay} ms`);
  // Reference timeouts: 6 s without ICE traffic = disconnected; keepalives every 4 s.
  assert.ok(toRelay < 15_000, `relay fallback took ${toRelay} ms`);

  // Restore: ICE retries (backoff from 5 s) and moves the peers back to the direct path.
  const restored = Date.now();
  await a.nat.router!.exec('nft', ['delete', 'table', 'ip', 'nbiccut']);
  assert.ok(await waitUntil(p2p, 90_000, 250), `not P2P again\n${mesh.logs()}`);
  const back = Date.now() - restored;
  t.diagnostic(`path restored: P2P again after ${back} ms`);
  assert.ok(await a.nat.host.waitPing(ipB, 10_000), 'ping over the restored direct path');

  // A longer outage: ICE fails (6 s disconnected + 6 s failed), retries with backoff meanwhile;
  // after the restore the next retry finds the direct path again.
  await a.nat.router!.nft(cutRules);
  const cut2 = Date.now();
  assert.ok(await waitUntil(relayed, 30_000, 200), 'relay fallback (second cut)');
  await new Promise((r) => setTimeout(r, 20_000));
  assert.ok(await relayed(), 'still relayed during the outage');
  assert.ok(await a.nat.host.waitPing(ipB, 10_000), 'relay carries traffic during the outage');
  const restored2 = Date.now();
  await a.nat.router!.exec('nft', ['delete', 'table', 'ip', 'nbiccut']);
  assert.ok(await waitUntil(p2p, 90_000, 250), `not P2P after the long outage\n${mesh.logs()}`);
  t.diagnostic(`long outage (${restored2 - cut2} ms): P2P again ${Date.now() - restored2} ms after the restore`);
});
