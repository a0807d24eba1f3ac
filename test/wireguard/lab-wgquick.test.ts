// `netbird wg-quick` end to end: the CLI (src/wgquick/main.ts) runs inside namespace a with a
// config file, wireguard-go runs in namespace b; ping through, then SIGTERM removes the interface.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, waitUntil } from '../lab/index.js';
import { WireguardGo, wgKeys } from '../lab/wireguard.js';
import { underlay, A_UNDERLAY, B_UNDERLAY, A_TUN, B_TUN, WG_PORT } from '../lab/wgpair.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('wg-quick brings up an interface from a config file, interoperates, and removes it on SIGTERM', async (t) => {
  const lab = await Lab.create({ prefix: 'nbtn' });
  t.after(() => lab.cleanup());
  const { a, b } = await underlay(lab);
  const ka = wgKeys();
  const kb = wgKeys();
  const psk = wgKeys().privateKey;
  const wg = await WireguardGo.start(b, {
    privateKey: kb.privateKey,
    listenPort: WG_PORT,
    addresses: [`${B_TUN}/24`],
    peers: [{ publicKey: ka.publicKey, allowedIps: [`${A_TUN}/32`, '10.20.0.0/16'], presharedKey: psk }],
  });
  const dir = lab.tmpdir();
  const conf = join(dir, 'nbq0.conf');
  writeFileSync(conf, `# test config
[Interface]
PrivateKey = ${ka.privateKey}
Address = ${A_TUN}/32, 10.20.0.1/16
ListenPort = ${WG_PORT}
MTU = 1380
DNS = 10.10.0.53

[Peer]
PublicKey = ${kb.publicKey}
PresharedKey = ${psk}
AllowedIPs = ${B_TUN}/32
AllowedIPs = 10.30.0.0/24
Endpoint = ${B_UNDERLAY}:${WG_PORT}
PersistentKeepalive = 25
`);
  const proc = a.spawn(process.execPath, ['--import', 'tsx', join(root, 'src/wgquick/main.ts'), conf], { cwd: root });
  await proc.waitFor(/nbq0: up/, 20_000);
  assert.match(proc.output(), /ignoring DNS/);
  const link = await a.ip('-o', 'addr', 'show', 'dev', 'nbq0');
  assert.match(link, new RegExp(`${A_TUN}/32`));
  assert.match(await a.ip('link', 'show', 'nbq0'), /mtu 1380/);
  const routes = await a.ip('route', 'show', 'dev', 'nbq0');
  assert.match(routes, new RegExp(`${B_TUN.replace(/\./g, '\\.')}`));
  assert.match(routes, /10\.30\.0\.0\/24/);
  // Keepalive 25 s means the handshake starts at once; the ping also works from b (preshared key matches).
  assert.ok(await a.waitPing(B_TUN, 10_000), 'ping a -> b');
  assert.match((await b.exec('ping', ['-c2', '-i0.2', '-W2', A_TUN])).stdout, /2 received/);
  assert.equal(await wg.endpoint(ka.publicKey), `${A_UNDERLAY}:${WG_PORT}`);

  process.kill(proc.pid, 'SIGTERM');
  assert.equal(await proc.exited, 0, proc.output());
  assert.match(proc.output(), /SIGTERM, removing interface/);
  assert.ok(await waitUntil(async () => (await a.exec('ip', ['link', 'show', 'nbq0'], { check: false })).code !== 0, 3000), 'interface gone');
});

test('wg-quick: usage errors and config errors with line numbers', async (t) => {
  const lab = await Lab.create({ prefix: 'nbtn' });
  t.after(() => lab.cleanup());
  const dir = lab.tmpdir();
  const conf = join(dir, 'bad0.conf');
  writeFileSync(conf, '[Interface]\nPrivateKey = nope\n');
  const { run } = await import('../lab/index.js');
  const main = join(root, 'src/wgquick/main.ts');
  const r = await run(process.execPath, ['--import', 'tsx', main, conf], { check: false });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /bad0\.conf:2: invalid PrivateKey/);
  const h = await run(process.execPath, ['--import', 'tsx', main, '--help'], { check: false });
  assert.equal(h.code, 0);
  assert.match(h.stdout, /Usage: netbird wg-quick/);
  const u = await run(process.execPath, ['--import', 'tsx', main], { check: false });
  assert.equal(u.code, 2);
});
