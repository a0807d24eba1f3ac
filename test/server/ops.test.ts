// Operations: health and metrics endpoints, exposed address for public deployments, config sources,
// bounded handling of idle and garbage connections, graceful shutdown.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseExposedAddress } from '../../src/server/cli.js';
import { NetbirdServer } from '../../src/server/index.js';
import { TestPeer, tempDir } from '../management/helpers.js';

async function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() };
}

test('GET /health and GET /metrics report the running servers', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await NetbirdServer.start({ dataDir: tmp.dir, host: '127.0.0.1', port: 0, stunPort: 0 });
  t.after(() => srv.close());
  const m = srv.management.manager;
  const { key } = await m.createSetupKey((await m.defaultAccount()).id, { name: 'k', type: 'reusable' });
  const peer = new TestPeer(`127.0.0.1:${srv.port}`, 'obs');
  t.after(() => peer.close());
  await peer.login(key);
  const inbox = await peer.sync();
  await inbox.next();

  const health = await get(srv.port, '/health');
  assert.equal(health.status, 200);
  const h = JSON.parse(health.body) as { status: string; management: { sync_streams: number } };
  assert.equal(h.status, 'ok');
  assert.equal(h.management.sync_streams, 1);
  const metrics = await get(srv.port, '/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.type, /text\/plain/);
  assert.match(metrics.body, /^netbird_management_sync_streams 1$/m);
  assert.match(metrics.body, /^netbird_relay_peers 0$/m);
  assert.match(metrics.body, /^netbird_stun_answered_total 0$/m);
  assert.match(metrics.body, /netbird_server_process_resident_memory_bytes/);
  assert.equal((await fetch(`http://127.0.0.1:${srv.port}/metrics`, { method: 'POST' })).status, 405);
});

test('the exposed address is what peers are told (public deployment behind a TLS proxy)', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await NetbirdServer.start({ dataDir: tmp.dir, host: '127.0.0.1', port: 0, publicHost: 'vpn.example.com', publicPort: 443, publicTls: true });
  t.after(() => srv.close());
  assert.equal(srv.managementUrl, 'https://vpn.example.com:443');
  const m = srv.management.manager;
  const { key } = await m.createSetupKey((await m.defaultAccount()).id, { name: 'k', type: 'reusable' });
  const peer = new TestPeer(`127.0.0.1:${srv.port}`, 'exposed');
  t.after(() => peer.close());
  const cfg = (await peer.login(key)).netbirdConfig!;
  assert.deepEqual(cfg.relay!.urls, ['rels://vpn.example.com:443']);
  assert.equal(cfg.signal!.uri, 'vpn.example.com:443');
  assert.equal(cfg.signal!.protocol, 3 /* HTTPS */);
});

test('parseExposedAddress', () => {
  assert.deepEqual(parseExposedAddress('vpn.example.com'), { host: 'vpn.example.com' });
  assert.deepEqual(parseExposedAddress('203.0.113.7:33073'), { host: '203.0.113.7', port: 33073 });
  assert.deepEqual(parseExposedAddress('[2001:db8::1]:443'), { host: '2001:db8::1', port: 443 });
  assert.deepEqual(parseExposedAddress('https://vpn.example.com'), { host: 'vpn.example.com', port: 443, tls: true });
  assert.deepEqual(parseExposedAddress('http://vpn.example.com:8080'), { host: 'vpn.example.com', port: 8080, tls: false });
  assert.throws(() => parseExposedAddress('ftp://x'), /http/);
  assert.throws(() => parseExposedAddress('host:99999'), /out of range/);
  assert.throws(() => parseExposedAddress('a:b:c'), /expects/);
});

test('idle and garbage connections are dropped; other clients keep being served', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await NetbirdServer.start({ dataDir: tmp.dir, host: '127.0.0.1', port: 0, identifyTimeoutMs: 500 });
  t.after(() => srv.close());
  const open = (): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s = connect(srv.port, '127.0.0.1', () => resolve(s));
      s.on('error', reject);
    });
  const idle = await Promise.all(Array.from({ length: 50 }, open));
  const closed = idle.map((s) => new Promise<void>((resolve) => s.on('close', () => resolve())));
  const garbage = await open();
  const garbageReply = new Promise<string>((resolve) => {
    let out = '';
    garbage.on('data', (d: Buffer) => (out += d.toString('latin1')));
    garbage.on('close', () => resolve(out));
  });
  garbage.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0xde, 0xad, 0xbe, 0xef, 0x0d, 0x0a, 0x0d, 0x0a]));
  // While 50 sockets sit idle, a real client is served.
  assert.equal((await get(srv.port, '/health')).status, 200);
  const started = Date.now();
  await Promise.all(closed);
  assert.ok(Date.now() - started < 5000, 'idle sockets were not closed by the identify timeout');
  assert.match(await garbageReply, /^HTTP\/1\.1 400/);
  assert.equal((await get(srv.port, '/health')).status, 200);
});

test('CLI: options from a config file and from NETBIRD_* environment; graceful stop on SIGTERM', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const cfg = join(tmp.dir, 'server.json');
  writeFileSync(cfg, JSON.stringify({ listen: '127.0.0.1:0', 'exposed-address': 'https://vpn.example.com', 'dns-domain': 'corp.example' }));
  const proc = spawn(process.execPath, ['--import', 'tsx', 'test/server/run-cli.ts', '--config', cfg], {
    env: { ...process.env, NETBIRD_DATA_DIR: join(tmp.dir, 'state') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (c) => resolve(c)));
  t.after(() => proc.kill('SIGKILL'));
  for (let i = 0; i < 200 && !/join a peer/.test(out); i++) await new Promise((r) => setTimeout(r, 100));
  assert.match(out, /netbird up --management-url https:\/\/vpn\.example\.com:443/);
  assert.match(out, new RegExp(`SQLite ${join(tmp.dir, 'state').replace(/\//g, '\\/')}`));
  proc.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.match(out, /shutting down/);

  // A bad config file is refused with a message naming the problem.
  writeFileSync(cfg, JSON.stringify({ lsiten: 'x' }));
  const bad = spawn(process.execPath, ['--import', 'tsx', 'test/server/run-cli.ts', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  bad.stderr.on('data', (d: Buffer) => (err += d.toString()));
  assert.equal(await new Promise<number | null>((resolve) => bad.on('exit', (c) => resolve(c))), 2);
  assert.match(err, /unknown option "lsiten"/);
});
