// Traffic events end to end: the account turns them on through the REST API, two peers exchange
// traffic, and their packet filters' connection events reach the collector in netbird-server and are
// served at /api/events/network-traffic with the right peers, protocols, ports and counters; a denied
// connection appears as a drop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, waitUntil } from '../lab/index.js';
import { MeshLab } from './mesh-lab.js';

interface Ev {
  reporter_id: string;
  protocol: number;
  direction: string;
  source: { id: string; address: string };
  destination: { id: string; address: string };
  rx_packets: number;
  tx_packets: number;
  rx_bytes: number;
  tx_bytes: number;
  num_of_drops: number;
  num_of_starts: number;
  events: { type: string }[];
}

test('traffic between peers shows up as flow events; a denied connection as a drop', { timeout: 300_000 }, async (t) => {
  const mesh = await MeshLab.create('nbcw', ['--flow-interval', '2']);
  t.after(() => mesh.cleanup());
  const a = await mesh.addPeer('wa');
  const b = await mesh.addPeer('wb');
  await Promise.all([mesh.up(a), mesh.up(b)]);
  assert.ok(await mesh.waitMesh(1, 60_000), `mesh did not form\n${mesh.logs()}`);
  const ipA = await mesh.ip(a);
  const ipB = await mesh.ip(b);

  const token = await mesh.adminToken();
  const [account] = await mesh.api<{ id: string; settings: { extra: Record<string, unknown> } }[]>('GET', '/api/accounts', undefined, token);
  const updated = await mesh.api<{ settings: { extra: Record<string, unknown> } }>('PUT', `/api/accounts/${account!.id}`, {
    settings: { ...account!.settings, extra: { ...account!.settings.extra, network_traffic_logs_enabled: true, network_traffic_packet_counter_enabled: true } },
  }, token);
  assert.equal(updated.settings.extra.network_traffic_logs_enabled, true);
  const peers = await mesh.api<{ id: string; name: string }[]>('GET', '/api/peers', undefined, token);
  const idA = peers.find((p) => p.name === 'wa')!.id;
  const idB = peers.find((p) => p.name === 'wb')!.id;

  // Only TCP 22 from A to B: a TCP 80 attempt is dropped by B's filter.
  const groupA = await mesh.api<{ id: string }>('POST', '/api/groups', { name: 'A', peers: [idA] }, token);
  const groupB = await mesh.api<{ id: string }>('POST', '/api/groups', { name: 'B', peers: [idB] }, token);
  for (const p of await mesh.api<{ id: string }[]>('GET', '/api/policies', undefined, token)) await mesh.api('DELETE', `/api/policies/${p.id}`, undefined, token);
  await mesh.api('POST', '/api/policies', {
    name: 'ssh', enabled: true,
    rules: [{ name: 'ssh', enabled: true, action: 'accept', bidirectional: false, protocol: 'tcp', ports: ['22'], sources: [groupA.id], destinations: [groupB.id] }],
  }, token);
  const l22 = b.nat.host.spawn('socat', ['TCP-LISTEN:22,reuseaddr,fork', 'SYSTEM:head -c 5000 /dev/zero']);
  t.after(() => l22.kill());
  await sleep(3000); // the new policy and FlowConfig reach the peers
  const r22 = await a.nat.host.exec('socat', ['-T3', '-u', `TCP:${ipB}:22,connect-timeout=3`, 'STDOUT'], { check: false, timeoutMs: 8000 });
  assert.equal(r22.stdout.length, 5000, `TCP 22 transfer failed: ${r22.stderr}`);
  const r80 = await a.nat.host.exec('socat', ['-T2', '-u', `TCP:${ipB}:80,connect-timeout=2`, 'STDOUT'], { check: false, timeoutMs: 6000 });
  assert.notEqual(r80.code, 0, 'TCP 80 should be refused');

  let events: Ev[] = [];
  const found = await waitUntil(async () => {
    events = (await mesh.api<{ data: Ev[] }>('GET', '/api/events/network-traffic?page_size=200', undefined, token)).data;
    const tcp22 = events.some((e) => e.protocol === 6 && e.reporter_id === idB && e.num_of_drops === 0 && e.tx_bytes > 5000);
    const drop80 = events.some((e) => e.protocol === 6 && e.reporter_id === idB && e.num_of_drops > 0);
    return tcp22 && drop80;
  }, 40_000, 1000);
  assert.ok(found, `expected flow events not found: ${JSON.stringify(events, null, 1)}\n${mesh.logs()}`);

  // B's record of A's accepted connection: ingress, from A's overlay address, with counters.
  const accepted = events.find((e) => e.protocol === 6 && e.reporter_id === idB && e.num_of_drops === 0 && e.tx_bytes > 5000)!;
  assert.equal(accepted.direction, 'INGRESS');
  assert.equal(accepted.source.address.split(':')[0], ipA);
  assert.equal(accepted.destination.address, `${ipB}:22`);
  assert.ok(accepted.rx_packets > 0 && accepted.tx_packets > 0);
  const dropped = events.find((e) => e.protocol === 6 && e.reporter_id === idB && e.num_of_drops > 0)!;
  assert.equal(dropped.destination.address, `${ipB}:80`);
  // A reports its own outgoing connection too (egress).
  assert.ok(events.some((e) => e.reporter_id === idA && e.direction === 'EGRESS' && e.protocol === 6), 'A reported nothing');
});
