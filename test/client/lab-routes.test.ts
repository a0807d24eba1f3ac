// Network routes: a route to a LAN behind one peer (the routing peer, masquerading) lets another peer reach
// hosts on that LAN through the tunnel; deleting the route through the REST API takes it away again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitUntil } from '../lab/index.js';
import { MeshLab } from './mesh-lab.js';

test('a route through a routing peer reaches its LAN; removing it takes the route away', { timeout: 300_000 }, async (t) => {
  const mesh = await MeshLab.create('nbcr');
  t.after(() => mesh.cleanup());
  const router = await mesh.addPeer('rr');
  const client = await mesh.addPeer('rc');
  const lan = await mesh.lab.ns('lan');
  await mesh.lab.link(router.nat.host, 'lan0', ['10.99.0.1/24'], lan, 'eth0', ['10.99.0.5/24']);
  await Promise.all([mesh.up(router), mesh.up(client)]);
  assert.ok(await mesh.waitMesh(1, 60_000), `mesh did not form\n${mesh.logs()}`);
  assert.equal((await client.nat.host.exec('ping', ['-c1', '-W1', '10.99.0.5'], { check: false })).code === 0, false, 'LAN reachable before any route');

  const token = await mesh.adminToken();
  const peers = await mesh.api<{ id: string; name: string }[]>('GET', '/api/peers', undefined, token);
  const all = (await mesh.api<{ id: string; name: string }[]>('GET', '/api/groups', undefined, token)).find((g) => g.name === 'All')!;
  const route = await mesh.api<{ id: string }>('POST', '/api/routes', {
    description: 'office LAN', network_id: 'office', enabled: true, peer: peers.find((p) => p.name === 'rr')!.id,
    network: '10.99.0.0/24', metric: 9999, masquerade: true, groups: [all.id], keep_route: false,
  }, token);

  assert.ok(await client.nat.host.waitPing('10.99.0.5', 30_000), `client cannot reach the routed LAN\n${mesh.logs()}`);
  const routes = (await client.nat.host.exec('ip', ['route', 'show', '10.99.0.0/24'])).stdout;
  assert.match(routes, /10\.99\.0\.0\/24 dev wt0/);
  const fwd = (await router.nat.host.exec('cat', ['/proc/sys/net/ipv4/ip_forward'])).stdout.trim();
  assert.equal(fwd, '1');

  await mesh.api('DELETE', `/api/routes/${route.id}`, undefined, token);
  const gone = await waitUntil(async () => (await client.nat.host.exec('ip', ['route', 'show', '10.99.0.0/24'])).stdout.trim() === '', 15_000, 300);
  assert.ok(gone, 'the route stayed after it was deleted');
  assert.notEqual((await client.nat.host.exec('ping', ['-c1', '-W1', '10.99.0.5'], { check: false })).code, 0);
});
