import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { TestPeer, codeOf, startServer, tempDir } from '../management/helpers.js';
import { setupOwner, startApi } from './helpers.js';

/** Issue 15, item 7: size and character limits on REST strings and lists, and on peer metadata. */

test('REST: oversized names, control characters and huge lists are refused with the field named; the store stays clean', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token } = await setupOwner(a);
  const huge = await a.call('POST', '/api/groups', { token, body: { name: 'g'.repeat(1_000_000) } });
  assert.equal(huge.status, 422);
  assert.match(huge.body.message, /^name: is too long \(at most 255 characters\)/);
  for (const bad of ['nul\u0000byte', 'two\r\nlines', 'tab\there']) {
    const r = await a.call('POST', '/api/groups', { token, body: { name: bad } });
    assert.equal(r.status, 422, JSON.stringify(bad));
    assert.match(r.body.message, /^name: must not contain control characters/);
  }
  const many = await a.call('POST', '/api/groups', { token, body: { name: 'many', peers: Array.from({ length: 20_000 }, (_, i) => `p${i}`) } });
  assert.equal(many.status, 422);
  assert.match(many.body.message, /^peers: has too many entries \(at most 10000\)/);
  const policy = await a.call('POST', '/api/policies', { token, body: { name: 'p', enabled: true, description: 'x'.repeat(5000), rules: [] } });
  assert.equal(policy.status, 422);
  assert.match(policy.body.message, /^description: is too long/);
  // Unicode names within the limit are fine.
  assert.equal((await a.call('POST', '/api/groups', { token, body: { name: 'Büro – 東京' } })).status, 200);
  const names = (await a.call('GET', '/api/groups', { token })).body.map((g: { name: string }) => g.name).sort();
  assert.deepEqual(names, ['All', 'Büro – 東京']);
});

test('gRPC login: peer metadata over the limits is refused (InvalidArgument) and never reaches other peers', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await startServer({ dataDir: tmp.dir });
  t.after(() => srv.close());
  const m = srv.mgmt.manager;
  const account = await m.defaultAccount();
  const { key } = await m.createSetupKey(account.id, { name: 'test', type: 'reusable' });
  const cases: Array<[string, ConstructorParameters<typeof TestPeer>[2]]> = [
    ['hostname of 1 MB', { hostname: 'h'.repeat(1 << 20) }],
    ['version of 10,000 characters', { netbirdVersion: '0.'.repeat(5000) }],
    ['hostname with CR/LF', { hostname: 'evil\r\nhost' }],
    ['10,000 network addresses', { networkAddresses: Array.from({ length: 10_000 }, (_, i) => ({ netIP: `10.0.${i >> 8 & 255}.${i & 255}/32`, mac: '00:00:00:00:00:00' })) }],
  ];
  for (const [label, overrides] of cases) {
    const p = new TestPeer(srv.address, 'bad', overrides);
    t.after(() => p.close());
    assert.equal(await codeOf(p.login(key)), grpc.status.INVALID_ARGUMENT, label);
  }
  const good = new TestPeer(srv.address, 'good');
  t.after(() => good.close());
  await good.login(key);
  assert.deepEqual(m.listPeers(account.id).map((p) => p.name), ['good'], 'no oversized peer was registered');
});
