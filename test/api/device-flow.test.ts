import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { openMessage, parseKey } from '../../src/crypto/index.js';
import { management } from '../../src/proto/index.js';
import { NetbirdServer } from '../../src/server/index.js';
import { TestPeer, tempDir } from '../management/helpers.js';

/**
 * SSO the way `netbird up` does it: GetDeviceAuthorizationFlow hands out the embedded IdP's device
 * flow (RFC 8628), the user approves the code in the browser form, the client polls the token
 * endpoint and logs in with the JWT.
 */

async function deviceFlow(peer: TestPeer): Promise<management.DeviceAuthorizationFlow> {
  await peer.serverKey();
  const req = peer.encrypt(management.DeviceAuthorizationFlowRequest, {});
  const res = await new Promise<management.EncryptedMessage>((resolve, reject) =>
    peer.client.getDeviceAuthorizationFlow(req, (err, r) => (err ? reject(err) : resolve(r!))),
  );
  return openMessage(management.DeviceAuthorizationFlow, res.body, parseKey(res.wgPubKey), peer.keys.privateKey);
}

const form = (fields: Record<string, string>): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(fields).toString(),
});

test('device authorization flow: code, browser approval, polling, JWT login', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await NetbirdServer.start({ dataDir: tmp.dir, host: '127.0.0.1', port: 0 });
  t.after(() => srv.close());
  const base = srv.managementUrl;
  const setup = await fetch(`${base}/api/setup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'me@example.com', password: 'correct horse', name: 'Me' }) });
  const { user_id: userId } = (await setup.json()) as { user_id: string };

  const peer = new TestPeer(`127.0.0.1:${srv.port}`, 'sso-laptop');
  t.after(() => peer.close());
  const flow = await deviceFlow(peer);
  assert.equal(flow.Provider, management.DeviceAuthorizationFlow_provider.HOSTED);
  const cfg = flow.ProviderConfig!;
  assert.equal(cfg.ClientID, 'netbird');
  assert.equal(cfg.DeviceAuthEndpoint, `${base}/oauth2/device/code`);
  assert.equal(cfg.TokenEndpoint, `${base}/oauth2/token`);

  const code = (await (await fetch(cfg.DeviceAuthEndpoint, form({ client_id: cfg.ClientID, audience: cfg.Audience, scope: cfg.Scope }))).json()) as {
    device_code: string;
    user_code: string;
    verification_uri_complete: string;
    interval: number;
  };
  assert.match(code.user_code, /^[A-Z]{4}-[A-Z]{4}$/);
  const poll = async (): Promise<{ status: number; body: Record<string, string> }> => {
    const r = await fetch(cfg.TokenEndpoint, form({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: code.device_code, client_id: cfg.ClientID }));
    return { status: r.status, body: (await r.json()) as Record<string, string> };
  };
  const pending = await poll();
  assert.equal(pending.status, 400);
  assert.equal(pending.body.error, 'authorization_pending');
  assert.equal((await poll()).body.error, 'slow_down', 'polling faster than the interval');

  // The browser page: the code is filled in; a wrong password is refused; the right one approves.
  const page = await (await fetch(code.verification_uri_complete)).text();
  assert.ok(page.includes(`value="${code.user_code}"`));
  const bad = await fetch(`${base}/oauth2/device`, form({ user_code: code.user_code, email: 'me@example.com', password: 'nope' }));
  assert.equal(bad.status, 400);
  const ok = await fetch(`${base}/oauth2/device`, form({ user_code: code.user_code.toLowerCase(), email: 'me@example.com', password: 'correct horse' }));
  assert.equal(ok.status, 200);
  assert.match(await ok.text(), /approved/);

  const done = await poll();
  assert.equal(done.status, 200);
  assert.equal((await poll()).body.error, 'invalid_grant', 'a device code yields tokens once');

  const login = await peer.login('', { jwtToken: done.body.access_token! });
  assert.ok(login.peerConfig?.address);
  const peers = (await (await fetch(`${base}/api/peers`, { headers: { authorization: `Bearer ${done.body.id_token}` } })).json()) as Array<{ name: string; user_id: string }>;
  assert.equal(peers.find((p) => p.name === 'sso-laptop')?.user_id, userId);
});

test('authorization code + PKCE: GetPKCEAuthorizationFlow, login form, code exchange', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await NetbirdServer.start({ dataDir: tmp.dir, host: '127.0.0.1', port: 0 });
  t.after(() => srv.close());
  const base = srv.managementUrl;
  await fetch(`${base}/api/setup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'me@example.com', password: 'correct horse', name: 'Me' }) });

  const peer = new TestPeer(`127.0.0.1:${srv.port}`, 'pkce-laptop');
  t.after(() => peer.close());
  await peer.serverKey();
  const res = await new Promise<management.EncryptedMessage>((resolve, reject) =>
    peer.client.getPkceAuthorizationFlow(peer.encrypt(management.PKCEAuthorizationFlowRequest, {}), (err, r) => (err ? reject(err) : resolve(r!))),
  );
  const cfg = openMessage(management.PKCEAuthorizationFlow, res.body, parseKey(res.wgPubKey), peer.keys.privateKey).ProviderConfig!;
  assert.equal(cfg.AuthorizationEndpoint, `${base}/oauth2/auth`);
  assert.equal(cfg.LoginFlag, 0);
  assert.ok(cfg.RedirectURLs.length > 0);

  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const redirect = cfg.RedirectURLs[0]!;
  const params = { response_type: 'code', client_id: cfg.ClientID, redirect_uri: redirect, code_challenge: challenge, code_challenge_method: 'S256', state: 'xyz', scope: cfg.Scope };
  const page = await fetch(`${cfg.AuthorizationEndpoint}?${new URLSearchParams(params)}`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /name="password"/);
  const evil = await fetch(`${cfg.AuthorizationEndpoint}?${new URLSearchParams({ ...params, redirect_uri: 'https://evil.example/cb' })}`);
  assert.equal(evil.status, 400, 'codes never go to foreign sites');
  assert.equal((await fetch(`${cfg.AuthorizationEndpoint}?${new URLSearchParams({ ...params, code_challenge_method: 'plain' })}`)).status, 400);

  const wrong = await fetch(cfg.AuthorizationEndpoint, { ...form({ ...params, email: 'me@example.com', password: 'nope' }), redirect: 'manual' });
  assert.equal(wrong.status, 400);
  const login = await fetch(cfg.AuthorizationEndpoint, { ...form({ ...params, email: 'me@example.com', password: 'correct horse' }), redirect: 'manual' });
  assert.equal(login.status, 302);
  const back = new URL(login.headers.get('location')!);
  assert.equal(`${back.origin}${back.pathname}`, redirect);
  assert.equal(back.searchParams.get('state'), 'xyz');
  const code = back.searchParams.get('code')!;

  const exchange = async (c: string, v: string): Promise<{ status: number; body: Record<string, string> }> => {
    const r = await fetch(cfg.TokenEndpoint, form({ grant_type: 'authorization_code', code: c, code_verifier: v, redirect_uri: redirect, client_id: cfg.ClientID }));
    return { status: r.status, body: (await r.json()) as Record<string, string> };
  };
  const stolen = await exchange(code, 'not-the-verifier');
  assert.equal(stolen.body.error, 'invalid_grant', 'a code without its verifier is useless (and burnt)');
  // A fresh code for the real exchange.
  const again = await fetch(cfg.AuthorizationEndpoint, { ...form({ ...params, email: 'me@example.com', password: 'correct horse' }), redirect: 'manual' });
  const code2 = new URL(again.headers.get('location')!).searchParams.get('code')!;
  const tokens = await exchange(code2, verifier);
  assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
  assert.equal((await exchange(code2, verifier)).body.error, 'invalid_grant', 'codes are single-use');
  const reg = await peer.login('', { jwtToken: tokens.body.access_token! });
  assert.ok(reg.peerConfig?.address);
});

test('without the embedded IdP there is no device flow (NotFound)', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await NetbirdServer.start({ dataDir: tmp.dir, host: '127.0.0.1', port: 0, embeddedIdp: false });
  t.after(() => srv.close());
  const peer = new TestPeer(`127.0.0.1:${srv.port}`, 'x');
  t.after(() => peer.close());
  await assert.rejects(deviceFlow(peer), (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND);
  const pkce = await new Promise<grpc.ServiceError | null>((resolve) =>
    peer.client.getPkceAuthorizationFlow(peer.encrypt(management.PKCEAuthorizationFlowRequest, {}), (err) => resolve(err)),
  );
  assert.equal(pkce?.code, grpc.status.NOT_FOUND);
  assert.equal((await fetch(`${srv.managementUrl}/oauth2/keys`)).status, 404);
});
