// Issue 15 item 3 (file permissions): the data directory is 0700 and the databases, their WAL and the
// secrets 0600, also under a permissive umask and for a directory an older version left open.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../management/helpers.js';
import { health, spawnServer } from '../hostile/harness.js';

const mode = (p: string): string => (statSync(p).mode & 0o777).toString(8);

test('data directory 0700; management.db, its WAL, flow.db and secrets 0600', { timeout: 60_000 }, async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const old = process.umask(0o022);
  t.after(() => process.umask(old));
  const fresh = join(tmp.dir, 'fresh');
  const srv = await spawnServer({ dataDir: fresh });
  t.after(() => srv.stop());
  assert.ok(await health(srv.port));
  assert.equal(mode(fresh), '700');
  assert.ok(existsSync(join(fresh, 'management.db-wal')), readdirSync(fresh).join(','));
  for (const f of readdirSync(fresh)) assert.equal(mode(join(fresh, f)), '600', f);
  await srv.stop();

  // A directory and files left world-readable are tightened at start.
  const open = join(tmp.dir, 'open');
  mkdirSync(open, { mode: 0o755 });
  chmodSync(open, 0o755);
  writeFileSync(join(open, 'relay.secret'), 'x'.repeat(44) + '\n', { mode: 0o644 });
  const again = await spawnServer({ dataDir: open });
  t.after(() => again.stop());
  assert.equal(mode(open), '700');
  for (const f of readdirSync(open)) assert.equal(mode(join(open, f)), '600', f);
  assert.match(again.output(), /readable by others/);
});
