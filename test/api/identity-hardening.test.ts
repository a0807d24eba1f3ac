import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AccountManager, Store } from '../../src/management/index.js';
import { setupOwner, startApi } from './helpers.js';

/** Issue 15, items 2 and 10: identity lifecycle and role edges. */

const form = { 'content-type': 'application/x-www-form-urlencoded' };

test("a deleted user's unexpired JWT does not bring them back (no user, no PAT, no peer login)", async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const owner = await setupOwner(a);
  const created = await a.call('POST', '/api/users', { token: owner.token, body: { email: 'leaver@example.com', name: 'Leaver', role: 'admin', auto_groups: [], is_service_user: false } });
  assert.equal(created.status, 200);
  const login = await a.call('POST', '/oauth2/token', { body: `grant_type=password&username=leaver%40example.com&password=${encodeURIComponent(created.body.password)}`, headers: form });
  assert.equal(login.status, 200);
  const jwt: string = login.body.access_token;
  assert.equal((await a.call('GET', '/api/users/current', { bearer: jwt })).status, 200);

  assert.equal((await a.call('DELETE', `/api/users/${created.body.id}`, { token: owner.token })).status, 200);
  const me = await a.call('GET', '/api/users/current', { bearer: jwt });
  assert.equal(me.status, 401, 'the old token is refused');
  assert.equal(me.body.message, 'token invalid');
  const pat = await a.call('POST', `/api/users/${created.body.id}/tokens`, { bearer: jwt, body: { name: 'back door', expires_in: 365 } });
  assert.equal(pat.status, 401, 'no PAT for a deleted user');
  const users = await a.call('GET', '/api/users', { token: owner.token });
  assert.deepEqual(users.body.map((u: { email: string }) => u.email), ['owner@example.com'], 'the user was not re-created');
  // Peer registration with the same JWT (gRPC LoginRequest.jwtToken path).
  await assert.rejects(a.manager.ensureJwtUser({ userId: created.body.id, email: 'leaver@example.com', name: 'Leaver', issuedAt: Math.floor(Date.now() / 1000) - 5 }), /deleted/);
  // A token issued after the deletion (an external IdP that still has the person) re-provisions them.
  const again = await a.manager.ensureJwtUser({ userId: created.body.id, email: 'leaver@example.com', name: 'Leaver', issuedAt: Math.floor(Date.now() / 1000) + 1 });
  assert.equal(again.created, true);
  assert.equal(again.user.role, 'user', 'a re-provisioned user starts over as a regular user');
});

test('ownership cannot go to a service user or a blocked user; regular users never read setup keys', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const owner = await setupOwner(a);
  const bot = await a.call('POST', '/api/users', { token: owner.token, body: { name: 'ci-bot', role: 'admin', auto_groups: [], is_service_user: true } });
  assert.equal(bot.status, 200);
  const give = await a.call('PUT', `/api/users/${bot.body.id}`, { token: owner.token, body: { role: 'owner', auto_groups: [], is_blocked: false } });
  assert.equal(give.status, 412, JSON.stringify(give.body));
  assert.match(give.body.message, /service user cannot own/);
  const person = await a.call('POST', '/api/users', { token: owner.token, body: { email: 'p@example.com', name: 'P', role: 'user', auto_groups: [], is_service_user: false } });
  const blocked = await a.call('PUT', `/api/users/${person.body.id}`, { token: owner.token, body: { role: 'owner', auto_groups: [], is_blocked: true } });
  assert.equal(blocked.status, 412);
  const roles = (await a.call('GET', '/api/users', { token: owner.token })).body.map((u: { role: string }) => u.role).sort();
  assert.deepEqual(roles, ['admin', 'owner', 'user'], 'still exactly one owner, unchanged');

  // A regular user with the view block off reads groups but not setup keys (secrets that register peers).
  const accountId = owner.accountId;
  const key = await a.manager.createSetupKey(accountId, { name: 'k', type: 'reusable' });
  const userTok = (await a.manager.createToken(accountId, person.body.id, { name: 't', expiresInDays: 1, createdBy: person.body.id })).plain;
  const acc = (await a.call('GET', '/api/accounts', { token: owner.token })).body[0];
  await a.call('PUT', `/api/accounts/${accountId}`, { token: owner.token, body: { settings: { ...acc.settings, regular_users_view_blocked: false } } });
  assert.equal((await a.call('GET', '/api/groups', { token: userTok })).status, 200);
  assert.equal((await a.call('GET', '/api/setup-keys', { token: userTok })).status, 403);
  assert.equal((await a.call('GET', `/api/setup-keys/${key.setupKey.id}`, { token: userTok })).status, 403);
});

test('one account per instance: a setup key made by the CLI before /api/setup belongs to the owner', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  // `netbird-server setup-keys create` is another process on the same store: a second manager here.
  const cliStore = await Store.open({ kind: 'sqlite', path: `${a.dir}/management.db` });
  const cli = await AccountManager.open({ store: cliStore });
  const cliAccount = await cli.defaultAccount();
  const { key } = await cli.createSetupKey(cliAccount.id, { name: 'cli', type: 'reusable' });
  cli.close();
  await cliStore.close();

  const owner = await setupOwner(a);
  assert.equal(owner.accountId, cliAccount.id, 'the owner owns the account the CLI made');
  const keys = await a.call('GET', '/api/setup-keys', { token: owner.token });
  assert.deepEqual(keys.body.map((k: { name: string }) => k.name), ['cli']);
  assert.equal((await a.store.listAccountIds()).length, 1);
  assert.ok(key.length > 0);
  // Deleting the instance's account frees its slot: the next start-up makes a new one.
  await a.manager.deleteAccount(owner.accountId);
  const next = await a.manager.defaultAccount();
  assert.notEqual(next.id, owner.accountId);
  assert.deepEqual(await a.store.listAccountIds(), [next.id]);
});
