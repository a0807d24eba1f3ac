/**
 * A throwaway PostgreSQL cluster for the flow store tests: initdb into a temp dir (as the postgres user),
 * started on a free port with its socket in that dir, removed again by stop(). Skipped with a reason when
 * PostgreSQL is not installed or we are not root.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PgTestCluster {
  readonly host: string;
  readonly port: number;
  stop(): void;
}

function pgBin(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  for (const v of readdirSync(base).sort((a, b) => Number(b) - Number(a))) {
    if (existsSync(join(base, v, 'bin', 'initdb'))) return join(base, v, 'bin');
  }
  return undefined;
}

export function pgSkipReason(): string | undefined {
  if (!pgBin()) return 'PostgreSQL is not installed (apt-get install -y postgresql); PostgreSQL store tests skipped';
  if (process.getuid?.() !== 0) return 'not root: cannot run initdb as the postgres user; PostgreSQL store tests skipped';
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export async function startPg(): Promise<PgTestCluster> {
  const bin = pgBin();
  if (!bin) throw new Error('PostgreSQL binaries not found');
  const dir = mkdtempSync(join(tmpdir(), 'nbfl-pg-'));
  chmodSync(dir, 0o777);
  const data = join(dir, 'data');
  const asPostgres = (args: string[]): void => {
    const r = spawnSync('runuser', ['-u', 'postgres', '--', ...args], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`${args[0]} failed: ${r.stderr || r.stdout}`);
  };
  const stop = (): void => {
    spawnSync('runuser', ['-u', 'postgres', '--', join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop'], { timeout: 30_000 });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    asPostgres([join(bin, 'initdb'), '-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    const port = await freePort();
    asPostgres([
      join(bin, 'pg_ctl'), '-D', data, '-l', join(dir, 'log'), '-w', '-o',
      `-p ${port} -k ${dir} -c listen_addresses='' -c fsync=off`, 'start',
    ]);
    return { host: dir, port, stop };
  } catch (err) {
    stop();
    throw err;
  }
}
