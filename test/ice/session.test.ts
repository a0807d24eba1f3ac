import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createUdpBind } from '../../src/tun/index.js';
import { IceMux, IceSession, type SelectedPath } from '../../src/ice/index.js';
import { waitUntil } from '../lab/index.js';

/** A peer as the engine would drive it: OFFER/ANSWER and CANDIDATE through a direct function "signal". */
interface Peer {
  mux: IceMux;
  session: IceSession;
  events: string[];
  path: SelectedPath | null;
  remote: Peer | null;
  close(): Promise<void>;
}

const timing = { keepaliveMs: 200, disconnectedMs: 600, failedMs: 600 };

async function peer(controlling: boolean): Promise<Peer> {
  const mux = new IceMux(await createUdpBind({ port: 0, host: '127.0.0.1' }));
  mux.setReceiveHandler(() => undefined);
  const p: Peer = { mux, session: undefined as unknown as IceSession, events: [], path: null, remote: null, close: async () => { await p.session.close(); await mux.close(); } };
  const send = (type: 'OFFER' | 'ANSWER'): void => {
    const r = p.remote;
    if (!r) return;
    const { payload, sessionId } = p.session.credentials;
    setImmediate(() => {
      r.session.onRemoteCredentials(payload, sessionId, true);
      if (type === 'OFFER') {
        const back = r.session.credentials;
        setImmediate(() => p.session.onRemoteCredentials(back.payload, back.sessionId, true));
      }
    });
  };
  p.session = new IceSession({
    mux, controlling, servers: () => [], retryMinMs: 300, retryMaxMs: 1000,
    agent: { ...timing, hostAddresses: ['127.0.0.1'] },
    sendCandidate: (text) => setImmediate(() => p.remote?.session.onRemoteCandidate(text)),
    requestOffer: () => {
      p.events.push('offer');
      send('OFFER');
    },
    onDirect: (path) => {
      p.events.push('direct');
      p.path = path;
    },
    onLost: (reason) => {
      p.events.push(`lost:${reason}`);
      p.path = null;
    },
  });
  return p;
}

test('session: offer/answer with ufrag:pwd and sessionId, P2P, status; loss falls back, retries with backoff, recovers', async (t) => {
  const a = await peer(true);
  let b = await peer(false);
  t.after(() => a.close());
  t.after(() => b.close());
  a.remote = b;
  b.remote = a;
  const cred = a.session.credentials;
  assert.match(cred.payload, /^[A-Za-z]{16}:[A-Za-z]{32}$/);
  assert.equal(cred.sessionId?.length, 5);
  a.session.restart(); // first OFFER
  assert.ok(await waitUntil(() => a.path !== null && b.path !== null, 5000), `events a=${a.events} b=${b.events}`);
  assert.equal(a.session.credentials.payload, a.session.credentials.payload);
  const st = a.session.status();
  assert.equal(st.connected, true);
  assert.equal(st.relayed, false);
  assert.equal(st.localType, 'host');
  assert.equal(st.remoteType, 'host');
  assert.equal(st.remoteEndpoint, `127.0.0.1:${b.mux.port}`);
  assert.ok(await waitUntil(() => a.session.status().latencyNs > 0, 2000), 'latency from keepalive RTT');

  // B vanishes: A goes back to the relay within the disconnected timeout, then retries.
  const cut = Date.now();
  await b.close();
  assert.ok(await waitUntil(() => a.path === null, 3000));
  const lostMs = Date.now() - cut;
  assert.ok(lostMs < 600 + 400 + 300, `lost after ${lostMs} ms`);
  assert.ok(a.events.some((e) => e.startsWith('lost:ICE disconnected')), a.events.join());
  // B comes back (new socket); A's retry OFFER reconnects them.
  b = await peer(false);
  a.remote = b;
  b.remote = a;
  assert.ok(await waitUntil(() => a.path !== null && b.path !== null, 8000), `events a=${a.events}`);
  t.diagnostic(`lost after ${lostMs} ms; recovered ${Date.now() - cut} ms after the cut`);
  assert.ok(a.events.filter((e) => e === 'offer').length >= 2, 'retried with a new offer');
});

test('session: a payload of ":" turns ICE off for the peer and our answers carry ":" too', async (t) => {
  const a = await peer(true);
  t.after(() => a.close());
  a.session.onRemoteCredentials(':', undefined, true);
  assert.equal(a.session.credentials.payload, ':');
  assert.equal(a.session.credentials.sessionId, undefined);
  a.session.onRemoteCredentials('abc:def:ghi', undefined, true); // malformed: ignored
  assert.equal(a.session.credentials.payload, ':');
  a.session.onRemoteCredentials('ABCDEFGHIJKLMNOP:abcdefghijklmnopqrstuvwxyzabcdef', Buffer.from('0102030405', 'hex'), true);
  assert.match(a.session.credentials.payload, /^[A-Za-z]{16}:[A-Za-z]{32}$/);
});
