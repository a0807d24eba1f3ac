/** Hostile and odd input: dropped, counted, and the legitimate peer keeps working. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ipv4, ipv6, msgType, pair, sleep, until, virtualPair } from './util.js';
import { hash, mac, randomBytes, keyFromBase64 } from '../../src/wireguard/crypto.js';
import { INITIATION_LEN, INITIATION_MAC1_OFF, LABEL_MAC1 } from '../../src/wireguard/constants.js';

/** An initiation with garbage inside but a valid MAC1 for `pubB64`: passes the cheap check, costs a DH. */
function junkInitiation(pubB64: string): Buffer {
  const m = randomBytes(INITIATION_LEN);
  m.writeUInt32LE(1, 0);
  const key = hash(Buffer.from(LABEL_MAC1), keyFromBase64(pubB64));
  mac(key, m.subarray(0, INITIATION_MAC1_OFF)).copy(m, INITIATION_MAC1_OFF);
  m.fill(0, INITIATION_MAC1_OFF + 16);
  return m;
}

test('short, malformed, unknown-index, replayed and forged packets are dropped and counted', async (t) => {
  const p = pair();
  t.after(() => p.close());
  const captured: Buffer[] = [];
  p.net.hook = (pkt, from) => {
    if (from === 'A' && msgType(pkt) === 4 && pkt.length > 32) captured.push(Buffer.from(pkt));
    return true;
  };
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'legit 1')]);
  await p.b.tun.waitFor(1);
  const d = () => p.b.dev.stats().drops;
  const legit = captured[0]!;

  p.net.inject('B', 'X', [Buffer.alloc(0), Buffer.from([4]), Buffer.from([1, 0, 0])]);
  assert.equal(d().short, 3);
  const shortTransport = Buffer.alloc(31);
  shortTransport.writeUInt32LE(4, 0);
  p.net.inject('B', 'X', [shortTransport]);
  assert.equal(d().short, 4);

  const weirdType = Buffer.alloc(64);
  weirdType.writeUInt32LE(7, 0);
  const reservedSet = Buffer.from(legit);
  reservedSet[1] = 1; // type field is a u32: non-zero reserved bytes make it unknown
  const badSizeInit = Buffer.alloc(147);
  badSizeInit.writeUInt32LE(1, 0);
  p.net.inject('B', 'X', [weirdType, reservedSet, badSizeInit]);
  assert.equal(d().malformed, 3);

  const unknownIndex = Buffer.from(legit);
  unknownIndex.writeUInt32LE((unknownIndex.readUInt32LE(4) ^ 0xdeadbeef) >>> 0, 4);
  p.net.inject('B', 'X', [unknownIndex]);
  assert.equal(d().unknownPeer, 1);

  p.net.inject('B', 'X', [legit]);
  assert.equal(d().replayed, 1, 'replay of a delivered packet');

  const forged = Buffer.from(legit);
  forged[forged.length - 20]! ^= 0x40;
  const forgedCounter = Buffer.from(legit);
  forgedCounter.writeUInt32LE(999, 8);
  p.net.inject('B', 'X', [forged, forgedCounter]);
  assert.equal(d().badAuth, 2);

  const badMac = junkInitiation(p.b.pub);
  badMac[INITIATION_MAC1_OFF]! ^= 1;
  p.net.inject('B', 'X', [badMac]);
  assert.equal(d().badMac, 1);
  p.net.inject('B', 'X', [junkInitiation(p.b.pub)]);
  assert.equal(d().badAuth, 3, 'valid MAC1 but garbage inside');

  // None of this moved B's idea of where A is, and A still gets through.
  assert.equal(p.b.dev.peerStats(p.a.pub)!.endpoint, 'A');
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'legit 2')]);
  await p.b.tun.waitFor(2);
  assert.equal(p.b.tun.written[1]!.subarray(20).toString(), 'legit 2');
  assert.equal(p.b.tun.written.length, 2);
});

test('decrypted packets must come from the sending peer\'s allowed IPs, and be well-formed IP', async (t) => {
  const p = pair();
  t.after(() => p.close());
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'ok')]);
  await p.b.tun.waitFor(1);
  // A's device routes by destination only; B must refuse sources outside A's allowed IPs.
  p.a.tun.inject([ipv4('10.0.0.99', '10.0.0.2', 'spoofed v4'), ipv6('fd00::99', 'fd00::2', 'spoofed v6')]);
  await until(() => p.b.dev.stats().drops.notAllowed === 2, 2000, 'notAllowed drops');
  const bogusLen = ipv4('10.0.0.1', '10.0.0.2', 'len says more');
  bogusLen.writeUInt16BE(2000, 2);
  p.a.tun.inject([bogusLen]);
  await until(() => p.b.dev.stats().drops.malformed === 1, 2000, 'malformed inner');
  // TUN side: too short or not IP, and no route.
  p.a.tun.inject([Buffer.alloc(10), Buffer.alloc(40, 0x20), ipv4('10.0.0.1', '192.0.2.1')]);
  const da = p.a.dev.stats().drops;
  assert.equal(da.short, 1);
  assert.equal(da.malformed, 1);
  assert.equal(da.noRoute, 1);
  assert.equal(p.b.tun.written.length, 1);
});

test('IPv4 padding is stripped using the inner total length', async (t) => {
  const p = pair();
  t.after(() => p.close());
  const sizes = [20, 21, 35, 36, 1419, 1420];
  const pkts = sizes.map((n) => ipv4('10.0.0.1', '10.0.0.2', Buffer.alloc(n - 20, 7)));
  p.a.tun.inject(pkts);
  await p.b.tun.waitFor(pkts.length);
  assert.deepEqual(p.b.tun.written.map((b) => b.length), sizes);
});

test('PSK mismatch: no session, nothing delivered, the failure is counted', async (t) => {
  const p = pair({ pskA: Buffer.alloc(32, 1), pskB: Buffer.alloc(32, 2) });
  t.after(() => p.close());
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'secret')]);
  await until(() => p.a.dev.stats().drops.badAuth >= 1, 2000, 'A rejects the response');
  await sleep(30);
  assert.equal(p.b.tun.written.length, 0);
  assert.equal(p.a.dev.peerStats(p.b.pub)!.hasSession, false);
  assert.equal(p.a.dev.peerStats(p.b.pub)!.lastHandshake, 0);
});

test('roaming: the peer endpoint follows the source of authenticated packets only', async (t) => {
  const p = pair();
  t.after(() => p.close());
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'from A')]);
  await p.b.tun.waitFor(1);
  assert.equal(p.b.dev.peerStats(p.a.pub)!.endpoint, 'A');
  // A moves to a new address (e.g. a new network or a relay path) and keeps its session.
  const moved = p.net.bind('A2', 'relay');
  p.a.dev.addBind(moved);
  p.a.dev.setPeerEndpoint(p.b.pub, moved.endpoint('B'));
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'from A2')]);
  await p.b.tun.waitFor(2);
  assert.equal(p.b.dev.peerStats(p.a.pub)!.endpoint, 'A2');
  assert.equal(p.b.dev.peerStats(p.a.pub)!.endpointKind, 'mem');
  assert.equal(p.a.dev.peerStats(p.b.pub)!.endpointKind, 'relay');
  p.b.tun.inject([ipv4('10.0.0.2', '10.0.0.1', 'reply goes to A2')]);
  await p.a.tun.waitFor(1);
  assert.equal(moved.sent > 0, true);
  // A forged packet from elsewhere does not move the endpoint.
  const junk = Buffer.alloc(64);
  junk.writeUInt32LE(4, 0);
  p.net.inject('B', 'EVIL', [junk]);
  assert.equal(p.b.dev.peerStats(p.a.pub)!.endpoint, 'A2');
});

test('handshake flood: under load the device demands cookies; the real peer gets through with MAC2', async (t) => {
  const timers = { underLoadThreshold: 10, rekeyTimeout: 200, rekeyTimeoutJitter: 20 };
  const p = pair({ timers });
  t.after(() => p.close());
  let stop = false;
  let cookieRepliesToEvil = 0;
  let cookieRepliesToA = 0;
  let initiationsFromA = 0;
  p.net.hook = (pkt, from, to) => {
    if (from === 'B' && to === 'EVIL' && msgType(pkt) === 3) cookieRepliesToEvil++;
    if (from === 'B' && to === 'A' && msgType(pkt) === 3) cookieRepliesToA++;
    if (from === 'A' && msgType(pkt) === 1) initiationsFromA++;
    return true;
  };
  p.net.bind('EVIL'); // so cookie replies have somewhere to go
  const flood = (async () => {
    while (!stop) {
      p.net.inject('B', 'EVIL', Array.from({ length: 20 }, () => junkInitiation(p.b.pub)));
      await sleep(2);
    }
  })();
  t.after(async () => {
    stop = true;
    await flood;
  });
  await sleep(20);
  assert.equal(p.b.dev.stats().underLoad, true);
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'through the storm')]);
  await p.b.tun.waitFor(1, 5000);
  stop = true;
  await flood;
  const s = p.b.dev.stats();
  assert.ok(s.cookieRepliesSent > 0);
  assert.ok(cookieRepliesToEvil > 0, 'the flooder got cookie replies instead of DH work');
  assert.ok(s.drops.handshakeFlood > 0);
  assert.ok(cookieRepliesToA >= 1, 'A was asked for a cookie first');
  assert.ok(initiationsFromA >= 2, 'A retried, now with MAC2, and was served');
  assert.ok(p.a.dev.stats().handshakesCompleted >= 1);
  assert.equal(p.b.tun.written[0]!.subarray(20).toString(), 'through the storm');
});

test('fuzz: random datagrams and mutated real ones never throw out of the device', async (t) => {
  const p = virtualPair();
  t.after(() => p.close());
  const real: Buffer[] = [];
  p.net.hook = (pkt) => {
    if (real.length < 50) real.push(Buffer.from(pkt));
    return true;
  };
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'seed')]);
  await p.advance(300);
  p.b.tun.inject([ipv4('10.0.0.2', '10.0.0.1', 'seed back')]);
  await p.advance(300);
  assert.ok(real.length >= 4);
  const typed = fc.tuple(fc.constantFrom(1, 2, 3, 4), fc.constantFrom(148, 92, 64, 32, 48, 1500), fc.uint8Array({ maxLength: 1500 })).map(([ty, len, body]) => {
    const b = Buffer.alloc(len);
    Buffer.from(body.buffer, body.byteOffset, Math.min(body.length, len)).copy(b);
    b.writeUInt32LE(ty, 0);
    return b;
  });
  const mutated = fc.tuple(fc.constantFrom(...real), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }), fc.nat())
    .map(([base, flips, cut]) => {
      const b = Buffer.from(base);
      for (const [pos, x] of flips) b[pos % b.length]! ^= x;
      return cut % 5 === 0 ? b.subarray(0, cut % b.length) : b;
    });
  const anyBytes = fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u));
  fc.assert(
    fc.property(fc.array(fc.oneof(anyBytes, typed, mutated), { minLength: 1, maxLength: 8 }), (pkts) => {
      p.net.inject('B', 'FUZZ', pkts);
      p.net.inject('A', 'FUZZ', pkts);
      p.a.tun.inject(pkts);
    }),
    { numRuns: 400 },
  );
  // Still working afterwards.
  const before = p.b.tun.written.length;
  p.a.tun.inject([ipv4('10.0.0.1', '10.0.0.2', 'after fuzz')]);
  await p.advance(6000, 200);
  assert.ok(p.b.tun.written.slice(before).some((b) => b.subarray(20).toString() === 'after fuzz'));
});
