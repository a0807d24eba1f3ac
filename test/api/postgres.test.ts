import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AccountManager } from '../../src/management/index.js';
import { pgUnavailableReason, startPgCluster } from '../management/pg-cluster.js';
import { setupOwner, startApi } from './helpers.js';

/** The REST entities on PostgreSQL: same migrations and queries as on SQLite, state reloads intact. */
test('REST API on PostgreSQL: every entity kind written, reloaded, and deleted', { skip: pgUnavailableReason() }, async (t) => {
  const pg = await startPgCluster();
  t.after(() => pg.stop());
  const a = await startApi({}, undefined, { kind: 'postgres', dsn: pg.dsn });
  t.after(() => a.close());
  const { token, accountId, userId } = await setupOwner(a);
  const all = (await a.call('GET', '/api/groups', { token })).body[0].id as string;
  const ok = async (method: string, path: string, body?: unknown): Promise<any> => {
    const r = await a.call(method, path, { token, body });
    assert.equal(r.status, 200, `${method} ${path}: ${JSON.stringify(r.body)}`);
    return r.body;
  };
  await ok('POST', '/api/routes', { description: '', network_id: 'n', enabled: true, peer_groups: [all], network: '10.0.0.0/8', metric: 1, masquerade: false, groups: [all], keep_route: true });
  const ns = await ok('POST', '/api/dns/nameservers', { name: 'ns', description: '', nameservers: [{ ip: '9.9.9.9', ns_type: 'udp', port: 53 }], enabled: true, groups: [all], primary: true, domains: [], search_domains_enabled: false });
  await ok('PUT', `/api/dns/nameservers/${ns.id}`, { name: 'ns2', description: '', nameservers: [{ ip: '9.9.9.9', ns_type: 'udp', port: 53 }], enabled: true, groups: [all], primary: true, domains: [], search_domains_enabled: false });
  const zone = await ok('POST', '/api/dns/zones', { name: 'z', domain: 'z.example', enable_search_domain: true, distribution_groups: [all] });
  await ok('POST', `/api/dns/zones/${zone.id}/records`, { name: 'a.z.example', type: 'A', content: '10.1.1.1', ttl: 60 });
  await ok('POST', '/api/posture-checks', { name: 'pc', checks: { nb_version_check: { min_version: '0.50.0' } } });
  const net = await ok('POST', '/api/networks', { name: 'net' });
  await ok('POST', `/api/networks/${net.id}/resources`, { name: 'r', address: 'db.example', enabled: true, groups: [all] });
  await ok('POST', `/api/networks/${net.id}/routers`, { peer_groups: [all], metric: 5, masquerade: true, enabled: true });
  await ok('PUT', '/api/dns/settings', { disabled_management_groups: [] });
  const pat = await ok('POST', `/api/users/${userId}/tokens`, { name: 'second', expires_in: 3 });
  await ok('POST', '/api/users', { email: 'u@example.com', name: 'U', role: 'user', auto_groups: [], is_service_user: false });

  const m2 = await AccountManager.open({ store: a.store });
  t.after(() => m2.close());
  const o = m2.objects(accountId);
  assert.deepEqual(
    [o.routes.size, o.nameserverGroups.size, o.dnsZones.size, o.postureChecks.size, o.networks.size, o.networkResources.size, o.networkRouters.size, o.tokens.size],
    [1, 1, 1, 1, 1, 1, 1, 2],
  );
  assert.equal([...o.nameserverGroups.values()][0]!.name, 'ns2', 'upsert replaced the row');
  assert.equal([...o.dnsZones.values()][0]!.records.length, 1);
  assert.ok(await m2.authenticateToken(pat.plain_token));
  assert.ok(await m2.findCredentialByEmail('u@example.com'), 'generated password stored with the user');

  await ok('DELETE', `/api/networks/${net.id}`);
  await ok('DELETE', `/api/accounts/${accountId}`);
  assert.equal((await a.call('GET', '/api/instance')).body.setup_required, true);
});
