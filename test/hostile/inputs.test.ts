// Hostile suite: oversized and malformed input on every surface of the real netbird-server (REST,
// gRPC management, signal, relay WebSocket, STUN over UDP). After each attack the server must still
// answer /health, be the same process, and stay under a memory bound. The flood of idle and slow
// connections is in flood.test.ts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { WebSocket } from 'ws';
import { management, signalexchange } from '../../src/proto/index.js';
import { TestPeer } from '../management/helpers.js';
import { health, spawnServer, type SpawnedServer } from './harness.js';

const RSS_BOUND = 400 * 1048576;
let srv: SpawnedServer;
let pid: number;

before(async () => {
  srv = await spawnServer({ env: { NETBIRD_HANDSHAKE_TIMEOUT: '2' } });
  pid = srv.pid;
});
after(() => srv.stop());

/** The server is alive (same process), answers /health and stays under the memory bound. */
async function stillHealthy(what: string): Promise<void> {
  assert.equal(srv.proc.exitCode, null, `the server exited after ${what}:\n${srv.output().slice(-2000)}`);
  assert.equal(srv.pid, pid);
  let ok = false;
  for (let i = 0; i < 5 && !ok; i++) ok = await health(srv.port);
  assert.ok(ok, `/health failed after ${what}`);
  const rss = srv.rss();
  assert.ok(rss < RSS_BOUND, `server RSS ${(rss / 1048576).toFixed(0)} MB after ${what}`);
}

/** Sends raw bytes on a new TCP connection; what came back before the server closed it (or timeout). */
function raw(bytes: Buffer | string, waitMs = 3000): Promise<{ reply: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s: Socket = connect(srv.port, '127.0.0.1', () => s.write(bytes));
    const done = (closed: boolean): void => {
      clearTimeout(t);
      s.destroy();
      resolve({ reply: Buffer.concat(chunks), closed });
    };
    const t = setTimeout(() => done(false), waitMs);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => done(true));
  });
}

async function http(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${srv.port}${path}`, { method, body, headers });
  await r.arrayBuffer();
  return r.status;
}

test('REST: oversized, malformed and hostile requests get 4xx answers', async () => {
  assert.equal(await http('POST', '/api/setup', 'x'.repeat(2 * 1024 * 1024), { 'content-type': 'application/json' }), 413);
  assert.equal(await http('POST', '/api/setup', '{"email": "a@b.c", ', { 'content-type': 'application/json' }), 400);
  assert.equal(await http('POST', '/api/setup', '['.repeat(200_000), { 'content-type': 'application/json' }), 400);
  assert.equal(await http('POST', '/api/setup', randomBytes(4096), { 'content-type': 'application/json' }), 400);
  assert.equal(await http('POST', '/oauth2/token', 'grant_type=password&' + 'a=b&'.repeat(100_000), { 'content-type': 'application/x-www-form-urlencoded' }), 400);
  for (const auth of ['Bearer ' + 'A'.repeat(8000), 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', 'Token nbp_\u00ff\u00fe', 'Basic Og==']) {
    const s = await http('GET', '/api/peers', undefined, { authorization: auth });
    assert.ok(s === 401 || s === 400, `${auth.slice(0, 20)}: ${s}`);
  }
  // Request line and headers beyond Node's limits, NUL bytes, a binary "request".
  assert.match((await raw(`GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`)).reply.toString('latin1'), /^HTTP\/1\.1 431/);
  assert.match((await raw(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`)).reply.toString('latin1'), /^HTTP\/1\.1 431/);
  assert.match((await raw('GET /api/\0\0 HTTP/1.1\r\nHost: x\r\n\r\n')).reply.toString('latin1'), /^HTTP\/1\.1 400/);
  assert.match((await raw(Buffer.concat([Buffer.from('GET '), randomBytes(2000)]))).reply.toString('latin1'), /^HTTP\/1\.1 400/);
  // A thousand requests with random paths and methods.
  for (let i = 0; i < 1000; i++) {
    const path = '/' + ['api', 'oauth2', 'relay', 'metrics', 'x'][i % 5] + '/' + randomBytes(8).toString('hex') + '?' + 'q='.repeat(i % 7);
    const s = await http(['GET', 'POST', 'PUT', 'DELETE'][i % 4]!, path, i % 4 === 1 ? randomBytes(64).toString('base64') : undefined, i % 4 === 1 ? { 'content-type': 'application/json' } : {});
    assert.ok(s < 500, `${path}: ${s}`);
  }
  await stillHealthy('hostile REST requests');
});

test('gRPC: garbage HTTP/2 frames and oversized messages are refused without harm', async () => {
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  // Random bytes after the preface, an impossible frame length, unknown frame types.
  // Connections that never make a valid request are closed at the latest by the handshake deadline.
  assert.ok((await raw(Buffer.concat([preface, randomBytes(4096)]), 6000)).closed, 'garbage after the preface: connection not closed');
  const hugeFrame = Buffer.from([0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]);
  const hf = await raw(Buffer.concat([preface, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), hugeFrame, randomBytes(1024)]), 6000);
  assert.ok(hf.closed, 'an impossible frame length: connection not closed');
  assert.match(hf.reply.toString('latin1'), /frame size/, 'no GOAWAY naming the frame size');
  const unknown = Buffer.concat(Array.from({ length: 200 }, () => Buffer.concat([Buffer.from([0, 0, 8, 0xee, 0, 0, 0, 0, 3]), randomBytes(8)])));
  await raw(Buffer.concat([preface, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), unknown]), 1000);
  // HEADERS frames with a garbage HPACK block on many streams.
  const headers = Buffer.concat(Array.from({ length: 100 }, (_, i) => Buffer.concat([Buffer.from([0, 0, 32, 0x01, 0x05, 0, 0, 0, 2 * i + 1]), randomBytes(32)])));
  assert.ok((await raw(Buffer.concat([preface, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), headers]), 6000)).closed, 'garbage HPACK: connection not closed');
  for (let i = 0; i < 200; i++) await raw(Buffer.concat([preface.subarray(0, 1 + (i % preface.length)), randomBytes(i)]), 200);

  const peer = new TestPeer(`127.0.0.1:${srv.port}`, 'hostile');
  try {
    await peer.serverKey();
    // 20 MB message: over the 16 MB receive limit.
    const big = await new Promise<grpc.ServiceError | null>((resolve) =>
      peer.client.login({ wgPubKey: peer.publicKey, body: Buffer.alloc(20 * 1024 * 1024, 1), version: 0 }, (err) => resolve(err)),
    );
    assert.equal(big?.code, grpc.status.RESOURCE_EXHAUSTED);
    // Undecryptable and nonsensical logins and syncs.
    for (const wgPubKey of ['', 'not a key', 'A'.repeat(44), peer.publicKey]) {
      const e = await new Promise<grpc.ServiceError | null>((resolve) => peer.client.login({ wgPubKey, body: randomBytes(300), version: 0 }, (err) => resolve(err)));
      assert.ok(e && e.code !== grpc.status.OK && e.code !== grpc.status.UNKNOWN && e.code !== grpc.status.INTERNAL, `login with ${JSON.stringify(wgPubKey.slice(0, 8))}: ${e?.code} ${e?.details}`);
    }
    const sync = peer.client.sync({ wgPubKey: peer.publicKey, body: randomBytes(100), version: 0 });
    const code = await new Promise<number>((resolve) => {
      sync.on('error', (e: grpc.ServiceError) => resolve(e.code));
      sync.on('data', () => {});
    });
    assert.notEqual(code, grpc.status.OK);
    const e = await new Promise<grpc.ServiceError | null>((resolve) => peer.client.isHealthy({}, (err) => resolve(err)));
    assert.equal(e, null);
  } finally {
    peer.close();
  }
  void management;
  await stillHealthy('garbage HTTP/2 and oversized gRPC');
});

test('signal: missing and oversized peer ids, garbage and oversized messages', async () => {
  const client = new signalexchange.SignalExchangeClient(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure());
  try {
    const stream = client.connectStream(new grpc.Metadata());
    const code = await new Promise<number>((resolve) => {
      stream.on('error', (e: grpc.ServiceError) => resolve(e.code));
      stream.on('data', () => {});
    });
    assert.equal(code, grpc.status.FAILED_PRECONDITION);
    const md = new grpc.Metadata();
    md.set('x-wiretrustee-peer-id', 'k'.repeat(100_000));
    const huge = client.connectStream(md);
    const hugeCode = await new Promise<number>((resolve) => {
      huge.on('error', (e: grpc.ServiceError) => resolve(e.code));
      huge.on('data', () => {});
    });
    assert.notEqual(hugeCode, grpc.status.OK);
    for (let i = 0; i < 200; i++) {
      const body = i % 50 === 0 ? Buffer.alloc(4 * 1024 * 1024, i) : randomBytes(i);
      const err = await new Promise<grpc.ServiceError | null>((resolve) => client.send({ key: randomBytes(16).toString('hex'), remoteKey: randomBytes(16).toString('base64'), body }, (e) => resolve(e)));
      // A message to a peer that is not connected is dropped (as NetBird's signal does), never an internal error.
      assert.ok(err === null || (err.code !== grpc.status.INTERNAL && err.code !== grpc.status.UNKNOWN), `send ${i}: ${err?.code} ${err?.details}`);
    }
  } finally {
    client.close();
  }
  await stillHealthy('hostile signal calls');
});

test('relay: garbage WebSocket frames and oversized messages close the connection', async () => {
  const attempt = (frames: Array<Buffer | string>): Promise<number> =>
    new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/relay`);
      const t = setTimeout(() => {
        ws.terminate();
        resolve(-1);
      }, 5000);
      ws.on('open', () => {
        for (const f of frames) ws.send(f);
      });
      ws.on('close', (code) => {
        clearTimeout(t);
        resolve(code);
      });
      ws.on('error', () => {});
    });
  const codes = [
    await attempt([randomBytes(100)]),
    await attempt([Buffer.from([1, 0xff])]),
    await attempt(['text is not the relay protocol']),
    await attempt([Buffer.alloc(64 * 1024, 9)]),
    await attempt([Buffer.concat([Buffer.from([1, 4]), randomBytes(300)])]),
  ];
  for (const c of codes) assert.notEqual(c, -1, `a garbage relay connection stayed open: ${codes.join(',')}`);
  // Raw garbage after a valid upgrade (not even WebSocket framing).
  const upgrade =
    'GET /relay HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
  for (let i = 0; i < 50; i++) await raw(Buffer.concat([Buffer.from(upgrade), randomBytes(200 + i * 10)]), 300);
  await stillHealthy('garbage relay frames');
});

test('STUN: random datagrams do not stop it answering a binding request', async () => {
  assert.ok(srv.stunPort, 'no STUN port');
  const sock = createSocket('udp4');
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => resolve()));
  try {
    for (let i = 0; i < 3000; i++) {
      const d = randomBytes(1 + (i % 1400));
      if (i % 3 === 0 && d.length >= 20) d.writeUInt32BE(0x2112a442, 4); // a STUN magic cookie in place sometimes
      sock.send(d, srv.stunPort!, '127.0.0.1');
      if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    }
    const txid = randomBytes(12);
    const req = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), txid]);
    // Retransmitted like a STUN client does (RFC 8489 §6.2.1): UDP may drop one datagram while the
    // socket buffers still hold the garbage, which says nothing about the server.
    const answer = await new Promise<Buffer | undefined>((resolve) => {
      const resend = setInterval(() => sock.send(req, srv.stunPort!, '127.0.0.1'), 250);
      const t = setTimeout(() => {
        clearInterval(resend);
        resolve(undefined);
      }, 3000);
      sock.on('message', (m: Buffer) => {
        if (m.length >= 20 && m.subarray(8, 20).equals(txid)) {
          clearTimeout(t);
          clearInterval(resend);
          resolve(m);
        }
      });
      sock.send(req, srv.stunPort!, '127.0.0.1');
    });
    assert.ok(answer, 'no answer to a binding request after the garbage');
    assert.equal(answer.readUInt16BE(0), 0x0101);
  } finally {
    sock.close();
  }
  await stillHealthy('random STUN datagrams');
});
