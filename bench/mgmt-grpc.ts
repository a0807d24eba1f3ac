// Real-gRPC management benchmark: the real netbird-server (bin/netbird-server) as its own process on
// SQLite or a throwaway PostgreSQL, and a load generator process (bench/mgmt-load.ts) that registers N
// peers with a setup key and keeps one Sync stream per peer, like real clients. Measured per backend
// and N: time to full mesh after a server restart (every peer logs in again and re-opens Sync), policy
// change fan-out (REST PUT -> each stream has a map with the new rule), one-peer-join propagation,
// server peak RSS, bytes the server sent, and failed logins; compared with issue 16's targets.
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pgUnavailableReason, startPgCluster, type PgCluster } from '../test/management/pg-cluster.js';
import type { LoadCommand, LoadReply, SyncClient, Topology } from './mgmt-load.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SERVER_BIN = join(ROOT, 'bin', 'netbird-server');
const LOAD_SCRIPT = fileURLToPath(new URL('./mgmt-load.ts', import.meta.url));

/** Issue 16's targets. */
const TARGET = { policyP99Ms: 1000, joinMs: 1000, rssMb: 1024, failedLogins: 0 };

export type TopologyKind = 'teams' | 'mesh';

export interface GrpcBenchOptions {
  peers: number[];
  /**
   * teams: a company-like account — `infra` servers everybody reaches (the policy that changes is
   * All -> infra) and teams of `teamSize` that reach each other; mesh: the default All <-> All policy,
   * where every map lists every peer, so each change sends N maps of N peers (the worst case).
   */
  topologies: TopologyKind[];
  teamSize: number;
  infraPeers: number;
  backends: Array<'sqlite' | 'postgres'>;
  /** Upper bound of every phase; default max(60 s, 60 ms x N). */
  phaseTimeoutMs?: number;
  policyRounds: number;
  /** Extra node flags for the server process (e.g. --cpu-prof --cpu-prof-dir=DIR). */
  serverNodeArgs: string[];
  streamsPerChannel: number;
  /** How the generator reads Sync streams (mgmt-load.ts SyncClient). */
  syncClient: SyncClient;
}

interface Row {
  topology: TopologyKind;
  backend: string;
  n: number;
  registerMs: number;
  registerNote: string;
  firstMeshMs: number;
  firstMeshNote: string;
  serverStartMs: number;
  restartMeshMs: number;
  restartNote: string;
  loginAttempts: number;
  failedLogins: number;
  peersWithFailedLogin: number;
  syncRejected: number;
  policy: { p50: number; p99: number; max: number; note: string; bytesPerRound: number; serverCpuMsPerRound: number; restMs: number; stallMs: number } | undefined;
  joinMs: number;
  joinLoginMs: number;
  joinNote: string;
  rssPeakMb: number;
  rssSteadyMb: number;
  bytesTotal: number;
  streamDrops: number;
  generatorCpuMs: number;
  generatorRssMb: number;
  load: [number, number];
  lastError: string;
  /** Generator errors by call and status. */
  errors: string;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function procStatusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** utime + stime of a process in ms (from /proc/<pid>/stat, clock ticks of 10 ms). */
function procCpuMs(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}

/** One netbird-server process with an RSS sampler; restartable on the same data dir / DSN. */
class ServerProcess {
  private proc: ChildProcess | undefined;
  private sampler: NodeJS.Timeout | undefined;
  peakKb = 0;
  readonly port: Promise<number>;
  private logFd: number;

  constructor(
    private readonly dataDir: string,
    private readonly dsn: string | undefined,
    private readonly nodeArgs: string[],
    readonly logPath: string,
  ) {
    this.port = freePort();
    this.logFd = openSync(logPath, 'a');
  }

  get pid(): number {
    return this.proc?.pid ?? 0;
  }

  async start(timeoutMs: number): Promise<number> {
    const port = await this.port;
    const t0 = Date.now();
    const args = [...this.nodeArgs, SERVER_BIN, '--data-dir', this.dataDir, '--listen', `127.0.0.1:${port}`, '--disable-flow'];
    if (this.dsn) args.push('--store-dsn', this.dsn);
    const p = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', this.logFd, this.logFd], env: { ...process.env, NETBIRD_STORE_DSN: '' } });
    this.proc = p;
    this.sampler = setInterval(() => {
      this.peakKb = Math.max(this.peakKb, procStatusKb(p.pid!, 'VmRSS'));
    }, 200);
    const deadline = t0 + timeoutMs;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`netbird-server exited with ${p.exitCode} during start; see ${this.logPath}`);
      try {
        const r = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
        if (r.ok) return Date.now() - t0;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`netbird-server not healthy within ${timeoutMs} ms; see ${this.logPath}`);
      await sleep(100);
    }
  }

  rssKb(): number {
    return this.proc?.pid ? procStatusKb(this.proc.pid, 'VmRSS') : 0;
  }

  cpuMs(): number {
    return this.proc?.pid ? procCpuMs(this.proc.pid) : 0;
  }

  /** SIGTERM, then SIGKILL after 20 s; folds the process's own peak (VmHWM) into peakKb. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    this.peakKb = Math.max(this.peakKb, procStatusKb(p.pid!, 'VmHWM'));
    clearInterval(this.sampler);
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
      p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    }
    this.proc = undefined;
  }

  close(): void {
    closeSync(this.logFd);
  }
}

/** The load generator child process, one command at a time, each bounded by a timeout. */
class LoadGenerator {
  private readonly child: ChildProcess;
  private pending: { resolve: (r: LoadReply) => void; reject: (e: Error) => void } | undefined;

  constructor() {
    this.child = fork(LOAD_SCRIPT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--import', 'tsx', '--max-old-space-size=4096', ...(process.env.NBMG_BENCH_LOAD_NODE_ARGS ?? '').split(' ').filter(Boolean)] });
    this.child.on('message', (r: LoadReply) => {
      const p = this.pending;
      this.pending = undefined;
      p?.resolve(r);
    });
    this.child.on('exit', (code) => {
      const p = this.pending;
      this.pending = undefined;
      p?.reject(new Error(`load generator exited (${code})`));
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  async send(c: LoadCommand, timeoutMs: number): Promise<Extract<LoadReply, { ok: true }>> {
    if (this.pending) throw new Error('load generator busy');
    const reply = await new Promise<LoadReply>((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending = undefined;
        reject(new Error(`load generator did not answer ${c.cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending = {
        resolve: (r) => {
          clearTimeout(t);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      };
      this.child.send(c);
    });
    if (!reply.ok) throw new Error(`load generator ${reply.cmd}: ${reply.error}`);
    return reply;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    try {
      this.child.send({ cmd: 'stop' } satisfies LoadCommand);
    } catch {
      // IPC already gone
    }
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }
}

class Api {
  token = '';
  constructor(private readonly base: string) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.token) headers.authorization = `Token ${this.token}`;
    const r = await fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(120_000) });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: HTTP ${r.status} ${text}`);
    return JSON.parse(text) as T;
  }
}

/**
 * Asks GET /health back to back until stopped; the longest answer is how long the server could not
 * serve anything else (logins, REST, keepalives) during the phase.
 */
function probeHealth(port: number): { stop(): Promise<number> } {
  let running = true;
  let worst = 0;
  const loop = (async () => {
    while (running) {
      const t0 = Date.now();
      try {
        await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(120_000) });
      } catch {
        // counted as slow as it was
      }
      worst = Math.max(worst, Date.now() - t0);
      await sleep(50);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return worst;
    },
  };
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

function note(r: { done?: number; of?: number; timedOut?: boolean }, what = 'peers'): string {
  return r.timedOut ? `TIMED OUT at ${r.done}/${r.of} ${what}` : '';
}

async function benchOne(topo: TopologyKind, backend: 'sqlite' | 'postgres', n: number, o: GrpcBenchOptions): Promise<Row> {
  const phaseMs = o.phaseTimeoutMs ?? Math.max(60_000, 60 * n);
  const dir = mkdtempSync(join(tmpdir(), 'nbmg-grpc-bench-'));
  let pg: PgCluster | undefined;
  let server: ServerProcess | undefined;
  let gen: LoadGenerator | undefined;
  const row: Row = {
    topology: topo, backend, n, registerMs: NaN, registerNote: '', firstMeshMs: NaN, firstMeshNote: '', serverStartMs: NaN, restartMeshMs: NaN, restartNote: '',
    loginAttempts: 0, failedLogins: 0, peersWithFailedLogin: 0, syncRejected: 0, policy: undefined, joinMs: NaN, joinLoginMs: NaN, joinNote: '',
    rssPeakMb: 0, rssSteadyMb: 0, bytesTotal: 0, streamDrops: 0, generatorCpuMs: 0, generatorRssMb: 0, load: [loadavg()[0]!, 0], lastError: '', errors: '',
  };
  const log = (m: string): void => console.log(`  [${topo} ${backend} N=${n}] ${m}`);
  try {
    if (backend === 'postgres') pg = await startPgCluster();
    server = new ServerProcess(join(dir, 'data'), pg?.dsn, o.serverNodeArgs, join(dir, 'server.log'));
    const startMs = await server.start(phaseMs);
    const port = await server.port;
    log(`server up in ${startMs} ms (pid ${server.pid}, log ${server.logPath})`);

    // Account: owner + PAT, setup keys and policies of the topology, and a marker policy whose port each
    // round changes (All <-> All in the mesh, All -> infra in teams: in both, every peer's map changes).
    const api = new Api(`http://127.0.0.1:${port}`);
    const setup = await api.call<{ personal_access_token?: string }>('POST', '/api/setup', { email: 'bench@example.com', password: 'bench-password', name: 'Bench', create_pat: true, pat_expire_in: 1 });
    if (!setup.personal_access_token) throw new Error('POST /api/setup returned no personal_access_token');
    api.token = setup.personal_access_token;
    const groups = await api.call<Array<{ id: string; name: string }>>('GET', '/api/groups');
    const all = groups.find((g) => g.name === 'All')?.id;
    if (!all) throw new Error('no "All" group in the new account');
    const newKey = async (name: string, autoGroups: string[]): Promise<string> =>
      (await api.call<{ key: string }>('POST', '/api/setup-keys', { name, type: 'reusable', expires_in: 86400, auto_groups: autoGroups, usage_limit: 0 })).key;
    let topology: Topology;
    let markerTo = all;
    let markerBidirectional = true;
    if (topo === 'mesh') {
      topology = { kind: 'mesh', setupKey: await newKey('bench', []) };
    } else {
      // Infra servers, then teams; the default All <-> All policy goes, each team reaches itself.
      const infra = Math.min(o.infraPeers, n);
      const teams = Math.max(1, Math.ceil((n - infra) / o.teamSize));
      const infraGroup = await api.call<{ id: string }>('POST', '/api/groups', { name: 'infra', peers: [] });
      const teamKeys: string[] = [];
      for (let t = 0; t < teams; t++) {
        const g = await api.call<{ id: string }>('POST', '/api/groups', { name: `team-${t}`, peers: [] });
        await api.call('POST', '/api/policies', {
          name: `team-${t}`,
          enabled: true,
          rules: [{ name: `team-${t}`, enabled: true, action: 'accept', bidirectional: true, protocol: 'all', sources: [g.id], destinations: [g.id] }],
        });
        teamKeys.push(await newKey(`team-${t}`, [g.id]));
      }
      for (const p of await api.call<Array<{ id: string; name: string }>>('GET', '/api/policies')) {
        if (p.name === 'Default') await api.call('DELETE', `/api/policies/${p.id}`);
      }
      topology = { kind: 'teams', infra, teamSize: o.teamSize, infraKey: await newKey('infra', [infraGroup.id]), teamKeys };
      markerTo = infraGroup.id;
      markerBidirectional = false;
      log(`account: ${infra} infra peers, ${teams} teams of up to ${o.teamSize}; policies: one per team, All -> infra (the one that changes)`);
    }
    const markerRule = (port: number): unknown => ({
      name: 'bench-marker',
      enabled: true,
      rules: [{ name: 'marker', enabled: true, action: 'accept', bidirectional: markerBidirectional, protocol: 'tcp', ports: [String(port)], sources: [all], destinations: [markerTo] }],
    });
    const marker = await api.call<{ id: string }>('POST', '/api/policies', markerRule(40000));

    gen = new LoadGenerator();
    const ipcMs = phaseMs + 30_000;
    await gen.send({ cmd: 'init', target: `127.0.0.1:${port}`, topology, streamsPerChannel: o.streamsPerChannel, loginDeadlineMs: 10_000, syncClient: o.syncClient }, ipcMs);

    // 1. Register N peers (set-up, bounded concurrency), then the first connect of all streams.
    const reg = await gen.send({ cmd: 'register', count: n, concurrency: 16, timeoutMs: phaseMs }, ipcMs);
    row.registerMs = reg.ms!;
    row.registerNote = note(reg) || (reg.failed ? `${reg.failed} retried` : '');
    log(`registered ${reg.done}/${n} peers in ${reg.ms} ms ${row.registerNote}`);
    const first = await gen.send({ cmd: 'connect', login: false, spreadMs: 1000, timeoutMs: phaseMs }, ipcMs);
    row.firstMeshMs = first.ms!;
    row.firstMeshNote = note(first);
    log(`first connect: ${first.done}/${first.of} streams with all the peers they should list in ${first.ms} ms ${row.firstMeshNote}`);
    await sleep(2000);

    // 2. Restart storm: server stops, comes back on the same data; every peer logs in again (10 s
    //    deadline) and re-opens Sync, all within one second.
    await gen.send({ cmd: 'pause' }, ipcMs);
    await server.stop();
    row.serverStartMs = await server.start(phaseMs);
    const cpuRestart0 = server.cpuMs();
    const storm = await gen.send({ cmd: 'connect', login: true, spreadMs: 1000, timeoutMs: phaseMs }, ipcMs);
    row.restartMeshMs = row.serverStartMs + storm.ms!;
    row.restartNote = note(storm);
    row.loginAttempts = storm.stats.loginAttempts;
    row.failedLogins = storm.stats.loginFailures;
    row.peersWithFailedLogin = storm.stats.peersWithFailedLogin;
    row.syncRejected = storm.stats.syncRejected;
    log(
      `restart: server healthy in ${row.serverStartMs} ms, then ${storm.done}/${storm.of} meshed in ${storm.ms} ms (server CPU ${server.cpuMs() - cpuRestart0} ms); ` +
        `logins ${storm.stats.loginAttempts} attempts, ${storm.stats.loginFailures} failed (${storm.stats.peersWithFailedLogin} peers), ${storm.stats.syncRejected} Sync rejected ${row.restartNote}`,
    );
    await sleep(2000);
    row.rssSteadyMb = server.rssKb() / 1024;

    // 3. Policy change fan-out: PUT the marker policy with a new port; each stream's latency is from
    //    just before the PUT to the first map carrying the port.
    const lat: number[] = [];
    const notes: string[] = [];
    let bytes = 0;
    let cpu = 0;
    let rest = 0;
    let worstStall = 0;
    for (let round = 1; round <= o.policyRounds; round++) {
      const portNo = 40000 + round;
      await gen.send({ cmd: 'watchPort', port: portNo }, ipcMs);
      const { bytes: before, cpuMs: genCpu0 } = (await gen.send({ cmd: 'stats' }, ipcMs)).stats;
      const cpu0 = server.cpuMs();
      const probe = probeHealth(port);
      const t0 = Date.now();
      await api.call('PUT', `/api/policies/${marker.id}`, markerRule(portNo));
      rest += Date.now() - t0;
      const r = await gen.send({ cmd: 'awaitPort', port: portNo, t0, timeoutMs: phaseMs }, ipcMs);
      cpu += server.cpuMs() - cpu0;
      const stall = await probe.stop();
      worstStall = Math.max(worstStall, stall);
      bytes += r.stats.bytes - before;
      lat.push(...r.latencies!);
      if (r.timedOut) notes.push(`round ${round} ${note(r, 'streams')}`);
      const s = [...r.latencies!].sort((a, b) => a - b);
      log(`policy round ${round}: ${r.done}/${r.of} streams, first ${s[0]} ms, p50 ${percentile(s, 0.5)} ms, p99 ${percentile(s, 0.99)} ms, max ${s.at(-1)} ms, ${((r.stats.bytes - before) / 1048576).toFixed(1)} MiB, server CPU ${server.cpuMs() - cpu0} ms, generator CPU ${r.stats.cpuMs - genCpu0} ms, longest /health answer ${stall} ms ${note(r, 'streams')}`);
      await sleep(2000);
    }
    lat.sort((a, b) => a - b);
    row.policy = { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), max: lat.at(-1) ?? NaN, note: notes.join('; '), bytesPerRound: bytes / o.policyRounds, serverCpuMsPerRound: cpu / o.policyRounds, restMs: rest / o.policyRounds, stallMs: worstStall };

    // 4. One new peer joins: time from its Login until every other stream lists it.
    const j = await gen.send({ cmd: 'join', timeoutMs: phaseMs }, ipcMs);
    row.joinMs = j.ms!;
    row.joinNote = [note(j, 'streams'), j.failed ? `${j.failed} failed login(s)` : ''].filter(Boolean).join(', ');
    row.joinLoginMs = j.loginMs ?? NaN;
    log(`join: its Login took ${j.loginMs} ms; ${j.done}/${j.of} streams saw the new peer in ${j.ms} ms ${row.joinNote}`);

    const st = (await gen.send({ cmd: 'stats' }, ipcMs)).stats;
    // Logins of the restart storm and of the joining peer (counters reset when the storm began).
    row.loginAttempts = st.loginAttempts;
    row.failedLogins = st.loginFailures;
    row.bytesTotal = st.bytes;
    row.streamDrops = st.streamDrops;
    row.generatorCpuMs = st.cpuMs;
    row.generatorRssMb = st.rssMb;
    row.lastError = st.lastError;
    row.errors = Object.entries(st.errors).map(([k, n]) => `${k} x${n}`).join(', ');
    if (st.scanMismatches > 0) row.lastError = `${st.scanMismatches} scanned maps disagreed with a full decode (${st.lastError})`;
  } catch (err) {
    row.lastError = (err as Error).message;
    log(`aborted: ${(err as Error).message}`);
  } finally {
    if (gen) await gen.stop().catch(() => {});
    if (server) {
      await server.stop().catch(() => {});
      row.rssPeakMb = server.peakKb / 1024;
      server.close();
    }
    if (pg) await pg.stop().catch(() => {});
    row.load[1] = loadavg()[0]!;
    if (o.serverNodeArgs.length > 0) log(`server files kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  return row;
}

const fmtMs = (ms: number): string => (Number.isNaN(ms) ? '-' : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
const fmtMb = (b: number): string => (b >= 1024 * 1048576 ? `${(b / 1073741824).toFixed(2)} GiB` : `${(b / 1048576).toFixed(1)} MiB`);
const ratio = (x: number, target: number): string => (Number.isNaN(x) ? '-' : `${(x / target).toFixed(2)}x`);

function printTable(rows: Row[]): void {
  const head = ['topology', 'backend', 'N', 'restart->mesh', 'failed logins', 'policy p50', 'policy p99', 'policy max', 'join', 'RSS peak', 'sent total', 'sent/policy', 'drops', 'load avg'];
  const body = rows.map((r) => [
    r.topology,
    r.backend,
    String(r.n),
    fmtMs(r.restartMeshMs) + (r.restartNote ? ' (timeout)' : ''),
    `${r.failedLogins}/${r.loginAttempts}`,
    fmtMs(r.policy?.p50 ?? NaN),
    fmtMs(r.policy?.p99 ?? NaN) + (r.policy?.note ? ' (timeout)' : ''),
    fmtMs(r.policy?.max ?? NaN),
    fmtMs(r.joinMs) + (r.joinNote ? ' (timeout)' : ''),
    `${r.rssPeakMb.toFixed(0)} MiB`,
    fmtMb(r.bytesTotal),
    fmtMb(r.policy?.bytesPerRound ?? NaN),
    String(r.streamDrops),
    `${r.load[0].toFixed(1)}->${r.load[1].toFixed(1)}`,
  ]);
  const ratios = rows.map((r) => [
    r.topology,
    r.backend,
    String(r.n),
    '',
    r.failedLogins === 0 ? 'met' : `${r.failedLogins} (target 0)`,
    '',
    ratio(r.policy?.p99 ?? NaN, TARGET.policyP99Ms),
    '',
    ratio(r.joinMs, TARGET.joinMs),
    ratio(r.rssPeakMb, TARGET.rssMb),
    '',
    '',
    '',
    '',
  ]);
  const all = [head, ...body];
  const w = head.map((_, i) => Math.max(...[...all, ...ratios].map((l) => l[i]!.length)));
  const line = (l: string[]): string => l.map((c, i) => c.padEnd(w[i]!)).join('  ');
  console.log('\n' + line(head));
  for (const l of body) console.log(line(l));
  console.log('\nratio to issue 16 targets (policy p99 < 1 s, join < 1 s, RSS < 1 GiB, 0 failed logins; < 1.00x = met):');
  console.log(line(head));
  for (const l of ratios) console.log(line(l));
  console.log('\ndetails:');
  for (const r of rows) {
    console.log(
      `  ${r.topology} ${r.backend} N=${r.n}: register ${fmtMs(r.registerMs)} ${r.registerNote}; first connect ${fmtMs(r.firstMeshMs)} ${r.firstMeshNote}; ` +
        `restart: server healthy ${fmtMs(r.serverStartMs)}, mesh ${fmtMs(r.restartMeshMs)} ${r.restartNote}, ${r.peersWithFailedLogin} peers had a failed login, ${r.syncRejected} Sync rejected; ` +
        `join: Login ${fmtMs(r.joinLoginMs)} ${r.joinNote}; policy: REST PUT ${fmtMs(r.policy?.restMs ?? NaN)}, server CPU ${fmtMs(r.policy?.serverCpuMsPerRound ?? NaN)}/change, longest GET /health answer ${fmtMs(r.policy?.stallMs ?? NaN)} ${r.policy?.note ?? ''}; ` +
        `RSS after restart ${r.rssSteadyMb.toFixed(0)} MiB; generator CPU ${fmtMs(r.generatorCpuMs)}, RSS ${r.generatorRssMb} MiB` +
        (r.errors ? `; errors: ${r.errors}` : '') +
        (r.lastError ? `; last error: ${r.lastError}` : ''),
    );
  }
}

export async function benchManagementGrpc(o: GrpcBenchOptions): Promise<void> {
  const backends = o.backends.filter((b) => {
    if (b !== 'postgres') return true;
    const why = pgUnavailableReason();
    if (why) console.log(`PostgreSQL skipped: ${why}`);
    return !why;
  });
  console.log(
    `real gRPC: netbird-server process + load generator process; topologies ${o.topologies.join(', ')} (teams of ${o.teamSize}, ${o.infraPeers} infra peers); peers ${o.peers.join(', ')}; backends ${backends.join(', ')}; ` +
      `${o.policyRounds} policy rounds; ${o.streamsPerChannel} Sync streams per HTTP/2 connection, read by the generator's ${o.syncClient} client; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`,
  );
  const rows: Row[] = [];
  for (const topo of o.topologies) for (const n of o.peers) for (const b of backends) rows.push(await benchOne(topo, b, n, o));
  printTable(rows);
}
