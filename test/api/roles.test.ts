import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatKey, generateKeyPair } from '../../src/crypto/index.js';
import { type UserRole, emptyPeerMeta } from '../../src/management/index.js';
import { setupOwner, startApi } from './helpers.js';

/**
 * The role matrix: one caller per role, the same requests, the status each role must get. Regular
 * users see only their own peers and, while `regular_users_view_blocked` is on, empty lists.
 */

type Role = UserRole;
const ROLES: Role[] = ['owner', 'admin', 'network_admin', 'auditor', 'billing_admin', 'user'];

test('role matrix over read and write endpoints', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const owner = await setupOwner(a);
  const { accountId } = owner;
  const tokens: Record<Role, string> = { owner: owner.token } as Record<Role, string>;
  const ids: Record<Role, string> = { owner: owner.userId } as Record<Role, string>;
  for (const role of ROLES.slice(1)) {
    const u = await a.manager.createUser(accountId, { email: `${role}@example.com`, name: role, role, isServiceUser: false });
    ids[role] = u.id;
    tokens[role] = (await a.manager.createToken(accountId, u.id, { name: 'matrix', expiresInDays: 1, createdBy: u.id })).plain;
  }
  // Peers: one owned by the regular user (JWT-style registration), one by nobody (setup key).
  const key = await a.manager.createSetupKey(accountId, { name: 'k', type: 'reusable' });
  const meta = (h: string) => ({ ...emptyPeerMeta(), hostname: h, netbirdVersion: '0.60.2' });
  const mine = (await a.manager.loginPeer({ peerKey: formatKey(generateKeyPair().publicKey), jwtUserId: ids.user, meta: meta('users-laptop') })).peer.id;
  const other = (await a.manager.loginPeer({ peerKey: formatKey(generateKeyPair().publicKey), setupKey: key.key, meta: meta('server') })).peer.id;
  const allGroup = a.manager.listGroups(accountId)[0]!.id;

  const Y = 200;
  const N = 403;
  // [method, path, body, expected status per role in ROLES order]
  const matrix: Array<[string, string, unknown, number[]]> = [
    ['GET', '/api/accounts', undefined, [Y, Y, Y, Y, Y, Y]],
    ['GET', '/api/users', undefined, [Y, Y, Y, Y, Y, Y]],
    ['GET', '/api/peers', undefined, [Y, Y, Y, Y, N, Y]],
    ['GET', `/api/peers/${other}`, undefined, [Y, Y, Y, Y, N, 404]],
    ['GET', `/api/peers/${mine}`, undefined, [Y, Y, Y, Y, N, Y]],
    ['GET', '/api/groups', undefined, [Y, Y, Y, Y, N, Y]],
    ['GET', `/api/groups/${allGroup}`, undefined, [Y, Y, Y, Y, N, N]],
    ['GET', '/api/policies', undefined, [Y, Y, Y, Y, N, Y]],
    // Setup keys register peers: regular users never read them, view block or not (issue 15 item 10).
    ['GET', '/api/setup-keys', undefined, [Y, Y, Y, Y, N, N]],
    ['GET', '/api/routes', undefined, [Y, Y, Y, Y, N, Y]],
    ['GET', '/api/networks', undefined, [Y, Y, Y, Y, N, Y]],
    ['GET', '/api/dns/nameservers', undefined, [Y, Y, Y, Y, N, Y]],
    ['GET', '/api/dns/settings', undefined, [Y, Y, Y, Y, N, N]],
    ['GET', '/api/posture-checks', undefined, [Y, Y, Y, Y, N, Y]],
    ['GET', '/api/events/audit', undefined, [Y, Y, Y, Y, N, N]],
    ['POST', '/api/groups', { name: 'g' }, [Y, Y, Y, N, N, N]],
    ['POST', '/api/setup-keys', { name: 'k', type: 'one-off', expires_in: 0, auto_groups: [], usage_limit: 0 }, [Y, Y, Y, N, N, N]],
    ['POST', '/api/networks', { name: 'n' }, [Y, Y, Y, N, N, N]],
    ['PUT', '/api/dns/settings', { disabled_management_groups: [] }, [Y, Y, Y, N, N, N]],
    ['POST', '/api/users', { name: 'bot', role: 'user', auto_groups: [], is_service_user: true }, [Y, Y, N, N, N, N]],
    ['PUT', `/api/peers/${other}`, { name: 'server', ssh_enabled: false, login_expiration_enabled: false, inactivity_expiration_enabled: false }, [Y, Y, Y, N, N, 404]],
    ['PUT', `/api/peers/${mine}`, { name: 'users-laptop', ssh_enabled: false, login_expiration_enabled: true, inactivity_expiration_enabled: false }, [Y, Y, Y, N, N, Y]],
    ['GET', '/api/users/current', undefined, [Y, Y, Y, Y, Y, Y]],
  ];
  const failures: string[] = [];
  for (const [method, path, body, expected] of matrix) {
    for (let i = 0; i < ROLES.length; i++) {
      const role = ROLES[i]!;
      // Names must be unique per create: suffix by role.
      const b = body && typeof body === 'object' && 'name' in body && method === 'POST' ? { ...body, name: `${(body as { name: string }).name}-${role}` } : body;
      const r = await a.call(method, path, { token: tokens[role], body: b });
      if (r.status !== expected[i]) failures.push(`${role} ${method} ${path}: got ${r.status} ${JSON.stringify(r.body).slice(0, 120)}, want ${expected[i]}`);
      if (r.status === 403) assert.equal(r.body.code, 403);
    }
  }
  assert.deepEqual(failures, []);

  // What the limited roles actually see.
  const userPeers = (await a.call('GET', '/api/peers', { token: tokens.user })).body;
  assert.deepEqual(userPeers.map((p: { id: string }) => p.id), [mine]);
  assert.deepEqual((await a.call('GET', '/api/groups', { token: tokens.user })).body, [], 'view blocked: empty list');
  assert.deepEqual((await a.call('GET', '/api/users', { token: tokens.user })).body.map((u: { id: string }) => u.id), [ids.user]);
  assert.deepEqual((await a.call('GET', '/api/users', { token: tokens.billing_admin })).body.map((u: { id: string }) => u.id), [ids.billing_admin]);
  assert.equal((await a.call('GET', '/api/users', { token: tokens.auditor })).body.length, 8, '6 role users + 2 service users made by the matrix');

  // /api/users/current tells each role what it may do (UserPermissions).
  const perms = async (role: Role) => (await a.call('GET', '/api/users/current', { token: tokens[role] })).body.permissions;
  assert.deepEqual((await perms('auditor')).modules.groups, { read: true, create: false, update: false, delete: false });
  assert.deepEqual((await perms('network_admin')).modules.policies, { read: true, create: true, update: true, delete: true });
  assert.equal((await perms('network_admin')).modules.users.create, false);
  assert.equal((await perms('user')).is_restricted, true);
  assert.equal((await perms('user')).modules.groups.read, false);
  assert.equal((await perms('owner')).is_restricted, false);

  // Owner-only: deleting the account.
  assert.equal((await a.call('DELETE', `/api/accounts/${accountId}`, { token: tokens.admin })).status, 403);

  // Tokens: everyone manages their own; only owner/admin those of service users; never other humans'.
  for (const role of ROLES) {
    const r = await a.call('POST', `/api/users/${ids[role]}/tokens`, { token: tokens[role], body: { name: 'own', expires_in: 1 } });
    assert.equal(r.status, 200, `${role} creates own token`);
  }
  assert.equal((await a.call('GET', `/api/users/${ids.user}/tokens`, { token: tokens.admin })).status, 403, 'admin cannot see a human user\'s tokens');
  const bot = await a.call('POST', '/api/users', { token: tokens.admin, body: { name: 'bot2', role: 'auditor', auto_groups: [], is_service_user: true } });
  assert.equal((await a.call('POST', `/api/users/${bot.body.id}/tokens`, { token: tokens.admin, body: { name: 'b', expires_in: 1 } })).status, 200);
  assert.equal((await a.call('POST', `/api/users/${bot.body.id}/tokens`, { token: tokens.network_admin, body: { name: 'b', expires_in: 1 } })).status, 403);

  // Turning the view block off lets regular users read (never write) network resources.
  const acc = (await a.call('GET', '/api/accounts', { token: owner.token })).body[0];
  await a.call('PUT', `/api/accounts/${accountId}`, { token: owner.token, body: { settings: { ...acc.settings, regular_users_view_blocked: false } } });
  assert.ok((await a.call('GET', '/api/groups', { token: tokens.user })).body.length >= 1);
  assert.equal((await a.call('POST', '/api/groups', { token: tokens.user, body: { name: 'nope' } })).status, 403);
  assert.equal((await a.call('GET', '/api/peers', { token: tokens.user })).body.length, 1, 'still only own peers');

  // Blocked users are refused even with a valid token.
  await a.call('PUT', `/api/users/${ids.auditor}`, { token: owner.token, body: { role: 'auditor', auto_groups: [], is_blocked: true } });
  assert.equal((await a.call('GET', '/api/groups', { token: tokens.auditor })).status, 403);

  // No or bad credentials.
  assert.equal((await a.call('GET', '/api/groups')).status, 401);
  assert.equal((await a.call('GET', '/api/groups', { headers: { authorization: 'Basic abc' } })).status, 401);
  assert.equal((await a.call('GET', '/api/groups', { bearer: 'not.a.jwt' })).status, 401);
});
