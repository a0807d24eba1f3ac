import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import { Server, ServerCredentials, ChannelCredentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { formatKey, generateKeyPair, sealMessage, openMessage } from '../../src/crypto/index.js';
import { signalexchange } from '../../src/proto/index.js';
import { SignalClient, createSignalServer, type SignalServerOptions, type SignalBody } from '../../src/signal/index.js';

async function startServer(t: TestContext, opts: SignalServerOptions = {}): Promise<{ sig: ReturnType<typeof createSignalServer>; address: string; grpc: Server }> {
  const sig = createSignalServer(opts);
  const grpc = new Server();
  grpc.addService(sig.service, sig.implementation);
  const port = await new Promise<number>((resolve, reject) => grpc.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  t.after(() => {
    sig.close();
    grpc.forceShutdown();
  });
  return { sig, address: `127.0.0.1:${port}`, grpc };
}

function newClient(t: TestContext, address: string, extra: Partial<ConstructorParameters<typeof SignalClient>[0]> = {}): SignalClient {
  const c = new SignalClient({ address, privateKey: generateKeyPair().privateKey, backoffInitialMs: 50, ...extra });
  t.after(() => c.close());
  return c;
}

function nextMessage(c: SignalClient, ms = 3000): Promise<{ from: string; body: SignalBody }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no signal message')), ms);
    c.once('message', (from, body) => {
      clearTimeout(timer);
      resolve({ from, body });
    });
  });
}

function raw(address: string): signalexchange.SignalExchangeClient {
  return new signalexchange.SignalExchangeClient(address, ChannelCredentials.createInsecure());
}

function rawSend(cl: signalexchange.SignalExchangeClient, msg: signalexchange.EncryptedMessage): Promise<signalexchange.EncryptedMessage> {
  return new Promise((resolve, reject) => cl.send(msg, (e: ServiceError | null, r?: signalexchange.EncryptedMessage) => (e ? reject(e) : resolve(r!))));
}

test('two signal clients exchange encrypted messages both ways', async (t) => {
  const { sig, address } = await startServer(t);
  const a = newClient(t, address);
  const b = newClient(t, address);
  await Promise.all([a.connect(), b.connect()]);
  assert.deepEqual(sig.connectedPeers().sort(), [a.publicKey, b.publicKey].sort());

  const atB = nextMessage(b);
  await a.send(b.publicKey, { type: signalexchange.Body_Type.OFFER, payload: 'ufragufragufragu:pwdpwdpwdpwdpwdpwdpwdpwdpwdpwdpwdp', wgListenPort: 51820, netBirdVersion: '0.60.0', relayServerAddress: 'rels://relay.example.com:443', sessionId: Buffer.from([1, 2, 3, 4, 5]), rosenpassConfig: {} });
  const m1 = await atB;
  assert.equal(m1.from, a.publicKey);
  assert.equal(m1.body.type, signalexchange.Body_Type.OFFER);
  assert.equal(m1.body.wgListenPort, 51820);
  assert.equal(m1.body.relayServerAddress, 'rels://relay.example.com:443');
  assert.deepEqual([...m1.body.sessionId!], [1, 2, 3, 4, 5]);

  const atA = nextMessage(a);
  await b.send(a.publicKey, { type: signalexchange.Body_Type.ANSWER, payload: ':' });
  const m2 = await atA;
  assert.equal(m2.from, b.publicKey);
  assert.equal(m2.body.type, signalexchange.Body_Type.ANSWER);
  assert.equal(m2.body.payload, ':');
  assert.equal(m2.body.relayServerAddress, undefined);
  assert.equal(sig.stats().forwarded, 2);
});

test('server: missing header, registration header, unchanged forwarding, absent target and dummy', async (t) => {
  const { sig, address } = await startServer(t);
  const cl = raw(address);
  t.after(() => cl.close());

  const bad = cl.connectStream(new Metadata());
  const err = (await once(bad, 'error'))[0] as ServiceError;
  assert.equal(err.code, status.FAILED_PRECONDITION);

  const kp = generateKeyPair();
  const key = formatKey(kp.publicKey);
  const md = new Metadata();
  md.set('x-wiretrustee-peer-id', key);
  const s = cl.connectStream(md);
  s.on('error', () => {});
  t.after(() => s.cancel());
  const [hdr] = (await once(s, 'metadata')) as [Metadata];
  assert.equal(hdr.get('x-wiretrustee-peer-registered')[0], '1');
  assert.deepEqual(sig.connectedPeers(), [key]);

  // Forwarded unchanged: the server neither checks nor rewrites key/body.
  const sent = { key: 'not-even-a-key', remoteKey: key, body: Buffer.from('opaque bytes \x00\x01') };
  const got = once(s, 'data');
  const reply = await rawSend(cl, sent);
  assert.deepEqual(reply, { key: '', remoteKey: '', body: Buffer.alloc(0) });
  assert.deepEqual((await got)[0], sent);

  assert.deepEqual(await rawSend(cl, { key, remoteKey: formatKey(generateKeyPair().publicKey), body: Buffer.from('x') }), { key: '', remoteKey: '', body: Buffer.alloc(0) });
  assert.deepEqual(await rawSend(cl, { key, remoteKey: 'dummy', body: Buffer.alloc(0) }), { key: '', remoteKey: '', body: Buffer.alloc(0) });
  assert.equal(sig.stats().dropped, 2);

  // Self-addressed message routed back (heartbeat path), decryptable by the owner.
  const hb = once(s, 'data');
  await rawSend(cl, { key, remoteKey: key, body: sealMessage(signalexchange.Body, signalexchange.Body.fromPartial({ type: signalexchange.Body_Type.HEARTBEAT }), kp.publicKey, kp.privateKey) });
  const back = (await hb)[0] as signalexchange.EncryptedMessage;
  assert.equal(openMessage(signalexchange.Body, back.body, kp.publicKey, kp.privateKey).type, signalexchange.Body_Type.HEARTBEAT);
});

test('a peer that registers again replaces the old stream (UNKNOWN "peer registered again")', async (t) => {
  const { sig, address } = await startServer(t);
  const cl = raw(address);
  t.after(() => cl.close());
  const key = formatKey(generateKeyPair().publicKey);
  const md = new Metadata();
  md.set('x-wiretrustee-peer-id', key);
  const first = cl.connectStream(md);
  await once(first, 'metadata');
  const firstErr = once(first, 'error');
  const second = cl.connectStream(md);
  second.on('error', () => {});
  t.after(() => second.cancel());
  await once(second, 'metadata');
  const e = (await firstErr)[0] as ServiceError;
  assert.equal(e.code, status.UNKNOWN);
  assert.match(e.details, /peer registered again/);
  assert.deepEqual(sig.connectedPeers(), [key]);
  const got = once(second, 'data');
  await rawSend(cl, { key: 'x', remoteKey: key, body: Buffer.from('to second') });
  assert.equal(((await got)[0] as signalexchange.EncryptedMessage).body.toString(), 'to second');
});

test('a recipient that does not read is evicted; senders are not blocked beyond the send timeout', async (t) => {
  const { sig, address } = await startServer(t, { sendTimeoutMs: 300 });
  const cl = raw(address);
  t.after(() => cl.close());
  const key = formatKey(generateKeyPair().publicKey);
  // A raw HTTP/2 client whose stream window is 0 and never opened: the server cannot deliver anything to it.
  const session = http2.connect(`http://${address}`, { settings: { initialWindowSize: 0 } });
  session.on('error', () => {});
  t.after(() => session.destroy());
  const req = session.request({ ':method': 'POST', ':path': '/signalexchange.SignalExchange/ConnectStream', 'content-type': 'application/grpc', te: 'trailers', 'x-wiretrustee-peer-id': key });
  req.on('error', () => {});
  const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
  assert.equal(headers['x-wiretrustee-peer-registered'], '1');
  assert.deepEqual(sig.connectedPeers(), [key]);
  const body = Buffer.alloc(64 * 1024, 1);
  const started = Date.now();
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < 40; i++) sends.push(rawSend(cl, { key: 'x', remoteKey: key, body }));
  await Promise.all(sends);
  assert.ok(Date.now() - started < 5000, 'sends returned');
  assert.equal(sig.stats().evicted, 1, JSON.stringify(sig.stats()));
  assert.deepEqual(sig.connectedPeers(), []);
  // Others are still served.
  const a = newClient(t, address);
  const b = newClient(t, address);
  await Promise.all([a.connect(), b.connect()]);
  const got = nextMessage(b);
  await a.send(b.publicKey, { type: signalexchange.Body_Type.CANDIDATE, payload: 'candidate' });
  assert.equal((await got).body.payload, 'candidate');
});

test('client: heartbeat watchdog keeps a healthy stream and reconnects a dead one; reconnects after server-side close', async (t) => {
  const { sig, address } = await startServer(t);
  const a = newClient(t, address, { heartbeatIntervalMs: 150, heartbeatTimeoutMs: 150 });
  await a.connect();
  let disconnects = 0;
  a.on('disconnected', () => disconnects++);
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(disconnects, 0, 'heartbeats came back');
  assert.ok(sig.stats().forwarded >= 2, 'heartbeats were self-addressed sends');

  // Server closes all streams: the client reconnects with backoff.
  sig.close();
  await once(a, 'disconnected');
  await once(a, 'connected');
  assert.ok(a.connected);

  // A server that registers but never routes messages: the watchdog notices and reconnects.
  const grpc = new Server();
  let streams = 0;
  grpc.addService(signalexchange.SignalExchangeService, {
    send: (_call: unknown, cb: (e: null, r: signalexchange.EncryptedMessage) => void) => cb(null, { key: '', remoteKey: '', body: Buffer.alloc(0) }),
    connectStream: (call: { sendMetadata(m: Metadata): void }) => {
      streams++;
      const m = new Metadata();
      m.set('x-wiretrustee-peer-registered', '1');
      call.sendMetadata(m);
    },
  });
  const port = await new Promise<number>((res, rej) => grpc.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  t.after(() => grpc.forceShutdown());
  const b = newClient(t, `127.0.0.1:${port}`, { heartbeatIntervalMs: 150, heartbeatTimeoutMs: 150 });
  await b.connect();
  const [reason] = await once(b, 'disconnected');
  assert.equal(reason, 'heartbeat did not come back');
  await once(b, 'connected');
  assert.ok(streams >= 2);

  // A server that doesn't confirm registration is refused by the client.
  const grpc2 = new Server();
  grpc2.addService(signalexchange.SignalExchangeService, {
    send: (_c: unknown, cb: (e: null, r: signalexchange.EncryptedMessage) => void) => cb(null, { key: '', remoteKey: '', body: Buffer.alloc(0) }),
    connectStream: (call: { sendMetadata(m: Metadata): void }) => call.sendMetadata(new Metadata()),
  });
  const port2 = await new Promise<number>((res, rej) => grpc2.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  t.after(() => grpc2.forceShutdown());
  const c = newClient(t, `127.0.0.1:${port2}`);
  await assert.rejects(c.connect(), /did not confirm registration/);
});

test('send retries and then reports a clear error when the server is unreachable', async (t) => {
  const c = newClient(t, '127.0.0.1:1', { sendAttemptTimeoutsMs: [200, 200] });
  await assert.rejects(c.send(formatKey(generateKeyPair().publicKey), { type: signalexchange.Body_Type.OFFER }), /failed after 2 attempts/);
});

test('start() and a failed connect() keep trying until the server is up', async (t) => {
  // Reserve a port, start the client against it, then bring the server up there.
  const probe = new Server();
  const port = await new Promise<number>((res, rej) => probe.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  probe.forceShutdown();
  const c = newClient(t, `127.0.0.1:${port}`, { backoffInitialMs: 50, backoffMaxMs: 200 });
  c.start();
  // connect() reports the failed first attempt but keeps retrying too.
  const c2 = newClient(t, `127.0.0.1:${port}`, { backoffInitialMs: 50, backoffMaxMs: 200 });
  await assert.rejects(c2.connect());
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(c.connected, false);
  const sig = createSignalServer();
  const grpc = new Server();
  grpc.addService(sig.service, sig.implementation);
  await new Promise<number>((res, rej) => grpc.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  t.after(() => grpc.forceShutdown());
  await Promise.race([Promise.all([c.ready(), c2.ready()]), new Promise((_, rej) => setTimeout(() => rej(new Error('not connected')), 5000))]);
  assert.deepEqual(sig.connectedPeers().sort(), [c.publicKey, c2.publicKey].sort());
});
