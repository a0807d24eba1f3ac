import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { decodeJwt } from 'jose';
import { hashPassword } from '../../src/api/index.js';
import { formatKey, generateKeyPair } from '../../src/crypto/index.js';
import { emptyPeerMeta } from '../../src/management/index.js';
import { type TestApi, setupOwner, startApi } from './helpers.js';

/**
 * What the official NetBird dashboard needs from the REST API and the embedded identity provider,
 * in NetBird's shapes (shared/management/http/api/openapi.yml): permission modules, all network
 * resources, identity providers, geolocation lists, the event-streaming list it probes, nullable
 * setup-key limits, resources without groups, NetBird's 401 messages, CORS, its client ids,
 * refresh tokens and prompt=none.
 */

const OWNER = { email: 'owner@example.com', password: 'correct horse' };

async function userToken(a: TestApi, accountId: string, role: 'user' | 'network_admin' | 'auditor'): Promise<string> {
  const u = await a.manager.createUser(accountId, { email: `${role}@example.com`, name: role, role, isServiceUser: false });
  return (await a.manager.createToken(accountId, u.id, { name: 't', expiresInDays: 1, createdBy: u.id })).plain;
}

function keysOf(o: Record<string, unknown>): string[] {
  return Object.keys(o).sort();
}

test('GET /api/users/current: settings, identity_providers and remote_jobs modules by role', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token, accountId } = await setupOwner(a);
  const all = { read: true, create: true, update: true, delete: true };
  const none = { read: false, create: false, update: false, delete: false };
  const me = await a.call('GET', '/api/users/current', { token });
  assert.equal(me.status, 200);
  assert.equal(me.body.permissions.is_restricted, false);
  for (const m of ['settings', 'identity_providers', 'remote_jobs', 'setup_keys', 'accounts', 'peers', 'pats']) {
    assert.deepEqual(me.body.permissions.modules[m], all, `owner: ${m}`);
  }
  const netAdmin = (await a.call('GET', '/api/users/current', { token: await userToken(a, accountId, 'network_admin') })).body.permissions.modules;
  assert.deepEqual(netAdmin.settings, { read: true, create: false, update: false, delete: false }, 'network admins read settings (as in NetBird)');
  assert.deepEqual(netAdmin.identity_providers, { read: true, create: false, update: false, delete: false });
  assert.deepEqual(netAdmin.remote_jobs, none);
  const user = (await a.call('GET', '/api/users/current', { token: await userToken(a, accountId, 'user') })).body.permissions.modules;
  assert.deepEqual(user.settings, none);
  assert.deepEqual(user.identity_providers, none);
  assert.deepEqual(user.remote_jobs, none);
});

test('GET /api/networks/resources lists every network\'s resources; groups may be empty', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token } = await setupOwner(a);
  const grp = await a.call('POST', '/api/groups', { token, body: { name: 'dbs' } });
  const n1 = (await a.call('POST', '/api/networks', { token, body: { name: 'aws' } })).body.id as string;
  const n2 = (await a.call('POST', '/api/networks', { token, body: { name: 'office' } })).body.id as string;
  const r1 = await a.call('POST', `/api/networks/${n1}/resources`, { token, body: { name: 'db', address: '10.20.0.0/24', enabled: true, groups: [grp.body.id] } });
  assert.equal(r1.status, 200);
  // The dashboard creates resources before putting them in groups: "groups": [].
  const r2 = await a.call('POST', `/api/networks/${n2}/resources`, { token, body: { name: 'printer', address: '192.168.1.9', enabled: true, groups: [] } });
  assert.equal(r2.status, 200, JSON.stringify(r2.body));
  assert.deepEqual(r2.body.groups, []);
  const all = await a.call('GET', '/api/networks/resources', { token });
  assert.equal(all.status, 200);
  assert.deepEqual(all.body.map((r: { name: string }) => r.name).sort(), ['db', 'printer']);
  const db = all.body.find((r: { name: string }) => r.name === 'db');
  // NetworkResource: id, type, groups (GroupMinimum) + NetworkResourceMinimum (name, description, address, enabled).
  assert.deepEqual(keysOf(db), ['address', 'description', 'enabled', 'groups', 'id', 'name', 'type']);
  assert.equal(db.type, 'subnet');
  assert.deepEqual(keysOf(db.groups[0]), ['id', 'issued', 'name', 'peers_count', 'resources_count']);
  // A network's own listing still answers only its resources, and unknown ids are still 404.
  assert.deepEqual((await a.call('GET', `/api/networks/${n2}/resources`, { token })).body.map((r: { name: string }) => r.name), ['printer']);
  assert.equal((await a.call('GET', '/api/networks/nope/resources', { token })).status, 404);
});

test('GET /api/identity-providers: the configured OIDC issuers as IdentityProvider objects', async (t) => {
  const issuer = 'https://login.example.com/realms/corp';
  const a = await startApi({ oidc: [{ issuer, audience: 'netbird-corp' }] });
  t.after(() => a.close());
  const { token, accountId } = await setupOwner(a);
  const list = await a.call('GET', '/api/identity-providers', { token });
  assert.equal(list.status, 200);
  assert.equal(list.body.length, 1);
  const idp = list.body[0];
  assert.deepEqual(keysOf(idp), ['client_id', 'id', 'issuer', 'name', 'type']);
  assert.deepEqual({ type: idp.type, name: idp.name, issuer: idp.issuer, client_id: idp.client_id }, { type: 'oidc', name: 'login.example.com', issuer, client_id: 'netbird-corp' });
  assert.deepEqual((await a.call('GET', `/api/identity-providers/${idp.id}`, { token })).body, idp);
  assert.equal((await a.call('GET', '/api/identity-providers/unknown', { token })).status, 404);
  const create = await a.call('POST', '/api/identity-providers', { token, body: { type: 'oidc', name: 'x', issuer: 'https://x.example', client_id: 'c', client_secret: 's' } });
  assert.equal(create.status, 412);
  assert.match(create.body.message, /--oidc-issuer/);
  assert.equal((await a.call('GET', '/api/identity-providers', { token: await userToken(a, accountId, 'user') })).status, 403);

  const bare = await startApi();
  t.after(() => bare.close());
  const o = await setupOwner(bare);
  assert.deepEqual((await bare.call('GET', '/api/identity-providers', { token: o.token })).body, []);
});

test('GET /api/locations/countries and /cities from the shipped database', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token } = await setupOwner(a);
  const countries = await a.call('GET', '/api/locations/countries', { token });
  assert.equal(countries.status, 200);
  assert.ok(countries.body.length > 200, `${countries.body.length} countries`);
  assert.deepEqual(countries.body.find((c: { country_code: string }) => c.country_code === 'DE'), { country_name: 'Germany', country_code: 'DE' });
  const cities = await a.call('GET', '/api/locations/countries/DE/cities', { token });
  assert.equal(cities.status, 200);
  const berlin = cities.body.find((c: { city_name: string }) => c.city_name === 'Berlin');
  assert.ok(berlin, 'Berlin is a German city');
  assert.deepEqual(keysOf(berlin), ['city_name', 'geoname_id']);
  assert.ok(Number.isInteger(berlin.geoname_id) && berlin.geoname_id > 0);
  assert.deepEqual((await a.call('GET', '/api/locations/countries/de/cities', { token })).body.length, cities.body.length, 'codes in any case');
  assert.equal((await a.call('GET', '/api/locations/countries/DEU/cities', { token })).status, 422);
  assert.deepEqual((await a.call('GET', '/api/locations/countries/QQ/cities', { token })).body, []);
  assert.equal((await a.call('GET', '/api/locations/countries')).status, 401);

  const none = await startApi({ geo: false });
  t.after(() => none.close());
  const o = await setupOwner(none);
  assert.equal((await none.call('GET', '/api/locations/countries', { token: o.token })).status, 412);
});

test('GET /api/integrations/event-streaming answers (empty), so the dashboard unlocks traffic events', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token, accountId } = await setupOwner(a);
  // The dashboard's licence probe counts 200 and 401/403/405 as "served", only 404 as "open-source without it".
  const r = await a.call('GET', '/api/integrations/event-streaming', { token });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, []);
  assert.deepEqual((await a.call('GET', '/api/event-streaming', { token })).body, []);
  assert.equal((await a.call('GET', '/api/integrations/event-streaming')).status, 401);
  assert.equal((await a.call('GET', '/api/integrations/event-streaming', { token: await userToken(a, accountId, 'user') })).status, 403);
});

test('POST /api/setup-keys: "usage_limit": null is a reusable key without limit', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token } = await setupOwner(a);
  const k = await a.call('POST', '/api/setup-keys', { token, body: { name: 'fleet', type: 'reusable', expires_in: 86400, auto_groups: [], usage_limit: null, ephemeral: false } });
  assert.equal(k.status, 200, JSON.stringify(k.body));
  assert.equal(k.body.usage_limit, 0);
  assert.equal(k.body.type, 'reusable');
  assert.equal(k.body.valid, true);
  assert.equal((await a.call('POST', '/api/setup-keys', { token, body: { name: 'x', type: 'reusable', expires_in: 86400, auto_groups: [], usage_limit: 'lots' } })).status, 400);
});

test('401 answers carry NetBird\'s messages; a PAT sent as Bearer still works', async (t) => {
  const a = await startApi({ idpTokenTtlSeconds: 5 });
  t.after(() => a.close());
  const { token } = await setupOwner(a);
  const msg = async (headers: Record<string, string>): Promise<[number, string]> => {
    const r = await a.call('GET', '/api/peers', { headers });
    return [r.status, r.body.message];
  };
  assert.deepEqual(await msg({}), [401, 'no valid authentication provided']);
  assert.deepEqual(await msg({ authorization: 'Basic b3duZXI6eA==' }), [401, 'no valid authentication provided']);
  assert.deepEqual(await msg({ authorization: 'Bearer not.a.jwt' }), [401, 'token invalid']);
  assert.deepEqual(await msg({ authorization: 'Token nbp_000000000000000000000000000000000000' }), [401, 'token invalid']);
  assert.deepEqual(await msg({ authorization: `Bearer ${token}` }), [200, undefined as unknown as string]);
  const owner = a.manager.findUser((await a.call('GET', '/api/users/current', { token })).body.id)!.user;
  const stale = await a.api.idp!.issue(owner, -60);
  assert.deepEqual(await msg({ authorization: `Bearer ${stale}` }), [401, 'token expired']);
});

test('CORS: any origin may call /api and /oauth2 (preflight and actual requests)', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token } = await setupOwner(a);
  const origin = 'https://dashboard.example.org';
  const pre = await a.call('OPTIONS', '/api/peers', { headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization,content-type' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers['access-control-allow-origin'], '*');
  assert.match(String(pre.headers['access-control-allow-methods']), /PUT/);
  assert.match(String(pre.headers['access-control-allow-headers']), /authorization/);
  const get = await a.call('GET', '/api/peers', { token, headers: { origin } });
  assert.equal(get.status, 200);
  assert.equal(get.headers['access-control-allow-origin'], '*');
  const denied = await a.call('GET', '/api/peers', { headers: { origin } });
  assert.equal(denied.headers['access-control-allow-origin'], '*', 'errors are readable cross-origin too');
  const tokenPre = await a.call('OPTIONS', '/oauth2/token', { headers: { origin, 'access-control-request-method': 'POST' } });
  assert.equal(tokenPre.status, 204);
  assert.equal((await a.call('GET', '/oauth2/.well-known/openid-configuration', { headers: { origin } })).headers['access-control-allow-origin'], '*');
  assert.equal((await a.call('GET', '/api/peers', { token })).headers['access-control-allow-origin'], undefined, 'no header without Origin');
});

interface Flow {
  verifier: string;
  params: Record<string, string>;
}

function pkce(clientId: string, redirect: string, extra: Record<string, string> = {}): Flow {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return {
    verifier,
    params: { response_type: 'code', client_id: clientId, redirect_uri: redirect, code_challenge: challenge, code_challenge_method: 'S256', state: 'st-1', scope: 'openid profile email offline_access api', ...extra },
  };
}

function form(body: Record<string, string>): { body: string; headers: Record<string, string> } {
  return { body: new URLSearchParams(body).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
}

test('embedded IdP: netbird-dashboard sign-in, refresh tokens, prompt=none', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  await setupOwner(a);
  const redirect = 'http://127.0.0.1:33073/nb-auth';

  // prompt=none before any sign-in: straight back to the app with login_required, no page.
  const silent0 = pkce('netbird-dashboard', 'http://127.0.0.1:33073/nb-silent-auth', { prompt: 'none' });
  const s0 = await a.call('GET', `/oauth2/auth?${new URLSearchParams(silent0.params)}`);
  assert.equal(s0.status, 302);
  const s0url = new URL(String(s0.headers.location));
  assert.equal(s0url.origin + s0url.pathname, 'http://127.0.0.1:33073/nb-silent-auth');
  assert.equal(s0url.searchParams.get('error'), 'login_required');
  assert.equal(s0url.searchParams.get('state'), 'st-1');
  assert.equal(s0url.searchParams.get('code'), null);

  // Sign-in with the dashboard's client id: the login form, then a code and a session cookie.
  const f = pkce('netbird-dashboard', redirect);
  assert.equal((await a.call('GET', `/oauth2/auth?${new URLSearchParams(f.params)}`)).status, 200);
  const login = await a.call('POST', '/oauth2/auth', form({ ...f.params, email: OWNER.email, password: OWNER.password }));
  assert.equal(login.status, 302);
  const cookie = String(login.headers['set-cookie']).split(';')[0]!;
  assert.match(String(login.headers['set-cookie']), /HttpOnly/);
  assert.match(String(login.headers['set-cookie']), /Path=\/oauth2/);
  const code = new URL(String(login.headers.location)).searchParams.get('code')!;
  const tok = await a.call('POST', '/oauth2/token', form({ grant_type: 'authorization_code', code, code_verifier: f.verifier, redirect_uri: redirect, client_id: 'netbird-dashboard' }));
  assert.equal(tok.status, 200, JSON.stringify(tok.body));
  assert.equal(decodeJwt(tok.body.access_token).aud, 'netbird-dashboard');
  assert.ok(tok.body.refresh_token, 'a refresh token comes with the tokens');
  assert.equal((await a.call('GET', '/api/users/current', { bearer: tok.body.access_token })).status, 200);
  // A refresh token is not an access token.
  assert.deepEqual([(await a.call('GET', '/api/peers', { bearer: tok.body.refresh_token })).status, (await a.call('GET', '/api/peers', { bearer: tok.body.refresh_token })).body.message], [401, 'token invalid']);

  // grant_type=refresh_token: new tokens and a new refresh token; the old one is spent.
  const r1 = await a.call('POST', '/oauth2/token', form({ grant_type: 'refresh_token', refresh_token: tok.body.refresh_token, client_id: 'netbird-dashboard' }));
  assert.equal(r1.status, 200, JSON.stringify(r1.body));
  assert.notEqual(r1.body.access_token, tok.body.access_token);
  assert.notEqual(r1.body.refresh_token, tok.body.refresh_token);
  assert.equal((await a.call('GET', '/api/users/current', { bearer: r1.body.access_token })).status, 200);
  const replay = await a.call('POST', '/oauth2/token', form({ grant_type: 'refresh_token', refresh_token: tok.body.refresh_token, client_id: 'netbird-dashboard' }));
  assert.equal(replay.status, 400);
  assert.equal(replay.body.error, 'invalid_grant');
  assert.equal((await a.call('POST', '/oauth2/token', form({ grant_type: 'refresh_token', refresh_token: r1.body.refresh_token, client_id: 'netbird-cli' }))).status, 400, 'bound to its client');
  assert.equal((await a.call('POST', '/oauth2/token', form({ grant_type: 'refresh_token', refresh_token: 'garbage' }))).status, 400);

  // prompt=none with the session cookie: a code at once.
  const silent = pkce('netbird-dashboard', 'http://127.0.0.1:33073/nb-silent-auth', { prompt: 'none' });
  const s1 = await a.call('GET', `/oauth2/auth?${new URLSearchParams(silent.params)}`, { headers: { cookie } });
  assert.equal(s1.status, 302);
  const s1url = new URL(String(s1.headers.location));
  assert.equal(s1url.searchParams.get('error'), null);
  const silentTok = await a.call('POST', '/oauth2/token', form({ grant_type: 'authorization_code', code: s1url.searchParams.get('code')!, code_verifier: silent.verifier, redirect_uri: silent.params.redirect_uri!, client_id: 'netbird-dashboard' }));
  assert.equal(silentTok.status, 200);
  // Bad parameters are still shown, never redirected.
  assert.equal((await a.call('GET', `/oauth2/auth?${new URLSearchParams({ ...silent.params, redirect_uri: 'https://evil.example/cb' })}`, { headers: { cookie } })).status, 400);

  // Logout forgets the session: prompt=none is login_required again for a browser without it.
  const out = await a.call('GET', `/oauth2/logout?${new URLSearchParams({ post_logout_redirect_uri: 'http://127.0.0.1:33073/' })}`, { headers: { cookie } });
  assert.equal(out.status, 302);
  assert.match(String(out.headers['set-cookie']), /Max-Age=0/);
  assert.equal((await a.call('GET', '/oauth2/.well-known/openid-configuration')).body.end_session_endpoint, 'http://127.0.0.1:33073/oauth2/logout');

  // A blocked user's refresh token stops working.
  const owner = a.manager.findUser(decodeJwt(r1.body.access_token).sub!)!;
  const admin = await a.manager.createUser(owner.state.id, { email: 'ad@example.com', name: 'ad', role: 'admin', isServiceUser: false, passwordHash: await hashPassword('another horse') });
  const pw = await a.api.idp!.passwordGrant('ad@example.com', 'another horse', 'netbird-dashboard');
  assert.ok(pw);
  assert.equal((await a.call('POST', '/oauth2/token', form({ grant_type: 'refresh_token', refresh_token: pw.refresh_token, client_id: 'netbird-dashboard' }))).status, 200);
  const pw2 = (await a.api.idp!.passwordGrant('ad@example.com', 'another horse', 'netbird-dashboard'))!;
  await a.manager.updateUser(owner.state.id, admin.id, { role: 'admin', autoGroups: [], blocked: true });
  assert.equal((await a.call('POST', '/oauth2/token', form({ grant_type: 'refresh_token', refresh_token: pw2.refresh_token, client_id: 'netbird-dashboard' }))).status, 400);
  assert.equal((await a.call('POST', '/oauth2/token', form({ grant_type: 'refresh_token', refresh_token: pw.refresh_token, client_id: 'netbird-dashboard' }))).status, 400);
});

test('embedded IdP: netbird-cli device flow; unknown client ids refused', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  await setupOwner(a);
  const dev = await a.call('POST', '/oauth2/device/code', form({ client_id: 'netbird-cli', scope: 'openid' }));
  assert.equal(dev.status, 200);
  assert.ok(dev.body.device_code);
  const evil = await a.call('POST', '/oauth2/device/code', form({ client_id: 'evil' }));
  assert.equal(evil.status, 401);
  assert.equal(evil.body.error, 'invalid_client');
  const pw = await a.call('POST', '/oauth2/token', form({ grant_type: 'password', client_id: 'netbird-cli', username: OWNER.email, password: OWNER.password }));
  assert.equal(pw.status, 200);
  assert.equal(decodeJwt(pw.body.access_token).aud, 'netbird-cli');
  assert.equal((await a.call('GET', '/api/users/current', { bearer: pw.body.access_token })).status, 200);
  const f = pkce('evil', 'http://localhost:53000/');
  assert.equal((await a.call('GET', `/oauth2/auth?${new URLSearchParams(f.params)}`)).status, 400);
});

test('licensed-feature lists the dashboard asks for once the licence probe answers: notifications, EDR bypass, remote jobs', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const { token, accountId } = await setupOwner(a);
  // NotificationTypeEntry: every activity code this server records, with its description.
  const types = await a.call('GET', '/api/integrations/notifications/types', { token });
  assert.equal(types.status, 200);
  assert.equal(types.body['user.join'], 'User joined');
  assert.equal(types.body['policy.add'], 'Policy added');
  assert.ok(Object.values(types.body).every((v) => typeof v === 'string'));
  assert.deepEqual((await a.call('GET', '/api/integrations/notifications/channels', { token })).body, []);
  // BypassResponse[]: no EDR integration, no bypassed peers.
  const bypassed = await a.call('GET', '/api/peers/edr/bypassed', { token });
  assert.equal(bypassed.status, 200);
  assert.deepEqual(bypassed.body, []);
  // JobResponse[] of a peer: none ran; unknown peers are 404.
  const key = await a.call('POST', '/api/setup-keys', { token, body: { name: 'k', type: 'reusable', expires_in: 86400, auto_groups: [], usage_limit: 0 } });
  assert.equal(key.status, 200, JSON.stringify(key.body));
  const ref = await a.manager.loginPeer({ peerKey: formatKey(generateKeyPair().publicKey), setupKey: key.body.key, meta: { ...emptyPeerMeta(), hostname: 'p1' } });
  const jobs = await a.call('GET', `/api/peers/${ref.peer.id}/jobs`, { token });
  assert.equal(jobs.status, 200);
  assert.deepEqual(jobs.body, []);
  assert.equal((await a.call('GET', '/api/peers/nope/jobs', { token })).status, 404);
  // Same access as their modules: settings for notifications, peers for the rest.
  assert.equal((await a.call('GET', '/api/integrations/notifications/types')).status, 401);
  const user = await userToken(a, accountId, 'user');
  assert.equal((await a.call('GET', '/api/integrations/notifications/channels', { token: user })).status, 403);
});
