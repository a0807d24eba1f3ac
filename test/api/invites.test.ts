import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setupOwner, startApi } from './helpers.js';

/** Invite links of the embedded identity provider: create, inspect, regenerate, accept, delete. */
test('user invites: link token once, public info, accept sets the password, regenerate and delete', async (t) => {
  let clock = Date.now();
  const a = await startApi({}, () => clock);
  t.after(() => a.close());
  const { token } = await setupOwner(a);
  const g = await a.call('POST', '/api/groups', { token, body: { name: 'eng' } });

  const inv = await a.call('POST', '/api/users/invites', { token, body: { email: 'Carol@Example.com', name: 'Carol', role: 'network_admin', auto_groups: [g.body.id] } });
  assert.equal(inv.status, 200, JSON.stringify(inv.body));
  assert.match(inv.body.invite_token, /^nbi_[0-9A-Za-z]{40}$/);
  assert.equal(inv.body.email, 'carol@example.com');
  assert.equal(inv.body.expired, false);
  assert.ok(Math.abs(Date.parse(inv.body.expires_at) - (clock + 72 * 3600 * 1000)) < 1000, 'default 72 h');
  const listed = (await a.call('GET', '/api/users/invites', { token })).body;
  assert.equal(listed.length, 1);
  assert.equal(listed[0].invite_token, undefined, 'token shown only once');
  assert.equal((await a.call('POST', '/api/users/invites', { token, body: { email: 'carol@example.com', name: 'C', role: 'user', auto_groups: [] } })).status, 409);
  assert.equal((await a.call('POST', '/api/users/invites', { token, body: { email: 'owner@example.com', name: 'O', role: 'user', auto_groups: [] } })).status, 409);
  assert.equal((await a.call('POST', '/api/users/invites', { token, body: { email: 'x@example.com', name: 'X', role: 'owner', auto_groups: [] } })).status, 422);

  // Public info without credentials.
  const info = await a.call('GET', `/api/users/invites/${inv.body.invite_token}`);
  assert.deepEqual({ ...info.body, expires_at: undefined }, { email: 'carol@example.com', name: 'Carol', expires_at: undefined, valid: true, invited_by: 'Owner' });
  assert.equal((await a.call('GET', '/api/users/invites/nbi_' + 'x'.repeat(40))).status, 404);

  // Regenerate: the old link dies.
  const regen = await a.call('POST', `/api/users/invites/${inv.body.id}/regenerate`, { token, body: { expires_in: 3600 } });
  assert.equal(regen.status, 200);
  assert.match(regen.body.invite_token, /^nbi_/);
  assert.equal((await a.call('GET', `/api/users/invites/${inv.body.invite_token}`)).status, 404);
  const link = regen.body.invite_token as string;

  // Accept: weak passwords refused, then the user exists with the invite's role and groups and can log in.
  assert.equal((await a.call('POST', `/api/users/invites/${link}/accept`, { body: { password: 'password' } })).status, 422);
  const ok = await a.call('POST', `/api/users/invites/${link}/accept`, { body: { password: 'Sup3r-secret' } });
  assert.deepEqual(ok.body, { success: true });
  assert.equal((await a.call('POST', `/api/users/invites/${link}/accept`, { body: { password: 'Sup3r-secret' } })).status, 404, 'one use');
  const carol = (await a.call('GET', '/api/users', { token })).body.find((u: { email: string }) => u.email === 'carol@example.com');
  assert.equal(carol.role, 'network_admin');
  assert.deepEqual(carol.auto_groups, [g.body.id]);
  const form = { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=password&username=carol%40example.com&password=Sup3r-secret' };
  const jwt = await a.call('POST', '/oauth2/token', form);
  assert.equal(jwt.status, 200);
  assert.equal((await a.call('GET', '/api/users/current', { bearer: jwt.body.access_token })).body.email, 'carol@example.com');
  assert.deepEqual((await a.call('GET', '/api/users/invites', { token })).body, []);

  // Expiry and deletion.
  const late = await a.call('POST', '/api/users/invites', { token, body: { email: 'dave@example.com', name: 'Dave', role: 'user', auto_groups: [], expires_in: 600 } });
  clock += 601_000;
  assert.equal((await a.call('GET', `/api/users/invites/${late.body.invite_token}`)).body.valid, false);
  assert.equal((await a.call('GET', '/api/users/invites', { token })).body[0].expired, true);
  assert.equal((await a.call('POST', `/api/users/invites/${late.body.invite_token}/accept`, { body: { password: 'Sup3r-secret' } })).status, 412);
  assert.equal((await a.call('DELETE', `/api/users/invites/${late.body.id}`, { token })).status, 200);
  assert.deepEqual((await a.call('GET', '/api/users/invites', { token })).body, []);
  // Only user managers invite.
  assert.equal((await a.call('POST', '/api/users/invites', { bearer: jwt.body.access_token, body: { email: 'e@example.com', name: 'E', role: 'user', auto_groups: [] } })).status, 403);

  const codes = (await a.call('GET', '/api/events/audit', { token })).body.map((e: { activity_code: string }) => e.activity_code);
  for (const c of ['user.invite.link.create', 'user.invite.link.regenerate', 'user.invite.link.accept', 'user.invite.link.delete']) assert.ok(codes.includes(c), `audit has ${c}`);
});
