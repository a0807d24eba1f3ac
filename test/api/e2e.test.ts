import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JwtValidator } from '../../src/api/index.js';
import type { management } from '../../src/proto/index.js';
import { NetbirdServer } from '../../src/server/index.js';
import { type Inbox, TestPeer, codeOf, tempDir } from '../management/helpers.js';

/**
 * A real netbird-server: REST changes (a policy, a group edit) reach connected peers' Sync streams;
 * peers log in over gRPC with a JWT of the embedded identity provider (once per token); the
 * embedded issuer is a standards OIDC issuer (an external-issuer validator accepts its tokens after
 * discovery over HTTP).
 */

async function http(base: string, method: string, path: string, body?: unknown, auth?: string): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = typeof body === 'string' ? 'application/x-www-form-urlencoded' : 'application/json';
  if (auth) headers.authorization = auth;
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Reads Sync messages until one carries a map that satisfies `pred`. */
async function waitMap(inbox: Inbox<management.SyncResponse>, what: string, pred: (m: management.NetworkMap) => boolean, timeoutMs = 8000): Promise<management.NetworkMap> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no map with ${what}`);
    const map = (await inbox.next(left)).NetworkMap;
    if (map && pred(map)) return map;
  }
}

/** Reads Sync messages until one carries a map whose remote peers are exactly `want` (WireGuard keys). */
async function waitRemotes(inbox: Inbox<management.SyncResponse>, want: string[], timeoutMs = 8000): Promise<management.NetworkMap> {
  const deadline = Date.now() + timeoutMs;
  let last: string[] = [];
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no map with remote peers ${JSON.stringify(want)}; last had ${JSON.stringify(last)}`);
    const msg = await inbox.next(left);
    const map = msg.NetworkMap;
    if (!map) continue;
    last = map.remotePeers.map((r) => r.wgPubKey).sort();
    if (JSON.stringify(last) === JSON.stringify([...want].sort())) return map;
  }
}

test('REST changes reach Sync streams; JWT peer login over gRPC', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await NetbirdServer.start({ dataDir: tmp.dir, host: '127.0.0.1', port: 0 });
  t.after(() => srv.close());
  const base = srv.managementUrl;
  const addr = `127.0.0.1:${srv.port}`;

  const setup = await http(base, 'POST', '/api/setup', { email: 'admin@example.com', password: 'correct horse', name: 'Admin', create_pat: true });
  assert.equal(setup.status, 200);
  const auth = `Token ${setup.body.personal_access_token}`;
  const key = await http(base, 'POST', '/api/setup-keys', { name: 'peers', type: 'reusable', expires_in: 0, auto_groups: [], usage_limit: 0 }, auth);
  assert.equal(key.status, 200);

  const a = new TestPeer(addr, 'peer-a');
  const b = new TestPeer(addr, 'peer-b');
  t.after(() => {
    a.close();
    b.close();
  });
  await a.login(key.body.key);
  await b.login(key.body.key);
  const ia = await a.sync();
  const ib = await b.sync();
  await waitRemotes(ia, [b.publicKey]);
  await waitRemotes(ib, [a.publicKey]);

  // Removing the Default policy isolates the peers...
  const policies = (await http(base, 'GET', '/api/policies', undefined, auth)).body;
  assert.equal(policies.length, 1);
  assert.equal((await http(base, 'DELETE', `/api/policies/${policies[0].id}`, undefined, auth)).status, 200);
  await waitRemotes(ia, []);
  await waitRemotes(ib, []);

  // ...a new policy over a new group joins them again, with its firewall rule...
  const peers = (await http(base, 'GET', '/api/peers', undefined, auth)).body as Array<{ id: string; name: string }>;
  const idOf = (name: string): string => peers.find((p) => p.name === name)!.id;
  const group = await http(base, 'POST', '/api/groups', { name: 'pair', peers: [idOf('peer-a'), idOf('peer-b')] }, auth);
  assert.equal(group.status, 200);
  const pol = await http(
    base,
    'POST',
    '/api/policies',
    { name: 'ssh', enabled: true, rules: [{ name: 'ssh', enabled: true, action: 'accept', bidirectional: true, protocol: 'tcp', ports: ['22'], sources: [group.body.id], destinations: [group.body.id] }] },
    auth,
  );
  assert.equal(pol.status, 200);
  const mapA = await waitRemotes(ia, [b.publicKey]);
  assert.ok(mapA.FirewallRules.length > 0 && mapA.FirewallRules.every((r) => r.Port === '22' || r.PortInfo?.port === 22), 'only the port-22 rule');
  await waitRemotes(ib, [a.publicKey]);

  // ...and a group edit that drops B reaches both.
  assert.equal((await http(base, 'PUT', `/api/groups/${group.body.id}`, { name: 'pair', peers: [idOf('peer-a')] }, auth)).status, 200);
  await waitRemotes(ia, []);
  await waitRemotes(ib, []);

  // A route and a name-server group made over REST reach the distribution peers' maps.
  const allGroup = (await http(base, 'GET', '/api/groups', undefined, auth)).body.find((g: { name: string }) => g.name === 'All');
  const route = await http(
    base,
    'POST',
    '/api/routes',
    { description: 'lan', network_id: 'lan', enabled: true, peer: idOf('peer-a'), network: '192.168.50.0/24', metric: 9, masquerade: true, groups: [allGroup.id], keep_route: false },
    auth,
  );
  assert.equal(route.status, 200);
  const withRoute = await waitMap(ib, 'the LAN route', (m) => m.Routes.some((r) => r.Network === '192.168.50.0/24'));
  assert.equal(withRoute.Routes.find((r) => r.Network === '192.168.50.0/24')!.Peer, a.publicKey);
  const ns = await http(
    base,
    'POST',
    '/api/dns/nameservers',
    { name: 'lan-dns', description: '', nameservers: [{ ip: '192.168.50.53', ns_type: 'udp', port: 53 }], enabled: true, groups: [allGroup.id], primary: true, domains: [], search_domains_enabled: false },
    auth,
  );
  assert.equal(ns.status, 200);
  await waitMap(ib, 'the name-server group', (m) => (m.DNSConfig?.NameServerGroups ?? []).some((g) => g.NameServers.some((x) => x.IP === '192.168.50.53')));
  assert.equal((await http(base, 'DELETE', `/api/routes/${route.body.id}`, undefined, auth)).status, 200);
  await waitMap(ib, 'no routes', (m) => m.Routes.length === 0);

  // Peer login with a JWT of the embedded IdP: registered for the user, once per token.
  const tok = await http(base, 'POST', '/oauth2/token', 'grant_type=password&username=admin%40example.com&password=correct%20horse&client_id=netbird');
  assert.equal(tok.status, 200);
  const c = new TestPeer(addr, 'sso-peer');
  t.after(() => c.close());
  const login = await c.login('00000000-0000-0000-0000-000000000000', { jwtToken: tok.body.access_token });
  assert.ok(login.peerConfig?.address);
  const ssoPeer = (await http(base, 'GET', '/api/peers?name=sso-peer', undefined, auth)).body[0];
  assert.equal(ssoPeer.user_id, setup.body.user_id);
  const d = new TestPeer(addr, 'replay-peer');
  t.after(() => d.close());
  assert.equal(await codeOf(d.login('', { jwtToken: tok.body.access_token })), grpc.status.UNAUTHENTICATED, 'a JWT is good for one login');
  assert.equal(await codeOf(d.login('', { jwtToken: 'not-a-jwt' })), grpc.status.INVALID_ARGUMENT);
  const codes = (await http(base, 'GET', '/api/events/audit', undefined, auth)).body.map((e: { activity_code: string }) => e.activity_code);
  for (const code of ['peer.setupkey.add', 'peer.user.add', 'policy.delete', 'policy.add', 'group.update']) assert.ok(codes.includes(code), `audit has ${code}`);

  // A user added over REST logs a peer in with their own JWT; blocking the user ends its stream.
  const dev = await http(base, 'POST', '/api/users', { email: 'dev@example.com', name: 'Dev', role: 'user', auto_groups: [group.body.id], is_service_user: false }, auth);
  assert.equal(dev.status, 200);
  const devTok = await http(base, 'POST', '/oauth2/token', `grant_type=password&username=dev%40example.com&password=${encodeURIComponent(dev.body.password)}`);
  assert.equal(devTok.status, 200);
  const e = new TestPeer(addr, 'dev-laptop');
  t.after(() => e.close());
  await e.login('', { jwtToken: devTok.body.access_token });
  const devPeer = (await http(base, 'GET', '/api/peers?name=dev-laptop', undefined, auth)).body[0];
  assert.equal(devPeer.user_id, dev.body.id);
  assert.ok(devPeer.groups.some((g: { id: string }) => g.id === group.body.id), 'JWT peer got the user\'s auto-group');
  const ie = await e.sync();
  await waitMap(ie, 'a first map', () => true);
  assert.equal((await http(base, 'PUT', `/api/users/${dev.body.id}`, { role: 'user', auto_groups: [group.body.id], is_blocked: true }, auth)).status, 200);
  const ended = (await ie.waitEnd(8000)) as grpc.StatusObject;
  assert.equal(ended.code, grpc.status.PERMISSION_DENIED);

  // The embedded issuer works as an external OIDC issuer: discovery + JWKS fetched over HTTP.
  const v = new JwtValidator(undefined, [{ issuer: `${base}/oauth2`, audience: 'netbird' }]);
  assert.equal((await v.verify(tok.body.access_token)).sub, setup.body.user_id);

  // The relay WebSocket upgrade next to the API is covered by test/server (one-port test with /relay).
});
