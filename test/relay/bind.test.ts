import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { issueRelayToken, relayTokenBinary } from '../../src/crypto/index.js';
import { RelayBind, RelayClient, RelayServer } from '../../src/relay/index.js';
import { Device, MemoryTun, generatePrivateKey, keyToBase64, publicKeyOf, makeBatch } from '../../src/wireguard/index.js';

const SECRET = 'nbsr-bind-secret';

function ipv4(src: number[], dst: number[], text: string): Buffer {
  const body = Buffer.from(text);
  const p = Buffer.alloc(20 + body.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = 17;
  Buffer.from(src).copy(p, 12);
  Buffer.from(dst).copy(p, 16);
  body.copy(p, 20);
  return p;
}

test('RelayBind carries batches between two binds and two WireGuard devices through the relay', async (t) => {
  const relay = new RelayServer({ authSecret: SECRET, instanceUrl: 'rel://relay.test' });
  const http = createServer();
  http.on('upgrade', (req, sock, head) => relay.handleUpgrade(req, sock, head));
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  t.after(async () => {
    await relay.close();
    http.closeAllConnections();
    http.close();
  });
  const url = `rel://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const token = relayTokenBinary(issueRelayToken(SECRET, 3600));

  const privA = generatePrivateKey();
  const privB = generatePrivateKey();
  const pubA = keyToBase64(publicKeyOf(privA));
  const pubB = keyToBase64(publicKeyOf(privB));
  const ca = new RelayClient({ url, publicKey: pubA, token });
  const cb = new RelayClient({ url, publicKey: pubB, token });
  await Promise.all([ca.connect(), cb.connect()]);
  const bindA = new RelayBind([ca]);
  const bindB = new RelayBind([cb]);
  t.after(() => Promise.all([bindA.close(), bindB.close()]));

  // Raw batches first: several packets in one send, endpoint identity on receipt.
  const got: { from: string; data: string }[] = [];
  bindB.setReceiveHandler((batch, from) => {
    for (let i = 0; i < batch.count; i++) got.push({ from: from[i]!.key, data: batch.buf.toString('utf8', batch.offsets[i]!, batch.offsets[i]! + batch.lengths[i]!) });
  });
  const toB = bindA.endpoint(ca, pubB);
  bindA.send(makeBatch([Buffer.from('one'), Buffer.from('two'), Buffer.from('three')]), [toB, toB, toB]);
  for (let i = 0; i < 50 && got.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(got.map((g) => g.data), ['one', 'two', 'three']);
  assert.equal(got[0]!.from, bindB.endpoint(cb, pubA).key, 'received from the endpoint of A on this client');
  assert.equal(bindB.endpoint(cb, pubA), bindB.endpoint(cb, pubA), 'endpoints are cached');

  // Now real WireGuard devices over the relay binds.
  const tunA = new MemoryTun('tunA', 1280);
  const tunB = new MemoryTun('tunB', 1280);
  const devA = new Device({ privateKey: privA, tun: tunA, binds: [bindA] });
  const devB = new Device({ privateKey: privB, tun: tunB, binds: [bindB] });
  t.after(async () => {
    await devA.close();
    await devB.close();
  });
  devA.setPeer({ publicKey: pubB, allowedIps: ['10.9.0.2/32'], endpoint: bindA.endpoint(ca, pubB) });
  devB.setPeer({ publicKey: pubA, allowedIps: ['10.9.0.1/32'] });
  tunA.inject([ipv4([10, 9, 0, 1], [10, 9, 0, 2], 'over the relay')]);
  await tunB.waitFor(1, 5000);
  assert.equal(tunB.written[0]!.subarray(20).toString(), 'over the relay');
  tunB.inject([ipv4([10, 9, 0, 2], [10, 9, 0, 1], 'and back')]);
  await tunA.waitFor(1, 5000);
  assert.equal(tunA.written[0]!.subarray(20).toString(), 'and back');
});
