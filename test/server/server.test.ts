import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import WebSocket from 'ws';
import { relayPeerId, relayTokenBinary } from '../../src/crypto/index.js';
import { encodeAuth } from '../../src/relay/index.js';
import { NetbirdServer } from '../../src/server/index.js';
import { signalexchange } from '../../src/proto/index.js';
import { TestPeer, tempDir } from '../management/helpers.js';

/** One port carries management gRPC, signal gRPC, the relay WebSocket and plain HTTP. */
test('one port: management + signal gRPC, relay WebSocket, HTTP', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await NetbirdServer.start({ dataDir: tmp.dir, host: '127.0.0.1', port: 0, stunPort: 0 });
  t.after(() => srv.close());
  const addr = `127.0.0.1:${srv.port}`;
  assert.equal(srv.managementUrl, `http://${addr}`);

  // Management: register and sync through the shared port.
  const m = srv.management.manager;
  const acc = await m.defaultAccount();
  const { key } = await m.createSetupKey(acc.id, { name: 'k', type: 'reusable' });
  const peer = new TestPeer(addr, 'one-port');
  t.after(() => peer.close());
  const login = await peer.login(key);
  const cfg = login.netbirdConfig!;
  assert.equal(cfg.signal!.uri, addr, 'signal is advertised on the same port');
  assert.deepEqual(cfg.relay!.urls, [`rel://${addr}`]);
  assert.equal(cfg.stuns[0]!.uri, `stun:127.0.0.1:${srv.stun!.port}`);
  const inbox = await peer.sync();
  const first = await inbox.next();
  assert.ok(first.NetworkMap);

  // Signal: the same port serves SignalExchange.
  const sig = new signalexchange.SignalExchangeClient(addr, grpc.credentials.createInsecure());
  t.after(() => sig.close());
  const md = new grpc.Metadata();
  md.set('x-wiretrustee-peer-id', peer.publicKey);
  const stream = sig.connectStream(md);
  const headers = await new Promise<grpc.Metadata>((resolve, reject) => {
    stream.once('metadata', resolve);
    stream.once('error', reject);
  });
  assert.equal(headers.get('x-wiretrustee-peer-registered')[0], '1');
  stream.cancel();
  stream.on('error', () => undefined);

  // Relay: WebSocket upgrade at /relay, authenticated with the token Management handed out.
  const token = relayTokenBinary({ payload: cfg.relay!.tokenPayload, signature: cfg.relay!.tokenSignature });
  const ws = new WebSocket(`ws://${addr}/relay`);
  t.after(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const reply = new Promise<Buffer>((resolve, reject) => {
    ws.once('message', (d) => resolve(d as Buffer));
    ws.once('close', () => reject(new Error('relay closed the connection')));
  });
  ws.send(encodeAuth(relayPeerId(peer.publicKey), token));
  const auth = await reply;
  assert.equal(auth[1], 7, 'AuthResponse');
  assert.equal(auth.subarray(2).toString(), `rel://${addr}`);

  // Plain HTTP/1.1 reaches the HTTP server (REST seam), answering JSON 404 for now.
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: srv.port, path: '/api/instance' }, (r) => {
      let body = '';
      r.on('data', (c) => (body += c));
      r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(res.status, 404);
  assert.equal(JSON.parse(res.body).code, 404);
});
