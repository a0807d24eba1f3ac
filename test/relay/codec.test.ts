import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relayPeerId, relayTokenBinary } from '../../src/crypto/index.js';
import {
  MAX_PEERS_PER_MESSAGE,
  RelayMsgType,
  decodeAuth,
  decodeAuthResponse,
  decodePeerList,
  encodeAuth,
  encodeAuthResponse,
  encodePeerList,
  encodeTransport,
  relayWebSocketUrl,
} from '../../src/relay/index.js';

const A2_KEY = 'e06Qm75//kTEZaIgA31gjuNYl9Me+XLwf3SJLLD3PxM=';
const A2_PEER_ID = '7368612d87fd6ef30d64210a572357ee60c16edd302d81cedfdd4515ad8095218e947e61';
const A3_AUTH =
  '01062112a4427368612d87fd6ef30d64210a572357ee60c16edd302d81cedfdd4515ad8095218e947e610154a7411964f25d29b16b547c7dbc4897e5d4b0feaed0faa0e37f240399f9e99431373637323235363030';

test('Appendix A.3: auth message bytes', () => {
  const id = relayPeerId(A2_KEY);
  assert.equal(id.toString('hex'), A2_PEER_ID);
  const token = relayTokenBinary({ payload: '1767225600', signature: 'VKdBGWTyXSmxa1R8fbxIl+XUsP6u0Pqg438kA5n56ZQ=' });
  const auth = encodeAuth(id, token);
  assert.equal(auth.length, 85);
  assert.equal(auth.toString('hex'), A3_AUTH);
  const parsed = decodeAuth(Buffer.from(A3_AUTH, 'hex'));
  assert.ok(parsed);
  assert.equal(parsed.peerId.toString('hex'), A2_PEER_ID);
  assert.equal(parsed.token.toString('hex'), token.toString('hex'));
});

test('Appendix A.3: auth response for rels://relay.example.com:443', () => {
  const r = encodeAuthResponse('rels://relay.example.com:443');
  assert.equal(r.toString('hex'), '0107' + Buffer.from('rels://relay.example.com:443').toString('hex'));
  assert.equal(decodeAuthResponse(r), 'rels://relay.example.com:443');
  assert.equal(decodeAuthResponse(Buffer.from([1, 7])), null, 'an empty instance URL is invalid');
});

test('auth size limit and malformed auth', () => {
  const id = relayPeerId(A2_KEY);
  assert.doesNotThrow(() => encodeAuth(id, Buffer.alloc(170)));
  assert.throws(() => encodeAuth(id, Buffer.alloc(171)), /too long/);
  const big = Buffer.concat([Buffer.from(A3_AUTH, 'hex'), Buffer.alloc(128)]);
  assert.equal(big.length, 213);
  assert.equal(decodeAuth(big), null);
  const badMagic = Buffer.from(A3_AUTH, 'hex');
  badMagic[2] = 0;
  assert.equal(decodeAuth(badMagic), null);
  const badVersion = Buffer.from(A3_AUTH, 'hex');
  badVersion[0] = 2;
  assert.equal(decodeAuth(badVersion), null);
});

test('transport framing and peer lists split at 244 IDs', () => {
  const id = relayPeerId(A2_KEY);
  const t = encodeTransport(id, Buffer.from('hello'));
  assert.equal(t.toString('hex'), '0103' + A2_PEER_ID + Buffer.from('hello').toString('hex'));
  assert.throws(() => encodeTransport(id, Buffer.alloc(8783)));
  const ids = Array.from({ length: 500 }, (_, i) => relayPeerId(`key-${i}`));
  const msgs = encodePeerList(RelayMsgType.PeersOnline, ids);
  assert.deepEqual(msgs.map((m) => (m.length - 2) / 36), [MAX_PEERS_PER_MESSAGE, MAX_PEERS_PER_MESSAGE, 12]);
  assert.ok(msgs.every((m) => m[0] === 1 && m[1] === 10 && m.length <= 8820));
  const back = msgs.flatMap((m) => decodePeerList(m)!);
  assert.deepEqual(back.map((b) => b.toString('hex')), ids.map((b) => b.toString('hex')));
  assert.equal(encodePeerList(RelayMsgType.SubscribePeerState, []).length, 0);
  assert.equal(decodePeerList(Buffer.from([1, 10, 0])), null);
});

test('relay URLs map to WebSocket URLs', () => {
  assert.deepEqual(relayWebSocketUrl('rels://relay.example.com:443'), { wsUrl: 'wss://relay.example.com:443/relay', tls: true, host: 'relay.example.com', port: 443 });
  assert.deepEqual(relayWebSocketUrl('rel://10.0.0.1'), { wsUrl: 'ws://10.0.0.1:80/relay', tls: false, host: '10.0.0.1', port: 80 });
  assert.equal(relayWebSocketUrl('rel://[::1]:3478').wsUrl, 'ws://[::1]:3478/relay');
  assert.throws(() => relayWebSocketUrl('http//x'), /bad relay URL/);
  assert.throws(() => relayWebSocketUrl('ftp://x'), /scheme/);
});
