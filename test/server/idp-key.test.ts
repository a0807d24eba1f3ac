import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { NetbirdServer } from '../../src/server/index.js';
import { tempDir } from '../management/helpers.js';

/** Issue 15, item 3: the embedded IdP's signing key is sealed in the store with a key from the data dir. */

const ENTRY = 'idp.signing_jwk';

/** One HTTP request on its own connection (the server restarts on the same port between calls). */
function call(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function jwks(srv: NetbirdServer): Promise<{ keys: Array<{ kid: string; d?: string }> }> {
  return JSON.parse((await call(srv.port, 'GET', '/oauth2/keys')).body) as { keys: Array<{ kid: string; d?: string }> };
}

test('the signing key is sealed at rest, survives restarts, and an old clear one is sealed in place', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const dataDir = join(tmp.dir, 'data');
  let srv = await NetbirdServer.start({ dataDir, host: '127.0.0.1', port: 0 });
  t.after(() => srv.close());
  // Restarts keep the port: the issuer URL (and so the tokens' "iss") includes it.
  const port = srv.port;
  const stored = (await srv.management.manager.store.getInstanceValue(ENTRY))!;
  assert.match(stored, /^sealed:v1:[A-Za-z0-9+/=]+$/, 'no JWK (and no private "d") in the database');
  assert.equal(statSync(join(dataDir, 'idp.secret')).mode & 0o777, 0o600);
  const kid = (await jwks(srv)).keys[0]!.kid;
  assert.equal((await jwks(srv)).keys[0]!.d, undefined);
  // A token issued now still verifies after a restart (same key, opened again).
  const setup = await call(port, 'POST', '/api/setup', { 'content-type': 'application/json' }, JSON.stringify({ email: 'o@example.com', password: 'correct horse', name: 'O' }));
  assert.equal(setup.status, 200);
  const login = await call(port, 'POST', '/oauth2/token', { 'content-type': 'application/x-www-form-urlencoded' }, 'grant_type=password&username=o%40example.com&password=correct%20horse');
  const jwt = (JSON.parse(login.body) as { access_token: string }).access_token;
  await srv.close();
  srv = await NetbirdServer.start({ dataDir, host: '127.0.0.1', port });
  assert.equal((await jwks(srv)).keys[0]!.kid, kid);
  assert.equal((await call(port, 'GET', '/api/users/current', { authorization: `Bearer ${jwt}` })).status, 200);

  // An earlier version's clear JWK: put one in, restart, find it sealed with its kid kept.
  const clear = JSON.stringify({ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0', d: 'jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI', kid: 'legacy-kid', alg: 'ES256', use: 'sig' });
  await srv.management.manager.store.setInstanceValue(ENTRY, clear);
  await srv.close();
  srv = await NetbirdServer.start({ dataDir, host: '127.0.0.1', port });
  assert.match((await srv.management.manager.store.getInstanceValue(ENTRY))!, /^sealed:v1:/);
  assert.equal((await jwks(srv)).keys[0]!.kid, 'legacy-kid');
});

test('a replaced idp.secret is refused with what to do', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const dataDir = join(tmp.dir, 'data');
  const srv = await NetbirdServer.start({ dataDir, host: '127.0.0.1', port: 0 });
  await srv.close();
  writeFileSync(join(dataDir, 'idp.secret'), Buffer.alloc(32, 7).toString('base64') + '\n', { mode: 0o600 });
  await assert.rejects(NetbirdServer.start({ dataDir, host: '127.0.0.1', port: 0 }), /cannot be opened with idp\.secret: the file was replaced .*put the original back/);
});
