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

test('packet filter hook: outbound before encryption, inbound after the allowed-IPs check', async (t) => {
  const p = pair();
  t.after(() => p.close());
  const seenOut: string[] = [];
  const seenIn: string[] = [];
  p.a.dev.setFilter({
    outbound: (pkt) => { seenOut.push(pkt.subarray(20).toString()); return !pkt.subarray(20).toString().startsWith('block'); },
    inbound: () => true,
  });
  p.b.dev.setFilter({
    outbound: () => true,
    inbound: (pkt) => { seenIn.push(pkt.subarray(20).toString()); return pkt.subarray(20).toString() !== 'drop at B'; },
  });
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'pass'), ipv4('10.0.0.1', '10.0.0.2', 'block me'), ipv4('10.0.0.1', '10.0.0.2', 'drop at B'), ipv4('10.0.0.1', '10.0.0.2', 'pass 2')]);
  await p.b.tun.waitFor(2);
  await sleep(20);
  assert.deepEqual(p.b.tun.written.map((b) => b.subarray(20).toString()), ['pass', 'pass 2']);
  assert.deepEqual(seenOut, ['pass', 'block me', 'drop at B', 'pass 2']);
  assert.deepEqual(seenIn, ['pass', 'drop at B', 'pass 2']);
  assert.equal(p.a.dev.stats().drops.filtered, 1);
  assert.equal(p.b.dev.stats().drops.filtered, 1);
  p.b.dev.setFilter(undefined);
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'drop at B')]);
  await p.b.tun.waitFor(3);
});

test('removePeer: no route to it any more, its packets are unknown; setPeer updates allowed IPs', async (t) => {
  const p = pair();
  t.after(() => p.close());
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'before')]);
  await p.b.tun.waitFor(1);
  assert.ok(p.b.dev.removePeer(p.a.pub));
  assert.equal(p.b.dev.removePeer(p.a.pub), false);
  assert.equal(p.b.dev.peerStats(p.a.pub), undefined);
  p.b.tun.inject([ipv4('10.0.0.2', '10.0.0.1', 'to nobody')]);
  assert.equal(p.b.dev.stats().drops.noRoute, 1);
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'after')]);
  await until(() => p.b.dev.stats().drops.unknownPeer >= 1, 2000, 'unknown index at B');
  // Re-added with a different range: the old /32 no longer routes, the new one does.
  p.b.dev.setPeer({ publicKey: p.a.pub, allowedIps: ['10.0.1.0/24'] });
  assert.deepEqual(p.b.dev.peerStats(p.a.pub)!.allowedIps, ['10.0.1.0/24']);
  p.b.tun.inject([ipv4('10.0.0.2', '10.0.0.1', 'old range')]);
  assert.equal(p.b.dev.stats().drops.noRoute, 2);
});

test('setPrivateKey: sessions drop; with the new key configured on the other side traffic resumes', async (t) => {
  const { generatePrivateKey, publicKeyOf, keyToBase64 } = await import('../../src/wireguard/index.js');
  const p = pair();
  t.after(() => p.close());
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'old key')]);
  await p.b.tun.waitFor(1);
  const fresh = generatePrivateKey();
  p.a.dev.setPrivateKey(fresh);
  assert.equal(p.a.dev.publicKey, keyToBase64(publicKeyOf(fresh)));
  assert.equal(p.a.dev.peerStats(p.b.pub)!.hasSession, false);
  p.b.dev.removePeer(p.a.pub);
  p.b.dev.setPeer({ publicKey: p.a.dev.publicKey, allowedIps: ['10.0.0.1/32'] });
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'new key')]);
  await p.b.tun.waitFor(2);
  assert.equal(p.b.tun.written[1]!.subarray(20).toString(), 'new key');
  assert.throws(() => p.a.dev.setPeer({ publicKey: p.a.dev.publicKey, allowedIps: [] }), /own public key/);
  assert.throws(() => p.a.dev.setPeer({ publicKey: 'not a key', allowedIps: [] }), /invalid peer public key/);
});

test('stats report per-peer counters and the endpoint', async (t) => {
  const p = pair();
  t.after(() => p.close());
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'count me')]);
  await p.b.tun.waitFor(1);
  const s = p.a.dev.stats();
  assert.equal(s.publicKey, p.a.pub);
  assert.equal(s.peers.length, 1);
  const peer = s.peers[0]!;
  assert.equal(peer.publicKey, p.b.pub);
  assert.equal(peer.endpoint, 'B');
  assert.deepEqual(peer.allowedIps, ['10.0.0.2/32', 'fd00::2/128']);
  assert.ok(peer.lastHandshake > Date.now() - 10_000 && peer.lastHandshake <= Date.now());
  assert.ok(peer.hasSession);
  // 148-byte initiation is not data: tx counts transport packets (the data packet, padded, + header/tag).
  assert.equal(peer.txPackets, 1);
  assert.equal(peer.txBytes, 16 + 32 + 16);
  assert.equal(s.handshakesCompleted, 1);
});
