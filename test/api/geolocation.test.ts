import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NetbirdServer } from '../../src/server/index.js';
import { management } from '../../src/proto/index.js';
import { openMessage, parseKey } from '../../src/crypto/index.js';
import { postureCheckFailure } from '../../src/management/index.js';
import { TestPeer, meta, tempDir } from '../management/helpers.js';

/**
 * Peer locations: a login's public address (behind a reverse proxy: X-Real-IP) is placed with the
 * shipped database; the peers API shows it (connection_ip, country_code, city_name, geoname_id) and
 * geolocation posture checks judge by it.
 */

async function loginFrom(peer: TestPeer, setupKey: string, realIp: string): Promise<void> {
  await peer.serverKey();
  const req = peer.encrypt(management.LoginRequest, {
    setupKey,
    meta: meta(peer.hostname),
    jwtToken: '',
    peerKeys: undefined,
    dnsLabels: [],
  });
  const md = new grpc.Metadata();
  md.set('x-real-ip', realIp);
  const res = await new Promise<management.EncryptedMessage>((resolve, reject) => peer.client.login(req, md, (err, r) => (err ? reject(err) : resolve(r!))));
  openMessage(management.LoginResponse, res.body, parseKey(res.wgPubKey), peer.keys.privateKey);
}

test('peer location from the login address: peers API and geolocation posture checks', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await NetbirdServer.start({ dataDir: tmp.dir, host: '127.0.0.1', port: 0 });
  t.after(() => srv.close());
  const base = srv.managementUrl;
  const call = async (method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }> => {
    const r = await fetch(base + path, { method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Token ${token}` } : {}) }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : undefined };
  };
  const setup = await call('POST', '/api/setup', { email: 'admin@example.com', password: 'correct horse', name: 'Admin', create_pat: true });
  const token = setup.body.personal_access_token as string;
  const key = (await call('POST', '/api/setup-keys', { name: 'k', type: 'reusable', expires_in: 0, auto_groups: [], usage_limit: 0 }, token)).body.key as string;
  const addr = `127.0.0.1:${srv.port}`;
  const us = new TestPeer(addr, 'in-us');
  const de = new TestPeer(addr, 'in-de');
  const local = new TestPeer(addr, 'on-lan');
  t.after(() => [us, de, local].forEach((p) => p.close()));
  await loginFrom(us, key, '8.8.8.8');
  await loginFrom(de, key, '193.99.144.80');
  await local.login(key);

  const peers = (await call('GET', '/api/peers', undefined, token)).body as Array<Record<string, unknown>>;
  const byName = (n: string): Record<string, unknown> => peers.find((p) => p.name === n)!;
  assert.deepEqual([byName('in-us').connection_ip, byName('in-us').country_code, byName('in-us').city_name], ['8.8.8.8', 'US', 'Mountain View']);
  assert.ok((byName('in-us').geoname_id as number) > 0);
  assert.equal(byName('in-de').country_code, 'DE');
  assert.deepEqual([byName('on-lan').connection_ip, byName('on-lan').country_code, byName('on-lan').geoname_id], ['127.0.0.1', '', 0], 'a loopback login has no place');
  const acc = (await call('GET', `/api/peers/${byName('in-de').id}/accessible-peers`, undefined, token)).body as Array<Record<string, unknown>>;
  assert.equal(acc.find((p) => p.name === 'in-us')?.country_code, 'US');

  // Posture: only Germany may be a source; the US peer fails, the German one passes.
  const pc = await call('POST', '/api/posture-checks', { name: 'de only', checks: { geo_location_check: { locations: [{ country_code: 'DE' }], action: 'allow' } } }, token);
  assert.equal(pc.status, 200, JSON.stringify(pc.body));
  const accountId = (await call('GET', '/api/accounts', undefined, token)).body[0].id as string;
  const m = srv.management.manager;
  const check = m.objects(accountId).postureChecks.get(pc.body.id)!;
  const peer = (name: string) => m.listPeers(accountId).find((p) => p.name === name)!;
  assert.match(postureCheckFailure(check, peer('in-us'))!, /US\/Mountain View is not allowed/);
  assert.equal(postureCheckFailure(check, peer('in-de')), undefined);
  assert.match(postureCheckFailure(check, peer('on-lan'))!, /unknown/);

  // The US peer logs in again from Germany: its place follows.
  await loginFrom(us, '', '193.99.144.80');
  assert.equal(postureCheckFailure(check, peer('in-us')), undefined);
  assert.equal((await call('GET', `/api/peers/${byName('in-us').id}`, undefined, token)).body.country_code, 'DE');
});
