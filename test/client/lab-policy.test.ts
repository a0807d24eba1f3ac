// Policy enforcement end to end: a policy allowing only TCP port 22 from group A to group B is enforced
// by the peers' packet filters, and a policy change through the REST API takes effect without restarts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, waitUntil } from '../lab/index.js';
import { MeshLab } from './mesh-lab.js';

interface ApiPeer { id: string; name: string; ip: string; connected: boolean }
interface ApiPolicy { id: string; name: string }

test('only TCP 22 from group A to group B gets through; changing the policy applies live', { timeout: 300_000 }, async (t) => {
  const mesh = await MeshLab.create('nbcp');
  t.after(() => mesh.cleanup());
  const a = await mesh.addPeer('pa');
  const b = await mesh.addPeer('pb');
  await Promise.all([mesh.up(a), mesh.up(b)]);
  assert.ok(await mesh.waitMesh(1, 60_000), `mesh did not form\n${mesh.logs()}`);
  const ipA = await mesh.ip(a);
  const ipB = await mesh.ip(b);
  assert.ok(await a.nat.host.waitPing(ipB, 10_000), 'default All-to-All policy should allow ping');

  const token = await mesh.adminToken();
  const peers = await mesh.api<ApiPeer[]>('GET', '/api/peers', undefined, token);
  const id = (name: string): string => peers.find((p) => p.name === name)!.id;
  const groupA = await mesh.api<{ id: string }>('POST', '/api/groups', { name: 'A', peers: [id('pa')] }, token);
  const groupB = await mesh.api<{ id: string }>('POST', '/api/groups', { name: 'B', peers: [id('pb')] }, token);
  for (const p of await mesh.api<ApiPolicy[]>('GET', '/api/policies', undefined, token)) {
    await mesh.api('DELETE', `/api/policies/${p.id}`, undefined, token);
  }
  const ssh = await mesh.api<ApiPolicy>('POST', '/api/policies', {
    name: 'A to B ssh', enabled: true,
    rules: [{ name: 'ssh', enabled: true, action: 'accept', bidirectional: false, protocol: 'tcp', ports: ['22'], sources: [groupA.id], destinations: [groupB.id] }],
  }, token);

  // B listens on 22 and 80 and answers each connection (replies must flow back to A).
  const l22 = b.nat.host.spawn('socat', ['TCP-LISTEN:22,reuseaddr,fork', 'SYSTEM:echo pong-22']);
  const l80 = b.nat.host.spawn('socat', ['TCP-LISTEN:80,reuseaddr,fork', 'SYSTEM:echo pong-80']);
  const lA = a.nat.host.spawn('socat', ['TCP-LISTEN:22,reuseaddr,fork', 'SYSTEM:echo pong-a']);
  t.after(async () => {
    await Promise.all([l22.kill(), l80.kill(), lA.kill()]);
  });
  await sleep(300);
  const tcp = async (from: typeof a, ip: string, port: number): Promise<string> => {
    const r = await from.nat.host.exec('socat', ['-T2', '-', `TCP:${ip}:${port},connect-timeout=2`], { check: false, timeoutMs: 6000 });
    return r.code === 0 ? r.stdout.trim() : '';
  };
  const ping = async (from: typeof a, ip: string): Promise<boolean> =>
    (await from.nat.host.exec('ping', ['-c1', '-W1', '-n', ip], { check: false })).code === 0;

  // The new maps arrive within a few seconds (coalescing window 1 s).
  const applied = await waitUntil(async () => !(await ping(a, ipB)), 15_000, 500);
  assert.ok(applied, 'ping from A to B still passes after the policy change');
  assert.equal(await tcp(a, ipB, 22), 'pong-22', 'TCP 22 from A to B (and its reply) must pass');
  assert.equal(await tcp(a, ipB, 80), '', 'TCP 80 from A to B must be refused');
  assert.equal(await ping(b, ipA), false, 'ping from B to A must be refused');
  assert.equal(await tcp(b, ipA, 22), '', 'the policy is one-way: B may not open TCP 22 on A');

  // Loosen the policy through the REST API: ICMP and all ports both ways, no restart.
  await mesh.api('PUT', `/api/policies/${ssh.id}`, {
    name: 'A and B all', enabled: true,
    rules: [{ name: 'all', enabled: true, action: 'accept', bidirectional: true, protocol: 'all', sources: [groupA.id], destinations: [groupB.id] }],
  }, token);
  const opened = await waitUntil(async () => (await ping(b, ipA)) && (await ping(a, ipB)), 15_000, 500);
  assert.ok(opened, 'the loosened policy did not take effect');
  assert.equal(await tcp(a, ipB, 80), 'pong-80');
  assert.equal(await tcp(b, ipA, 22), 'pong-a');
});
