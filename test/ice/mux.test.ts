import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PerformanceObserver } from 'node:perf_hooks';
import { IceMux, buildCheckRequest, type IceBase, type StunSink } from '../../src/ice/index.js';
import type { Endpoint, PacketBatch, ReceiveHandler, UdpBind } from '../../src/wireguard/index.js';

/** A UdpBind stand-in: the test pushes batches in as the socket would. */
class FakeUdp implements UdpBind {
  readonly kind = 'udp' as const;
  readonly port = 51820;
  handler: ReceiveHandler | null = null;
  sent: { data: Buffer; to: string }[] = [];
  readonly eps = new Map<string, Endpoint>();
  setReceiveHandler(h: ReceiveHandler): void {
    this.handler = h;
  }
  send(batch: PacketBatch, to: readonly Endpoint[]): void {
    for (let i = 0; i < batch.count; i++) this.sent.push({ data: Buffer.from(batch.buf.subarray(batch.offsets[i]!, batch.offsets[i]! + batch.lengths[i]!)), to: to[i]!.toString() });
  }
  endpoint(hostPort: string): Endpoint {
    let ep = this.eps.get(hostPort);
    if (!ep) {
      const [host, port] = hostPort.split(':') as [string, string];
      ep = Object.assign({ bind: this, key: `udp:${hostPort}`, toString: () => hostPort }, { host, port: Number(port) });
      this.eps.set(hostPort, ep);
    }
    return ep;
  }
  async close(): Promise<void> {}
}

function batchOf(packets: Buffer[]): PacketBatch {
  const buf = Buffer.alloc(packets.length * 2048);
  const offsets = new Uint32Array(128);
  const lengths = new Uint32Array(128);
  packets.forEach((p, i) => {
    p.copy(buf, i * 2048);
    offsets[i] = i * 2048;
    lengths[i] = p.length;
  });
  return { buf, offsets, lengths, count: packets.length };
}

function wgPacket(n: number): Buffer {
  const b = Buffer.alloc(148, n);
  b[0] = 4; // WireGuard transport data
  b.writeUInt32LE(0x1234 + n, 4); // receiver index: not the STUN magic cookie
  return b;
}

test('demux: WireGuard-only batches pass through untouched; STUN is taken out, routed by ufrag, the rest re-indexed', () => {
  const udp = new FakeUdp();
  const mux = new IceMux(udp);
  const got: { batch: PacketBatch; from: Endpoint[]; texts: number[] }[] = [];
  mux.setReceiveHandler((b, from) => got.push({ batch: b, from: from.slice(0, b.count), texts: Array.from({ length: b.count }, (_, i) => b.buf[b.offsets[i]! + 8]!) }));
  const stun: { buf: Buffer; address: string; port: number; base: IceBase }[] = [];
  const sink: StunSink = { onStun: (buf, address, port, base) => stun.push({ buf, address, port, base }) };
  mux.register('LOCALUFRAGLOCALU', sink);
  const ep1 = udp.endpoint('203.0.113.1:1000');
  const ep2 = udp.endpoint('203.0.113.2:2000');

  const plain = batchOf([wgPacket(1), wgPacket(2)]);
  udp.handler!(plain, [ep1, ep2]);
  assert.equal(got[0]!.batch, plain, 'same batch object: nothing copied');

  const check = buildCheckRequest({
    transactionId: Buffer.alloc(12, 7), localUfrag: 'REMOTEUFRAGREMOT', remoteUfrag: 'LOCALUFRAGLOCALU', remotePwd: 'p'.repeat(32),
    priority: 1, controlling: true, tieBreaker: 1n,
  });
  const mixed = batchOf([wgPacket(3), check, wgPacket(4)]);
  udp.handler!(mixed, [ep1, ep2, ep1]);
  assert.equal(got.length, 2);
  assert.equal(got[1]!.batch.count, 2);
  assert.equal(got[1]!.batch.buf, mixed.buf, 'same packet buffer, only re-indexed');
  assert.deepEqual(got[1]!.texts, [3, 4]);
  assert.deepEqual(got[1]!.from.map((e) => e.toString()), ['203.0.113.1:1000', '203.0.113.1:1000']);
  assert.equal(stun.length, 1);
  assert.deepEqual({ a: stun[0]!.address, p: stun[0]!.port }, { a: '203.0.113.2', p: 2000 });
  assert.equal(stun[0]!.base, mux);

  // Only STUN: the device is not called; unknown ufrag is counted, not delivered.
  mux.unregister('LOCALUFRAGLOCALU', sink);
  udp.handler!(batchOf([check]), [ep2]);
  assert.equal(got.length, 2);
  assert.equal(mux.unclaimedStun, 1);
});

test('demux: no garbage collection while forwarding a million WireGuard packets (no per-packet allocation)', async () => {
  const udp = new FakeUdp();
  const mux = new IceMux(udp);
  let n = 0;
  mux.setReceiveHandler((b) => {
    n += b.count;
  });
  const packets = Array.from({ length: 64 }, (_, i) => wgPacket(i));
  const batch = batchOf(packets);
  const from = packets.map(() => udp.endpoint('203.0.113.1:1000'));
  for (let i = 0; i < 2000; i++) udp.handler!(batch, from); // warm up (JIT)
  let gcs = 0;
  const obs = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  obs.observe({ entryTypes: ['gc'] });
  await new Promise((r) => setImmediate(r));
  gcs = 0;
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < 16_000; i++) udp.handler!(batch, from);
  const grown = process.memoryUsage().heapUsed - before;
  await new Promise((r) => setImmediate(r));
  obs.disconnect();
  assert.equal(n, 2000 * 64 + 16_000 * 64);
  assert.ok(grown < 256 * 1024, `heap grew ${grown} bytes over 1M packets`);
  assert.equal(gcs, 0, `${gcs} GCs while forwarding`);
});
