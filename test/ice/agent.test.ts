import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSide, connect, sendText, withTimeout } from './helpers.js';
import { waitUntil } from '../lab/index.js';

test('two agents on loopback: host pair selected, both agree, WireGuard datagrams pass the demux and STUN does not', async (t) => {
  const a = await openSide({ host: '127.0.0.1', hostAddresses: ['127.0.0.1'], controlling: true });
  t.after(() => a.close());
  const b = await openSide({ host: '127.0.0.1', hostAddresses: ['127.0.0.1'], controlling: false });
  t.after(() => b.close());
  const started = Date.now();
  await connect(a, b);
  const [pa, pb] = await withTimeout(Promise.all([a.selected, b.selected]), 5000, 'selection');
  const ms = Date.now() - started;
  assert.equal(pa.local.type, 'host');
  assert.equal(pa.remote.type, 'host');
  assert.equal(pa.endpoint.toString(), `127.0.0.1:${b.mux.port}`);
  assert.equal(pb.endpoint.toString(), `127.0.0.1:${a.mux.port}`);
  assert.equal(pa.relayed, false);
  assert.ok(ms < 2000, `host pair took ${ms} ms`);
  assert.equal(a.agent.state, 'connected');
  assert.equal(b.agent.state, 'connected');
  sendText(pa.endpoint, 'wg-from-a');
  sendText(pb.endpoint, 'wg-from-b');
  assert.ok(await waitUntil(() => a.received.length > 0 && b.received.length > 0, 2000));
  assert.deepEqual(b.received.map((r) => r.text), ['wg-from-a']);
  assert.deepEqual(a.received.map((r) => r.text), ['wg-from-b']);
  assert.equal(b.received[0]!.from.key, pb.endpoint.key, 'the device sees the ICE endpoint as the source');
  assert.ok(a.mux.stunReceived > 0 && b.mux.stunReceived > 0, 'checks went through the shared socket');
});

test('role conflict: both think they control; the tie-breaker decides and they still connect', async (t) => {
  const a = await openSide({ host: '127.0.0.1', hostAddresses: ['127.0.0.1'], controlling: true });
  t.after(() => a.close());
  const b = await openSide({ host: '127.0.0.1', hostAddresses: ['127.0.0.1'], controlling: true });
  t.after(() => b.close());
  await connect(a, b);
  await withTimeout(Promise.all([a.selected, b.selected]), 5000, 'selection');
  assert.notEqual(a.agent.controlling, b.agent.controlling, 'exactly one ends up controlling');
});

test('keepalives hold the pair; silence gives disconnected then failed within the 6 s + 6 s timeouts (scaled)', async (t) => {
  const timing = { keepaliveMs: 200, disconnectedMs: 600, failedMs: 600 };
  const a = await openSide({ host: '127.0.0.1', hostAddresses: ['127.0.0.1'], controlling: true, ...timing });
  t.after(() => a.close());
  const b = await openSide({ host: '127.0.0.1', hostAddresses: ['127.0.0.1'], controlling: false, ...timing });
  let bClosed = false;
  t.after(() => (bClosed ? undefined : b.close()));
  await connect(a, b);
  await withTimeout(Promise.all([a.selected, b.selected]), 5000, 'selection');
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(a.agent.state, 'connected', 'keepalives keep it connected past the disconnected timeout');
  const rtt = a.agent.selectedPath()!.rttMs;
  assert.ok(rtt >= 0 && rtt < 100, `rtt ${rtt}`);
  const cut = Date.now();
  bClosed = true;
  await b.close();
  assert.ok(await waitUntil(() => a.agent.state === 'disconnected', 3000), 'disconnected');
  const disc = Date.now() - cut;
  assert.ok(await waitUntil(() => a.agent.state === 'failed', 3000), 'failed');
  const failed = Date.now() - cut;
  assert.ok(disc >= 500 && disc < 1500, `disconnected after ${disc} ms`);
  assert.ok(failed >= 1100 && failed < 2500, `failed after ${failed} ms`);
  assert.deepEqual(a.states.slice(-3), ['connected', 'disconnected', 'failed']);
});

test('restart: new ufrag/pwd/sessionId, old session checks ignored, reconnects', async (t) => {
  const a = await openSide({ host: '127.0.0.1', hostAddresses: ['127.0.0.1'], controlling: true });
  t.after(() => a.close());
  const b = await openSide({ host: '127.0.0.1', hostAddresses: ['127.0.0.1'], controlling: false });
  t.after(() => b.close());
  await connect(a, b);
  await withTimeout(Promise.all([a.selected, b.selected]), 5000, 'selection');
  const old = { u: a.agent.localUfrag, p: a.agent.localPwd, s: a.agent.sessionId.toString('hex') };
  await a.agent.restart();
  await b.agent.restart();
  assert.notEqual(a.agent.localUfrag, old.u);
  assert.notEqual(a.agent.localPwd, old.p);
  assert.notEqual(a.agent.sessionId.toString('hex'), old.s);
  assert.equal(a.agent.localUfrag.length, 16);
  assert.match(a.agent.localPwd, /^[A-Za-z]{32}$/);
  const again = Promise.all([new Promise((r) => a.agent.once('selected', r)), new Promise((r) => b.agent.once('selected', r))]);
  a.agent.setRemoteCredentials(b.agent.localUfrag, b.agent.localPwd);
  b.agent.setRemoteCredentials(a.agent.localUfrag, a.agent.localPwd);
  await Promise.all([a.agent.gather(), b.agent.gather()]);
  await withTimeout(again, 5000, 'reselection');
});

test('remote candidates: tcp, mDNS names and other components are skipped; srflx with candidate-id gets a related-port twin', async (t) => {
  const a = await openSide({ host: '127.0.0.1', hostAddresses: ['127.0.0.1'], controlling: true });
  t.after(() => a.close());
  assert.equal(a.agent.addRemoteCandidate('1 1 tcp 1 10.0.0.1 9 typ host tcptype active'), false);
  assert.equal(a.agent.addRemoteCandidate('1 1 udp 1 abcd-1234.local 9 typ host'), false);
  assert.equal(a.agent.addRemoteCandidate('1 2 udp 1 10.0.0.1 9 typ host'), false);
  assert.equal(a.agent.addRemoteCandidate('2 1 udp 1694498815 203.0.113.9 40000 typ srflx raddr 0.0.0.0 rport 51820 candidate-id candidate:abc'), true);
  assert.deepEqual(a.agent.remoteCandidates.map((c) => `${c.type} ${c.address}:${c.port}`), ['srflx 203.0.113.9:40000', 'srflx 203.0.113.9:51820']);
  assert.equal(a.agent.addRemoteCandidate('3 1 udp 1694498815 203.0.113.8 40000 typ srflx raddr 0.0.0.0 rport 51820'), true);
  assert.equal(a.agent.remoteCandidates.length, 3, 'no twin without a candidate ID');
});
