import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { tempDir } from '../management/helpers.js';

/** Issue 15, item 4: a damaged data directory gets a clear refusal (or, for flow.db, a recovery). */

const RUNNER = fileURLToPath(new URL('./run-cli.ts', import.meta.url));

/** Runs netbird-server on `dataDir` until it prints its join hint (started) or exits (refused). */
function run(dataDir: string): Promise<{ started: boolean; code: number | null; out: string; proc: ChildProcess }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', RUNNER, '--data-dir', dataDir, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve({ started: false, code: null, out, proc }), 30_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (/join a peer:/.test(out)) {
        clearTimeout(t);
        resolve({ started: true, code: null, out, proc });
      }
    });
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    proc.once('exit', (code) => {
      clearTimeout(t);
      resolve({ started: false, code, out, proc });
    });
  });
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    proc.once('exit', () => resolve());
    proc.kill('SIGTERM');
  });
}

/** A data dir that a server has used (accounts, WAL checkpointed by a clean stop). */
async function usedDataDir(dir: string): Promise<string> {
  const data = join(dir, 'data');
  const r = await run(data);
  assert.ok(r.started, r.out);
  await stop(r.proc);
  return data;
}

test('an empty management.db is refused with what to do, not started as a new instance', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const data = await usedDataDir(tmp.dir);
  truncateSync(join(data, 'management.db'), 0);
  const r = await run(data);
  t.after(() => stop(r.proc));
  assert.equal(r.started, false, 'must not start');
  assert.equal(r.code, 1);
  assert.match(r.out, /management\.db is empty \(0 bytes\).*Restore a backup with "netbird-server restore FILE/s);
  assert.doesNotMatch(r.out, /\n\s+at /, 'no stack trace');
});

test('a truncated or overwritten management.db is reported as damaged, without a stack trace', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const data = await usedDataDir(tmp.dir);
  // A copy of the database file alone, cut mid-page: pages the schema refers to are gone.
  for (const suffix of ['-wal', '-shm']) rmSync(join(data, `management.db${suffix}`), { force: true });
  truncateSync(join(data, 'management.db'), 6000);
  let r = await run(data);
  t.after(() => stop(r.proc));
  assert.equal(r.started, false);
  assert.match(r.out, /management\.db is damaged .*SQLite cannot read it\. Restore a backup/s);
  assert.doesNotMatch(r.out, /\n\s+at /);
  writeFileSync(join(data, 'management.db'), Buffer.alloc(8192, 0x41));
  r = await run(data);
  assert.equal(r.started, false);
  assert.match(r.out, /management\.db is damaged/);
});

test('a deleted write-ahead log after an unclean stop is refused (the newest writes would be lost silently)', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const data = join(tmp.dir, 'data');
  const first = await run(data);
  assert.ok(first.started, first.out);
  first.proc.kill('SIGKILL');
  await new Promise((r) => first.proc.once('exit', r));
  assert.ok(existsSync(join(data, 'management.db-wal')), 'an unclean stop leaves the WAL');
  rmSync(join(data, 'management.db-wal'));
  const r = await run(data);
  t.after(() => stop(r.proc));
  assert.equal(r.started, false);
  assert.match(r.out, /management\.db-wal is missing .*delete .*management\.db-shm and start again/s);
});

test('a damaged flow.db is moved aside and the server starts with an empty one', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const data = join(tmp.dir, 'data');
  mkdirSync(data, { recursive: true, mode: 0o700 });
  writeFileSync(join(data, 'flow.db'), Buffer.alloc(8192, 0x42), { mode: 0o600 });
  const r = await run(data);
  t.after(() => stop(r.proc));
  assert.equal(r.started, true, r.out);
  assert.match(r.out, /flow\.db is damaged .*moved it to .*flow\.db\.damaged-/s);
  assert.ok(readdirSync(data).some((f) => f.startsWith('flow.db.damaged-')), 'the damaged file is kept');
  const health = await fetch(`http://${/listening on (127\.0\.0\.1:\d+)/.exec(r.out)![1]}/health`);
  assert.equal(health.status, 200);
});
