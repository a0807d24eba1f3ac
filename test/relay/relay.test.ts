import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import WebSocket from 'ws';
import { formatKey, generateKeyPair, issueRelayToken, relayPeerId, relayTokenBinary } from '../../src/crypto/index.js';
import { RelayClient, RelayServer, connectHomeRelay, encodeAuth, type RelayServerOptions } from '../../src/relay/index.js';

const SECRET = 'nbsr-relay-secret';

interface Harness {
  relay: RelayServer;
  http: Server;
  port: number;
  url: string;
}

async function startRelay(t: TestContext, extra: Partial<RelayServerOptions> = {}): Promise<Harness> {
  const http = createServer((_req, res) => res.writeHead(404).end());
  const relay = new RelayServer({ authSecret: SECRET, instanceUrl: 'rel://relay.test:1', ...extra });
  http.on('upgrade', (req, socket, head) => relay.handleUpgrade(req, socket, head));
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const port = (http.address() as AddressInfo).port;
  t.after(async () => {
    await relay.close();
    http.closeAllConnections();
    await new Promise<void>((r) => http.close(() => r()));
  });
  return { relay, http, port, url: `rel://127.0.0.1:${port}` };
}

function token(ttl = 3600): Buffer {
  return relayTokenBinary(issueRelayToken(SECRET, ttl));
}

function newPeer(): { key: string; id: Buffer } {
  const key = formatKey(generateKeyPair().publicKey);
  return { key, id: relayPeerId(key) };
}

async function client(t: TestContext, h: Harness, key: string, extra: Partial<ConstructorParameters<typeof RelayClient>[0]> = {}): Promise<RelayClient> {
  const c = new RelayClient({ url: h.url, publicKey: key, token: token(), ...extra });
  t.after(() => c.close());
  await c.connect();
  return c;
}

function nextTransport(c: RelayClient, timeoutMs = 3000): Promise<{ src: string; payload: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no transport message')), timeoutMs);
    c.onTransport((src, payload) => {
      clearTimeout(timer);
      c.onTransport(null);
      resolve({ src: src.toString('hex'), payload: payload.toString() });
    });
  });
}

/** A raw WebSocket to the relay; collects everything it receives. */
async function raw(t: TestContext, h: Harness): Promise<{ ws: WebSocket; got: Buffer[]; closed: Promise<number> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${h.port}/relay`);
  t.after(() => ws.terminate());
  const got: Buffer[] = [];
  ws.on('message', (d: Buffer) => got.push(d));
  ws.on('error', () => {});
  const closed = new Promise<number>((r) => ws.on('close', (code: number) => r(code)));
  await once(ws, 'open');
  return { ws, got, closed };
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms))]);
}

test('relay carries packets both ways and rewrites the ID to the source', async (t) => {
  const h = await startRelay(t);
  const a = newPeer();
  const b = newPeer();
  const ca = await client(t, h, a.key);
  const cb = await client(t, h, b.key);
  assert.equal(ca.instanceUrl, 'rel://relay.test:1');
  assert.equal(h.relay.stats().peers, 2);

  const atB = nextTransport(cb);
  assert.ok(ca.send(b.id, Buffer.from('ping from a')));
  assert.deepEqual(await atB, { src: a.id.toString('hex'), payload: 'ping from a' });

  const atA = nextTransport(ca);
  assert.ok(cb.send(a.id, Buffer.from('xxpong from bxx'), 2, 11));
  assert.deepEqual(await atA, { src: b.id.toString('hex'), payload: 'pong from b' });

  // Unknown destination: silently dropped, connection stays.
  assert.ok(ca.send(newPeer().id, Buffer.from('nobody')));
  const again = nextTransport(cb);
  ca.send(b.id, Buffer.alloc(8782, 7));
  assert.equal((await again).payload.length, 8782);
  assert.equal(h.relay.stats().droppedMessages, 1);
  assert.equal(h.relay.stats().forwardedMessages, 3);
});

test('bad or expired tokens: connection closed without a reply', async (t) => {
  const h = await startRelay(t);
  const p = newPeer();
  const cases: [string, Buffer][] = [
    ['wrong secret', relayTokenBinary(issueRelayToken('other-secret', 3600))],
    ['expired', relayTokenBinary(issueRelayToken(SECRET, -5))],
    ['garbage token', Buffer.alloc(60, 1)],
  ];
  for (const [what, tok] of cases) {
    const r = await raw(t, h);
    r.ws.send(encodeAuth(p.id, tok));
    await within(r.closed, 3000, what);
    assert.equal(r.got.length, 0, `${what}: no reply expected`);
  }
  // The client reports it as an auth problem.
  const c = new RelayClient({ url: h.url, publicKey: p.key, token: relayTokenBinary(issueRelayToken(SECRET, -5)), reconnect: false });
  await assert.rejects(c.connect(), /token may be invalid or expired/);
  await c.close();
  assert.equal(h.relay.stats().authFailures, 4);
  assert.equal(h.relay.stats().peers, 0);
  assert.equal(h.relay.stats().pendingHandshakes, 0);
});

test('presence: online on subscribe and connect, offline on disconnect', async (t) => {
  const h = await startRelay(t);
  const a = newPeer();
  const b = newPeer();
  const c = newPeer();
  const ca = await client(t, h, a.key);
  const cc = await client(t, h, c.key);
  const events: string[] = [];
  ca.on('peersOnline', (ids) => events.push(...ids.map((i) => 'on:' + (i.equals(b.id) ? 'b' : i.equals(c.id) ? 'c' : '?'))));
  ca.on('peersOffline', (ids) => events.push(...ids.map((i) => 'off:' + (i.equals(b.id) ? 'b' : i.equals(c.id) ? 'c' : '?'))));

  // c is already online: answered immediately; b is not: nothing yet.
  await ca.waitForPeer(c.id, 2000);
  ca.subscribe([b.id]);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(events, ['on:c']);
  assert.equal(ca.isPeerOnline(b.id), false);

  const waitB = ca.waitForPeer(b.id, 3000);
  const cb = await client(t, h, b.key);
  await waitB;
  assert.ok(ca.isPeerOnline(b.id));
  const off = once(ca, 'peersOffline');
  await cb.close();
  await within(off, 3000, 'offline');
  assert.deepEqual(events, ['on:c', 'on:b', 'off:b']);
  assert.equal(ca.isPeerOnline(b.id), false);

  // After unsubscribing, c going away is not reported.
  ca.unsubscribe([c.id]);
  await new Promise((r) => setTimeout(r, 50));
  await cc.close();
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(events, ['on:c', 'on:b', 'off:b']);
});

test('hostile input: garbage, oversize, text frames, legacy hello are refused; others keep being served', async (t) => {
  const h = await startRelay(t);
  const a = newPeer();
  const b = newPeer();
  const ca = await client(t, h, a.key);
  const cb = await client(t, h, b.key);

  const authed = async (): Promise<Awaited<ReturnType<typeof raw>>> => {
    const r = await raw(t, h);
    r.ws.send(encodeAuth(newPeer().id, token()));
    await within(once(r.ws, 'message'), 2000, 'auth response');
    return r;
  };
  // Before auth
  const hello = await raw(t, h);
  hello.ws.send(Buffer.from([1, 1, 0x21, 0x12, 0xa4, 0x42]));
  await within(hello.closed, 2000, 'legacy hello');
  const bigAuth = await raw(t, h);
  bigAuth.ws.send(Buffer.concat([encodeAuth(a.id, token()), Buffer.alloc(200)]));
  await within(bigAuth.closed, 2000, 'oversize auth');
  assert.equal(bigAuth.got.length, 0);
  const textAuth = await raw(t, h);
  textAuth.ws.send('hello relay');
  await within(textAuth.closed, 2000, 'text frame before auth');
  // After auth
  const badVersion = await authed();
  badVersion.ws.send(Buffer.from([2, 3, ...Buffer.alloc(40)]));
  await within(badVersion.closed, 2000, 'bad version');
  const text = await authed();
  text.ws.send('{"type":"transport"}');
  await within(text.closed, 2000, 'text frame');
  const huge = await authed();
  huge.ws.send(Buffer.alloc(9000, 1));
  assert.equal(await within(huge.closed, 2000, 'oversize'), 1009);
  const garbage = await authed();
  garbage.ws.send(Buffer.from([0xde, 0xad, 0xbe, 0xef]));
  await within(garbage.closed, 2000, 'garbage');

  const atB = nextTransport(cb);
  ca.send(b.id, Buffer.from('still here'));
  assert.equal((await atB).payload, 'still here');
  assert.ok(h.relay.stats().protocolErrors >= 4);
  assert.equal(h.relay.stats().peers, 2);
});

test('flood of idle unauthenticated connections is bounded by the cap and the handshake timeout', async (t) => {
  const h = await startRelay(t, { maxPendingHandshakes: 20, handshakeTimeoutMs: 400 });
  const socks: WebSocket[] = [];
  t.after(() => socks.forEach((s) => s.terminate()));
  const results = await Promise.all(
    Array.from({ length: 60 }, async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${h.port}/relay`);
      socks.push(ws);
      ws.on('error', () => {});
      const r = await Promise.race([once(ws, 'open').then(() => 'open'), once(ws, 'unexpected-response').then(() => 'refused'), once(ws, 'close').then(() => 'refused')]);
      return r;
    }),
  );
  const opened = results.filter((r) => r === 'open').length;
  assert.equal(opened, 20, 'only the cap is accepted');
  assert.equal(h.relay.stats().refusedConnections, 40);
  // A legitimate peer is refused while the cap is full, and served once the idle ones time out.
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(h.relay.stats().pendingHandshakes, 0);
  assert.equal(h.relay.stats().connections, 0);
  const a = newPeer();
  const b = newPeer();
  const ca = await client(t, h, a.key);
  const cb = await client(t, h, b.key);
  const got = nextTransport(ca);
  cb.send(a.id, Buffer.from('after flood'));
  assert.equal((await got).payload, 'after flood');
});

test('a receiver that does not read: server drops instead of queueing, memory stays bounded', async (t) => {
  const h = await startRelay(t, { sendBufferLimit: 256 * 1024 });
  const a = newPeer();
  const slow = newPeer();
  const ca = await client(t, h, a.key);
  const r = await raw(t, h);
  r.ws.send(encodeAuth(slow.id, token()));
  await within(once(r.ws, 'message'), 2000, 'auth');
  // Stop reading on the receiver's socket.
  (r.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  const before = process.memoryUsage().rss;
  const payload = Buffer.alloc(8000, 0x55);
  let sent = 0;
  for (let i = 0; i < 200; i++) {
    for (let j = 0; j < 100; j++) if (ca.send(slow.id, payload)) sent++;
    await new Promise((res) => setImmediate(res));
  }
  await new Promise((res) => setTimeout(res, 300));
  const s = h.relay.stats();
  assert.ok(s.droppedMessages > 0, `server should drop (sent ${sent}, stats ${JSON.stringify(s)})`);
  // 160 MB were offered; what is held is bounded by socket buffers + the 256 KiB limit.
  const growth = process.memoryUsage().rss - before;
  assert.ok(growth < 120 * 1024 * 1024, `rss grew by ${growth}`);
  // The fast path still works for others.
  const b = newPeer();
  const cb = await client(t, h, b.key);
  const got = nextTransport(cb);
  ca.send(b.id, Buffer.from('others served'));
  assert.equal((await got).payload, 'others served');
});

test('health checks: server closes a silent peer, client answers and stays, client timeout reconnects with the newest token', async (t) => {
  const h = await startRelay(t, { healthCheckIntervalMs: 100, healthCheckTimeoutMs: 350 });
  const silent = await raw(t, h);
  silent.ws.send(encodeAuth(newPeer().id, token()));
  await within(silent.closed, 3000, 'silent peer closed');
  assert.ok(silent.got.some((m) => m.equals(Buffer.from([1, 5]))), 'received health checks');

  const a = newPeer();
  const ca = await client(t, h, a.key);
  await new Promise((r) => setTimeout(r, 700));
  assert.ok(ca.connected, 'answering client stays connected');

  // Server with slow health checks + client with a short timeout: the client gives up and reconnects.
  const h2 = await startRelay(t, { healthCheckIntervalMs: 60_000 });
  let tokensAsked = 0;
  const cb = new RelayClient({
    url: h2.url,
    publicKey: newPeer().key,
    token: () => {
      tokensAsked++;
      return token();
    },
    healthTimeoutMs: 300,
    backoffInitialMs: 50,
  });
  t.after(() => cb.close());
  await cb.connect();
  await within(once(cb, 'disconnected'), 2000, 'client health timeout');
  await within(once(cb, 'connected'), 2000, 'reconnected');
  assert.ok(tokensAsked >= 2);
});

test('close() sends Close 01 04 to everyone; reconnecting peer replaces the old connection', async (t) => {
  const h = await startRelay(t);
  const p = newPeer();
  const first = await raw(t, h);
  first.ws.send(encodeAuth(p.id, token()));
  await within(once(first.ws, 'message'), 2000, 'auth');
  const second = await raw(t, h);
  second.ws.send(encodeAuth(p.id, token()));
  await within(once(second.ws, 'message'), 2000, 'auth 2');
  await within(first.closed, 2000, 'replaced');
  assert.ok(first.got.some((m) => m.equals(Buffer.from([1, 4]))));
  assert.equal(h.relay.stats().peers, 1);
  // Transport goes to the new connection.
  const sender = newPeer();
  const cs = await client(t, h, sender.key);
  cs.send(p.id, Buffer.from('to newest'));
  await within(once(second.ws, 'message'), 2000, 'transport');
  assert.equal(second.got.at(-1)!.subarray(38).toString(), 'to newest');

  await h.relay.close();
  await within(second.closed, 3000, 'closed on shutdown');
  assert.ok(second.got.at(-1)!.equals(Buffer.from([1, 4])));
});

test('upgrade on another path is refused', async (t) => {
  const h = await startRelay(t);
  const ws = new WebSocket(`ws://127.0.0.1:${h.port}/other`);
  ws.on('error', () => {});
  const [, res] = (await within(once(ws, 'unexpected-response'), 2000, '404')) as [unknown, { statusCode: number }];
  assert.equal(res.statusCode, 404);
  ws.terminate();
});

test('connectHomeRelay keeps the first relay that authenticates', async (t) => {
  const h = await startRelay(t);
  const p = newPeer();
  const c = await connectHomeRelay(['rel://127.0.0.1:1', h.url, 'rel://127.0.0.1:2'], { publicKey: p.key, token: token() });
  t.after(() => c.close());
  assert.equal(c.url, h.url);
  assert.equal(c.instanceUrl, 'rel://relay.test:1');
  await assert.rejects(connectHomeRelay(['rel://127.0.0.1:1'], { publicKey: p.key, token: token() }), /no relay server reachable/);
});

test('client reconnects with backoff and the newest token after the relay restarts', async (t) => {
  const http = createServer();
  let relay = new RelayServer({ authSecret: SECRET, instanceUrl: 'rel://first' });
  http.on('upgrade', (req, socket, head) => relay.handleUpgrade(req, socket, head));
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  t.after(async () => {
    await relay.close();
    http.closeAllConnections();
    http.close();
  });
  const url = `rel://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const issued: number[] = [];
  const c = new RelayClient({
    url,
    publicKey: newPeer().key,
    token: () => {
      issued.push(Date.now());
      return token();
    },
    backoffInitialMs: 50,
    backoffMaxMs: 200,
  });
  t.after(() => c.close());
  assert.equal(await c.connect(), 'rel://first');
  const disconnected = once(c, 'disconnected');
  await relay.close();
  await within(disconnected, 2000, 'disconnected');
  await new Promise((r) => setTimeout(r, 300)); // a few refused attempts while no relay serves
  relay = new RelayServer({ authSecret: SECRET, instanceUrl: 'rel://second' });
  await within(once(c, 'connected'), 3000, 'reconnected');
  assert.equal(c.instanceUrl, 'rel://second');
  assert.ok(issued.length >= 3, `token fetched per attempt (${issued.length})`);
});
