import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { flow } from '../../src/proto/index.js';
import {
  FlowAggregator,
  FlowClient,
  FlowEventQueue,
  FlowReporter,
  KyselyFlowStore,
  createFlowReceiver,
  issueFlowToken,
  timestampToMs,
} from '../../src/flow/index.js';
import type { FlowConnectionEvent, FlowEventPage, FlowEventRecord, FlowStore } from '../../src/flow/index.js';
import { makeEvent, sleep, startGrpcServer, startRawGrpcServer, waitFor } from './helpers.js';

const SECRET = 'nbfl-reporter-secret';
const TOKEN = issueFlowToken(SECRET, 3600);
const KEY = randomBytes(32);

function conn(o: Partial<FlowConnectionEvent> = {}): FlowConnectionEvent {
  return {
    type: 'start',
    flowId: randomBytes(16),
    direction: 'egress',
    protocol: 6,
    srcIp: Buffer.from([100, 64, 0, 1]),
    dstIp: Buffer.from([100, 64, 0, 2]),
    srcPort: 40000,
    dstPort: 22,
    rxPackets: 0,
    txPackets: 0,
    rxBytes: 0,
    txBytes: 0,
    ...o,
  };
}

test('aggregator: one event per flow and window, counts and counters added up', () => {
  let now = 1_000_000;
  const agg = new FlowAggregator({ publicKey: KEY, now: () => now });
  const fid = randomBytes(16);
  const rule = Buffer.from('policy-ssh');
  agg.add(conn({ flowId: fid, ruleId: rule, timestampMs: now + 10 }));
  agg.add(conn({ flowId: fid, ruleId: rule, type: 'end', rxPackets: 5, txPackets: 6, rxBytes: 500, txBytes: 600, timestampMs: now + 20 }));
  // three dropped pings with different flow IDs but the same tuple: one event
  for (let i = 0; i < 3; i++) {
    agg.add(conn({ type: 'drop', protocol: 1, direction: 'ingress', srcPort: undefined, dstPort: undefined, icmpType: 8, icmpCode: 0, ruleId: rule }));
  }
  agg.add(conn({ protocol: 17, dstPort: 53, rxPackets: 1, rxBytes: 60 }));
  now += 5000;
  const out = agg.closeWindow();
  assert.equal(out.length, 3);
  const ssh = out.find((e) => e.flowFields!.flowId.equals(fid))!;
  assert.equal(ssh.flowFields!.type, flow.Type.TYPE_END, 'the latest type');
  assert.deepEqual(
    [ssh.flowFields!.numOfStarts, ssh.flowFields!.numOfEnds, ssh.flowFields!.numOfDrops, ssh.flowFields!.rxPackets, ssh.flowFields!.txBytes],
    [1, 1, 0, 5, 600],
  );
  assert.equal(ssh.flowFields!.ruleId.toString(), 'policy-ssh');
  assert.deepEqual(ssh.flowFields!.portInfo, { sourcePort: 40000, destPort: 22 });
  assert.equal(ssh.flowFields!.icmpInfo, undefined);
  assert.equal(timestampToMs(ssh.timestamp), 1_000_020);
  assert.equal(timestampToMs(ssh.windowStart), 1_000_000);
  assert.equal(timestampToMs(ssh.windowEnd), 1_005_000);
  assert.ok(ssh.publicKey.equals(KEY));
  assert.equal(ssh.eventId.length, 16);
  const drop = out.find((e) => e.flowFields!.type === flow.Type.TYPE_DROP)!;
  assert.equal(drop.flowFields!.numOfDrops, 3);
  assert.equal(drop.flowFields!.direction, flow.Direction.INGRESS);
  assert.deepEqual(drop.flowFields!.icmpInfo, { icmpType: 8, icmpCode: 0 });
  assert.equal(drop.flowFields!.portInfo, undefined);
  assert.equal(new Set(out.map((e) => e.eventId.toString('hex'))).size, 3);
  // wire round trip keeps the oneof
  const back = flow.FlowEvent.decode(flow.FlowEvent.encode(drop).finish());
  assert.deepEqual(back.flowFields!.icmpInfo, { icmpType: 8, icmpCode: 0 });
  // next window starts empty at the previous end
  assert.equal(agg.size, 0);
  agg.add(conn());
  now += 1000;
  const w2 = agg.closeWindow();
  assert.equal(timestampToMs(w2[0]!.windowStart), 1_005_000);
});

test('aggregator: counters off reports zeros; a window holds at most maxFlowsPerWindow flows', () => {
  const agg = new FlowAggregator({ publicKey: KEY, counters: false, maxFlowsPerWindow: 100 });
  for (let i = 0; i < 1000; i++) agg.add(conn({ rxBytes: 10, txPackets: 1 }));
  assert.equal(agg.size, 100);
  assert.equal(agg.dropped, 900);
  const out = agg.closeWindow();
  assert.equal(out.length, 100);
  assert.ok(out.every((e) => e.flowFields!.rxBytes === 0 && e.flowFields!.txPackets === 0));
  assert.throws(() => new FlowAggregator({ publicKey: Buffer.alloc(31) }));
});

test('queue: bounded under a flood (oldest dropped and counted), ack removes, resend timing', () => {
  let now = 0;
  const q = new FlowEventQueue({ maxEvents: 1000, resendAfterMs: 1000, now: () => now });
  const heap0 = process.memoryUsage().heapUsed;
  let last: flow.FlowEvent | undefined;
  const first = makeEvent(0);
  q.push(first);
  for (let i = 1; i < 30_000; i++) q.push((last = makeEvent(i)));
  assert.equal(q.size, 1000);
  assert.equal(q.stats().dropped, 29_000);
  assert.equal(q.ack(first.eventId), false, 'the oldest went first');
  const heapGrowth = process.memoryUsage().heapUsed - heap0;
  assert.ok(heapGrowth < 64 * 1024 * 1024, `heap grew ${heapGrowth} bytes`);

  const q2 = new FlowEventQueue({ resendAfterMs: 1000, now: () => now });
  const evs = [makeEvent(1), makeEvent(2), makeEvent(3)];
  for (const e of evs) q2.push(e);
  q2.push(evs[0]!); // same event_id again: no duplicate
  assert.equal(q2.size, 3);
  const sent: string[] = [];
  const send = (e: flow.FlowEvent): boolean => (sent.push(e.eventId.toString('hex')), true);
  // a full stream buffer stops the pump
  assert.equal(q2.pump((e) => (sent.push(e.eventId.toString('hex')), false)), 1);
  assert.equal(q2.pump(send), 2, 'the rest, not the one just sent');
  assert.equal(q2.pump(send), 0);
  now = 999;
  assert.equal(q2.pump(send), 0, 'not before 1 s');
  now = 1000;
  assert.equal(q2.pump(send), 3, 're-sent after 1 s');
  now = 2500;
  assert.equal(q2.pump(send), 0, 'the next resend waits 2 s');
  now = 3000;
  assert.equal(q2.pump(send), 3);
  assert.equal(q2.ack(evs[1]!.eventId), true);
  assert.equal(q2.ack(evs[1]!.eventId), false, 'duplicate ack');
  now = 3500;
  q2.onReconnect();
  assert.equal(q2.pump(send), 0, 'after a reconnect: still not before 1 s since the last send');
  now = 4000;
  assert.equal(q2.pump(send), 2);
  assert.deepEqual(q2.stats(), { queued: 2, dropped: 0, sent: 11, resent: 8, acked: 1 });
  assert.ok(last);
});

test('reporter end to end: filter events -> windows -> receiver -> store; queue drains', async (t) => {
  const store = await KyselyFlowStore.open({ db: ':memory:', flushIntervalMs: 10 });
  const rx = createFlowReceiver({
    secret: SECRET,
    store,
    resolveReporter: (key) => (key === KEY.toString('base64') ? { peerId: 'peer-1', accountId: 'acc-1', userId: 'user-1' } : undefined),
  });
  const srv = await startGrpcServer(rx);
  t.after(async () => {
    rx.close();
    await srv.stop();
    await store.close();
  });
  const rep = new FlowReporter({ url: srv.url, tokenPayload: TOKEN.payload, tokenSignature: TOKEN.signature, intervalMs: 200, publicKey: KEY });
  t.after(() => rep.close());
  rep.start();
  for (let i = 0; i < 300; i++) rep.record(conn({ srcPort: 1000 + i }));
  await waitFor(() => rep.stats().acked === 300, 5000, '300 acks');
  assert.equal(rep.queue.size, 0);
  const page: FlowEventPage = await store.query({ peer: 'peer-1', pageSize: 1000 });
  assert.equal(page.totalRecords, 300);
  assert.ok(page.data.every((r: FlowEventRecord) => r.accountId === 'acc-1' && r.userId === 'user-1' && r.reporterKey === KEY.toString('base64')));
  rep.close();
  assert.equal(await rep.done, 'closed');
});

test('nothing is lost across a reconnect: unacked events are re-sent on the new stream, not before 1 s', async (t) => {
  const raw = await startRawGrpcServer({
    onEvent: (ctx, ev, nth) => {
      if (ctx.streamNo === 1) {
        if (nth <= 5) ctx.ack(ev.eventId); // the rest of stream 1 is never acked
        if (nth === 10) setTimeout(() => ctx.stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR), 10);
        return;
      }
      ctx.ack(ev.eventId);
    },
  });
  t.after(raw.stop);
  const rep = new FlowReporter({
    url: raw.url,
    tokenPayload: TOKEN.payload,
    tokenSignature: TOKEN.signature,
    intervalMs: 60_000,
    publicKey: KEY,
    client: { backoff: { initialMs: 100 } },
  });
  t.after(() => rep.close());
  rep.start();
  await waitFor(() => rep.client.isReady, 3000);
  const events = Array.from({ length: 20 }, (_, i) => makeEvent(i, KEY));
  for (const e of events) rep.enqueue(e);
  rep.flushWindow();
  await waitFor(() => rep.stats().acked === 20, 8000, 'all 20 acked');
  assert.equal(rep.queue.size, 0);
  assert.ok(raw.streams >= 2 && raw.sessions >= 2, `streams ${raw.streams}, sessions ${raw.sessions}`);
  const ids = new Set(raw.received.map((r) => r.event.eventId.toString('hex')));
  assert.equal(ids.size, 20);
  for (const e of events) assert.ok(ids.has(e.eventId.toString('hex')));
  // every re-send came at least ~1 s after the previous send of that event
  const firstSeen = new Map<string, number>();
  for (const r of raw.received) {
    const id = r.event.eventId.toString('hex');
    const prev = firstSeen.get(id);
    if (prev !== undefined) assert.ok(r.at - prev >= 950, `re-sent after ${r.at - prev} ms`);
    firstSeen.set(id, r.at);
  }
  assert.ok(raw.received.length > 20, 'some events were sent twice');
  rep.close();
});

test('receiver down: the sender keeps only the newest maxQueuedEvents; they are delivered once it is up', async (t) => {
  const port = await new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const rep = new FlowReporter({
    url: `http://127.0.0.1:${port}`,
    tokenPayload: TOKEN.payload,
    tokenSignature: TOKEN.signature,
    intervalMs: 60_000,
    publicKey: KEY,
    maxQueuedEvents: 500,
    client: { backoff: { initialMs: 100, maxIntervalMs: 200 } },
  });
  t.after(() => rep.close());
  rep.start();
  for (let w = 0; w < 20; w++) {
    for (let i = 0; i < 1000; i++) rep.record(conn());
    rep.flushWindow();
  }
  assert.equal(rep.queue.size, 500);
  assert.equal(rep.stats().dropped, 19_500);
  const kept = new Set<string>();
  rep.queue.pump((e) => (kept.add(e.eventId.toString('hex')), true));
  const store = await KyselyFlowStore.open({ db: ':memory:', flushIntervalMs: 10 });
  const rx = createFlowReceiver({ secret: SECRET, store });
  const srv = await startGrpcServer(rx, port);
  t.after(async () => {
    rx.close();
    await srv.stop();
    await store.close();
  });
  await waitFor(() => rep.queue.size === 0, 8000, 'queue drained');
  const stored = await store.query({ pageSize: 1000 });
  assert.equal(stored.totalRecords, 500);
  assert.deepEqual(new Set(stored.data.map((r) => r.eventId)), kept, 'exactly the newest 500');
});

test('receiver backpressure: a slow store holds acks and reads; every event is acked once stored', async (t) => {
  let concurrent = 0;
  let maxConcurrent = 0;
  let gate: (() => void) | undefined;
  let gateOpen = new Promise<void>((r) => (gate = r));
  const stored = new Set<string>();
  const slowStore: FlowStore = {
    async add(r) {
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      await gateOpen;
      stored.add(r.eventId);
      concurrent--;
    },
    query: () => Promise.reject(new Error('unused')),
    deleteOlderThan: async () => 0,
    flush: async () => {},
    close: async () => {},
  };
  const rx = createFlowReceiver({ secret: SECRET, store: slowStore, maxInFlightPerStream: 10 });
  const srv = await startGrpcServer(rx);
  t.after(async () => {
    rx.close();
    await srv.stop();
  });
  const c = new FlowClient({ url: srv.url, tokenPayload: TOKEN.payload, tokenSignature: TOKEN.signature, intervalMs: 10_000 });
  t.after(() => c.close());
  const acked = new Set<string>();
  const loop = c.receive((a) => acked.add(a.eventId.toString('hex')));
  await waitFor(() => c.isReady, 3000);
  const evs = Array.from({ length: 300 }, (_, i) => makeEvent(i));
  for (const e of evs) c.send(e);
  await sleep(300);
  assert.equal(acked.size, 0, 'no ack before the store has the event');
  assert.ok(maxConcurrent <= 10, `store saw ${maxConcurrent} concurrent adds`);
  assert.equal(maxConcurrent, 10);
  gate!();
  await waitFor(() => acked.size === 300, 5000, 'all acked');
  assert.equal(stored.size, 300);
  assert.ok(maxConcurrent <= 10);
  // invalid events (bad key) are acked, never stored
  const bad = makeEvent(999);
  bad.publicKey = Buffer.alloc(5);
  gateOpen = Promise.resolve();
  c.send(bad);
  await waitFor(() => acked.has(bad.eventId.toString('hex')), 3000);
  assert.equal(stored.size, 300);
  assert.equal(rx.stats().invalid, 1);
  c.close();
  await loop;
  void grpc;
});

test('receiver: a client that reads its acks late still gets every ack (the write-blocked pause never deadlocks)', async (t) => {
  let storedCount = 0;
  const countingStore: FlowStore = {
    async add() {
      storedCount++;
    },
    query: () => Promise.reject(new Error('unused')),
    deleteOlderThan: async () => 0,
    flush: async () => {},
    close: async () => {},
  };
  const rx = createFlowReceiver({ secret: SECRET, store: countingStore });
  const srv = await startGrpcServer(rx);
  t.after(async () => {
    rx.close();
    await srv.stop();
  });
  const raw = new flow.FlowServiceClient(srv.url.replace('http://', ''), grpc.credentials.createInsecure());
  t.after(() => raw.close());
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${TOKEN.signature}.${TOKEN.payload}`);
  const call = raw.events(md);
  call.on('error', () => {});
  call.pause(); // never read acks for now
  const N = 40_000;
  for (let i = 0; i < N; i++) call.write(makeEvent(i));
  await sleep(1000);
  let acks = 0;
  call.on('data', () => acks++);
  call.resume();
  await waitFor(() => acks === N, 20_000, 'all acks after resuming');
  assert.equal(storedCount, N);
  call.end();
});
