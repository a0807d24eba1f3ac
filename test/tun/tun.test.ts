import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openTun, createUdpBind, addRoute, TUN_HEADROOM, type LinuxTunDevice } from '../../src/tun/index.js';
import type { Endpoint, PacketBatch } from '../../src/wireguard/bind.js';
import { Lab, waitUntil } from '../lab/index.js';

function csum(b: Buffer, start: number, end: number, init = 0): number {
  let s = init;
  for (let i = start; i < end; i += 2) s += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** Writes an IPv4 ICMP echo request src->dst with id/seq at buf[o..]; returns its length. */
function echoRequest(buf: Buffer, o: number, src: string, dst: string, seq: number): number {
  const len = 20 + 8 + 16;
  buf.fill(0, o, o + len);
  buf[o] = 0x45;
  buf.writeUInt16BE(len, o + 2);
  buf[o + 8] = 64;
  buf[o + 9] = 1;
  src.split('.').forEach((x, i) => (buf[o + 12 + i] = Number(x)));
  dst.split('.').forEach((x, i) => (buf[o + 16 + i] = Number(x)));
  buf.writeUInt16BE(csum(buf, o, o + 20), o + 10);
  const icmp = o + 20;
  buf[icmp] = 8;
  buf.writeUInt16BE(0x4242, icmp + 4);
  buf.writeUInt16BE(seq, icmp + 6);
  buf.fill(0xab, icmp + 8, icmp + 24);
  buf.writeUInt16BE(csum(buf, icmp, o + len), icmp + 2);
  return len;
}

for (const offload of [false, true]) test(`TUN (offload ${offload}): open in a namespace, address, batched write and read against the kernel`, async (t) => {
  const lab = await Lab.create({ prefix: 'nbtn' });
  t.after(() => lab.cleanup());
  const ns = await lab.ns('tun');
  const tun: LinuxTunDevice = await openTun({ name: 'nbtn0', mtu: 1400, addresses: ['10.99.0.1/24', 'fd99::1/64'], netns: ns.name, offload });
  t.after(() => tun.close());
  assert.equal(tun.offload, offload);

  const link = await ns.ip('-o', 'addr', 'show', 'dev', 'nbtn0');
  assert.match(link, /10\.99\.0\.1\/24/);
  assert.match(link, /fd99::1\/64/);
  assert.match(await ns.ip('link', 'show', 'nbtn0'), /mtu 1400.*state (UNKNOWN|UP)/);

  const replies = new Set<number>();
  const requests = new Set<number>();
  let batches = 0;
  tun.setReadHandler((b: PacketBatch) => {
    batches++;
    for (let i = 0; i < b.count; i++) {
      const o = b.offsets[i]!;
      assert.ok(o >= TUN_HEADROOM, 'headroom in front of every packet');
      if (b.buf[o]! >> 4 !== 4 || b.buf[o + 9] !== 1) continue; // IPv6 router solicitations etc.
      const type = b.buf[o + 20]!;
      const seq = b.buf.readUInt16BE(o + 26);
      if (type === 0 && b.buf.readUInt16BE(o + 24) === 0x4242) replies.add(seq);
      if (type === 8) requests.add(seq);
    }
  });

  // One JS->C call writes 5 echo requests "from" 10.99.0.2; the kernel answers each into the TUN.
  const out: PacketBatch = { buf: Buffer.alloc(5 * 128), offsets: new Uint32Array(5), lengths: new Uint32Array(5), count: 5 };
  for (let i = 0; i < 5; i++) {
    out.offsets[i] = i * 128;
    out.lengths[i] = echoRequest(out.buf, i * 128, '10.99.0.2', '10.99.0.1', i + 1);
  }
  tun.write(out);
  assert.ok(await waitUntil(() => replies.size === 5, 5000), `got replies ${[...replies]}`);
  assert.deepEqual([...replies].sort(), [1, 2, 3, 4, 5]);

  // Kernel -> TUN: ping a peer address routed into the device; we read its echo requests.
  await addRoute('nbtn0', '10.98.0.0/24', ns.name);
  const r = await ns.exec('ping', ['-c3', '-i0.2', '-W1', '10.98.0.7'], { check: false });
  assert.notEqual(r.code, 0, 'nobody answers in the TUN');
  assert.ok(await waitUntil(() => requests.size >= 3, 3000), `saw ${requests.size} echo requests`);
  assert.ok(batches >= 2);

  await tun.close();
  assert.ok(await waitUntil(async () => (await ns.exec('ip', ['link', 'show', 'nbtn0'], { check: false })).code !== 0, 3000), 'interface removed on close');
});

test('UDP bind: batched send/receive, cached endpoints, IPv4 and IPv6', async (t) => {
  const lab = await Lab.create({ prefix: 'nbtn' });
  t.after(() => lab.cleanup());
  const ns = await lab.ns('udp');
  const a = await createUdpBind({ port: 0, netns: ns.name });
  const b = await createUdpBind({ port: 0, netns: ns.name });
  t.after(async () => {
    await a.close();
    await b.close();
  });
  assert.ok(a.port > 0 && b.port > 0 && a.port !== b.port);
  assert.ok(a.rcvbuf >= 4 * 1024 * 1024, `rcvbuf ${a.rcvbuf}`);

  const got: { len: number; from: Endpoint; first: number }[] = [];
  let batches = 0;
  b.setReceiveHandler((batch, from) => {
    batches++;
    for (let i = 0; i < batch.count; i++) got.push({ len: batch.lengths[i]!, from: from[i]!, first: batch.buf[batch.offsets[i]!]! });
  });
  a.setReceiveHandler(() => undefined);

  const n = 64;
  const out: PacketBatch = { buf: Buffer.alloc(n * 1500), offsets: new Uint32Array(n), lengths: new Uint32Array(n), count: n };
  for (let i = 0; i < n; i++) {
    out.offsets[i] = i * 1500;
    out.lengths[i] = 100 + i;
    out.buf[i * 1500] = i;
  }
  for (const host of ['127.0.0.1', '[::1]']) {
    got.length = 0;
    const to = new Array<Endpoint>(n).fill(a.endpoint(`${host}:${b.port}`));
    assert.equal(a.endpoint(`${host}:${b.port}`), to[0], 'endpoint objects are cached');
    a.send(out, to);
    assert.ok(await waitUntil(() => got.length === n, 3000), `${host}: received ${got.length}/${n}`);
    for (let i = 0; i < n; i++) {
      assert.equal(got[i]!.len, 100 + i);
      assert.equal(got[i]!.first, i);
      assert.equal(got[i]!.from, got[0]!.from, 'one endpoint object per source');
    }
    assert.equal(got[0]!.from.toString(), `${host}:${a.port}`);
    assert.equal(got[0]!.from.bind, b);
    // Replying to the received endpoint reaches a.
    assert.equal(b.endpoint(`${host}:${a.port}`), got[0]!.from);
  }
  assert.ok(batches < 2 * n, `packets were delivered in batches (${batches} callbacks)`);
  assert.equal(b.endpointCount, 2);
  assert.throws(() => a.endpoint('example.org:1'), /literal IP/);
  assert.equal(a.endpoint('[::ffff:127.0.0.1]:9').toString(), '127.0.0.1:9');
});

test('UDP bind: GSO sends and GRO receives split back into the same packets, in order', async (t) => {
  const lab = await Lab.create({ prefix: 'nbtn' });
  t.after(() => lab.cleanup());
  const ns = await lab.ns('gso');
  const gsoSender = await createUdpBind({ port: 0, netns: ns.name, gso: true });
  const plainSender = await createUdpBind({ port: 0, netns: ns.name, gso: false });
  const groReceiver = await createUdpBind({ port: 0, netns: ns.name, gro: true });
  const plainReceiver = await createUdpBind({ port: 0, netns: ns.name, gro: false });
  const all = [gsoSender, plainSender, groReceiver, plainReceiver];
  t.after(async () => {
    for (const b of all) await b.close();
  });
  assert.equal(groReceiver.gro, true);
  assert.equal(plainReceiver.gro, false);
  const got: Buffer[] = [];
  const froms = new Set<Endpoint>();
  for (const r of [groReceiver, plainReceiver]) {
    r.setReceiveHandler((batch, from) => {
      for (let i = 0; i < batch.count; i++) {
        got.push(Buffer.from(batch.buf.subarray(batch.offsets[i]!, batch.offsets[i]! + batch.lengths[i]!)));
        froms.add(from[i]!);
      }
    });
  }
  // 100 packets: 99 of 1200 bytes and a 700-byte tail, all to one destination -> runs of <= 64 segments.
  const n = 100;
  const out: PacketBatch = { buf: Buffer.alloc(n * 1216), offsets: new Uint32Array(n), lengths: new Uint32Array(n), count: n };
  for (let i = 0; i < n; i++) {
    out.offsets[i] = i * 1216;
    out.lengths[i] = i === n - 1 ? 700 : 1200;
    out.buf.fill(i, i * 1216, i * 1216 + out.lengths[i]!);
  }
  for (const sender of [gsoSender, plainSender]) {
    for (const receiver of [groReceiver, plainReceiver]) {
      got.length = 0;
      froms.clear();
      sender.send(out, new Array<Endpoint>(n).fill(sender.endpoint(`127.0.0.1:${receiver.port}`)));
      const what = `gso=${sender.gso} gro=${receiver.gro}`;
      assert.ok(await waitUntil(() => got.length === n, 3000), `${what}: received ${got.length}/${n}`);
      for (let i = 0; i < n; i++) {
        assert.equal(got[i]!.length, i === n - 1 ? 700 : 1200, `${what}: packet ${i} length`);
        assert.ok(got[i]!.every((x) => x === i), `${what}: packet ${i} content`);
      }
      assert.deepEqual([...froms].map(String), [`127.0.0.1:${sender.port}`]);
    }
  }
  assert.equal(gsoSender.gso, true, 'GSO stayed on over loopback');
  assert.equal(plainSender.gso, false);
});
