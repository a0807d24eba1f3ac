// Shared parts of the hostile suite: the real netbird-server as a child process (so a flood from the
// test process competes with it the way a remote attacker would), a /health probe that opens a new
// connection every time, the server's resident memory, and a flood of idle and slow connections.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { tempDir } from '../management/helpers.js';

export interface SpawnedServer {
  readonly port: number;
  readonly stunPort: number | undefined;
  readonly pid: number;
  readonly dataDir: string;
  readonly proc: ChildProcess;
  /** Everything the server wrote so far (stdout and stderr). */
  output(): string;
  /** Resident set size in bytes (from /proc). */
  rss(): number;
  stop(): Promise<void>;
}

const RUN_CLI = join(import.meta.dirname, '..', 'server', 'run-cli.ts');

/** Starts `netbird-server` on 127.0.0.1 with a random port (and STUN unless disabled). */
export async function spawnServer(opts: { args?: string[]; env?: Record<string, string>; stun?: boolean; dataDir?: string } = {}): Promise<SpawnedServer> {
  const tmp = opts.dataDir ? undefined : tempDir();
  const dataDir = opts.dataDir ?? join(tmp!.dir, 'data');
  const args = ['--import', 'tsx', RUN_CLI, '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...(opts.stun === false ? [] : ['--stun-port', '0']), ...(opts.args ?? [])];
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  for (let i = 0; i < 300 && !/join a peer/.test(out) && proc.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
  const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
  if (!m || proc.exitCode !== null) {
    proc.kill('SIGKILL');
    tmp?.remove();
    throw new Error(`netbird-server did not start:\n${out}`);
  }
  const stun = /STUN on UDP [^\s]+?:(\d+)/.exec(out);
  return {
    port: Number(m[1]),
    stunPort: stun ? Number(stun[1]) : undefined,
    pid: proc.pid!,
    dataDir,
    proc,
    output: () => out,
    rss: () => {
      const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
    },
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 8000);
        await exited;
        clearTimeout(t);
      }
      tmp?.remove();
    },
  };
}

/** GET /health on a fresh connection; true on 200 within `timeoutMs`. */
export function health(port: number, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/health', agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

export interface FloodStats {
  /** Connections opened. */
  opened: number;
  /** Connections the server closed (or reset) while the flood was on. */
  closedByServer: number;
  /** Connection attempts that failed outright. */
  failed: number;
  /** Most flood connections open at once. */
  peakOpen: number;
  /** How long connections the server closed had been open, in ms, per kind. */
  lifetimes: { idle: number[]; slow: number[] };
}

export interface Flood {
  stats: FloodStats;
  stop(): Promise<FloodStats>;
}

/**
 * Keeps `idle` connections that never send a byte and `slow` ones that trickle an HTTP request
 * header line every `trickleMs` (slowloris) open against the port, reopening any the server closes.
 */
export function startFlood(port: number, opts: { idle: number; slow: number; trickleMs?: number }): Flood {
  const stats: FloodStats = { opened: 0, closedByServer: 0, failed: 0, peakOpen: 0, lifetimes: { idle: [], slow: [] } };
  const open = new Set<Socket>();
  let running = true;
  const launch = (kind: 'idle' | 'slow'): void => {
    if (!running) return;
    const s = connect(port, '127.0.0.1');
    let timer: NodeJS.Timeout | undefined;
    let connectedAt = 0;
    s.on('connect', () => {
      stats.opened++;
      connectedAt = Date.now();
      open.add(s);
      stats.peakOpen = Math.max(stats.peakOpen, open.size);
      if (kind === 'slow') {
        s.write('GET /health HTTP/1.1\r\nHost: x\r\n');
        let n = 0;
        timer = setInterval(() => s.write(`X-Slow-${n++}: y\r\n`), opts.trickleMs ?? 1000);
      }
    });
    s.on('error', () => {});
    s.on('close', () => {
      if (timer) clearInterval(timer);
      const wasOpen = open.delete(s);
      if (!running) return;
      if (wasOpen) {
        stats.closedByServer++;
        stats.lifetimes[kind].push(Date.now() - connectedAt);
      } else stats.failed++;
      // Reopen on the next turn (a real flood keeps the pressure on).
      setImmediate(() => launch(kind));
    });
  };
  for (let i = 0; i < opts.idle; i++) launch('idle');
  for (let i = 0; i < opts.slow; i++) launch('slow');
  return {
    stats,
    stop: async () => {
      running = false;
      for (const s of open) s.destroy();
      open.clear();
      await new Promise((r) => setTimeout(r, 100));
      return stats;
    },
  };
}

/** Probes /health one request after another for `durationMs`; the share that succeeded. */
export async function healthDuring(port: number, durationMs: number, gapMs = 100): Promise<{ ok: number; total: number; rate: number }> {
  const end = Date.now() + durationMs;
  let ok = 0;
  let total = 0;
  while (Date.now() < end) {
    total++;
    if (await health(port)) ok++;
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return { ok, total, rate: total ? ok / total : 0 };
}
