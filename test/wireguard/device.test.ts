import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipv4, ipv6, pair, sleep, until } from './util.js';

test('handshake from A, data both ways (IPv4)', async (t) => {
  const p = pair();
  t.after(() => p.close());
  const out = ipv4('10.0.0.1', '10.0.0.2', 'ping from A');
  p.a.tun.inject([out]);
  await p.b.tun.waitFor(1);
  assert.deepEqual(p.b.tun.written[0], out);
  const back = ipv4('10.0.0.2', '10.0.0.1', 'pong from B');
  p.b.tun.inject([back]);
  await p.a.tun.waitFor(1);
  assert.deepEqual(p.a.tun.written[0], back);
  const sa = p.a.dev.peerStats(p.b.pub)!;
  const sb = p.b.dev.peerStats(p.a.pub)!;
  assert.ok(sa.lastHandshake > 0 && sb.lastHandshake > 0);
  assert.equal(sb.endpoint, 'A', 'B learned A from the handshake');
  assert.ok(sa.txBytes > 0 && sa.rxBytes > 0 && sb.txBytes > 0 && sb.rxBytes > 0);
});

test('handshake initiated by B (which only learned A after A talked) and IPv6 inner packets', async (t) => {
  const p = pair();
  t.after(() => p.close());
  // B has no endpoint for A yet: its packet is staged and waits.
  const v6 = ipv6('fd00::2', 'fd00::1', 'six from B');
  p.b.tun.inject([v6]);
  await sleep(30);
  assert.equal(p.a.tun.written.length, 0);
  assert.equal(p.b.dev.peerStats(p.a.pub)!.stagedPackets, 1);
  p.b.dev.setPeerEndpoint(p.a.pub, p.b.bind.endpoint('A'));
  await p.a.tun.waitFor(1);
  assert.deepEqual(p.a.tun.written[0], v6);
  const v6back = ipv6('fd00::1', 'fd00::2', 'six from A');
  p.a.tun.inject([v6back]);
  await p.b.tun.waitFor(1);
  assert.deepEqual(p.b.tun.written[0], v6back);
});

test('many packets in one batch arrive in order', async (t) => {
  const p = pair();
  t.after(() => p.close());
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'first')]);
  await p.b.tun.waitFor(1);
  p.b.tun.written.length = 0;
  const pkts = Array.from({ length: 300 }, (_, i) => ipv4('10.0.0.1', '10.0.0.2', Buffer.alloc(100 + (i % 1300), i & 0xff)));
  p.a.tun.inject(pkts);
  await p.b.tun.waitFor(300);
  assert.deepEqual(p.b.tun.written, pkts);
});

test('packets waiting for a handshake are bounded (oldest dropped and counted)', async (t) => {
  const p = pair({ timers: { maxStagedPackets: 16 } });
  t.after(() => p.close());
  const pkts = Array.from({ length: 40 }, (_, i) => ipv4('10.0.0.1', '10.0.0.2', `n${i}`));
  p.a.tun.inject(pkts);
  await p.b.tun.waitFor(16);
  await sleep(20);
  assert.deepEqual(p.b.tun.written, pkts.slice(24));
  assert.equal(p.a.dev.stats().drops.queueOverflow, 24);
});

test('binds that deliver synchronously from send() (re-entrant) still work', async (t) => {
  const { Device, MemoryTun, generatePrivateKey, publicKeyOf, keyToBase64, makeBatch, batchPackets } = await import('../../src/wireguard/index.js');
  type B = import('../../src/wireguard/index.js').Bind;
  type E = import('../../src/wireguard/index.js').Endpoint;
  class SyncBind implements B {
    readonly kind = 'sync';
    other: SyncBind | null = null;
    handler: Parameters<B['setReceiveHandler']>[0] | null = null;
    readonly ep: E = { bind: this, key: 'sync:peer', toString: () => 'peer' };
    setReceiveHandler(h: Parameters<B['setReceiveHandler']>[0]): void { this.handler = h; }
    send(batch: import('../../src/wireguard/index.js').PacketBatch): void {
      const o = this.other!;
      const pkts = batchPackets(batch);
      o.handler!(makeBatch(pkts), pkts.map(() => o.ep));
    }
    async close(): Promise<void> {}
  }
  const b1 = new SyncBind(), b2 = new SyncBind();
  b1.other = b2;
  b2.other = b1;
  const k1 = generatePrivateKey(), k2 = generatePrivateKey();
  const t1 = new MemoryTun('s1'), t2 = new MemoryTun('s2');
  const d1 = new Device({ privateKey: k1, tun: t1, binds: [b1] });
  const d2 = new Device({ privateKey: k2, tun: t2, binds: [b2] });
  t.after(async () => { await d1.close(); await d2.close(); });
  d1.setPeer({ publicKey: keyToBase64(publicKeyOf(k2)), allowedIps: ['10.0.0.2/32'], endpoint: b1.ep });
  d2.setPeer({ publicKey: keyToBase64(publicKeyOf(k1)), allowedIps: ['10.0.0.1/32'], endpoint: b2.ep });
  const pkts = Array.from({ length: 10 }, (_, i) => ipv4('10.0.0.1', '10.0.0.2', `sync ${i}`));
  t1.inject(pkts);
  await t2.waitFor(10, 2000);
  assert.deepEqual(t2.written, pkts);
  t2.inject([ipv4('10.0.0.2', '10.0.0.1', 'back')]);
  await t1.waitFor(1, 2000);
});
