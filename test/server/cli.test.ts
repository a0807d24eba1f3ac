import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { TestPeer, codeOf, tempDir } from '../management/helpers.js';

/** The CLI as a real process: --help, setup-keys create, serving, restart and kill -9 durability. */

const RUNNER = fileURLToPath(new URL('./run-cli.ts', import.meta.url));
const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', RUNNER, ...args], { encoding: 'utf8', timeout: 60_000 });

function startServer(dataDir: string): Promise<{ proc: ChildProcess; port: number; out: () => string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', RUNNER, '--data-dir', dataDir, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 30_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /listening on 127\.0\.0\.1:(\d+)[^]*join a peer:.*\n/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ proc, port: Number(m[1]), out: () => out });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`server exited with ${code}: ${out}`));
    });
  });
}

function killHard(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once('exit', () => resolve());
    proc.kill('SIGKILL');
  });
}

test('netbird-server --help and usage errors', () => {
  const help = cli(['--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--data-dir DIR/);
  assert.match(help.stdout, /setup-keys create/);
  const bad = cli(['--listen', 'nonsense']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /HOST:PORT/);
  const unknown = cli(['frobnicate']);
  assert.equal(unknown.status, 2);
});

test('setup-keys create on a fresh data dir, serve, restart, kill -9 keeps committed changes', async (t) => {
  const tmp = tempDir();
  const procs: ChildProcess[] = [];
  const peers: TestPeer[] = [];
  t.after(async () => {
    peers.forEach((p) => p.close());
    for (const p of procs) await killHard(p);
    tmp.remove();
  });

  const created = cli(['setup-keys', 'create', '--reusable', '--json', '--data-dir', tmp.dir]);
  assert.equal(created.status, 0, created.stderr);
  const k = JSON.parse(created.stdout) as { key: string; account_id: string; type: string };
  assert.match(k.key, /^[0-9A-F-]{36}$/);
  assert.equal(k.type, 'reusable');
  const plain = cli(['setup-keys', 'create', '--data-dir', tmp.dir]);
  assert.equal(plain.status, 0);
  const oneOff = plain.stdout.trim();
  assert.match(oneOff, /^[0-9A-F-]{36}$/);

  let srv = await startServer(tmp.dir);
  procs.push(srv.proc);
  assert.match(srv.out(), /netbird up --management-url http:\/\/127\.0\.0\.1:\d+ --setup-key/);
  const a = new TestPeer(`127.0.0.1:${srv.port}`, 'durable-a');
  peers.push(a);
  const la = await a.login(k.key);
  // A key created by the CLI while the server runs works too (same SQLite file, another process).
  const late = cli(['setup-keys', 'create', '--data-dir', tmp.dir]);
  assert.equal(late.status, 0, late.stderr);
  const b = new TestPeer(`127.0.0.1:${srv.port}`, 'durable-b');
  peers.push(b);
  const lb = await b.login(late.stdout.trim());

  // The login response means the registration committed; kill -9 right after.
  await killHard(srv.proc);

  srv = await startServer(tmp.dir);
  procs.push(srv.proc);
  const addr = `127.0.0.1:${srv.port}`;
  const a2 = new TestPeer(addr, 'durable-a');
  (a2 as unknown as { keys: unknown }).keys = a.keys;
  peers.push(a2);
  const again = await a2.login('');
  assert.equal(again.peerConfig!.address, la.peerConfig!.address, 'same IP after kill -9 and restart');
  const b2 = new TestPeer(addr, 'durable-b');
  (b2 as unknown as { keys: unknown }).keys = b.keys;
  peers.push(b2);
  assert.equal((await b2.login('')).peerConfig!.address, lb.peerConfig!.address);
  // The one-off key from before the crash is still unused and works once; the used late one-off key does not.
  const c = new TestPeer(addr, 'durable-c');
  peers.push(c);
  await c.login(oneOff);
  const d = new TestPeer(addr, 'durable-d');
  peers.push(d);
  assert.equal(await codeOf(d.login(late.stdout.trim())), grpc.status.NOT_FOUND);
  // The server key survived: a client that cached it can still talk.
  const sync = await a2.sync();
  const map = (await sync.next()).NetworkMap!;
  assert.equal(map.remotePeers.length, 2, "a sees b and c");

  // Graceful stop on SIGTERM.
  const exited = new Promise<number | null>((resolve) => srv.proc.once('exit', (code) => resolve(code)));
  srv.proc.kill('SIGTERM');
  assert.equal(await exited, 0);
});
