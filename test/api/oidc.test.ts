import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { type CryptoKey, type JWK, SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { formatKey, generateKeyPair as wgKeyPair } from '../../src/crypto/index.js';
import { emptyPeerMeta } from '../../src/management/index.js';
import { setupOwner, startApi } from './helpers.js';

/**
 * JWT validation against a real OIDC issuer on loopback (discovery + JWKS over HTTP, tokens signed
 * by its key), IdP group sync, and the embedded identity provider's password grant.
 */

interface Issuer {
  url: string;
  key: CryptoKey;
  sign(claims: Record<string, unknown>, opts?: { aud?: string; expSeconds?: number; key?: CryptoKey }): Promise<string>;
  close(): Promise<void>;
}

async function startIssuer(): Promise<Issuer> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
  let url = '';
  const server: Server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/openid-configuration') res.end(JSON.stringify({ issuer: url, jwks_uri: `${url}/jwks`, token_endpoint: `${url}/token` }));
    else if (req.url === '/jwks') res.end(JSON.stringify({ keys: [jwk] }));
    else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    key: privateKey,
    sign: (claims, opts = {}) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: 'test-key' })
        .setIssuer(url)
        .setAudience(opts.aud ?? 'nb-test')
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + (opts.expSeconds ?? 600))
        .sign(opts.key ?? privateKey),
    close: () => new Promise((r) => server.close(() => r())),
  };
}

test('external OIDC issuer: signature, audience and expiry checked; users provisioned; IdP group sync', async (t) => {
  const iss = await startIssuer();
  t.after(() => iss.close());
  const a = await startApi({ oidc: [{ issuer: iss.url, audience: 'nb-test', groupsClaim: 'groups' }] });
  t.after(() => a.close());
  const owner = await setupOwner(a);

  const alice = (groups: string[], opts?: Parameters<Issuer['sign']>[1]) => iss.sign({ sub: 'ext-alice', email: 'alice@corp.example', name: 'Alice', groups }, opts);

  // Valid token: the user is created on first use as a regular user of the instance's account.
  const first = await a.call('GET', '/api/users/current', { bearer: await alice(['eng', 'ops']) });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(first.body.id, 'ext-alice');
  assert.equal(first.body.email, 'alice@corp.example');
  assert.equal(first.body.role, 'user');
  assert.deepEqual(first.body.auto_groups, [], 'group sync is off by default');

  // Refusals: expired, wrong audience, signed by another key, unknown issuer.
  const expired = await a.call('GET', '/api/users/current', { bearer: await alice([], { expSeconds: -120 }) });
  assert.equal(expired.status, 401);
  // NetBird's words, which its dashboard reacts to (sign in again on "token expired").
  assert.equal(expired.body.message, 'token expired');
  const aud = await a.call('GET', '/api/users/current', { bearer: await alice([], { aud: 'someone-else' }) });
  assert.equal(aud.status, 401);
  assert.equal(aud.body.message, 'token invalid');
  const other = await generateKeyPair('RS256');
  assert.equal((await a.call('GET', '/api/users/current', { bearer: await alice([], { key: other.privateKey }) })).status, 401);
  const foreign = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'RS256' }).setIssuer('http://127.0.0.1:1/other').setAudience('nb-test').setExpirationTime('5m').sign(other.privateKey);
  const f = await a.call('GET', '/api/users/current', { bearer: foreign });
  assert.equal(f.status, 401);
  assert.equal(f.body.message, 'token invalid');

  // Turn group sync on (claim "groups", propagation to peers).
  const acc = (await a.call('GET', '/api/accounts', { token: owner.token })).body[0];
  const on = await a.call('PUT', `/api/accounts/${acc.id}`, {
    token: owner.token,
    body: { settings: { ...acc.settings, jwt_groups_enabled: true, jwt_groups_claim_name: 'groups', groups_propagation_enabled: true } },
  });
  assert.equal(on.status, 200);

  // Alice's peer (registered with her JWT identity) follows her groups.
  const peer = await a.manager.loginPeer({ peerKey: formatKey(wgKeyPair().publicKey), jwtUserId: 'ext-alice', meta: { ...emptyPeerMeta(), hostname: 'alice-laptop' } });
  const manual = await a.call('POST', '/api/groups', { token: owner.token, body: { name: 'manual' } });
  await a.call('PUT', '/api/users/ext-alice', { token: owner.token, body: { role: 'user', auto_groups: [manual.body.id], is_blocked: false } });

  const synced = await a.call('GET', '/api/users/current', { bearer: await alice(['eng', 'ops']) });
  assert.equal(synced.status, 200);
  const groups = (await a.call('GET', '/api/groups', { token: owner.token })).body as Array<{ id: string; name: string; issued: string; peers: Array<{ id: string }> }>;
  const byName = new Map(groups.map((g) => [g.name, g]));
  assert.equal(byName.get('eng')?.issued, 'jwt');
  assert.equal(byName.get('ops')?.issued, 'jwt');
  assert.deepEqual(new Set(synced.body.auto_groups), new Set([manual.body.id, byName.get('eng')!.id, byName.get('ops')!.id]));
  assert.ok(byName.get('eng')!.peers.some((p) => p.id === peer.peer.id), 'peer joined the JWT group');
  assert.ok(byName.get('manual')!.peers.some((p) => p.id === peer.peer.id), 'propagation of the hand-added group');

  // A peer registered now (JWT identity) starts in all of her auto-groups.
  const laptop2 = await a.manager.loginPeer({ peerKey: formatKey(wgKeyPair().publicKey), jwtUserId: 'ext-alice', meta: { ...emptyPeerMeta(), hostname: 'alice-desktop' } });
  assert.deepEqual(new Set(a.manager.peerGroups(acc.id, laptop2.peer.id)), new Set([...synced.body.auto_groups, a.manager.listGroups(acc.id).find((g) => g.name === 'All')!.id]));

  // The claim shrinks: "ops" leaves the user and her peer; the hand-added group stays.
  const shrunk = await a.call('GET', '/api/users/current', { bearer: await alice(['eng']) });
  assert.deepEqual(new Set(shrunk.body.auto_groups), new Set([manual.body.id, byName.get('eng')!.id]));
  const opsNow = (await a.call('GET', `/api/groups/${byName.get('ops')!.id}`, { token: owner.token })).body;
  assert.equal(opsNow.peers_count, 0);
  const serial = a.manager.getAccount(acc.id).serial;
  await a.call('GET', '/api/users/current', { bearer: await alice(['eng']) });
  assert.equal(a.manager.getAccount(acc.id).serial, serial, 'an unchanged claim changes nothing');

  // Concurrent first uses of a new group name create it once.
  const burst = await Promise.all([0, 1, 2, 3].map(async () => a.call('GET', '/api/users/current', { bearer: await alice(['eng', 'new-team']) })));
  assert.ok(burst.every((r) => r.status === 200));
  assert.equal(a.manager.listGroups(acc.id).filter((g) => g.name === 'new-team').length, 1);

  // Allow-list: only members of "eng" may log in.
  await a.call('PUT', `/api/accounts/${acc.id}`, { token: owner.token, body: { settings: { ...on.body.settings, jwt_allow_groups: ['eng'] } } });
  const denied = await a.call('GET', '/api/users/current', { bearer: await alice(['sales']) });
  assert.equal(denied.status, 403);
  assert.match(denied.body.message, /allowed/);

  const codes = (await a.call('GET', '/api/events/audit', { token: owner.token })).body.map((e: { activity_code: string }) => e.activity_code);
  for (const c of ['user.join', 'group.add', 'user.group.add', 'user.group.delete', 'peer.group.add', 'peer.group.delete']) {
    assert.ok(codes.includes(c), `audit has ${c}`);
  }
});

test('peer login JWT: one-time use, refused when expired or invalid', async (t) => {
  const iss = await startIssuer();
  t.after(() => iss.close());
  const a = await startApi({ oidc: [{ issuer: iss.url, audience: 'nb-test' }] });
  t.after(() => a.close());
  await setupOwner(a);
  const token = await iss.sign({ sub: 'ext-bob', email: 'bob@corp.example' });
  assert.equal(await a.api.resolvePeerJwt(token), 'ext-bob');
  await assert.rejects(a.api.resolvePeerJwt(token), (e: Error & { kind?: string }) => e.kind === 'unauthenticated');
  await assert.rejects(a.api.resolvePeerJwt(await iss.sign({ sub: 'ext-bob' }, { expSeconds: -60 })), (e: Error & { kind?: string }) => e.kind === 'unauthenticated');
  await assert.rejects(a.api.resolvePeerJwt('garbage'), (e: Error & { kind?: string }) => e.kind === 'invalid_argument');
  const other = await generateKeyPair('RS256');
  await assert.rejects(a.api.resolvePeerJwt(await iss.sign({ sub: 'ext-bob' }, { key: other.privateKey })), (e: Error & { kind?: string }) => e.kind === 'invalid_argument');
  const noExp = await new SignJWT({ sub: 'ext-bob' }).setProtectedHeader({ alg: 'RS256', kid: 'test-key' }).setIssuer(iss.url).setAudience('nb-test').sign(iss.key);
  await assert.rejects(a.api.resolvePeerJwt(noExp), (e: Error & { kind?: string }) => e.kind === 'unauthenticated');
});

test('embedded identity provider: discovery, JWKS, password grant, tokens accepted by the API', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const owner = await setupOwner(a);
  const disc = await a.call('GET', '/oauth2/.well-known/openid-configuration');
  assert.equal(disc.status, 200);
  assert.equal(disc.body.issuer, 'http://127.0.0.1:33073/oauth2');
  assert.equal(disc.body.jwks_uri, 'http://127.0.0.1:33073/oauth2/keys');
  const jwks = (await a.call('GET', '/oauth2/keys')).body;
  assert.equal(jwks.keys.length, 1);
  assert.equal(jwks.keys[0].d, undefined, 'no private key material');

  const form = (p: string) => ({ body: p, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  const bad = await a.call('POST', '/oauth2/token', form('grant_type=password&username=owner%40example.com&password=wrong-password&client_id=netbird'));
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error, 'invalid_grant');
  assert.equal((await a.call('POST', '/oauth2/token', form('grant_type=client_credentials'))).body.error, 'unsupported_grant_type');
  const ok = await a.call('POST', '/oauth2/token', form('grant_type=password&username=owner%40example.com&password=correct%20horse&client_id=netbird'));
  assert.equal(ok.status, 200);
  assert.equal(ok.body.token_type, 'Bearer');
  const { payload } = await jwtVerify(ok.body.access_token, createLocalJWKSet(jwks), { issuer: disc.body.issuer, audience: 'netbird' });
  assert.equal(payload.sub, owner.userId);
  const me = await a.call('GET', '/api/users/current', { bearer: ok.body.access_token });
  assert.equal(me.status, 200);
  assert.equal(me.body.role, 'owner');
  assert.equal((await a.call('GET', '/oauth2/userinfo', { bearer: ok.body.access_token })).body.email, 'owner@example.com');

  // A person added by an admin gets a generated password once and can log in with it.
  const added = await a.call('POST', '/api/users', { token: owner.token, body: { email: 'new@example.com', name: 'New', role: 'user', auto_groups: [], is_service_user: false } });
  assert.equal(added.status, 200);
  assert.equal(typeof added.body.password, 'string');
  assert.equal(added.headers['cache-control'], 'no-store');
  assert.equal((await a.call('GET', '/api/users', { token: owner.token })).body.find((u: { id: string }) => u.id === added.body.id).password, undefined, 'shown once');
  const newTok = await a.call('POST', '/oauth2/token', form(`grant_type=password&username=new%40example.com&password=${encodeURIComponent(added.body.password)}`));
  assert.equal(newTok.status, 200);
  assert.equal((await a.call('GET', '/api/users/current', { bearer: newTok.body.access_token })).body.id, added.body.id);
  const svc = await a.call('POST', '/api/users', { token: owner.token, body: { name: 'svc', role: 'user', auto_groups: [], is_service_user: true } });
  assert.equal(svc.body.password, undefined, 'service users have no login');

  // Password change, then the old password stops working.
  const pw = await a.call('PUT', `/api/users/${owner.userId}/password`, { bearer: ok.body.access_token, body: { old_password: 'correct horse', new_password: 'battery staple' } });
  assert.equal(pw.status, 200);
  assert.equal((await a.call('POST', '/oauth2/token', form('grant_type=password&username=owner%40example.com&password=correct%20horse'))).status, 400);
  assert.equal((await a.call('POST', '/oauth2/token', form('grant_type=password&username=owner%40example.com&password=battery%20staple'))).status, 200);
});
