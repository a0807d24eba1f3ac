import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { createServer } from 'node:net';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flow } from '../../src/proto/index.js';
import { createFlowReceiver, FlowClient, FlowClientBusyError, issueFlowToken, KyselyFlowStore } from '../../src/flow/index.js';
import type { FlowClientOptions, FlowReceiver } from '../../src/flow/index.js';
import { makeEvent, sleep, startGrpcServer, startRawGrpcServer, waitFor } from './helpers.js';

const SECRET = 'nbfl-test-secret';
const TOKEN = issueFlowToken(SECRET, 3600);

function newClient(url: string, extra: Partial<FlowClientOptions> = {}): FlowClient {
  return new FlowClient({ url, tokenPayload: TOKEN.payload, tokenSignature: TOKEN.signature, intervalMs: 10_000, ...extra });
}

async function withReceiver(): Promise<{ store: KyselyFlowStore; rx: FlowReceiver; url: string; stop: () => Promise<void> }> {
  const store = await KyselyFlowStore.open({ db: ':memory:', flushIntervalMs: 10 });
  const rx = createFlowReceiver({ secret: SECRET, store });
  const srv = await startGrpcServer(rx);
  return {
    store,
    rx,
    url: srv.url,
    stop: async () => {
      rx.close();
      await srv.stop();
      await store.close();
    },
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

test('acks arrive for every event; the initiator ack is not handed to the caller', async (t) => {
  const env = await withReceiver();
  t.after(env.stop);
  const c = newClient(env.url);
  t.after(() => c.close());
  const acks: flow.FlowEventAck[] = [];
  const loop = c.receive((a) => acks.push(a));
  await waitFor(() => c.isReady, 3000, 'stream ready');
  const sent = Array.from({ length: 50 }, (_, i) => makeEvent(i));
  for (const ev of sent) c.send(ev);
  await waitFor(() => acks.length === 50, 5000, '50 acks');
  assert.ok(acks.every((a) => !a.isInitiator));
  assert.deepEqual(new Set(acks.map((a) => a.eventId.toString('hex'))), new Set(sent.map((e) => e.eventId.toString('hex'))));
  assert.equal((await env.store.query({ pageSize: 100 })).totalRecords, 50, 'acked only after being stored');
  // A duplicate is acked again and stored once.
  c.send(sent[0]!);
  await waitFor(() => acks.length === 51, 3000, 'duplicate ack');
  assert.equal((await env.store.query({ pageSize: 100 })).totalRecords, 50);
  c.close();
  assert.equal(await loop, 'closed');
});

test('a second receive loop is refused while one runs', async (t) => {
  const env = await withReceiver();
  t.after(env.stop);
  const c = newClient(env.url);
  t.after(() => c.close());
  const ac = new AbortController();
  const loop = c.receive(() => {}, { signal: ac.signal });
  await assert.rejects(c.receive(() => {}), FlowClientBusyError);
  ac.abort();
  assert.equal(await loop, 'aborted');
  // The client is not closed: a new loop may start now.
  const loop2 = c.receive(() => {});
  await waitFor(() => c.isReady, 3000);
  c.close();
  assert.equal(await loop2, 'closed');
});

test('local cancellation and the local deadline end the loop at once, for good', async (t) => {
  const env = await withReceiver();
  t.after(env.stop);
  const c = newClient(env.url);
  t.after(() => c.close());
  const ac = new AbortController();
  const loop = c.receive(() => {}, { signal: ac.signal });
  await waitFor(() => c.isReady && env.rx.stats().activeStreams === 1, 3000);
  const channels = c.channelsCreated;
  const t0 = performance.now();
  ac.abort();
  assert.equal(await loop, 'aborted');
  assert.ok(performance.now() - t0 < 250, `abort took ${performance.now() - t0} ms`);
  await waitFor(() => env.rx.stats().activeStreams === 0, 2000, 'server sees the stream end');
  await sleep(1200);
  assert.equal(c.channelsCreated, channels, 'no reconnect after cancellation');
  assert.equal(env.rx.stats().activeStreams, 0);

  const t1 = Date.now();
  assert.equal(await c.receive(() => {}, { deadline: Date.now() + 300 }), 'deadline');
  const took = Date.now() - t1;
  assert.ok(took >= 290 && took < 1000, `deadline loop took ${took} ms`);
  const pre = new AbortController();
  pre.abort();
  assert.equal(await c.receive(() => {}, { signal: pre.signal }), 'aborted');
});

test('close() while receiving returns at once; the loop ends and never reconnects; calls after close end at once', async (t) => {
  const env = await withReceiver();
  t.after(env.stop);
  const c = newClient(env.url);
  const loop = c.receive(() => {});
  await waitFor(() => c.isReady, 3000);
  const t0 = performance.now();
  c.close();
  const closeMs = performance.now() - t0;
  assert.ok(closeMs < 50, `close() took ${closeMs} ms`);
  const t1 = performance.now();
  assert.equal(await loop, 'closed');
  assert.ok(performance.now() - t1 < 250);
  const channels = c.channelsCreated;
  await sleep(1200);
  assert.equal(c.channelsCreated, channels, 'no reconnect after close');
  assert.equal(env.rx.stats().activeStreams, 0);
  assert.equal(await c.receive(() => {}), 'closed');
  assert.throws(() => c.send(makeEvent()), /not established/);
});

test('close() during the backoff wait of an unreachable collector returns at once', async () => {
  const port = await freePort();
  const c = newClient(`http://127.0.0.1:${port}`);
  let lost = 0;
  const loop = c.receive(() => {}, { onStreamLost: () => lost++ });
  await waitFor(() => lost === 1, 3000, 'first failure');
  const t0 = performance.now();
  c.close();
  assert.equal(await loop, 'closed');
  assert.ok(performance.now() - t0 < 250);
  const channels = c.channelsCreated;
  await sleep(1500);
  assert.equal(c.channelsCreated, channels);
  assert.equal(lost, 1);
});

test('an unreachable collector fails fast; retries follow our backoff only, each on a new channel', async () => {
  const port = await freePort();
  const c = newClient(`http://127.0.0.1:${port}`, { random: () => 0.5 });
  const t0 = Date.now();
  const fails: Array<{ at: number; code: number | undefined; retry: number | null }> = [];
  const loop = c.receive(() => {}, {
    onStreamLost: (err, retry) => fails.push({ at: Date.now() - t0, code: (err as { code?: number }).code, retry }),
  });
  await waitFor(() => fails.length === 3, 6000, 'three failed attempts');
  c.close();
  await loop;
  assert.ok(fails.every((f) => f.code === grpc.status.UNAVAILABLE), JSON.stringify(fails));
  assert.ok(fails[0]!.at < 700, `first attempt should fail fast, took ${fails[0]!.at} ms`);
  assert.deepEqual(fails.map((f) => Math.round(f.retry!)), [800, 1360, 2312]);
  const gap1 = fails[1]!.at - fails[0]!.at;
  const gap2 = fails[2]!.at - fails[1]!.at;
  assert.ok(gap1 >= 790 && gap1 < 1700, `gap1 ${gap1}`);
  assert.ok(gap2 >= 1350 && gap2 < 2400, `gap2 ${gap2}`);
  assert.equal(c.channelsCreated, 3, 'one fresh channel per attempt');
});

test('the backoff resets only after a stream that lived at least resetAfterMs', async (t) => {
  let lifeMs = 0;
  const server = new grpc.Server();
  server.addService(flow.FlowServiceService, {
    events(call: grpc.ServerDuplexStream<flow.FlowEvent, flow.FlowEventAck>) {
      call.sendMetadata(new grpc.Metadata());
      call.on('error', () => {});
      setTimeout(() => call.end(), lifeMs);
    },
  });
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );
  t.after(() => server.forceShutdown());
  const opts: Partial<FlowClientOptions> = {
    backoff: { initialMs: 50, multiplier: 2, randomization: 0, maxIntervalMs: 5000 },
    resetAfterMs: 300,
  };
  const run = async (): Promise<number[]> => {
    const c = newClient(`http://127.0.0.1:${port}`, opts);
    const delays: number[] = [];
    const loop = c.receive(() => {}, { onStreamLost: (_e, d) => delays.push(d!) });
    await waitFor(() => delays.length === 4, 8000, 'four stream failures');
    c.close();
    await loop;
    return delays;
  };
  lifeMs = 0;
  assert.deepEqual(await run(), [50, 100, 200, 400], 'short-lived streams: the backoff keeps growing');
  lifeMs = 400;
  assert.deepEqual(await run(), [50, 50, 50, 50], 'streams that lived ≥ 300 ms reset it');
});

test('the server closing the stream leads to a reconnect on a new channel; acks continue', async (t) => {
  const store = await KyselyFlowStore.open({ db: ':memory:', flushIntervalMs: 10 });
  const rx = createFlowReceiver({ secret: SECRET, store });
  let streams = 0;
  const impl = {
    events(call: grpc.ServerDuplexStream<flow.FlowEvent, flow.FlowEventAck>) {
      const n = ++streams;
      rx.implementation.events(call);
      // The first stream is ended by the server (OK status) once it acked one event.
      if (n === 1) {
        call.on('data', (ev: flow.FlowEvent) => {
          if (!ev.isInitiator) setTimeout(() => call.end(), 50);
        });
      }
    },
  };
  const srv = await startGrpcServer({ service: rx.service, implementation: impl });
  t.after(async () => {
    await srv.stop();
    await store.close();
  });
  const c = newClient(srv.url, { random: () => 0.5, backoff: { initialMs: 100 } });
  t.after(() => c.close());
  const acks: string[] = [];
  const lost: Error[] = [];
  let ready = 0;
  const loop = c.receive((a) => acks.push(a.eventId.toString('hex')), { onStreamLost: (e) => lost.push(e), onStreamReady: () => ready++ });
  await waitFor(() => c.isReady, 3000);
  const e1 = makeEvent(1);
  c.send(e1);
  await waitFor(() => lost.length === 1, 3000, 'stream end noticed');
  assert.match(lost[0]!.message, /closed the stream/);
  await waitFor(() => ready === 2 && c.isReady, 3000, 'reconnected');
  assert.equal(c.channelsCreated, 2, 'a new channel for the new stream');
  const e2 = makeEvent(2);
  c.send(e2);
  await waitFor(() => acks.includes(e2.eventId.toString('hex')), 3000, 'ack after reconnect');
  assert.ok(acks.includes(e1.eventId.toString('hex')));
  c.close();
  assert.equal(await loop, 'closed');
});

test('CANCELLED and DEADLINE_EXCEEDED sent by the server are retried, not taken as local cancellation', async (t) => {
  const store = await KyselyFlowStore.open({ db: ':memory:', flushIntervalMs: 10 });
  const rx = createFlowReceiver({ secret: SECRET, store });
  let streams = 0;
  const impl = {
    events(call: grpc.ServerDuplexStream<flow.FlowEvent, flow.FlowEventAck>) {
      const n = ++streams;
      if (n <= 2) {
        call.sendMetadata(new grpc.Metadata());
        const code = n === 1 ? grpc.status.CANCELLED : grpc.status.DEADLINE_EXCEEDED;
        setTimeout(() => call.emit('error', Object.assign(new Error('proxy says so'), { code, details: 'proxy says so' })), 30);
        return;
      }
      rx.implementation.events(call);
    },
  };
  const srv = await startGrpcServer({ service: rx.service, implementation: impl });
  t.after(async () => {
    await srv.stop();
    await store.close();
  });
  const c = newClient(srv.url, { backoff: { initialMs: 50 } });
  t.after(() => c.close());
  const codes: Array<number | undefined> = [];
  const acks: flow.FlowEventAck[] = [];
  const loop = c.receive((a) => acks.push(a), { onStreamLost: (e) => codes.push((e as { code?: number }).code) });
  await waitFor(() => streams === 3 && c.isReady, 5000, 'third stream');
  assert.deepEqual(codes, [grpc.status.CANCELLED, grpc.status.DEADLINE_EXCEEDED]);
  c.send(makeEvent());
  await waitFor(() => acks.length === 1, 3000);
  c.close();
  assert.equal(await loop, 'closed');
});

test('RST_STREAM PROTOCOL_ERROR mid-stream: reconnect over a new HTTP/2 connection, acks continue', async (t) => {
  const raw = await startRawGrpcServer({
    onEvent: (ctx, ev, nth) => {
      if (ctx.streamNo === 1 && nth === 2) {
        // Ack the second event, then kill the stream the hard way.
        ctx.ack(ev.eventId);
        setTimeout(() => ctx.stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR), 20);
        return;
      }
      ctx.ack(ev.eventId);
    },
  });
  t.after(raw.stop);
  const c = newClient(raw.url, { backoff: { initialMs: 100 } });
  t.after(() => c.close());
  const acks: string[] = [];
  const lost: Array<{ code: number | undefined; message: string }> = [];
  const loop = c.receive((a) => acks.push(a.eventId.toString('hex')), {
    onStreamLost: (e) => lost.push({ code: (e as { code?: number }).code, message: e.message }),
  });
  await waitFor(() => c.isReady, 3000);
  c.send(makeEvent(1));
  c.send(makeEvent(2));
  await waitFor(() => lost.length === 1, 3000, 'RST noticed');
  assert.equal(lost[0]!.code, grpc.status.INTERNAL, lost[0]!.message);
  await waitFor(() => c.isReady && raw.streams === 2, 3000, 'new stream');
  assert.equal(raw.sessions, 2, 'the new stream runs on a new HTTP/2 connection');
  const e3 = makeEvent(3);
  c.send(e3);
  await waitFor(() => acks.includes(e3.eventId.toString('hex')), 3000, 'ack on the new stream');
  assert.equal(acks.length, 3);
  c.close();
  assert.equal(await loop, 'closed');
});

test('a stream whose setup fails halfway (no headers) is closed, also when the loop stops', async (t) => {
  const serverStreams: http2.ServerHttp2Stream[] = [];
  const raw = await startRawGrpcServer({
    respond: (ctx) => {
      serverStreams.push(ctx.stream);
      return false; // never send headers
    },
  });
  t.after(raw.stop);
  const c = newClient(raw.url);
  t.after(() => c.close());
  assert.equal(await c.receive(() => {}, { deadline: Date.now() + 300 }), 'deadline');
  assert.equal(serverStreams.length, 1);
  await waitFor(() => serverStreams[0]!.closed, 2000, 'half-open stream closed');
  assert.equal(serverStreams[0]!.rstCode, http2.constants.NGHTTP2_CANCEL);

  const loop = c.receive(() => {});
  await waitFor(() => serverStreams.length === 2, 2000);
  c.close();
  assert.equal(await loop, 'closed');
  await waitFor(() => serverStreams[1]!.closed, 2000, 'closed on close()');
});

test('a bad token is refused with UNAUTHENTICATED and nothing is stored', async (t) => {
  const env = await withReceiver();
  t.after(env.stop);
  const bad = issueFlowToken('wrong-secret', 3600);
  const expired = issueFlowToken(SECRET, 10, Math.floor(Date.now() / 1000) - 100);
  for (const tok of [bad, expired]) {
    const c = new FlowClient({ url: env.url, tokenPayload: tok.payload, tokenSignature: tok.signature, intervalMs: 10_000 });
    const errs: Array<{ code?: number; details?: string }> = [];
    const loop = c.receive(() => {}, { onStreamLost: (e) => errs.push(e as { code?: number; details?: string }) });
    await waitFor(() => errs.length === 1, 3000);
    c.close();
    await loop;
    assert.equal(errs[0]!.code, grpc.status.UNAUTHENTICATED);
    assert.equal(c.isReady, false);
  }
  // Also a plain grpc client without any authorization header.
  const raw = new flow.FlowServiceClient(env.url.replace('http://', ''), grpc.credentials.createInsecure());
  t.after(() => raw.close());
  const call = raw.events();
  const err = await new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
  assert.equal(err.code, grpc.status.UNAUTHENTICATED);
  assert.equal(env.rx.stats().unauthenticated, 3);
  assert.equal((await env.store.query()).totalRecords, 0);
});

test('the receiver answers the initiator with an initiator ack, after sending headers', async (t) => {
  const env = await withReceiver();
  t.after(env.stop);
  const raw = new flow.FlowServiceClient(env.url.replace('http://', ''), grpc.credentials.createInsecure());
  t.after(() => raw.close());
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${TOKEN.signature}.${TOKEN.payload}`);
  const call = raw.events(md);
  call.on('error', () => {});
  // Headers come before anything is sent by the client.
  const headers = await new Promise<grpc.Metadata>((resolve) => call.on('metadata', resolve));
  assert.ok(Object.keys(headers.getMap()).length > 0);
  const first = new Promise<flow.FlowEventAck>((resolve) => call.once('data', resolve));
  call.write(flow.FlowEvent.fromPartial({ isInitiator: true }));
  assert.deepEqual(await first, { eventId: Buffer.alloc(0), isInitiator: true });
  const ev = makeEvent();
  const second = new Promise<flow.FlowEventAck>((resolve) => call.once('data', resolve));
  call.write(ev);
  assert.deepEqual(await second, { eventId: ev.eventId, isInitiator: false });
  call.end();
  await new Promise<void>((resolve) => call.on('status', () => resolve()));
});

const haveOpenssl = spawnSync('openssl', ['version']).status === 0;
test('https:// means TLS: the client verifies the collector certificate', { skip: haveOpenssl ? false : 'openssl not installed' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nbfl-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = spawnSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
  ]);
  assert.equal(r.status, 0, r.stderr?.toString());
  const cert = readFileSync(join(dir, 'cert.pem'));
  const key = readFileSync(join(dir, 'key.pem'));
  const store = await KyselyFlowStore.open({ db: ':memory:', flushIntervalMs: 10 });
  const rx = createFlowReceiver({ secret: SECRET, store });
  const server = new grpc.Server();
  server.addService(rx.service, rx.implementation);
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createSsl(null, [{ private_key: key, cert_chain: cert }]), (e, p) => (e ? rej(e) : res(p))),
  );
  t.after(async () => {
    rx.close();
    server.forceShutdown();
    await store.close();
  });
  const c = newClient(`https://localhost:${port}`, { rootCerts: cert });
  t.after(() => c.close());
  assert.equal(c.tls, true);
  const acks: flow.FlowEventAck[] = [];
  const loop = c.receive((a) => acks.push(a));
  await waitFor(() => c.isReady, 5000, 'TLS stream');
  c.send(makeEvent());
  await waitFor(() => acks.length === 1, 3000);
  c.close();
  assert.equal(await loop, 'closed');
  // Without the CA the handshake fails and the loop keeps retrying (UNAVAILABLE).
  const untrusted = newClient(`https://localhost:${port}`);
  const errs: Array<number | undefined> = [];
  const loop2 = untrusted.receive(() => {}, { onStreamLost: (e) => errs.push((e as { code?: number }).code) });
  await waitFor(() => errs.length === 1, 5000);
  untrusted.close();
  await loop2;
  assert.equal(errs[0], grpc.status.UNAVAILABLE);
  // A cleartext client cannot talk to it either.
  assert.equal(newClient(`http://localhost:${port}`).tls, false);
});
