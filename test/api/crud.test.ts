import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatKey, generateKeyPair } from '../../src/crypto/index.js';
import { emptyPeerMeta } from '../../src/management/index.js';
import { setupOwner, startApi, type TestApi } from './helpers.js';

/** Every resource endpoint: create, read, list, update, delete, with NetBird's JSON shapes and audit codes. */

async function registerPeer(a: TestApi, setupKey: string, hostname: string): Promise<string> {
  const ref = await a.manager.loginPeer({ peerKey: formatKey(generateKeyPair().publicKey), setupKey, meta: { ...emptyPeerMeta(), hostname, OS: 'Debian', netbirdVersion: '0.60.2' } });
  return ref.peer.id;
}

async function codes(a: TestApi, token: string): Promise<string[]> {
  const r = await a.call('GET', '/api/events/audit', { token });
  assert.equal(r.status, 200);
  return (r.body as Array<{ activity_code: string }>).map((e) => e.activity_code);
}

test('bootstrap: /api/instance and /api/setup (PAT once, no-store, 412 after)', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  assert.deepEqual((await a.call('GET', '/api/instance')).body, { setup_required: true });
  const bad = await a.call('POST', '/api/setup', { body: { email: 'x@example.com', password: 'short', name: 'X' } });
  assert.equal(bad.status, 422);
  assert.match(bad.body.message, /^password:/);
  assert.equal(bad.body.code, 422);
  const missing = await a.call('POST', '/api/setup', { body: { email: 'x@example.com', name: 'X' } });
  assert.equal(missing.status, 422);
  assert.match(missing.body.message, /password/);
  const r = await a.call('POST', '/api/setup', { body: { email: 'Owner@Example.com', password: 'correct horse', name: 'Owner', create_pat: true, pat_expire_in: 7 } });
  assert.equal(r.status, 200);
  assert.equal(r.headers['cache-control'], 'no-store');
  assert.equal(r.body.email, 'owner@example.com');
  assert.match(r.body.personal_access_token, /^nbp_[0-9A-Za-z]{36}$/);
  assert.deepEqual((await a.call('GET', '/api/instance')).body, { setup_required: false });
  const again = await a.call('POST', '/api/setup', { body: { email: 'b@example.com', password: 'correct horse', name: 'B', create_pat: true } });
  assert.equal(again.status, 412);
  const me = await a.call('GET', '/api/users/current', { token: r.body.personal_access_token });
  assert.equal(me.status, 200);
  assert.equal(me.body.role, 'owner');
  assert.equal(me.body.is_current, true);
  // The token is stored hashed: the plain text appears nowhere in the database files.
  const accountId = (await a.call('GET', '/api/accounts', { token: r.body.personal_access_token })).body[0].id;
  const rows = a.manager.listTokens(accountId, me.body.id);
  assert.equal(rows.length, 1);
  assert.notEqual(rows[0]!.hashedToken, r.body.personal_access_token);
  const files = readdirSync(a.dir).map((f) => readFileSync(join(a.dir, f)).toString('latin1')).join('');
  assert.ok(files.includes(rows[0]!.hashedToken), 'hash is in the store');
  assert.ok(!files.includes(r.body.personal_access_token), 'plain token is not');
  assert.equal((await a.call('GET', '/api/instance/version', { token: r.body.personal_access_token })).status, 200);
});

test('concurrent setup creates exactly one owner', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const body = (i: number) => ({ email: `o${i}@example.com`, password: 'correct horse', name: `O${i}`, create_pat: true });
  const rs = await Promise.all([0, 1, 2, 3].map((i) => a.call('POST', '/api/setup', { body: body(i) })));
  assert.deepEqual(rs.map((r) => r.status).sort(), [200, 412, 412, 412]);
  assert.equal(a.manager.listAccounts().flatMap((acc) => a.manager.listUsers(acc.id)).length, 1);
});

test('groups, policies, setup keys, peers: CRUD with validation and audit events', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token, accountId } = await setupOwner(a);

  // Groups
  const all = (await a.call('GET', '/api/groups', { token })).body[0];
  assert.equal(all.name, 'All');
  const g = await a.call('POST', '/api/groups', { token, body: { name: 'devs' } });
  assert.equal(g.status, 200);
  assert.deepEqual(Object.keys(g.body).sort(), ['id', 'issued', 'name', 'peers', 'peers_count', 'resources', 'resources_count']);
  assert.equal((await a.call('POST', '/api/groups', { token, body: { name: 'devs' } })).status, 409);
  const racing = await Promise.all([0, 1, 2].map(() => a.call('POST', '/api/groups', { token, body: { name: 'race' } })));
  assert.deepEqual(racing.map((r) => r.status).sort(), [200, 409, 409], 'concurrent creates of one name: one wins');
  await a.call('DELETE', `/api/groups/${racing.find((r) => r.status === 200)!.body.id}`, { token });
  const unknownPeer = await a.call('POST', '/api/groups', { token, body: { name: 'x', peers: ['nope'] } });
  assert.equal(unknownPeer.status, 422);
  assert.match(unknownPeer.body.message, /^peers: peer nope/);
  assert.equal((await a.call('GET', '/api/groups', { token })).body.length, 2, 'failed create wrote nothing');
  assert.equal((await a.call('PUT', `/api/groups/${all.id}`, { token, body: { name: 'All2' } })).status, 412);
  assert.equal((await a.call('DELETE', `/api/groups/${all.id}`, { token })).status, 412);

  // Setup keys
  const k = await a.call('POST', '/api/setup-keys', { token, body: { name: 'ci', type: 'reusable', expires_in: 86400, auto_groups: [g.body.id], usage_limit: 5, ephemeral: false } });
  assert.equal(k.status, 200);
  assert.match(k.body.key, /^[0-9A-F-]{36}$/);
  assert.equal(k.body.state, 'valid');
  assert.equal(k.body.usage_limit, 5);
  const listed = (await a.call('GET', '/api/setup-keys', { token })).body;
  assert.equal(listed.length, 1);
  assert.equal(listed[0].key, k.body.key.slice(0, 5) + '****', 'plain key shown only once');
  assert.equal((await a.call('POST', '/api/setup-keys', { token, body: { name: 'x', type: 'weird', expires_in: 0, auto_groups: [], usage_limit: 0 } })).status, 422);
  const noGroup = await a.call('POST', '/api/setup-keys', { token, body: { name: 'x', type: 'one-off', expires_in: 0, auto_groups: ['missing'], usage_limit: 0 } });
  assert.equal(noGroup.status, 422);
  assert.match(noGroup.body.message, /^auto_groups: group missing/);

  // Peers (registered over the management core with the REST-made key)
  const p1 = await registerPeer(a, k.body.key, 'alpha');
  const p2 = await registerPeer(a, k.body.key, 'beta');
  const peers = (await a.call('GET', '/api/peers', { token })).body;
  assert.equal(peers.length, 2);
  const alpha = peers.find((p: { id: string }) => p.id === p1);
  assert.equal(alpha.accessible_peers_count, 1);
  assert.deepEqual(alpha.groups.map((x: { name: string }) => x.name).sort(), ['All', 'devs']);
  for (const f of ['id', 'name', 'ip', 'connected', 'last_seen', 'os', 'version', 'groups', 'ssh_enabled', 'user_id', 'hostname', 'dns_label', 'login_expiration_enabled', 'login_expired', 'approval_required', 'extra_dns_labels', 'ephemeral']) {
    assert.ok(f in alpha, `peer JSON has ${f}`);
  }
  assert.equal((await a.call('GET', `/api/peers/${p1}`, { token })).body.name, 'alpha');
  assert.deepEqual((await a.call('GET', `/api/peers/${p1}/accessible-peers`, { token })).body.map((x: { id: string }) => x.id), [p2]);
  const renamed = await a.call('PUT', `/api/peers/${p1}`, { token, body: { name: 'Alpha One', ssh_enabled: true, login_expiration_enabled: false, inactivity_expiration_enabled: false } });
  assert.equal(renamed.status, 200);
  assert.equal(renamed.body.dns_label, 'alpha-one');
  assert.equal(renamed.body.ssh_enabled, true);
  assert.equal((await a.call('GET', '/api/peers/nope', { token })).status, 404);
  assert.equal((await a.call('GET', `/api/setup-keys/${k.body.id}`, { token })).body.used_times, 2);

  // Group edit and policy CRUD
  assert.equal((await a.call('PUT', `/api/groups/${g.body.id}`, { token, body: { name: 'All', peers: [] } })).status, 409);
  const g2 = await a.call('PUT', `/api/groups/${g.body.id}`, { token, body: { name: 'developers', peers: [p1] } });
  assert.equal(g2.body.peers_count, 1);
  assert.equal((await a.call('GET', `/api/groups/${g.body.id}`, { token })).body.name, 'developers');
  const rule = { name: 'web', enabled: true, action: 'accept', bidirectional: false, protocol: 'tcp', ports: ['80', '443'], port_ranges: [{ start: 8000, end: 8080 }], sources: [all.id], destinations: [g.body.id] };
  const pol = await a.call('POST', '/api/policies', { token, body: { name: 'web', description: 'd', enabled: true, rules: [rule] } });
  assert.equal(pol.status, 200);
  assert.equal(pol.body.rules[0].destinations[0].name, 'developers');
  assert.deepEqual(pol.body.rules[0].ports, ['80', '443']);
  const badPort = await a.call('POST', '/api/policies', { token, body: { name: 'bad', enabled: true, rules: [{ ...rule, ports: ['70000'] }] } });
  assert.equal(badPort.status, 422);
  assert.match(badPort.body.message, /^rules\.0\.ports: /);
  const badProto = await a.call('POST', '/api/policies', { token, body: { name: 'bad', enabled: true, rules: [{ ...rule, protocol: 'sctp' }] } });
  assert.equal(badProto.status, 422);
  assert.match(badProto.body.message, /^rules\.0\.protocol: must be one of/);
  const badType = await a.call('POST', '/api/policies', { token, body: { name: 'bad', enabled: 'yes', rules: [rule] } });
  assert.equal(badType.status, 400);
  assert.match(badType.body.message, /^enabled:/);
  const badGroup = await a.call('POST', '/api/policies', { token, body: { name: 'bad', enabled: true, rules: [{ ...rule, sources: ['ghost'] }] } });
  assert.equal(badGroup.status, 422);
  assert.match(badGroup.body.message, /^rules\.0\.sources: group ghost/);
  assert.equal((await a.call('GET', '/api/policies', { token })).body.length, 2, 'rejected policies were not written');
  const upd = await a.call('PUT', `/api/policies/${pol.body.id}`, { token, body: { name: 'web2', enabled: false, rules: [{ ...rule, id: pol.body.rules[0].id }] } });
  assert.equal(upd.body.name, 'web2');
  assert.equal(upd.body.rules[0].id, pol.body.rules[0].id);
  assert.equal((await a.call('GET', `/api/policies/${pol.body.id}`, { token })).body.enabled, false);
  assert.equal((await a.call('DELETE', `/api/groups/${g.body.id}`, { token })).status, 412, 'group in use by a policy');
  assert.deepEqual((await a.call('DELETE', `/api/policies/${pol.body.id}`, { token })).body, {});
  assert.equal((await a.call('GET', `/api/policies/${pol.body.id}`, { token })).status, 404);

  // Setup key update and delete
  const rev = await a.call('PUT', `/api/setup-keys/${k.body.id}`, { token, body: { revoked: true, auto_groups: [] } });
  assert.equal(rev.body.state, 'revoked');
  assert.equal((await a.call('DELETE', `/api/setup-keys/${k.body.id}`, { token })).status, 200);
  assert.equal((await a.call('DELETE', `/api/groups/${g.body.id}`, { token })).status, 200);
  assert.equal((await a.call('DELETE', `/api/peers/${p2}`, { token })).status, 200);
  assert.equal((await a.call('GET', '/api/peers', { token })).body.length, 1);

  const c = await codes(a, token);
  for (const code of ['group.add', 'group.update', 'group.delete', 'setupkey.add', 'setupkey.revoke', 'setupkey.delete', 'peer.setupkey.add', 'peer.rename', 'peer.ssh.enable', 'policy.add', 'policy.update', 'policy.delete', 'user.peer.delete']) {
    assert.ok(c.includes(code), `audit has ${code}`);
  }
  assert.ok(accountId);
});

test('routes, name servers, DNS settings, zones and records, posture checks, networks: CRUD', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token } = await setupOwner(a);
  const all = (await a.call('GET', '/api/groups', { token })).body[0];
  const key = await a.call('POST', '/api/setup-keys', { token, body: { name: 'k', type: 'reusable', expires_in: 0, auto_groups: [], usage_limit: 0 } });
  const router = await registerPeer(a, key.body.key, 'router');

  // Routes
  const routeBody = { description: 'office', network_id: 'office', enabled: true, peer: router, network: '10.10.0.0/16', metric: 100, masquerade: true, groups: [all.id], keep_route: false };
  const r = await a.call('POST', '/api/routes', { token, body: routeBody });
  assert.equal(r.status, 200);
  assert.equal(r.body.network_type, 'IPv4');
  assert.equal(r.body.peer, router);
  const both = await a.call('POST', '/api/routes', { token, body: { ...routeBody, domains: ['example.com'] } });
  assert.equal(both.status, 422);
  assert.match(both.body.message, /network, domains/);
  assert.equal((await a.call('POST', '/api/routes', { token, body: { ...routeBody, metric: 0 } })).body.message.split(':')[0], 'metric');
  assert.equal((await a.call('POST', '/api/routes', { token, body: { ...routeBody, network: '10.0.0.0/33' } })).status, 422);
  const dom = await a.call('POST', '/api/routes', { token, body: { ...routeBody, network: undefined, domains: ['*.corp.example'], peer: undefined, peer_groups: [all.id] } });
  assert.equal(dom.status, 200);
  assert.equal(dom.body.network_type, 'Domain');
  assert.equal((await a.call('GET', '/api/routes', { token })).body.length, 2);
  const ru = await a.call('PUT', `/api/routes/${r.body.id}`, { token, body: { ...routeBody, metric: 5, enabled: false } });
  assert.equal(ru.body.metric, 5);
  assert.equal((await a.call('GET', `/api/routes/${r.body.id}`, { token })).body.enabled, false);
  assert.equal((await a.call('DELETE', `/api/routes/${dom.body.id}`, { token })).status, 200);
  assert.equal((await a.call('GET', `/api/routes/${dom.body.id}`, { token })).status, 404);

  // Name-server groups
  const nsBody = { name: 'corp', description: '', nameservers: [{ ip: '10.0.0.53', ns_type: 'udp', port: 53 }], enabled: true, groups: [all.id], primary: false, domains: ['corp.example'], search_domains_enabled: true };
  const ns = await a.call('POST', '/api/dns/nameservers', { token, body: nsBody });
  assert.equal(ns.status, 200);
  assert.deepEqual(ns.body.nameservers, [{ ip: '10.0.0.53', ns_type: 'udp', port: 53 }]);
  const badNs = await a.call('POST', '/api/dns/nameservers', { token, body: { ...nsBody, nameservers: [{ ip: '10.0.0.300', ns_type: 'udp', port: 53 }] } });
  assert.equal(badNs.status, 422);
  assert.match(badNs.body.message, /^nameservers\.ip/);
  assert.equal((await a.call('POST', '/api/dns/nameservers', { token, body: { ...nsBody, domains: [] } })).status, 422);
  assert.equal((await a.call('PUT', `/api/dns/nameservers/${ns.body.id}`, { token, body: { ...nsBody, primary: true, domains: [] } })).body.primary, true);
  assert.equal((await a.call('GET', '/api/dns/nameservers', { token })).body.length, 1);
  assert.equal((await a.call('GET', `/api/dns/nameservers/${ns.body.id}`, { token })).body.name, 'corp');

  // DNS settings
  const grp = await a.call('POST', '/api/groups', { token, body: { name: 'no-dns' } });
  const ds = await a.call('PUT', '/api/dns/settings', { token, body: { disabled_management_groups: [grp.body.id] } });
  assert.deepEqual(ds.body, { disabled_management_groups: [grp.body.id] });
  assert.deepEqual((await a.call('GET', '/api/dns/settings', { token })).body, ds.body);
  assert.equal((await a.call('PUT', '/api/dns/settings', { token, body: { disabled_management_groups: ['ghost'] } })).status, 422);

  // Zones and records
  const z = await a.call('POST', '/api/dns/zones', { token, body: { name: 'internal', domain: 'internal.example', enable_search_domain: false, distribution_groups: [all.id] } });
  assert.equal(z.status, 200);
  assert.equal(z.body.enabled, true);
  assert.equal((await a.call('POST', '/api/dns/zones', { token, body: { name: 'dup', domain: 'internal.example', enable_search_domain: false, distribution_groups: [all.id] } })).status, 409);
  const rec = await a.call('POST', `/api/dns/zones/${z.body.id}/records`, { token, body: { name: 'db.internal.example', type: 'A', content: '10.0.0.5', ttl: 300 } });
  assert.equal(rec.status, 200);
  const badRec = await a.call('POST', `/api/dns/zones/${z.body.id}/records`, { token, body: { name: 'db.other.example', type: 'A', content: '10.0.0.5', ttl: 300 } });
  assert.equal(badRec.status, 422);
  assert.match(badRec.body.message, /^name:/);
  assert.equal((await a.call('POST', `/api/dns/zones/${z.body.id}/records`, { token, body: { name: 'x.internal.example', type: 'AAAA', content: '10.0.0.5', ttl: 300 } })).status, 422);
  const recU = await a.call('PUT', `/api/dns/zones/${z.body.id}/records/${rec.body.id}`, { token, body: { name: 'db.internal.example', type: 'CNAME', content: 'pg.internal.example', ttl: 60 } });
  assert.equal(recU.body.type, 'CNAME');
  assert.equal((await a.call('GET', `/api/dns/zones/${z.body.id}/records`, { token })).body.length, 1);
  assert.equal((await a.call('GET', `/api/dns/zones/${z.body.id}/records/${rec.body.id}`, { token })).body.ttl, 60);
  assert.equal((await a.call('GET', `/api/dns/zones/${z.body.id}`, { token })).body.records.length, 1);
  assert.equal((await a.call('PUT', `/api/dns/zones/${z.body.id}`, { token, body: { name: 'internal2', domain: 'internal.example', enabled: false, enable_search_domain: true, distribution_groups: [all.id] } })).body.name, 'internal2');
  assert.equal((await a.call('DELETE', `/api/dns/zones/${z.body.id}/records/${rec.body.id}`, { token })).status, 200);
  assert.equal((await a.call('GET', '/api/dns/zones', { token })).body.length, 1);
  assert.equal((await a.call('DELETE', `/api/dns/zones/${z.body.id}`, { token })).status, 200);

  // Posture checks
  const pc = await a.call('POST', '/api/posture-checks', { token, body: { name: 'min version', checks: { nb_version_check: { min_version: '0.60.0' } } } });
  assert.equal(pc.status, 200);
  assert.equal((await a.call('POST', '/api/posture-checks', { token, body: { name: 'bad', checks: { nb_version_check: { min_version: 'latest' } } } })).status, 422);
  assert.equal((await a.call('POST', '/api/posture-checks', { token, body: { name: 'bad', checks: { foo_check: {} } } })).body.message.split(':')[0], 'checks.foo_check');
  const pol = await a.call('POST', '/api/policies', {
    token,
    body: { name: 'p', enabled: true, source_posture_checks: [pc.body.id], rules: [{ name: 'r', enabled: true, action: 'accept', bidirectional: true, protocol: 'all', sources: [all.id], destinations: [all.id] }] },
  });
  assert.deepEqual(pol.body.source_posture_checks, [pc.body.id]);
  assert.equal((await a.call('DELETE', `/api/posture-checks/${pc.body.id}`, { token })).status, 412, 'in use by a policy');
  assert.equal((await a.call('PUT', `/api/posture-checks/${pc.body.id}`, { token, body: { name: 'v2', checks: { geo_location_check: { locations: [{ country_code: 'DE' }], action: 'allow' } } } })).body.name, 'v2');
  assert.equal((await a.call('GET', `/api/posture-checks/${pc.body.id}`, { token })).body.checks.geo_location_check.action, 'allow');
  await a.call('DELETE', `/api/policies/${pol.body.id}`, { token });
  assert.equal((await a.call('DELETE', `/api/posture-checks/${pc.body.id}`, { token })).status, 200);
  assert.equal((await a.call('GET', '/api/posture-checks', { token })).body.length, 0);

  // Networks with resources and routers
  const net = await a.call('POST', '/api/networks', { token, body: { name: 'aws', description: 'vpc' } });
  assert.equal(net.status, 200);
  const res = await a.call('POST', `/api/networks/${net.body.id}/resources`, { token, body: { name: 'db', address: '10.20.0.0/24', enabled: true, groups: [grp.body.id] } });
  assert.equal(res.status, 200);
  assert.equal(res.body.type, 'subnet');
  assert.equal(res.body.groups[0].name, 'no-dns');
  assert.equal((await a.call('POST', `/api/networks/${net.body.id}/resources`, { token, body: { name: 'h', address: '10.20.0.7', enabled: true, groups: [grp.body.id] } })).body.type, 'host');
  assert.equal((await a.call('POST', `/api/networks/${net.body.id}/resources`, { token, body: { name: 'd', address: '*.svc.example', enabled: true, groups: [grp.body.id] } })).body.type, 'domain');
  assert.equal((await a.call('POST', `/api/networks/${net.body.id}/resources`, { token, body: { name: 'x', address: 'not an address!', enabled: true, groups: [grp.body.id] } })).status, 422);
  const rt = await a.call('POST', `/api/networks/${net.body.id}/routers`, { token, body: { peer: router, metric: 10, masquerade: true, enabled: true } });
  assert.equal(rt.status, 200);
  assert.equal((await a.call('POST', `/api/networks/${net.body.id}/routers`, { token, body: { metric: 10, masquerade: true, enabled: true } })).status, 422);
  const netGot = (await a.call('GET', `/api/networks/${net.body.id}`, { token })).body;
  assert.equal(netGot.routing_peers_count, 1);
  assert.equal(netGot.resources.length, 3);
  assert.deepEqual(netGot.routers, [rt.body.id]);
  assert.equal((await a.call('GET', `/api/networks/${net.body.id}/resources`, { token })).body.length, 3);
  assert.equal((await a.call('GET', `/api/networks/${net.body.id}/resources/${res.body.id}`, { token })).body.address, '10.20.0.0/24');
  assert.equal((await a.call('PUT', `/api/networks/${net.body.id}/resources/${res.body.id}`, { token, body: { name: 'db2', address: '10.21.0.0/24', enabled: false, groups: [grp.body.id] } })).body.name, 'db2');
  assert.equal((await a.call('GET', `/api/groups/${grp.body.id}`, { token })).body.resources_count, 3);
  assert.equal((await a.call('PUT', `/api/networks/${net.body.id}/routers/${rt.body.id}`, { token, body: { peer_groups: [all.id], metric: 20, masquerade: false, enabled: true } })).body.metric, 20);
  const grouped = (await a.call('GET', `/api/networks/${net.body.id}/routers/${rt.body.id}`, { token })).body;
  assert.equal(grouped.peer_groups[0], all.id);
  assert.equal(grouped.peer, '', 'peer is "" for a group router (the dashboard fetches /api/peers/{peer} unless it is "")');
  assert.equal((await a.call('GET', `/api/networks/${net.body.id}/routers`, { token })).body.length, 1);
  assert.equal((await a.call('GET', '/api/networks/routers', { token })).body.length, 1);
  assert.equal((await a.call('PUT', `/api/networks/${net.body.id}`, { token, body: { name: 'aws-eu' } })).body.name, 'aws-eu');
  assert.equal((await a.call('GET', '/api/networks', { token })).body.length, 1);
  assert.equal((await a.call('DELETE', `/api/groups/${grp.body.id}`, { token })).status, 412, 'group in use by resources');
  assert.equal((await a.call('DELETE', `/api/networks/${net.body.id}/routers/${rt.body.id}`, { token })).status, 200);
  assert.equal((await a.call('DELETE', `/api/networks/${net.body.id}/resources/${res.body.id}`, { token })).status, 200);
  assert.equal((await a.call('DELETE', `/api/networks/${net.body.id}`, { token })).status, 200);
  assert.equal((await a.call('GET', `/api/networks/${net.body.id}/resources`, { token })).status, 404);
  assert.equal(a.manager.objects((await a.call('GET', '/api/accounts', { token })).body[0].id).networkResources.size, 0, 'resources deleted with the network');

  const c = await codes(a, token);
  for (const code of [
    'route.add', 'route.update', 'route.delete', 'nameserver.group.add', 'nameserver.group.update', 'dns.setting.disabled.management.group.add',
    'dns.zone.create', 'dns.zone.update', 'dns.zone.delete', 'dns.zone.record.create', 'dns.zone.record.update', 'dns.zone.record.delete',
    'posture.check.create', 'posture.check.update', 'posture.check.delete', 'network.create', 'network.update', 'network.delete',
    'network.resource.create', 'network.resource.update', 'network.resource.delete', 'network.router.create', 'network.router.update', 'network.router.delete',
  ]) {
    assert.ok(c.includes(code), `audit has ${code}`);
  }
  assert.equal((await a.call('DELETE', `/api/dns/nameservers/${ns.body.id}`, { token })).status, 200);
  assert.ok((await codes(a, token)).includes('nameserver.group.delete'));
});

test('state survives a restart: REST entities are in the store', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token, accountId } = await setupOwner(a);
  const all = (await a.call('GET', '/api/groups', { token })).body[0];
  await a.call('POST', '/api/dns/nameservers', { token, body: { name: 'p', description: '', nameservers: [{ ip: '1.1.1.1', ns_type: 'udp', port: 53 }], enabled: true, groups: [all.id], primary: true, domains: [], search_domains_enabled: false } });
  const net = await a.call('POST', '/api/networks', { token, body: { name: 'n' } });
  await a.call('POST', `/api/networks/${net.body.id}/resources`, { token, body: { name: 'r', address: '10.1.0.0/16', enabled: true, groups: [all.id] } });
  const { AccountManager } = await import('../../src/management/index.js');
  const m2 = await AccountManager.open({ store: a.store });
  t.after(() => m2.close());
  const o = m2.objects(accountId);
  assert.equal(o.nameserverGroups.size, 1);
  assert.equal(o.networks.size, 1);
  assert.equal(o.networkResources.size, 1);
  assert.equal(o.tokens.size, 1);
  assert.ok(await m2.authenticateToken(token), 'PAT valid after reload');
});

test('accounts and users: settings, service users, role changes, ownership, deletion', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token, accountId, userId } = await setupOwner(a);
  const acc = (await a.call('GET', '/api/accounts', { token })).body[0];
  assert.equal(acc.settings.dns_domain, 'netbird.selfhosted');
  assert.equal(acc.settings.regular_users_view_blocked, true);
  const put = await a.call('PUT', `/api/accounts/${accountId}`, { token, body: { settings: { ...acc.settings, peer_login_expiration_enabled: false, peer_login_expiration: 7200, groups_propagation_enabled: false } } });
  assert.equal(put.status, 200);
  assert.equal(put.body.settings.peer_login_expiration, 7200);
  // The account's /16 is random: ask for a different one.
  const otherRange = acc.settings.network_range === '100.99.0.0/16' ? '100.98.0.0/16' : '100.99.0.0/16';
  assert.equal((await a.call('PUT', `/api/accounts/${accountId}`, { token, body: { settings: { ...acc.settings, network_range: otherRange } } })).status, 422);
  assert.equal((await a.call('PUT', `/api/accounts/other`, { token, body: { settings: acc.settings } })).status, 404);

  const g = await a.call('POST', '/api/groups', { token, body: { name: 'ops' } });
  const svc = await a.call('POST', '/api/users', { token, body: { name: 'ci-bot', role: 'admin', auto_groups: [], is_service_user: true } });
  assert.equal(svc.status, 200);
  assert.equal(svc.body.is_service_user, true);
  const usr = await a.call('POST', '/api/users', { token, body: { email: 'dev@example.com', name: 'Dev', role: 'user', auto_groups: [g.body.id], is_service_user: false } });
  assert.equal(usr.status, 200);
  assert.equal((await a.call('POST', '/api/users', { token, body: { email: 'dev@example.com', name: 'Dev', role: 'user', auto_groups: [], is_service_user: false } })).status, 409);
  assert.equal((await a.call('POST', '/api/users', { token, body: { email: 'x@example.com', role: 'emperor', auto_groups: [], is_service_user: false } })).status, 422);
  assert.equal((await a.call('GET', '/api/users?service_user=true', { token })).body.length, 1);
  assert.equal((await a.call('GET', '/api/users', { token })).body.length, 3);

  const upd = await a.call('PUT', `/api/users/${usr.body.id}`, { token, body: { role: 'network_admin', auto_groups: [], is_blocked: true } });
  assert.equal(upd.body.role, 'network_admin');
  assert.equal(upd.body.status, 'blocked');
  assert.equal((await a.call('PUT', `/api/users/${userId}`, { token, body: { role: 'owner', auto_groups: [], is_blocked: true } })).status, 422, 'cannot block yourself');

  // Service user's PAT, made by the owner.
  const pat = await a.call('POST', `/api/users/${svc.body.id}/tokens`, { token, body: { name: 'ci', expires_in: 30 } });
  assert.equal(pat.status, 200);
  assert.ok(pat.body.plain_token.startsWith('nbp_'));
  assert.equal(pat.body.personal_access_token.name, 'ci');
  const svcToken = pat.body.plain_token as string;
  assert.equal((await a.call('GET', '/api/groups', { token: svcToken })).status, 200);
  assert.equal((await a.call('GET', `/api/users/${svc.body.id}/tokens`, { token })).body.length, 1);
  assert.equal((await a.call('GET', `/api/users/${svc.body.id}/tokens/${pat.body.personal_access_token.id}`, { token })).body.id, pat.body.personal_access_token.id);
  // An admin cannot take ownership or touch the owner.
  assert.equal((await a.call('PUT', `/api/users/${userId}`, { token: svcToken, body: { role: 'admin', auto_groups: [], is_blocked: false } })).status, 403);
  assert.equal((await a.call('DELETE', `/api/accounts/${accountId}`, { token: svcToken })).status, 403);

  // Ownership transfer: the previous owner becomes admin.
  const reg = await a.call('POST', '/api/users', { token, body: { email: 'next@example.com', name: 'Next', role: 'admin', auto_groups: [], is_service_user: false } });
  const tr = await a.call('PUT', `/api/users/${reg.body.id}`, { token, body: { role: 'owner', auto_groups: [], is_blocked: false } });
  assert.equal(tr.body.role, 'owner');
  assert.equal((await a.call('GET', '/api/users/current', { token })).body.role, 'admin');

  assert.equal((await a.call('POST', `/api/users/${usr.body.id}/approve`, { token })).status, 412, 'nobody is pending approval');
  assert.equal((await a.call('DELETE', `/api/users/${usr.body.id}/reject`, { token })).status, 412);
  assert.equal((await a.call('POST', '/api/users/ghost/approve', { token })).status, 404);
  assert.equal((await a.call('DELETE', `/api/users/${svc.body.id}`, { token })).status, 200);
  assert.equal((await a.call('GET', '/api/groups', { token: svcToken })).status, 401, 'tokens die with their user');
  assert.equal((await a.call('DELETE', `/api/users/${userId}`, { token })).status, 422, 'cannot delete yourself');

  const c = await codes(a, token);
  for (const code of ['account.setting.peer.login.expiration.disable', 'account.setting.peer.login.expiration.update', 'account.setting.group.propagation.disable', 'service.user.create', 'user.create', 'user.role.update', 'user.block', 'personal.access.token.create', 'transferred.owner.role', 'service.user.delete']) {
    assert.ok(c.includes(code), `audit has ${code}`);
  }
});

test('request limits: oversized bodies 413, malformed JSON 400, unknown paths 404 in the error shape', async (t) => {
  const a = await startApi({ bodyLimit: 4096 });
  t.after(() => a.close());
  const { token } = await setupOwner(a);
  const big = await a.call('POST', '/api/groups', { token, body: { name: 'x'.repeat(10_000) } });
  assert.equal(big.status, 413);
  assert.equal(big.body.code, 413);
  const bad = await a.call('POST', '/api/groups', { token, body: '{"name":', headers: { 'content-type': 'application/json' } });
  assert.equal(bad.status, 400);
  assert.match(bad.body.message, /couldn't parse JSON/);
  // A body-less request labelled as JSON (curl -X DELETE -H 'Content-Type: application/json') is served.
  const g = await a.call('POST', '/api/groups', { token, body: { name: 'to-delete' } });
  const del = await a.call('DELETE', `/api/groups/${g.body.id}`, { token, headers: { 'content-type': 'application/json' } });
  assert.equal(del.status, 200, JSON.stringify(del.body));
  const list = await a.call('GET', '/api/groups', { token, headers: { 'content-type': 'application/json' } });
  assert.equal(list.status, 200);
  // ... but a route that needs a body says so.
  const none = await a.call('POST', '/api/groups', { token, body: '', headers: { 'content-type': 'application/json' } });
  assert.equal(none.status, 400, JSON.stringify(none.body));
  assert.match(none.body.message, /body/);
  const nf = await a.call('GET', '/api/nothing', { token });
  assert.deepEqual(Object.keys(nf.body).sort(), ['code', 'message']);
  assert.equal(nf.status, 404);
});

test('no partial writes: a failure inside the transaction leaves store and memory unchanged', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token, accountId } = await setupOwner(a);
  const u = await a.call('POST', '/api/users', { token, body: { email: 'dev@example.com', name: 'Dev', role: 'user', auto_groups: [], is_service_user: false } });
  const peer = await a.manager.loginPeer({ peerKey: formatKey(generateKeyPair().publicKey), jwtUserId: u.body.id, meta: { ...emptyPeerMeta(), hostname: 'devbox' } });
  await a.manager.createToken(accountId, u.body.id, { name: 't', expiresInDays: 1, createdBy: u.body.id });
  const serial = a.manager.getAccount(accountId).serial;

  // Deleting the user removes peers, tokens, credentials and the user in one transaction; make
  // its last statement fail.
  const original = a.store.transaction.bind(a.store);
  a.store.transaction = ((fn: Parameters<typeof original>[0]) =>
    original((q) =>
      fn(
        new Proxy(q, {
          get(target, prop, recv) {
            if (prop === 'deleteUser') return async () => Promise.reject(new Error('disk on fire'));
            const v = Reflect.get(target, prop, recv);
            return typeof v === 'function' ? v.bind(target) : v;
          },
        }),
      ),
    )) as typeof a.store.transaction;
  const r = await a.call('DELETE', `/api/users/${u.body.id}`, { token });
  a.store.transaction = original;
  assert.equal(r.status, 500);
  assert.deepEqual(r.body, { message: 'internal server error', code: 500 });

  assert.equal(a.manager.getAccount(accountId).serial, serial, 'serial untouched');
  assert.ok(a.manager.getPeer(accountId, peer.peer.id), 'peer still in memory');
  assert.equal(a.manager.listTokens(accountId, u.body.id).length, 1);
  const { AccountManager } = await import('../../src/management/index.js');
  const fresh = await AccountManager.open({ store: a.store });
  t.after(() => fresh.close());
  assert.ok(fresh.getPeer(accountId, peer.peer.id), 'peer row survived');
  assert.ok(fresh.getUser(accountId, u.body.id), 'user row survived');
  assert.equal(fresh.listTokens(accountId, u.body.id).length, 1, 'token row survived');
  const codes = (await a.call('GET', '/api/events/audit', { token })).body.map((e: { activity_code: string }) => e.activity_code);
  assert.ok(!codes.includes('user.delete') && !codes.includes('user.peer.delete'), 'no audit event for the failed change');

  // The same request succeeds once the store behaves.
  assert.equal((await a.call('DELETE', `/api/users/${u.body.id}`, { token })).status, 200);
  assert.throws(() => a.manager.getPeer(accountId, peer.peer.id));
});

test('accessible_peers_count in the peer list matches each peer\'s accessible-peers', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token } = await setupOwner(a);
  const k = await a.call('POST', '/api/setup-keys', { token, body: { name: 'k', type: 'reusable', expires_in: 0, auto_groups: [], usage_limit: 0 } });
  const ids: Record<string, string> = {};
  for (const h of ['a1', 'b1', 'b2', 'c1']) ids[h] = await registerPeer(a, k.body.key, h);
  const def = (await a.call('GET', '/api/policies', { token })).body[0];
  await a.call('DELETE', `/api/policies/${def.id}`, { token });
  const ga = await a.call('POST', '/api/groups', { token, body: { name: 'A', peers: [ids.a1] } });
  const gb = await a.call('POST', '/api/groups', { token, body: { name: 'B', peers: [ids.b1, ids.b2] } });
  await a.call('POST', '/api/policies', { token, body: { name: 'a-to-b', enabled: true, rules: [{ name: 'r', enabled: true, action: 'accept', bidirectional: false, protocol: 'all', sources: [ga.body.id], destinations: [gb.body.id] }] } });
  const list = (await a.call('GET', '/api/peers', { token })).body as Array<{ id: string; name: string; accessible_peers_count: number }>;
  const counts: Record<string, number> = {};
  for (const p of list) {
    counts[p.name] = p.accessible_peers_count;
    const acc = (await a.call('GET', `/api/peers/${p.id}/accessible-peers`, { token })).body;
    assert.equal(p.accessible_peers_count, acc.length, p.name);
  }
  assert.deepEqual(counts, { a1: 2, b1: 1, b2: 1, c1: 0 });
});
