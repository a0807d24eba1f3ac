import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { loadOrCreateConfig } from '../../src/client/config.js';
import { formatStatus } from '../../src/client/status.js';
import type { StatusJson } from '../../src/client/status.js';
import { parseGrpcUrl } from '../../src/client/management.js';
import { Daemon, callDaemon, serveControl, type EngineHandle } from '../../src/client/daemon.js';

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'test/client/netbird-cli.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

test('config: created once with a private key that survives reloads, mode 0600', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nbcli-'));
  try {
    const path = join(dir, 'sub', 'config.json');
    const a = loadOrCreateConfig(path, { managementUrl: 'http://127.0.0.1:33073' });
    const b = loadOrCreateConfig(path);
    assert.equal(a.privateKey, b.privateKey);
    assert.equal(b.managementUrl, 'http://127.0.0.1:33073');
    assert.equal(b.interfaceName, 'wt0');
    assert.equal(statSync(path).mode & 0o777, 0o600);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('config: a broken file is refused with a message saying what to do', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nbcli-'));
  try {
    const path = join(dir, 'config.json');
    loadOrCreateConfig(path);
    const good = readFileSync(path, 'utf8');
    for (const bad of ['{not json', JSON.stringify({ ...JSON.parse(good), privateKey: 'short' }), JSON.stringify({ ...JSON.parse(good), managementUrl: 'ftp://x' })]) {
      writeFileSync(path, bad);
      assert.throws(() => loadOrCreateConfig(path), (e: unknown) => e instanceof Error && /config|key|URL/i.test(e.message));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('management URL parsing', () => {
  assert.deepEqual(parseGrpcUrl('http://127.0.0.1:33073'), { target: '127.0.0.1:33073', tls: false });
  assert.deepEqual(parseGrpcUrl('https://netbird.example.com'), { target: 'netbird.example.com:443', tls: true });
  assert.deepEqual(parseGrpcUrl('http://[::1]:80'), { target: '[::1]:80', tls: false });
  assert.throws(() => parseGrpcUrl('grpc://x'), /scheme/);
  assert.throws(() => parseGrpcUrl('not a url'), /invalid URL/);
});

test('CLI: help, version, unknown commands and flags', async () => {
  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  for (const cmd of ['up', 'down', 'status', 'login', 'logout', 'service', 'wg-quick', 'version']) assert.match(help.stdout, new RegExp(`\\b${cmd}\\b`));
  for (const cmd of ['up', 'down', 'status', 'login', 'logout', 'service', 'version']) {
    const r = await runCli([cmd, '--help']);
    assert.equal(r.code, 0, cmd);
    assert.match(r.stdout, /Usage: netbird/, cmd);
  }
  const v = await runCli(['version']);
  assert.match(v.stdout.trim(), /^\d+\.\d+\.\d+$/);
  const bad = await runCli(['frobnicate']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown command/);
  const badFlag = await runCli(['up', '--no-such-flag']);
  assert.equal(badFlag.code, 2);
  assert.match(badFlag.stderr, /--help/);
  const badUrl = await runCli(['up', '--management-url', 'ftp://x', '--daemon-addr', 'unix:///tmp/none.sock']);
  assert.equal(badUrl.code, 2);
  assert.match(badUrl.stderr, /management-url/);
});

test('CLI: a missing daemon is reported with what to do', async () => {
  const r = await runCli(['status', '--daemon-addr', 'unix:///tmp/nbcli-no-daemon.sock']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /daemon is not running/);
  assert.match(r.stderr, /service run|foreground-mode/);
});

test('daemon control API: status JSON with NetBird field names and clear errors from up', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nbcli-'));
  const sock = join(dir, 'd.sock');
  let starts = 0;
  const fakeEngine = async (): Promise<EngineHandle> => {
    starts++;
    throw new Error('no TUN here');
  };
  const daemon = new Daemon(join(dir, 'config.json'), fakeEngine);
  const server = await serveControl(daemon, sock);
  try {
    const st = await callDaemon<StatusJson>(sock, 'GET', '/v1/status');
    for (const k of ['netbirdIp', 'publicKey', 'fqdn', 'management', 'signal', 'relays', 'peers']) assert.ok(k in st, k);
    assert.deepEqual(Object.keys(st.peers).sort(), ['connected', 'details', 'total']);
    assert.equal(st.daemonStatus, 'Idle');
    assert.equal(statSync(sock).mode & 0o777, 0o600);
    // Management unreachable: a clear error, no engine started.
    await assert.rejects(
      callDaemon(sock, 'POST', '/v1/up', { managementUrl: 'http://127.0.0.1:1', setupKey: 'X' }),
      (e: unknown) => e instanceof Error && /cannot reach management/.test(e.message),
    );
    assert.equal(starts, 0);
    await assert.rejects(callDaemon(sock, 'POST', '/v1/up', { wireguardPort: 'x' }), /wireguardPort/);
    await assert.rejects(callDaemon(sock, 'GET', '/v1/nope'), /no such control endpoint/);
    const text = formatStatus(await callDaemon<StatusJson>(sock, 'GET', '/v1/status'), true);
    assert.match(text, /Management: Disconnected/);
    assert.match(text, /Peers count: 0\/0 Connected/);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
