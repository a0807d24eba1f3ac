// Issue 15 items 6, 8, 9: the authentication-failure limiter counts failures only and per account
// name for passwords, follows a configured trusted proxy's X-Forwarded-For, holds under concurrent
// attempts; device-code requests are bounded per client without blocking anyone else; invite
// acceptance checks the token before hashing the password, and wrong tokens are limited.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { passwordCheckStats } from '../../src/api/index.js';
import { setupOwner, startApi } from './helpers.js';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const passwordGrant = (user: string, password: string): string => `grant_type=password&username=${encodeURIComponent(user)}&password=${encodeURIComponent(password)}`;

test('a correct password is accepted from an address where another account name keeps failing; a valid token is served after bad ones', async (t) => {
  const a = await startApi({ authFailures: { max: 3, windowMs: 60_000 } });
  t.after(() => a.close());
  const { token } = await setupOwner(a);
  for (let i = 0; i < 5; i++) {
    const r = await a.call('POST', '/oauth2/token', { body: passwordGrant('mallory@example.com', `guess${i}`), headers: FORM });
    assert.equal(r.status, i < 3 ? 400 : 429, `attempt ${i}`);
  }
  const good = await a.call('POST', '/oauth2/token', { body: passwordGrant('owner@example.com', 'correct horse'), headers: FORM });
  assert.equal(good.status, 200, JSON.stringify(good.body));
  // Wrong guesses for the owner from here are limited too, on their own count.
  for (let i = 0; i < 3; i++) assert.equal((await a.call('POST', '/oauth2/token', { body: passwordGrant('owner@example.com', 'nope'), headers: FORM })).status, 400);
  assert.equal((await a.call('POST', '/oauth2/token', { body: passwordGrant('owner@example.com', 'nope'), headers: FORM })).status, 429);
  // Tokens: failures are limited, a valid token still works.
  for (let i = 0; i < 3; i++) assert.equal((await a.call('GET', '/api/groups', { token: 'nbp_wrongwrongwrongwrongwrongwrong123456' })).status, 401);
  assert.equal((await a.call('GET', '/api/groups', { token: 'nbp_wrongwrongwrongwrongwrongwrong123456' })).status, 429);
  assert.equal((await a.call('GET', '/api/groups', { token })).status, 200);
});

test('concurrent wrong passwords cannot race past the limit', async (t) => {
  const a = await startApi({ authFailures: { max: 3, windowMs: 60_000 } });
  t.after(() => a.close());
  await setupOwner(a);
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => a.call('POST', '/oauth2/token', { body: passwordGrant('owner@example.com', `guess${i}`), headers: FORM })));
  const checked = results.filter((r) => r.status === 400).length;
  assert.ok(checked <= 3, `${checked} of 30 concurrent guesses were checked`);
  assert.ok(results.every((r) => r.status === 400 || r.status === 429), results.map((r) => r.status).join(','));
});

test('behind a trusted proxy the limit applies to the X-Forwarded-For client; without one the header is ignored', async (t) => {
  const proxied = await startApi({ authFailures: { max: 3, windowMs: 60_000 }, trustedProxies: ['127.0.0.1'] });
  t.after(() => proxied.close());
  await setupOwner(proxied);
  const bad = (api: typeof proxied, client: string): Promise<number> =>
    api.call('GET', '/api/groups', { token: 'nbp_wrongwrongwrongwrongwrongwrong123456', headers: { 'x-forwarded-for': client } }).then((r) => r.status);
  for (let i = 0; i < 3; i++) assert.equal(await bad(proxied, '203.0.113.5'), 401);
  assert.equal(await bad(proxied, '203.0.113.5'), 429);
  assert.equal(await bad(proxied, '203.0.113.6'), 401, 'another client behind the proxy is not limited');

  // Not configured: a client cannot escape the limit by inventing X-Forwarded-For values.
  const direct = await startApi({ authFailures: { max: 3, windowMs: 60_000 } });
  t.after(() => direct.close());
  await setupOwner(direct);
  for (let i = 0; i < 3; i++) assert.equal(await bad(direct, `198.51.100.${i}`), 401);
  assert.equal(await bad(direct, '198.51.100.99'), 429);
});

test('10,001 device-code requests: one client is told to slow down (429), others still log in; no 500s', { timeout: 120_000 }, async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  await setupOwner(a);
  const start = (ip: string): Promise<{ status: number; body: any }> => a.call('POST', '/oauth2/device/code', { body: 'client_id=netbird', headers: FORM, remoteAddress: ip });
  const statuses = new Map<number, number>();
  for (let i = 0; i < 10_001; i++) {
    const r = await start('192.0.2.66');
    statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
  }
  assert.equal(statuses.get(200), 10);
  assert.equal(statuses.get(429), 9_991);
  const limited = await start('192.0.2.66');
  assert.equal(limited.body.error, 'slow_down');
  // Many addresses (more than the table holds) still never lock out a newcomer.
  for (let i = 0; i < 10_050; i++) {
    const r = await start(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    assert.equal(r.status, 200, `request ${i}: ${r.status}`);
  }
  // A person's device login still completes.
  const mine = await start('198.51.100.7');
  assert.equal(mine.status, 200);
  const approve = await a.call('POST', '/oauth2/device', { body: `user_code=${mine.body.user_code}&email=owner%40example.com&password=correct%20horse`, headers: FORM, remoteAddress: '198.51.100.7' });
  assert.equal(approve.status, 200, approve.body);
  const poll = await a.call('POST', '/oauth2/token', { body: `grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=${mine.body.device_code}&client_id=netbird`, headers: FORM, remoteAddress: '198.51.100.7' });
  assert.equal(poll.status, 200, JSON.stringify(poll.body));
  assert.ok(poll.body.access_token);
});

test('invite acceptance checks the token before hashing the password; wrong tokens are limited', async (t) => {
  const a = await startApi({ authFailures: { max: 5, windowMs: 60_000 } });
  t.after(() => a.close());
  await setupOwner(a);
  const before = passwordCheckStats().runs;
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) {
    const fake = `nbi_${String(i).padStart(40, 'A')}`;
    statuses.push((await a.call('POST', `/api/users/invites/${fake}/accept`, { body: { password: 'Str0ng!pass' } })).status);
  }
  assert.deepEqual(statuses, [404, 404, 404, 404, 404, 429, 429, 429]);
  assert.equal(passwordCheckStats().runs - before, 0, 'scrypt ran for invite tokens that do not exist');
});
