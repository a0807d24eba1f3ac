/** Timer behaviour on a virtual clock (whitepaper section 6 / wireguard-go timers.go). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipv4, msgType, virtualPair } from './util.js';

test('REKEY_AFTER_TIME: a steady flow keeps flowing across several session rotations', async (t) => {
  const p = virtualPair();
  t.after(() => p.close());
  let sent = 0;
  for (let s = 0; s < 400; s++) {
    p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', `a${s}`)]);
    p.b.tun.inject([ipv4('10.0.0.2', '10.0.0.1', `b${s}`)]);
    sent++;
    await p.advance(1000, 1000);
  }
  assert.equal(p.b.tun.written.length, sent, 'every A->B packet arrived');
  // B's first packet waits for the session (staged), the rest flow; all must arrive.
  assert.equal(p.a.tun.written.length, sent, 'every B->A packet arrived');
  const hs = p.a.dev.stats().handshakesCompleted;
  assert.ok(hs >= 3 && hs <= 5, `A completed ${hs} handshakes in 400 s (rekey every ~120 s)`);
});

test('REKEY_AFTER_MESSAGES / REJECT_AFTER_MESSAGES with small limits', async (t) => {
  const p = virtualPair({ timers: { rekeyAfterMessages: 50, rejectAfterMessages: 100 } });
  t.after(() => p.close());
  const pkts = Array.from({ length: 300 }, (_, i) => ipv4('10.0.0.1', '10.0.0.2', `m${i}`));
  // 10 packets per second: a new handshake may start every REKEY_TIMEOUT (5 s) = every 50 messages.
  for (let i = 0; i < pkts.length; i += 10) {
    p.a.tun.inject(pkts.slice(i, i + 10));
    await p.advance(1000, 250);
  }
  await p.advance(6000, 250);
  const got = p.b.tun.written.map((b) => b.subarray(20).toString());
  assert.deepEqual(got, pkts.map((b) => b.subarray(20).toString()));
  assert.ok(p.a.dev.stats().handshakesCompleted >= 5, `handshakes ${p.a.dev.stats().handshakesCompleted}`);
});

test('REJECT_AFTER_TIME: an idle session dies; new traffic from either side makes a new one', async (t) => {
  const p = virtualPair();
  t.after(() => p.close());
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'hi')]);
  await p.advance(200);
  assert.equal(p.b.tun.written.length, 1);
  await p.advance(181_000, 1000);
  assert.equal(p.a.dev.peerStats(p.b.pub)!.hasSession, false);
  const before = p.b.dev.stats().handshakesCompleted;
  p.b.tun.inject([ipv4('10.0.0.2', '10.0.0.1', 'B speaks first now')]);
  await p.advance(500);
  assert.equal(p.a.tun.written.length, 1);
  assert.equal(p.b.dev.stats().handshakesCompleted, before + 1, 'B initiated this time');
});

test('passive keepalive after KEEPALIVE_TIMEOUT when only one side sends data', async (t) => {
  const p = virtualPair();
  t.after(() => p.close());
  const fromB: number[] = [];
  p.net.hook = (pkt, from) => {
    if (from === 'B' && msgType(pkt) === 4) fromB.push(pkt.length);
    return true;
  };
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'one-way')]);
  await p.advance(9000, 500);
  assert.deepEqual(fromB, [], 'no keepalive before 10 s');
  await p.advance(2000, 500);
  assert.deepEqual(fromB, [32], 'one empty transport packet (keepalive)');
  assert.equal(p.a.tun.written.length, 0, 'keepalives are not written to the TUN');
});

test('persistent keepalive every N seconds while idle', async (t) => {
  const p = virtualPair({ keepalive: 25 });
  t.after(() => p.close());
  let keepalives = 0;
  p.net.hook = (pkt, from) => {
    if (from === 'A' && msgType(pkt) === 4 && pkt.length === 32) keepalives++;
    return true;
  };
  await p.advance(300); // setPeer with keepalive brought the session up at once
  assert.ok(p.a.dev.peerStats(p.b.pub)!.lastHandshake > 0);
  const k0 = keepalives;
  await p.advance(100_000, 1000);
  assert.ok(keepalives - k0 >= 3 && keepalives - k0 <= 5, `keepalives in 100 s: ${keepalives - k0}`);
});

test('peer goes silent: new handshake after KEEPALIVE+REKEY_TIMEOUT, retries every REKEY_TIMEOUT, gives up after REKEY_ATTEMPT_TIME', async (t) => {
  const p = virtualPair();
  t.after(() => p.close());
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'hello')]);
  await p.advance(200);
  assert.equal(p.b.tun.written.length, 1);
  const initiationsAt: number[] = [];
  p.net.hook = (pkt, from) => {
    if (from === 'A' && msgType(pkt) === 1) initiationsAt.push(p.now());
    return from !== 'B'; // B is gone
  };
  const t0 = p.now();
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'anyone?')]);
  await p.advance(150_000, 250);
  assert.ok(initiationsAt.length > 0);
  const first = initiationsAt[0]! - t0;
  assert.ok(first >= 15_000 && first <= 16_000, `first initiation after ${first} ms`);
  for (let i = 1; i < initiationsAt.length; i++) {
    const gap = initiationsAt[i]! - initiationsAt[i - 1]!;
    assert.ok(gap >= 5000 && gap <= 5600, `retry gap ${gap}`);
  }
  // As wireguard-go: the first plus retries while attempts <= REKEY_ATTEMPT_TIME / REKEY_TIMEOUT (18), then silence.
  assert.equal(initiationsAt.length, 20);
  assert.ok(p.now() - initiationsAt.at(-1)! > 20_000);
});

test('keys are zeroed after 3*REJECT_AFTER_TIME: an old transport packet becomes an unknown index', async (t) => {
  const p = virtualPair();
  t.after(() => p.close());
  let captured: Buffer | null = null;
  p.net.hook = (pkt, from) => {
    if (from === 'B' && msgType(pkt) === 4 && pkt.length > 32 && !captured) captured = Buffer.from(pkt);
    return true;
  };
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'x')]);
  await p.advance(200);
  p.b.tun.inject([ipv4('10.0.0.2', '10.0.0.1', 'y')]);
  await p.advance(200);
  assert.ok(captured);
  const pkt = captured as Buffer;
  const drops = () => p.a.dev.stats().drops;
  p.net.inject('A', 'B', [pkt]);
  assert.equal(drops().replayed, 1, 'fresh session: replay');
  await p.advance(200_000, 2000);
  p.net.inject('A', 'B', [pkt]);
  assert.equal(drops().expired, 1, 'after REJECT_AFTER_TIME: expired');
  await p.advance(400_000, 5000);
  p.net.inject('A', 'B', [pkt]);
  assert.equal(drops().unknownPeer, 1, 'after 3*REJECT_AFTER_TIME the index is gone');
});

test('both sides initiate at the same moment: they converge on a session', async (t) => {
  const p = virtualPair();
  t.after(() => p.close());
  p.b.dev.setPeerEndpoint(p.a.pub, p.b.bind.endpoint('A'));
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'a first')]);
  p.b.tun.inject([ipv4('10.0.0.2', '10.0.0.1', 'b first')]);
  // 10 ms steps: with coarser steps the two sides' jittered retransmits keep landing on the same tick and
  // cross forever (each answer replaces the own pending handshake), which real clocks never do for long.
  await p.advance(20_000, 10);
  assert.equal(p.b.tun.written.length, 1);
  assert.equal(p.a.tun.written.length, 1);
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'a again')]);
  p.b.tun.inject([ipv4('10.0.0.2', '10.0.0.1', 'b again')]);
  await p.advance(200, 100);
  assert.equal(p.b.tun.written.length, 2);
  assert.equal(p.a.tun.written.length, 2);
});
