import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A throwaway PostgreSQL cluster for tests: initdb into a temp dir as the postgres user, start it on a
 * free port with its unix socket inside the temp dir, and remove everything on stop(). When
 * NETBIRD_TEST_PG_DSN is set, that server is used instead and a fresh database is created per call.
 */
export interface PgCluster {
  /** DSN of a fresh, empty database. */
  dsn: string;
  stop(): Promise<void>;
}

/** The same server with another database name in the DSN. */
export function dsnWithDatabase(dsn: string, database: string): string {
  // Not new URL(): our socket DSNs have an empty host ("postgresql://postgres@/db?host=/tmp/..."), which URL refuses.
  const m = /^(postgres(?:ql)?:\/\/[^/?]*)(?:\/[^?]*)?(\?.*)?$/.exec(dsn);
  if (!m) throw new Error(`not a PostgreSQL DSN: ${dsn}`);
  return `${m[1]}/${database}${m[2] ?? ''}`;
}

function findPgBin(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = execFileSync('ls', [base]).toString().split('\n').filter(Boolean).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const dir = join(base, v, 'bin');
    if (existsSync(join(dir, 'initdb'))) return dir;
  }
  return undefined;
}

/** Why PostgreSQL tests cannot run here, or undefined when they can. */
export function pgUnavailableReason(): string | undefined {
  if (process.env.NETBIRD_TEST_PG_DSN) return undefined;
  if (!findPgBin()) return 'PostgreSQL not installed (apt-get install -y postgresql) and NETBIRD_TEST_PG_DSN not set';
  if (process.getuid?.() !== 0) return 'starting a PostgreSQL cluster needs root (runuser -u postgres)';
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function startPgCluster(): Promise<PgCluster> {
  const external = process.env.NETBIRD_TEST_PG_DSN;
  if (external) {
    const { default: pg } = await import('pg');
    const name = `nbmg_test_${process.pid}_${Date.now()}`;
    const admin = new pg.Client({ connectionString: external });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = new URL(external);
    url.pathname = '/' + name;
    return {
      dsn: url.toString(),
      async stop() {
        const c = new pg.Client({ connectionString: external });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await c.end();
      },
    };
  }
  const bin = findPgBin();
  if (!bin) throw new Error('PostgreSQL binaries not found: apt-get install -y postgresql');
  const dir = mkdtempSync(join(tmpdir(), 'nbmg-pg-'));
  chmodSync(dir, 0o777);
  const data = join(dir, 'data');
  const run = (args: string[]): void => {
    const r = spawnSync('runuser', ['-u', 'postgres', '--', ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  };
  let started = false;
  try {
    run([join(bin, 'initdb'), '-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    const port = await freePort();
    run([
      join(bin, 'pg_ctl'),
      '-D',
      data,
      '-l',
      join(dir, 'log'),
      '-w',
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses='' -c fsync=on -c max_connections=50`,
      'start',
    ]);
    started = true;
    const dsn = `postgresql://postgres@/postgres?host=${encodeURIComponent(dir)}&port=${port}`;
    return {
      dsn,
      async stop() {
        try {
          run([join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop']);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    if (started) spawnSync('runuser', ['-u', 'postgres', '--', join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', 'stop']);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
