import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatKey, generateKeyPair } from '../../src/crypto/index.js';
import { emptyPeerMeta, peerCustomZones, peerNameServerGroups, peerRoutes } from '../../src/management/index.js';
import { setupOwner, startApi } from './helpers.js';

/**
 * What REST-made routes, name-server groups, DNS zones and network resources contribute to each
 * peer's network map (the per-peer views networkmap.ts reads, management-api.md §5.3-5.4).
 */
test('per-peer routes, name servers and zones from REST entities', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token, accountId } = await setupOwner(a);
  const key = await a.manager.createSetupKey(accountId, { name: 'k' });
  const reg = async (h: string): Promise<{ id: string; key: string }> => {
    const peerKey = formatKey(generateKeyPair().publicKey);
    const r = await a.manager.loginPeer({ peerKey, setupKey: key.key, meta: { ...emptyPeerMeta(), hostname: h } });
    return { id: r.peer.id, key: peerKey };
  };
  const A = await reg('router-a');
  const B = await reg('client-b');
  const C = await reg('other-c');
  const state = a.manager.accountState(accountId);
  const post = async (path: string, body: unknown): Promise<any> => {
    const r = await a.call('POST', path, { token, body });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const dist = await post('/api/groups', { name: 'dist', peers: [B.id] });
  const routers = await post('/api/groups', { name: 'routers', peers: [A.id, C.id] });

  // Legacy route with one routing peer.
  const route = await post('/api/routes', { description: '', network_id: 'office', enabled: true, peer: A.id, network: '10.10.0.0/16', metric: 100, masquerade: true, groups: [dist.id], keep_route: false });
  const rb = peerRoutes(state, B.id);
  assert.equal(rb.length, 1);
  assert.deepEqual({ ...rb[0]! }, { ID: route.id, Network: '10.10.0.0/16', NetworkType: 1, Peer: A.key, Metric: 100, Masquerade: true, NetID: 'office', Domains: [], keepRoute: false, skipAutoApply: false });
  assert.equal(peerRoutes(state, A.id).length, 1, 'the routing peer gets the route it serves');
  assert.equal(peerRoutes(state, A.id)[0]!.Peer, A.key);
  assert.deepEqual(peerRoutes(state, C.id), []);

  // HA: routing peers by group, and disabling.
  await a.call('PUT', `/api/routes/${route.id}`, { token, body: { description: '', network_id: 'office', enabled: true, peer_groups: [routers.id], network: '10.10.0.0/16', metric: 100, masquerade: true, groups: [dist.id], keep_route: false } });
  assert.deepEqual(peerRoutes(state, B.id).map((r) => r.Peer).sort(), [A.key, C.key].sort());
  assert.deepEqual(peerRoutes(state, C.id).map((r) => r.Peer), [C.key]);
  // Group membership change is seen by the next build (new serial).
  await a.call('PUT', `/api/groups/${routers.id}`, { token, body: { name: 'routers', peers: [A.id] } });
  assert.deepEqual(peerRoutes(state, B.id).map((r) => r.Peer), [A.key]);
  await a.call('PUT', `/api/routes/${route.id}`, { token, body: { description: '', network_id: 'office', enabled: false, peer: A.id, network: '10.10.0.0/16', metric: 100, masquerade: true, groups: [dist.id], keep_route: false } });
  assert.deepEqual(peerRoutes(state, B.id), []);

  // Name servers and zones go to members of their groups, unless DNS management is off for them.
  await post('/api/dns/nameservers', { name: 'corp', description: '', nameservers: [{ ip: '10.0.0.53', ns_type: 'udp', port: 53 }], enabled: true, groups: [dist.id], primary: false, domains: ['corp.example'], search_domains_enabled: true });
  assert.deepEqual(peerNameServerGroups(state, B.id), [{ NameServers: [{ IP: '10.0.0.53', NSType: 1, Port: 53 }], Primary: false, Domains: ['corp.example'], SearchDomainsEnabled: true }]);
  assert.deepEqual(peerNameServerGroups(state, C.id), []);
  const zone = await post('/api/dns/zones', { name: 'int', domain: 'int.example', enable_search_domain: false, distribution_groups: [dist.id] });
  await post(`/api/dns/zones/${zone.id}/records`, { name: 'db.int.example', type: 'A', content: '10.0.0.5', ttl: 300 });
  assert.deepEqual(peerCustomZones(state, B.id), [
    { Domain: 'int.example.', Records: [{ Name: 'db.int.example', Type: 1, Class: 'IN', TTL: 300, RData: '10.0.0.5' }], SearchDomainDisabled: true, NonAuthoritative: true },
  ]);
  await a.call('PUT', '/api/dns/settings', { token, body: { disabled_management_groups: [dist.id] } });
  assert.deepEqual(peerNameServerGroups(state, B.id), []);
  assert.deepEqual(peerCustomZones(state, B.id), []);

  // Networks: a resource reachable through a policy is routed via the network's routers.
  const db = await post('/api/groups', { name: 'db' });
  const net = await post('/api/networks', { name: 'vpc' });
  await post(`/api/networks/${net.id}/resources`, { name: 'db', address: '10.20.0.0/24', enabled: true, groups: [db.id] });
  await post(`/api/networks/${net.id}/routers`, { peer: A.id, metric: 10, masquerade: true, enabled: true });
  assert.deepEqual(peerRoutes(state, B.id), [], 'no policy grants the resource yet');
  await post('/api/policies', { name: 'to-db', enabled: true, rules: [{ name: 'r', enabled: true, action: 'accept', bidirectional: false, protocol: 'all', sources: [dist.id], destinations: [db.id] }] });
  const viaNet = peerRoutes(state, B.id);
  assert.equal(viaNet.length, 1);
  assert.equal(viaNet[0]!.Network, '10.20.0.0/24');
  assert.equal(viaNet[0]!.Peer, A.key);
  assert.equal(viaNet[0]!.NetID, 'vpc');
  assert.deepEqual(peerRoutes(state, C.id), []);
});
