import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWellFormedPat, newPersonalAccessToken } from '../../src/management/index.js';
import { setupOwner, startApi } from './helpers.js';

/** Personal access tokens: format and checksum, expiry, revocation, and the auth-failure limit. */

test('PAT format: nbp_ + 30 base62 + 6 base62 CRC32 checksum', () => {
  for (let i = 0; i < 50; i++) {
    const t = newPersonalAccessToken();
    assert.match(t, /^nbp_[0-9A-Za-z]{36}$/);
    assert.ok(isWellFormedPat(t));
    const flipped = t.slice(0, 10) + (t[10] === 'a' ? 'b' : 'a') + t.slice(11);
    assert.ok(!isWellFormedPat(flipped), 'checksum catches a changed character');
  }
});

test('PAT expiry and revocation', async (t) => {
  let clock = Date.now();
  const a = await startApi({}, () => clock);
  t.after(() => a.close());
  const { token, userId } = await setupOwner(a);
  const made = await a.call('POST', `/api/users/${userId}/tokens`, { token, body: { name: 'short', expires_in: 1 } });
  assert.equal(made.status, 200);
  assert.equal(made.headers['cache-control'], 'no-store');
  const short = made.body.plain_token as string;
  const exp = Date.parse(made.body.personal_access_token.expiration_date);
  assert.ok(Math.abs(exp - (clock + 86_400_000)) < 1000);
  assert.equal((await a.call('GET', '/api/groups', { token: short })).status, 200);
  const listed = (await a.call('GET', `/api/users/${userId}/tokens`, { token })).body;
  assert.ok(listed.find((x: { id: string; last_used?: string }) => x.id === made.body.personal_access_token.id)?.last_used, 'last use recorded');
  assert.ok(!JSON.stringify(listed).includes(short), 'listing never shows plain tokens');

  assert.equal((await a.call('POST', `/api/users/${userId}/tokens`, { token, body: { name: 'x', expires_in: 0 } })).status, 422);
  assert.equal((await a.call('POST', `/api/users/${userId}/tokens`, { token, body: { name: 'x', expires_in: 366 } })).status, 422);
  assert.equal((await a.call('POST', `/api/users/${userId}/tokens`, { token, body: { name: '', expires_in: 5 } })).status, 422);

  // One day later the 1-day token is refused; the 30-day setup token still works.
  clock += 86_400_000 + 1000;
  const expired = await a.call('GET', '/api/groups', { token: short });
  assert.equal(expired.status, 401);
  // As NetBird: a refused PAT, expired or not, is "token invalid".
  assert.equal(expired.body.message, 'token invalid');
  assert.equal((await a.call('GET', '/api/groups', { token })).status, 200);

  // Revocation: deleting the token ends it at once.
  const second = await a.call('POST', `/api/users/${userId}/tokens`, { token, body: { name: 'rev', expires_in: 5 } });
  assert.equal((await a.call('GET', '/api/groups', { token: second.body.plain_token })).status, 200);
  assert.equal((await a.call('DELETE', `/api/users/${userId}/tokens/${second.body.personal_access_token.id}`, { token })).status, 200);
  assert.equal((await a.call('GET', '/api/groups', { token: second.body.plain_token })).status, 401);
  assert.equal((await a.call('GET', `/api/users/${userId}/tokens/${second.body.personal_access_token.id}`, { token })).status, 404);
  const codes = (await a.call('GET', '/api/events/audit', { token })).body.map((e: { activity_code: string }) => e.activity_code);
  assert.ok(codes.includes('personal.access.token.delete'));
});

test('authentication failures are rate limited per client (429)', async (t) => {
  const a = await startApi({ authFailures: { max: 3, windowMs: 60_000 } });
  t.after(() => a.close());
  const { token } = await setupOwner(a);
  for (let i = 0; i < 3; i++) assert.equal((await a.call('GET', '/api/groups', { token: 'nbp_wrongwrongwrongwrongwrongwrong123456' })).status, 401);
  const limited = await a.call('GET', '/api/groups', { token: 'nbp_wrongwrongwrongwrongwrongwrong123456' });
  assert.equal(limited.status, 429, 'further failures wait out the window');
  assert.equal(limited.body.code, 429);
  // Only failures are limited: a valid token from the same client is served (issue 15 item 6).
  assert.equal((await a.call('GET', '/api/groups', { token })).status, 200);
  // The embedded IdP's token endpoint limits wrong passwords per client and account name.
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  for (let i = 0; i < 3; i++) assert.equal((await a.call('POST', '/oauth2/token', { body: 'grant_type=password&username=owner%40example.com&password=x', headers: form })).status, 400);
  assert.equal((await a.call('POST', '/oauth2/token', { body: 'grant_type=password&username=owner%40example.com&password=x', headers: form })).status, 429);
});
