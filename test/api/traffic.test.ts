import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatKey, generateKeyPair } from '../../src/crypto/index.js';
import { KyselyFlowStore } from '../../src/flow/index.js';
import { emptyPeerMeta } from '../../src/management/index.js';
import { setupOwner, startApi } from './helpers.js';

/** GET /api/events/network-traffic: paged events of the caller's account with names filled in. */
test('network traffic events: paging, account scoping, names from the account', async (t) => {
  const flow = await KyselyFlowStore.open({ db: ':memory:' });
  t.after(() => flow.close());
  const a = await startApi({ flowStore: flow });
  t.after(() => a.close());
  const { token, accountId } = await setupOwner(a);
  const key = await a.manager.createSetupKey(accountId, { name: 'k' });
  const mk = async (h: string) => a.manager.loginPeer({ peerKey: formatKey(generateKeyPair().publicKey), setupKey: key.key, meta: { ...emptyPeerMeta(), hostname: h, OS: 'Debian' } });
  const src = (await mk('web')).peer;
  const dst = (await mk('db')).peer;
  const policy = a.manager.listPolicies(accountId)[0]!;
  const base = {
    reporterKey: src.key, reporterId: null, userId: null, type: 'start' as const, ruleId: policy.rules[0]!.id, direction: 'egress' as const,
    protocol: 6, sourceIp: src.ip, destIp: dst.ip, sourcePort: 40000, destPort: 5432, icmpType: null, icmpCode: null,
    rxPackets: 1, txPackets: 2, rxBytes: 100, txBytes: 200, sourceResourceId: null, destResourceId: null,
    numOfStarts: 1, numOfEnds: 0, numOfDrops: 0, windowStart: Date.now() - 1000, windowEnd: Date.now(), receivedAt: Date.now(),
  };
  for (let i = 0; i < 3; i++) {
    await flow.add({ ...base, eventId: `0${i}`.padEnd(32, 'a'), accountId, flowId: `flow-${i}`, timestamp: Date.now() - i * 1000 });
  }
  await flow.add({ ...base, eventId: 'ff'.padEnd(32, 'b'), accountId: 'another-account', flowId: 'foreign', timestamp: Date.now() });
  await flow.flush();

  const r = await a.call('GET', '/api/events/network-traffic?page=1&page_size=2', { token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.total_records, 3, 'other accounts\' events are not shown');
  assert.equal(r.body.total_pages, 2);
  assert.equal(r.body.data.length, 2);
  const ev = r.body.data[0];
  assert.equal(ev.source.name, 'web');
  assert.equal(ev.source.type, 'PEER');
  assert.equal(ev.destination.name, 'db');
  assert.equal(ev.policy.name, policy.name);
  assert.equal(ev.reporter_id, src.id);
  assert.equal((await a.call('GET', '/api/events/network-traffic?page=2&page_size=2', { token })).body.data.length, 1);
  assert.equal((await a.call('GET', '/api/events/network-traffic?page=zero', { token })).status, 422);
});

test('network traffic events without a collector: empty pages', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token } = await setupOwner(a);
  const r = await a.call('GET', '/api/events/network-traffic', { token });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.data, []);
  assert.equal(r.body.total_records, 0);
});
