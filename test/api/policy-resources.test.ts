import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatKey, generateKeyPair } from '../../src/crypto/index.js';
import { emptyPeerMeta } from '../../src/management/index.js';
import { setupOwner, startApi } from './helpers.js';

/**
 * Policy rules whose side is one resource instead of groups (NetBird's rules[].sourceResource /
 * destinationResource, {id, type}): what the official dashboard's networks "Add policy" sends.
 */

const base = { name: 'r', enabled: true, action: 'accept', bidirectional: false, protocol: 'tcp', ports: ['5432'] };

test('policies with destinationResource / sourceResource: round trip, the dashboard\'s null groups, validation', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token, accountId } = await setupOwner(a);
  const key = await a.call('POST', '/api/setup-keys', { token, body: { name: 'k', type: 'reusable', expires_in: 0, auto_groups: [], usage_limit: 0 } });
  const peer = (await a.manager.loginPeer({ peerKey: formatKey(generateKeyPair().publicKey), setupKey: key.body.key, meta: { ...emptyPeerMeta(), hostname: 'p1' } })).peer;
  const src = await a.call('POST', '/api/groups', { token, body: { name: 'devs' } });
  const net = await a.call('POST', '/api/networks', { token, body: { name: 'office' } });
  const res = await a.call('POST', `/api/networks/${net.body.id}/resources`, { token, body: { name: 'db', address: '10.20.0.5', enabled: true, groups: [] } });
  assert.equal(res.body.type, 'host');

  // As the dashboard's networks modal sends it: destinations null beside the resource.
  const created = await a.call('POST', '/api/policies', {
    token,
    body: { name: 'db access', enabled: true, source_posture_checks: [], rules: [{ ...base, sources: [src.body.id], destinations: null, destinationResource: { id: res.body.id, type: 'host' } }] },
  });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const rule = created.body.rules[0];
  assert.deepEqual(rule.destinationResource, { id: res.body.id, type: 'host' });
  assert.equal(rule.sourceResource, undefined, 'left out when the side is groups');
  assert.deepEqual(rule.destinations, []);
  assert.deepEqual(rule.sources.map((g: { id: string }) => g.id), [src.body.id]);
  const got = await a.call('GET', `/api/policies/${created.body.id}`, { token });
  assert.deepEqual(got.body.rules[0].destinationResource, { id: res.body.id, type: 'host' });
  // The network lists the policy as applied to it.
  assert.deepEqual((await a.call('GET', `/api/networks/${net.body.id}`, { token })).body.policies, [created.body.id]);
  // The dashboard's on/off switch: the same rule back with enabled false.
  const off = await a.call('PUT', `/api/policies/${created.body.id}`, {
    token,
    body: { name: 'db access', enabled: false, rules: [{ ...base, id: rule.id, sources: [src.body.id], destinations: null, destinationResource: rule.destinationResource }] },
  });
  assert.equal(off.status, 200, JSON.stringify(off.body));
  assert.equal(off.body.enabled, false);
  assert.deepEqual(off.body.rules[0].destinationResource, { id: res.body.id, type: 'host' });

  // A peer as either side.
  const peers = await a.call('POST', '/api/policies', {
    token,
    body: { name: 'to p1', enabled: true, rules: [{ ...base, sourceResource: { id: peer.id, type: 'peer' }, destinationResource: { id: peer.id, type: 'peer' } }] },
  });
  assert.equal(peers.status, 200, JSON.stringify(peers.body));
  assert.deepEqual(peers.body.rules[0].sourceResource, { id: peer.id, type: 'peer' });
  assert.deepEqual(peers.body.rules[0].sources, []);

  // Stored with the rule: a manager opened on the same store reads it back.
  const before = (await a.call('GET', '/api/policies', { token })).body;
  const { AccountManager } = await import('../../src/management/index.js');
  const m2 = await AccountManager.open({ store: a.store });
  t.after(() => m2.close());
  const reread = m2.listPolicies(accountId).find((p) => p.id === created.body.id)!;
  assert.deepEqual(reread.rules[0]!.destinationResource, { id: res.body.id, type: 'host' });

  const bad = async (r: Record<string, unknown>): Promise<string> => {
    const x = await a.call('POST', '/api/policies', { token, body: { name: 'bad', enabled: true, rules: [{ ...base, ...r }] } });
    assert.equal(x.status, 422, JSON.stringify(x.body));
    return x.body.message as string;
  };
  assert.match(await bad({ sources: [src.body.id], destinationResource: { id: 'ghost', type: 'host' } }), /^rules\.0\.destinationResource: network resource ghost does not exist/);
  assert.match(await bad({ sources: [src.body.id], destinationResource: { id: res.body.id, type: 'subnet' } }), /^rules\.0\.destinationResource\.type: .* is a host, not a subnet/);
  assert.match(await bad({ sources: [src.body.id], destinationResource: { id: 'ghost', type: 'peer' } }), /^rules\.0\.destinationResource: peer ghost does not exist/);
  assert.match(await bad({ sourceResource: { id: res.body.id, type: 'host' }, destinations: [src.body.id] }), /^rules\.0\.sourceResource: a rule's source resource must be a peer/);
  assert.match(await bad({ sources: [src.body.id], destinations: [src.body.id], destinationResource: { id: res.body.id, type: 'host' } }), /either destinations or destinationResource, not both/);
  assert.match(await bad({ sources: [src.body.id], destinations: null }), /^rules\.0\.destinations: at least one group/);
  assert.match(await bad({ sources: [src.body.id], destinationResource: { id: res.body.id, type: 'printer' } }), /destinationResource/);
  assert.equal((await a.call('GET', '/api/policies', { token })).body.length, before.length, 'rejected policies were not written');
});
