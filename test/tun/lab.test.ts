// The netns lab library itself (test/lab): NAT flavours behave as documented, processes and
// namespaces are cleaned up, and the sweeper removes leftovers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, run, sweepStale, waitUntil } from '../lab/index.js';
import { createUdpBind, type LinuxUdpBind } from '../../src/tun/index.js';
import type { Endpoint, PacketBatch } from '../../src/wireguard/bind.js';

function oneByte(): PacketBatch {
  return { buf: Buffer.from([1]), offsets: new Uint32Array([0]), lengths: new Uint32Array([1]), count: 1 };
}

/** Records the sources a bind receives from. */
function recorder(b: LinuxUdpBind): Endpoint[] {
  const seen: Endpoint[] = [];
  b.setReceiveHandler((batch, from) => {
    for (let i = 0; i < batch.count; i++) seen.push(from[i]!);
  });
  return seen;
}

test('lab: cone NAT keeps the port, symmetric NAT changes it, unsolicited inbound dropped', async (t) => {
  const lab = await Lab.create({ prefix: 'nbtn' });
  const binds: LinuxUdpBind[] = [];
  t.after(async () => {
    for (const b of binds) await b.close();
    await lab.cleanup();
  });
  const inet = await lab.internet();
  const srv = await lab.ns('srv');
  await inet.attach(srv, '10.77.0.2');
  const cone = await lab.natHost('h1', 'cone');
  const sym = await lab.natHost('h2', 'symmetric');
  const pub = await lab.natHost('h3', 'none');
  assert.equal(cone.publicIp, '10.77.0.101');
  assert.equal(cone.ip, '192.168.1.2');
  assert.equal(sym.publicIp, '10.77.0.102');
  assert.equal(pub.router, undefined);

  assert.ok(await cone.host.waitPing('10.77.0.2', 3000), 'NATed host reaches the internet');
  assert.ok(await pub.host.waitPing('10.77.0.2', 3000));
  assert.equal((await srv.exec('ping', ['-c1', '-W1', cone.ip], { check: false })).code !== 0, true, 'LAN address not reachable');

  const open = async (ns: string, port: number): Promise<LinuxUdpBind> => {
    const b = await createUdpBind({ port, netns: ns, host: '0.0.0.0' });
    binds.push(b);
    return b;
  };
  const s1 = await open(srv.name, 3478);
  const s2 = await open(srv.name, 3479);
  const s3 = await open(srv.name, 3480);
  const seen1 = recorder(s1);
  const seen2 = recorder(s2);
  const seen3 = recorder(s3);
  const hc = await open(cone.host.name, 40000);
  const hs = await open(sym.host.name, 40000);
  const gotCone = recorder(hc);
  recorder(hs);

  for (const h of [hc, hs]) {
    h.send(oneByte(), [h.endpoint('10.77.0.2:3478')]);
    h.send(oneByte(), [h.endpoint('10.77.0.2:3479')]);
  }
  assert.ok(await waitUntil(() => seen1.length === 2 && seen2.length === 2, 3000));
  const from = (seen: Endpoint[], ip: string): string => seen.map(String).find((s) => s.startsWith(ip + ':'))!;
  assert.equal(from(seen1, '10.77.0.101'), '10.77.0.101:40000', 'cone: source port kept');
  assert.equal(from(seen2, '10.77.0.101'), '10.77.0.101:40000', 'cone: same mapping for another destination');
  const symA = from(seen1, '10.77.0.102');
  const symB = from(seen2, '10.77.0.102');
  assert.notEqual(symA, symB, 'symmetric: a new mapping per destination');

  // The server answers through the mapping; a third party port is dropped by the NAT.
  s1.send(oneByte(), [seen1.find((e) => String(e).startsWith('10.77.0.101'))!]);
  assert.ok(await waitUntil(() => gotCone.length === 1, 3000), 'reply through the mapping arrives');
  s3.send(oneByte(), [s3.endpoint('10.77.0.101:40000')]);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(gotCone.length, 1, 'unsolicited packet from another port dropped');
  assert.equal(seen3.length, 0);
});

test('lab: cleanup kills processes and removes namespaces; sweepStale removes leftovers', async () => {
  const lab = await Lab.create({ prefix: 'nbtn' });
  const ns = await lab.ns('x');
  const p = ns.spawn('sleep', ['60']);
  assert.ok(p.running);
  // `ip netns exec` enters the namespace right after the fork: wait for it.
  assert.ok(await waitUntil(async () => new RegExp(`\\b${p.pid}\\b`).test((await run('ip', ['netns', 'pids', ns.name])).stdout), 3000));
  await lab.cleanup();
  assert.equal(p.running, false);
  assert.doesNotMatch((await run('ip', ['netns', 'list'])).stdout, new RegExp(ns.name));

  const stale = `nbtn-sweep${process.pid}`;
  await run('ip', ['netns', 'add', `${stale}-zz`]);
  try {
    assert.deepEqual(await sweepStale(stale), [], 'fresh namespaces are left alone by default');
    assert.deepEqual(await sweepStale(stale, 0), [`${stale}-zz`]);
    assert.doesNotMatch((await run('ip', ['netns', 'list'])).stdout, new RegExp(stale));
  } finally {
    await run('ip', ['netns', 'del', `${stale}-zz`], { check: false });
  }
});
