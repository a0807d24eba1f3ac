// Interop of our userspace WireGuard (Device + TUN + UDP bind, in this process, inside namespace a)
// with Debian's wireguard-go in namespace b. See test/lab/wgpair.ts for the addresses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, sleep, waitUntil } from '../lab/index.js';
import { tunOffloadStats } from '../../src/tun/index.js';
import { oursVsWireguardGo, A_TUN, B_TUN, A_TUN6, B_TUN6, A_UNDERLAY, WG_PORT, type OursVsGo, type PairOptions } from '../lab/wgpair.js';

async function setup(t: { after(fn: () => Promise<void>): void }, opts: PairOptions = {}): Promise<{ lab: Lab; p: OursVsGo }> {
  const lab = await Lab.create({ prefix: 'nbtn' });
  // One hook: close our device (TUN, socket) before the namespaces go.
  let p: OursVsGo | undefined;
  t.after(async () => {
    await p?.device.close();
    await lab.cleanup();
  });
  p = await oursVsWireguardGo(lab, opts);
  return { lab, p };
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (d) => h.update(d)).on('end', () => resolve(h.digest('hex'))).on('error', reject);
  });
}

test('we initiate the handshake; ping both ways over IPv4 and IPv6', async (t) => {
  const { p } = await setup(t, { initiator: 'a' });
  assert.equal(await p.wg.latestHandshake(p.keysA.publicKey), 0);
  assert.ok(await p.a.waitPing(B_TUN, 10_000), 'ping a -> b through the tunnel');
  assert.ok((await p.wg.latestHandshake(p.keysA.publicKey)) > 0, 'wireguard-go saw a handshake');
  assert.equal(p.device.stats().handshakesCompleted, 1);
  const r = await p.b.exec('ping', ['-c3', '-i0.2', '-W2', A_TUN]);
  assert.match(r.stdout, /3 received/);
  const r6 = await p.a.exec('ping', ['-6', '-c3', '-i0.2', '-W2', B_TUN6]);
  assert.match(r6.stdout, /3 received/);
  const r6b = await p.b.exec('ping', ['-6', '-c3', '-i0.2', '-W2', '-s', '1300', A_TUN6]);
  assert.match(r6b.stdout, /3 received/);
  // wireguard-go learned our endpoint from the handshake (it had none configured).
  assert.equal(await p.wg.endpoint(p.keysA.publicKey), `${A_UNDERLAY}:${WG_PORT}`);
  const peer = p.device.stats().peers[0]!;
  assert.ok(peer.rxPackets >= 9 && peer.txPackets >= 9, JSON.stringify(peer));
});

for (const initiator of ['a', 'b'] as const) {
  test(`WireGuard over an IPv6 underlay (dual-stack socket), ${initiator === 'a' ? 'we initiate' : 'wireguard-go initiates'}`, async (t) => {
    const { p } = await setup(t, { underlay6: true, initiator });
    const [from, to] = initiator === 'a' ? [p.a, B_TUN] : [p.b, A_TUN];
    assert.ok(await from.waitPing(to, 10_000), `ping from ${initiator} through the tunnel`);
    assert.equal(await p.wg.endpoint(p.keysA.publicKey), `[fd01::1]:${WG_PORT}`);
    assert.equal(p.device.stats().peers[0]!.endpoint, `[fd01::2]:${WG_PORT}`);
    assert.match((await (initiator === 'a' ? p.b : p.a).exec('ping', ['-c2', '-i0.2', '-W2', initiator === 'a' ? A_TUN : B_TUN])).stdout, /2 received/);
  });
}

test('wireguard-go initiates the handshake; ping both ways', async (t) => {
  const { p } = await setup(t, { initiator: 'b' });
  // We know no endpoint: a ping from our side cannot start anything.
  const early = await p.a.exec('ping', ['-c1', '-W1', B_TUN], { check: false });
  assert.notEqual(early.code, 0);
  assert.ok(await p.b.waitPing(A_TUN, 10_000), 'ping b -> a through the tunnel');
  assert.equal(p.device.stats().peers[0]!.endpoint, `10.1.0.2:${WG_PORT}`, 'we learned the endpoint from the initiation');
  const r = await p.a.exec('ping', ['-c3', '-i0.2', '-W2', B_TUN]);
  assert.match(r.stdout, /3 received/);
});

// With TUN offload on (the default) the kernel hands our device 64 KiB TCP super-packets that the
// addon splits; with it off every packet is read alone. Both must deliver the bytes exactly.
for (const [label, offload, size, dst, tunBatchSize] of [
  ['100 MB a->b over IPv4, TUN offload', true, 100, B_TUN, undefined],
  ['100 MB b->a over IPv4, TUN offload', true, 100, A_TUN, undefined],
  ['20 MB a->b over IPv6, TUN offload', true, 20, B_TUN6, undefined],
  ['20 MB b->a over IPv6, TUN offload', true, 20, A_TUN6, undefined],
  ['20 MB a->b over IPv4, no TUN offload', false, 20, B_TUN, undefined],
  // 8-packet read batches: every super-packet is split across several batches.
  ['20 MB a->b over IPv4, TUN offload, read batches of 8', true, 20, B_TUN, 8],
] as const) {
  test(`TCP transfer through the tunnel arrives intact (sha256): ${label}`, async (t) => {
    const prev = process.env.NETBIRD_TUN_OFFLOAD;
    process.env.NETBIRD_TUN_OFFLOAD = offload ? '1' : '0';
    let lab: Lab;
    let p: OursVsGo;
    try {
      ({ lab, p } = await setup(t, { tunBatchSize }));
    } finally {
      if (prev === undefined) delete process.env.NETBIRD_TUN_OFFLOAD;
      else process.env.NETBIRD_TUN_OFFLOAD = prev;
    }
    assert.equal(p.tun.offload, offload);
    const dir = lab.tmpdir();
    const src = join(dir, 'in.bin');
    const dstFile = join(dir, 'out.bin');
    const chunk = randomBytes(1024 * 1024);
    const all = Buffer.alloc(size * 1024 * 1024);
    for (let i = 0; i < size; i++) {
      chunk[0] = i; // every MiB differs
      chunk.copy(all, i * chunk.length);
    }
    writeFileSync(src, all);
    const want = createHash('sha256').update(all).digest('hex');
    const listen = dst.includes(':') ? `TCP6-LISTEN:5001,bind=[${dst}],reuseaddr` : `TCP-LISTEN:5001,bind=${dst},reuseaddr`;
    // Receiver in the namespace that owns dst; the other side sends.
    const [rx, tx] = dst === A_TUN || dst === A_TUN6 ? [p.a, p.b] : [p.b, p.a];
    const before = tunOffloadStats();
    const server = rx.spawn('socat', ['-u', listen, `CREATE:${dstFile}`]);
    assert.ok(await rx.waitListening(5001), 'socat listening');
    const started = Date.now();
    const connect = dst.includes(':') ? `TCP6:[${dst}]:5001` : `TCP:${dst}:5001`;
    await tx.exec('socat', ['-u', `OPEN:${src}`, connect], { timeoutMs: 120_000 });
    assert.equal(await server.exited, 0, server.output());
    const secs = (Date.now() - started) / 1000;
    assert.equal(await sha256File(dstFile), want);
    const after = tunOffloadStats();
    const tso = after.tsoSegments - before.tsoSegments;
    const gro = after.groSegments - before.groSegments;
    t.diagnostic(`${size} MiB in ${secs.toFixed(1)} s (${((size * 8 * 1.048576) / secs).toFixed(0)} Mbit/s); packets via TSO ${tso}, merged for GRO ${gro}`);
    assert.equal(after.groDisabled, false);
    // The offload paths really carried the data (and not at all without offload).
    if (!offload) assert.equal(tso + gro, 0);
    else if (tx === p.a) assert.ok(tso > 1000, `TSO split ${tso} packets`);
    else assert.ok(gro > 1000, `GRO merged ${gro} packets`);
    const st = p.device.stats();
    assert.equal(st.drops.badAuth + st.drops.replayed + st.drops.notAllowed, 0, JSON.stringify(st.drops));
  });
}

test('UDP through the tunnel (checksums finished by us under TUN offload), both directions, IPv4 and IPv6', async (t) => {
  const { p } = await setup(t);
  assert.equal(p.tun.offload, true);
  for (const [rx, tx, dst] of [[p.b, p.a, B_TUN], [p.a, p.b, A_TUN], [p.b, p.a, B_TUN6], [p.a, p.b, A_TUN6]] as const) {
    const server = rx.spawn('iperf3', ['-s', '-1', '-B', dst]);
    assert.ok(await rx.waitListening(5201), 'iperf3 server listening');
    const r = await tx.exec('iperf3', ['-c', dst, '-u', '-b', '10M', '-t', '1', '-l', '1200', '-J'], { check: false });
    await server.exited;
    const j = JSON.parse(r.stdout) as { end?: { sum?: { packets?: number; lost_packets?: number } }; error?: string };
    const sum = j.end?.sum;
    assert.ok(sum && sum.packets! > 500, `${dst}: ${j.error ?? r.stdout.slice(-300)}`);
    // A wrong checksum would lose everything; allow some loss for a busy machine.
    assert.ok(sum.lost_packets! <= sum.packets! * 0.2, `${dst}: lost ${sum.lost_packets}/${sum.packets}`);
  }
});

test('rekey with shortened timers keeps traffic flowing', async (t) => {
  const { p } = await setup(t, { initiator: 'a', timers: { rekeyAfterTime: 2000, rejectAfterTime: 6000, keepaliveTimeout: 1000, rekeyTimeout: 1000 } });
  assert.ok(await p.a.waitPing(B_TUN, 10_000));
  const firstHs = await p.wg.latestHandshake(p.keysA.publicKey);
  const r = await p.a.exec('ping', ['-c', '35', '-i', '0.2', '-W', '1', B_TUN], { check: false });
  const m = /(\d+) received/.exec(r.stdout);
  const received = Number(m?.[1] ?? 0);
  assert.ok(received >= 30, `ping during rekeys: ${r.stdout}`);
  const hs = p.device.stats().handshakesCompleted;
  assert.ok(hs >= 3, `expected >= 3 handshakes in 7 s with rekeyAfterTime 2 s, got ${hs}`);
  assert.ok((await p.wg.latestHandshake(p.keysA.publicKey)) > firstHs, 'wireguard-go saw the newer handshakes');
  // Sessions older than rejectAfterTime are gone, yet traffic still works (new keys).
  assert.match((await p.b.exec('ping', ['-c2', '-i0.2', '-W2', A_TUN])).stdout, /2 received/);
});

test('roaming: our underlay address changes and wireguard-go follows', async (t) => {
  const { p } = await setup(t, { initiator: 'a', persistentKeepalive: 1 });
  assert.ok(await p.a.waitPing(B_TUN, 10_000));
  assert.equal(await p.wg.endpoint(p.keysA.publicKey), `${A_UNDERLAY}:${WG_PORT}`);
  // Move a from 10.1.0.1 to 10.1.0.3 (promote_secondaries keeps the new one when the old goes).
  await p.a.sysctl('net.ipv4.conf.eth0.promote_secondaries', 1);
  await p.a.addr('eth0', '10.1.0.3/24');
  await p.a.delAddr('eth0', `${A_UNDERLAY}/24`);
  // Our next packet (keepalive every second, or this ping) comes from the new address.
  assert.ok(await p.a.waitPing(B_TUN, 10_000), 'ping after the address change');
  assert.ok(
    await waitUntil(async () => (await p.wg.endpoint(p.keysA.publicKey)) === `10.1.0.3:${WG_PORT}`, 5000),
    `wireguard-go endpoint is ${await p.wg.endpoint(p.keysA.publicKey)}`,
  );
  // And wireguard-go reaches us at the new address.
  assert.match((await p.b.exec('ping', ['-c3', '-i0.2', '-W2', A_TUN])).stdout, /3 received/);
  await sleep(0);
});
