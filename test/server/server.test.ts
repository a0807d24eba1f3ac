import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { test } from 'node:test';
import WebSocket, { createWebSocketStream } from 'ws';
import * as http2 from 'node:http2';
import { relayPeerId, relayTokenBinary } from '../../src/crypto/index.js';
import { encodeAuth } from '../../src/relay/index.js';
import { NetbirdServer } from '../../src/server/index.js';
import { management, signalexchange } from '../../src/proto/index.js';
import { TestPeer, tempDir } from '../management/helpers.js';

/** One port carries management gRPC, signal gRPC, the relay WebSocket and plain HTTP. */
/** A self-signed certificate for localhost and 127.0.0.1 (openssl). */
function selfSignedCert(dir: string): { certPem: string; keyPem: string } {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1']);
  assert.equal(r.status, 0, r.stderr?.toString());
  return { certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
}

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

  // Plain HTTP/1.1 reaches the HTTP server (REST API), which answers unknown paths with a JSON 404.
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: srv.port, path: '/api/no-such-endpoint' }, (r) => {
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

test('TLS: ALPN h2 reaches gRPC, http/1.1 reaches HTTP and the relay (rels://)', { skip: spawnSync('openssl', ['version']).status === 0 ? undefined : 'openssl not installed' }, async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const { certPem, keyPem } = selfSignedCert(tmp.dir);
  const srv = await NetbirdServer.start({ dataDir: join(tmp.dir, 'data'), host: '127.0.0.1', port: 0, tls: { cert: certPem, key: keyPem } });
  t.after(() => srv.close());
  assert.equal(srv.managementUrl, `https://127.0.0.1:${srv.port}`);
  const m = srv.management.manager;
  const acc = await m.defaultAccount();
  await m.createSetupKey(acc.id, { name: 'tls' });
  assert.deepEqual(srv.management.infra.config.relay!.urls, [`rels://127.0.0.1:${srv.port}`]);
  assert.equal(srv.management.infra.config.signal!.tls, true);
  const client = new management.ManagementServiceClient(`127.0.0.1:${srv.port}`, grpc.credentials.createSsl(Buffer.from(certPem)));
  t.after(() => client.close());
  const res = await new Promise<management.ServerKeyResponse>((resolve, reject) => client.getServerKey({}, (e, v) => (e ? reject(e) : resolve(v!))));
  assert.equal(res.key.length, 44);
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: srv.port, path: '/x', ca: certPem }, (res2) => {
      res2.resume();
      resolve(res2.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(status, 404);
  const ws = new WebSocket(`wss://127.0.0.1:${srv.port}/relay`, { ca: certPem });
  t.after(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
});

test('gRPC over WebSocket at /ws-proxy/management (protocol.md §2.2)', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await NetbirdServer.start({ dataDir: tmp.dir, host: '127.0.0.1', port: 0 });
  t.after(() => srv.close());
  const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/ws-proxy/management`);
  t.after(() => ws.terminate());
  // The stream must exist before the first message arrives (it buffers our writes until open).
  const stream = createWebSocketStream(ws);
  const session = http2.connect('http://localhost', { createConnection: () => stream as unknown as import('node:net').Socket });
  t.after(() => session.destroy());
  const req = session.request({ ':method': 'POST', ':path': '/management.ManagementService/GetServerKey', 'content-type': 'application/grpc', te: 'trailers' });
  req.end(Buffer.from([0, 0, 0, 0, 0]));
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    req.on('trailers', resolve);
    req.on('error', reject);
  });
  assert.equal(trailers['grpc-status'], '0');
  const body = Buffer.concat(chunks);
  assert.equal(body[0], 0);
  const res = management.ServerKeyResponse.decode(body.subarray(5, 5 + body.readUInt32BE(1)));
  assert.equal(res.key, srv.management.serverKey.publicKey.toString('base64'));
});

/** One request over an HTTP/2 session; resolves status, headers and body. */
async function h2Request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  const req = session.request(headers);
  req.end(body);
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise<void>((resolve) => req.on('close', resolve));
  const head = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    req.on('response', resolve);
    req.on('error', reject);
  });
  await ended;
  return { status: Number(head[':status']), headers: head, body: Buffer.concat(chunks).toString() };
}

// Interop regression: browsers and Go's HTTP client negotiate HTTP/2 (ALPN h2) for /api and /oauth2 on a
// TLS server; grpc-js answered every such request 415, so the dashboard and `netbird up` SSO failed.
test('HTTP/2 (TLS ALPN h2 and h2c prior knowledge): REST, IdP and health answer beside gRPC', { timeout: 30_000, skip: spawnSync('openssl', ['version']).status === 0 ? undefined : 'openssl not installed' }, async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const { certPem, keyPem } = selfSignedCert(tmp.dir);
  const tlsSrv = await NetbirdServer.start({ dataDir: join(tmp.dir, 'tls'), host: '127.0.0.1', port: 0, tls: { cert: certPem, key: keyPem } });
  t.after(() => tlsSrv.close());
  const plainSrv = await NetbirdServer.start({ dataDir: join(tmp.dir, 'plain'), host: '127.0.0.1', port: 0 });
  t.after(() => plainSrv.close());
  for (const [name, url, opts] of [['TLS', `https://127.0.0.1:${tlsSrv.port}`, { ca: certPem }], ['h2c', `http://127.0.0.1:${plainSrv.port}`, {}]] as const) {
    const session = http2.connect(url, opts);
    t.after(() => session.destroy());
    const instance = await h2Request(session, { ':method': 'GET', ':path': '/api/instance' });
    assert.equal(instance.status, 200, `${name} GET /api/instance: ${instance.status} ${instance.body}`);
    assert.deepEqual(JSON.parse(instance.body), { setup_required: true });
    const setup = await h2Request(session, { ':method': 'POST', ':path': '/api/setup', 'content-type': 'application/json' },
      JSON.stringify({ email: 'h2@example.com', password: 'h2-password-123', name: 'H2' }));
    assert.equal(setup.status, 200, `${name} POST /api/setup: ${setup.body}`);
    const token = await h2Request(session, { ':method': 'POST', ':path': '/oauth2/token', 'content-type': 'application/x-www-form-urlencoded' },
      new URLSearchParams({ grant_type: 'password', client_id: 'netbird', username: 'h2@example.com', password: 'h2-password-123' }).toString());
    assert.equal(token.status, 200, `${name} POST /oauth2/token: ${token.body}`);
    const jwt = (JSON.parse(token.body) as { access_token: string }).access_token;
    const me = await h2Request(session, { ':method': 'GET', ':path': '/api/users/current', authorization: `Bearer ${jwt}` });
    assert.equal(me.status, 200, `${name} GET /api/users/current: ${me.body}`);
    assert.equal((JSON.parse(me.body) as { email: string }).email, 'h2@example.com');
    assert.equal((await h2Request(session, { ':method': 'GET', ':path': '/health' })).status, 200);
    assert.equal((await h2Request(session, { ':method': 'GET', ':path': '/api/nothing-here' })).status, 404);
    // gRPC on the same session still reaches grpc-js.
    const grpcRes = await h2Request(session, { ':method': 'POST', ':path': '/management.ManagementService/GetServerKey', 'content-type': 'application/grpc', te: 'trailers' }, '\0\0\0\0\0');
    assert.equal(grpcRes.status, 200);
    assert.equal(grpcRes.headers['content-type'], 'application/grpc+proto');
  }
});
