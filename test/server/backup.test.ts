// `netbird-server backup` (online, consistent SQLite copy) and `restore` (server stopped, file
// checked first, the replaced database kept aside).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { tempDir } from '../management/helpers.js';
import { spawnServer } from '../hostile/harness.js';

const RUN_CLI = join(import.meta.dirname, 'run-cli.ts');
const cli = (...args: string[]): { status: number | null; out: string } => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', RUN_CLI, ...args], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
};

async function api(port: number, method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Token ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

test('backup while the server runs; restore refuses while it runs and refuses foreign files; restore brings the backed-up state back', { timeout: 90_000 }, async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const dataDir = join(tmp.dir, 'data');
  let srv = await spawnServer({ dataDir, stun: false });
  t.after(() => srv.stop());
  const setup = await api(srv.port, 'POST', '/api/setup', undefined, { email: 'o@example.com', password: 'correct horse', name: 'O', create_pat: true, pat_expire_in: 30 });
  assert.equal(setup.status, 200, JSON.stringify(setup.body));
  const token = setup.body.personal_access_token as string;
  assert.equal((await api(srv.port, 'POST', '/api/groups', token, { name: 'before-backup' })).status, 200);

  const backup = join(tmp.dir, 'netbird.db');
  const b = cli('backup', backup, '--data-dir', dataDir);
  assert.equal(b.status, 0, b.out);
  assert.match(b.out, /backed up .* 1 account/);
  assert.equal(statSync(backup).mode & 0o777, 0o600);
  assert.equal(cli('backup', backup, '--data-dir', dataDir).status, 1, 'a backup never overwrites');
  assert.equal((await api(srv.port, 'POST', '/api/groups', token, { name: 'after-backup' })).status, 200);

  const running = cli('restore', backup, '--data-dir', dataDir);
  assert.equal(running.status, 1);
  assert.match(running.out, /is running on .*stop it first/);
  await srv.stop();

  // Files that are not netbird-ts databases are refused; nothing changes.
  const garbage = join(tmp.dir, 'garbage.db');
  writeFileSync(garbage, Buffer.alloc(8192, 7));
  const g = cli('restore', garbage, '--data-dir', dataDir);
  assert.equal(g.status, 1);
  assert.match(g.out, /cannot be restored: .*not an SQLite database|cannot be restored: .*SQLite/);
  const other = join(tmp.dir, 'other.db');
  const o = new BetterSqlite3(other);
  o.exec('CREATE TABLE notes (x TEXT)');
  o.close();
  const od = cli('restore', other, '--data-dir', dataDir);
  assert.equal(od.status, 1);
  assert.match(od.out, /not a netbird-ts management database/);
  assert.ok(!readdirSync(dataDir).some((f) => f.includes('before-restore')));

  const r = cli('restore', backup, '--data-dir', dataDir);
  assert.equal(r.status, 0, r.out);
  const kept = readdirSync(dataDir).filter((f) => f.startsWith('management.db.before-restore-'));
  assert.ok(kept.some((f) => !f.endsWith('-wal') && !f.endsWith('-shm')), kept.join(','));
  assert.match(r.out, /kept as/);

  srv = await spawnServer({ dataDir, stun: false });
  const groups = (await api(srv.port, 'GET', '/api/groups', token)).body.map((x: { name: string }) => x.name);
  assert.ok(groups.includes('before-backup'), groups.join(','));
  assert.ok(!groups.includes('after-backup'), groups.join(','));
  await srv.stop();
  assert.ok(!existsSync(join(dataDir, 'server.pid')), 'a stopped server leaves no pid file');
});

test('backup and restore with PostgreSQL point to pg_dump / pg_restore', () => {
  const r = cli('backup', '/tmp/x.db', '--store-dsn', 'postgresql://u@127.0.0.1/db');
  assert.equal(r.status, 2);
  assert.match(r.out, /pg_dump/);
  assert.match(r.out, /pg_restore/);
});
