import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { NetbirdServer } from '../../src/server/index.js';
import { TestPeer, tempDir } from '../management/helpers.js';

/**
 * The README walk-through, run as written: from a fresh netbird-server to an API token and a setup
 * key with curl alone (plus sed to pick fields out of the JSON). $NB is the server URL. The script
 * is the README's block between the walkthrough markers, so the documentation cannot drift from what
 * works; WALKTHROUGH below is the same text, kept for reading the test on its own.
 */
export function readmeWalkthrough(): string | undefined {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const m = /<!-- walkthrough:start -->\s*```[a-z]*\n([\s\S]*?)```\s*<!-- walkthrough:end -->/.exec(readme);
  return m?.[1];
}

export const WALKTHROUGH = String.raw`
# 1. A fresh server asks for its first user.
curl -s "$NB/api/instance"; echo

# 2. Create the owner and a personal access token (shown only in this answer).
TOKEN=$(curl -s -X POST "$NB/api/setup" \
  -H 'Content-Type: application/json' \
  -d '{"email":"admin@example.com","password":"change-me-please","name":"Admin","create_pat":true,"pat_expire_in":30}' \
  | sed -n 's/.*"personal_access_token":"\([^"]*\)".*/\1/p')
echo "token: $TOKEN"

# 3. Call the API with it.
curl -s -H "Authorization: Token $TOKEN" "$NB/api/users/current"; echo

# 4. Create a reusable setup key for peers (the plain key is shown only in this answer).
SETUP_KEY=$(curl -s -X POST "$NB/api/setup-keys" \
  -H "Authorization: Token $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"laptops","type":"reusable","expires_in":2592000,"auto_groups":[],"usage_limit":0}' \
  | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
echo "setup key: $SETUP_KEY"

# 5. Or log in as the owner with the embedded identity provider and use the JWT.
JWT=$(curl -s -X POST "$NB/oauth2/token" -d grant_type=password -d client_id=netbird \
  --data-urlencode username=admin@example.com --data-urlencode password=change-me-please \
  | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
curl -s -H "Authorization: Bearer $JWT" "$NB/api/setup-keys"; echo

# 6. Join peers: netbird up --management-url "$NB" --setup-key "$SETUP_KEY"
`;

test('README walk-through: fresh server -> token -> setup key with curl', async (t) => {
  const script = readmeWalkthrough();
  assert.ok(script, 'README.md has the walk-through between <!-- walkthrough:start --> and <!-- walkthrough:end -->');
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await NetbirdServer.start({ dataDir: tmp.dir, host: '127.0.0.1', port: 0 });
  t.after(() => srv.close());

  // spawnSync would block the event loop the server runs on: run curl asynchronously.
  const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const p = spawn('bash', ['-euo', 'pipefail', '-c', script], { env: { ...process.env, NB: srv.managementUrl } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c) => (stdout += c));
    p.stderr.on('data', (c) => (stderr += c));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  assert.equal(out.code, 0, out.stderr);
  const lines = out.stdout.trim().split('\n');
  assert.equal(lines[0], '{"setup_required":true}');
  const token = /^token: (nbp_[0-9A-Za-z]{36})$/m.exec(out.stdout)?.[1];
  assert.ok(token, out.stdout);
  assert.match(out.stdout, /"email":"admin@example.com".*"role":"owner"/);
  const setupKey = /^setup key: ([0-9A-F-]{36})$/m.exec(out.stdout)?.[1];
  assert.ok(setupKey, out.stdout);
  const keysSeenWithJwt = JSON.parse(lines.at(-1)!) as Array<{ name: string; key: string }>;
  assert.deepEqual(keysSeenWithJwt.map((k) => k.name), ['laptops']);
  assert.equal(keysSeenWithJwt[0]!.key, setupKey.slice(0, 5) + '****');

  // The key really registers a peer.
  const peer = new TestPeer(`127.0.0.1:${srv.port}`, 'walkthrough-peer');
  t.after(() => peer.close());
  const login = await peer.login(setupKey);
  assert.ok(login.peerConfig?.address);
  assert.equal(spawnSync('curl', ['--version']).status, 0);
});
