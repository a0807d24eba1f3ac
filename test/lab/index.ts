/**
 * Network-namespace labs for tests and benchmarks (Linux, root).
 *
 *   const lab = await Lab.create({ prefix: 'nbtn' });   // namespaces "nbtn-<random>-<name>"
 *   t.after(() => lab.cleanup());                        // always: kills processes, deletes namespaces
 *   const a = await lab.ns('a'), b = await lab.ns('b');
 *   await lab.link(a, 'eth0', ['10.1.0.1/24'], b, 'eth0', ['10.1.0.2/24']);
 *   const p = a.spawn('iperf3', ['-s']);                 // runs via `ip netns exec`, killed by PID at cleanup
 *   await b.exec('ping', ['-c1', '10.1.0.1']);
 *
 * NAT labs: `lab.internet()` makes a bridge "switch" namespace; `lab.natHost(...)` puts a host behind a
 * NAT router (nftables masquerade = endpoint-independent mapping, "symmetric" = masquerade fully-random,
 * both dropping unsolicited inbound on the WAN), or directly on the internet.
 *
 * Everything made is recorded and removed by cleanup(), also (synchronously) at process exit if a
 * test forgot. `sweepStale(prefix)` removes namespaces left by a crashed run.
 */
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, createWriteStream, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ExecOptions {
  /** Reject when the exit code is not 0 (default true). */
  check?: boolean;
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs a command (no shell) and collects its output. */
export function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args as string[],
      { encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        if (code !== 0 && opts.check !== false) {
          reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${stderr.trim() || (err as Error).message}`));
        } else resolve({ stdout, stderr, code });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** A process started inside a namespace. */
export class LabProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or null when killed by a signal). */
  readonly exited: Promise<number | null>;
  private out = '';
  private done = false;

  constructor(child: ChildProcess, logFile?: string) {
    if (child.pid === undefined) throw new Error('spawn failed');
    this.pid = child.pid;
    this.child = child;
    let log: WriteStream | undefined;
    if (logFile) log = createWriteStream(logFile);
    const take = (d: Buffer): void => {
      // Keep the last 256 KiB for error messages.
      this.out = (this.out + d.toString('utf8')).slice(-262144);
      log?.write(d);
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    this.exited = new Promise((resolve) => {
      child.on('exit', (code) => {
        this.done = true;
        log?.end();
        resolve(code);
      });
      child.on('error', () => {
        this.done = true;
        resolve(-1);
      });
    });
  }

  get running(): boolean {
    return !this.done;
  }

  /** stdout + stderr so far (tail). */
  output(): string {
    return this.out;
  }

  /** Waits until `re` appears in the output (or throws after timeoutMs, with the output). */
  async waitFor(re: RegExp, timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!re.test(this.out)) {
      if (!this.running) throw new Error(`process ${this.pid} exited before printing ${re}: ${this.out}`);
      if (Date.now() > end) throw new Error(`timeout waiting for ${re} from process ${this.pid}: ${this.out}`);
      await sleep(50);
    }
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves when it is gone. */
  async kill(graceMs = 2000): Promise<void> {
    if (!this.running) return;
    try {
      process.kill(this.pid, 'SIGTERM');
    } catch {
      return;
    }
    const t = setTimeout(() => {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** Also write output to this file. */
  logFile?: string;
  cwd?: string;
}

/** A network namespace of a lab. */
export class Netns {
  constructor(readonly lab: Lab, readonly name: string) {}

  /** Runs a command inside the namespace and waits for it. */
  exec(cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  /** `ip -n <ns> args...` */
  async ip(...args: string[]): Promise<string> {
    return (await run('ip', ['-n', this.name, ...args])).stdout;
  }

  /** Sets a sysctl inside the namespace (writes /proc/sys directly: no procps needed). */
  async sysctl(key: string, value: string | number): Promise<void> {
    const path = `/proc/sys/${key.replace(/\./g, '/')}`;
    await this.exec('sh', ['-c', 'echo "$1" > "$2"', 'sh', String(value), path]);
  }

  async addr(dev: string, cidr: string): Promise<void> {
    await this.ip(...(cidr.includes(':') ? ['-6', 'addr', 'add', cidr, 'dev', dev, 'nodad'] : ['addr', 'add', cidr, 'dev', dev]));
  }

  async delAddr(dev: string, cidr: string): Promise<void> {
    await this.ip('addr', 'del', cidr, 'dev', dev);
  }

  /** Adds a route: `route('default', { via: '10.0.0.1' })` or `route('10.9.0.0/16', { dev: 'wg0' })`. */
  async route(dst: string, opts: { via?: string; dev?: string }): Promise<void> {
    const args = [dst.includes(':') || opts.via?.includes(':') ? '-6' : '-4', 'route', 'replace', dst];
    if (opts.via) args.push('via', opts.via);
    if (opts.dev) args.push('dev', opts.dev);
    await this.ip(...args);
  }

  /** Applies an nftables ruleset (nft -f -) inside the namespace. */
  async nft(ruleset: string): Promise<void> {
    await this.exec('nft', ['-f', '-'], { input: ruleset });
  }

  /**
   * Starts a long-running process inside the namespace (`ip netns exec` execs the command, so
   * the returned PID is the command's). The lab kills it by PID at cleanup.
   */
  spawn(cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): LabProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const p = new LabProcess(child, opts.logFile);
    this.lab.track(p);
    return p;
  }

  /** Waits until something listens on `port` here (`ss -ltn`/`-lun`); false after timeoutMs. */
  async waitListening(port: number, proto: 'tcp' | 'udp' = 'tcp', timeoutMs = 5000): Promise<boolean> {
    const re = new RegExp(`:${port}\\s`);
    return waitUntil(async () => re.test((await this.exec('ss', [proto === 'tcp' ? '-ltnH' : '-lunH'], { check: false })).stdout), timeoutMs, 50);
  }

  /**
   * A JSON REST call made with curl from inside this namespace (the test process itself cannot reach
   * lab addresses). Throws with the status and body on a transport error or a status >= 400.
   */
  async restJson<T>(method: string, url: string, opts: { body?: unknown; token?: string; insecure?: boolean } = {}): Promise<T> {
    const args = ['-sS', '-X', method, '-w', '\n%{http_code}', url];
    if (opts.insecure) args.push('-k');
    if (opts.token) args.push('-H', `Authorization: Token ${opts.token}`);
    if (opts.body !== undefined) args.push('-H', 'Content-Type: application/json', '-d', JSON.stringify(opts.body));
    const r = await this.exec('curl', args, { check: false });
    const nl = r.stdout.lastIndexOf('\n');
    const status = Number(r.stdout.slice(nl + 1));
    const text = r.stdout.slice(0, nl);
    if (r.code !== 0 || status >= 400) throw new Error(`${method} ${url} -> ${status}: ${text} ${r.stderr}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Polls `ping -c1` from here to `addr` until it answers (true) or timeoutMs passes (false). */
  async waitPing(addr: string, timeoutMs = 10_000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const r = await this.exec('ping', ['-c1', '-W1', '-n', addr], { check: false });
      if (r.code === 0) return true;
      await sleep(100);
    }
    return false;
  }
}

export type NatType = 'none' | 'cone' | 'symmetric';

export interface NatHost {
  host: Netns;
  /** Router namespace (undefined for 'none'). */
  router: Netns | undefined;
  /** The host's own address (LAN address behind a NAT). */
  ip: string;
  /** The address the internet sees: router WAN or the host itself. */
  publicIp: string;
}

let exitHookInstalled = false;
const liveLabs = new Set<Lab>();

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.cleanupSync();
  });
}

export interface LabOptions {
  /** Namespace names start with "<prefix>-<random>-" (default "lab"). Use a prefix unique to your tests. */
  prefix?: string;
  /** First remove "<prefix>-*" namespaces older than 10 minutes, left by a crashed run (default true). */
  sweep?: boolean;
}

export class Lab {
  /** "<prefix>-<random>": every namespace of this lab is named "<id>-<name>". */
  readonly id: string;
  readonly prefix: string;
  private readonly namespaces: Netns[] = [];
  private readonly procs: LabProcess[] = [];
  private readonly dirs: string[] = [];
  private pub: { ns: Netns; next: number; routers: number } | undefined;

  private constructor(prefix: string) {
    this.prefix = prefix;
    this.id = `${prefix}-${randomBytes(3).toString('hex')}`;
  }

  static async create(opts: LabOptions = {}): Promise<Lab> {
    const lab = new Lab(opts.prefix ?? 'lab');
    if (opts.sweep !== false) await sweepStale(lab.prefix);
    liveLabs.add(lab);
    installExitHook();
    return lab;
  }

  /** Creates namespace "<id>-<name>" with loopback up. */
  async ns(name: string): Promise<Netns> {
    const full = `${this.id}-${name}`;
    await run('ip', ['netns', 'add', full]);
    const ns = new Netns(this, full);
    this.namespaces.push(ns);
    await ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  /** A temp directory removed at cleanup. */
  tmpdir(): string {
    const d = mkdtempSync(join(tmpdir(), `${this.id}-`));
    this.dirs.push(d);
    return d;
  }

  /** @internal registers a process for cleanup. */
  track(p: LabProcess): void {
    this.procs.push(p);
  }

  /** A veth pair between two namespaces, with addresses, both ends up. */
  async link(a: Netns, aIf: string, aAddrs: readonly string[], b: Netns, bIf: string, bAddrs: readonly string[]): Promise<void> {
    await run('ip', ['link', 'add', aIf, 'netns', a.name, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.name]);
    for (const x of aAddrs) await a.addr(aIf, x);
    for (const x of bAddrs) await b.addr(bIf, x);
    await a.ip('link', 'set', aIf, 'up');
    await b.ip('link', 'set', bIf, 'up');
  }

  /**
   * Makes a router namespace NAT everything leaving `wan`:
   * 'cone' = masquerade (keeps the source port when free: endpoint-independent mapping),
   * 'symmetric' = masquerade fully-random (a new port per destination).
   * Unsolicited inbound on the WAN is dropped (like a real NAT; also stops early packets from
   * making Linux pick another public port).
   */
  async nat(router: Netns, type: 'cone' | 'symmetric', wan = 'wan'): Promise<void> {
    await router.sysctl('net.ipv4.ip_forward', 1);
    const how = type === 'cone' ? 'masquerade' : 'masquerade fully-random';
    await router.nft(`table ip lab {
  chain postrouting { type nat hook postrouting priority srcnat; policy accept; oifname "${wan}" ${how}; }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "${wan}" ct state established,related accept
    iifname "${wan}" icmp type echo-request accept
    iifname "${wan}" drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "${wan}" ct state established,related accept
    iifname "${wan}" drop
  }
}
`);
  }

  /**
   * The "internet": namespace "<id>-pub" with bridge br0 (10.77.0.1/24, also the default router).
   * Created on first use by natHost(); call directly to attach servers: returns a function that
   * plugs a namespace in with the given address.
   */
  async internet(): Promise<{ ns: Netns; attach(ns: Netns, ip: string, ifname?: string): Promise<void> }> {
    if (!this.pub) {
      const ns = await this.ns('pub');
      await ns.ip('link', 'add', 'br0', 'type', 'bridge');
      await ns.addr('br0', '10.77.0.1/24');
      await ns.ip('link', 'set', 'br0', 'up');
      await ns.sysctl('net.ipv4.ip_forward', 1);
      this.pub = { ns, next: 0, routers: 0 };
    }
    const pub = this.pub;
    const attach = async (x: Netns, ip: string, ifname = 'eth0'): Promise<void> => {
      const port = `p${pub.next++}`;
      await run('ip', ['link', 'add', ifname, 'netns', x.name, 'type', 'veth', 'peer', 'name', port, 'netns', pub.ns.name]);
      await pub.ns.ip('link', 'set', port, 'master', 'br0', 'up');
      await x.addr(ifname, `${ip}/24`);
      await x.ip('link', 'set', ifname, 'up');
      await x.route('default', { via: '10.77.0.1' });
    };
    return { ns: pub.ns, attach };
  }

  /**
   * A host on the 10.77.0.0/24 internet: directly (type 'none', address 10.77.0.<10+n>) or behind
   * its own NAT router (WAN 10.77.0.<100+k>, LAN 192.168.<k>.0/24, host 192.168.<k>.2).
   */
  async natHost(name: string, type: NatType): Promise<NatHost> {
    const inet = await this.internet();
    const pub = this.pub!;
    const host = await this.ns(name);
    if (type === 'none') {
      const ip = `10.77.0.${10 + pub.next}`;
      await inet.attach(host, ip);
      return { host, router: undefined, ip, publicIp: ip };
    }
    const k = ++pub.routers;
    const router = await this.ns(`${name}-nat`);
    const wanIp = `10.77.0.${100 + k}`;
    await inet.attach(router, wanIp, 'wan');
    await this.link(router, 'lan', [`192.168.${k}.1/24`], host, 'eth0', [`192.168.${k}.2/24`]);
    await host.route('default', { via: `192.168.${k}.1` });
    await this.nat(router, type);
    return { host, router, ip: `192.168.${k}.2`, publicIp: wanIp };
  }

  /** Kills every process started here (by PID), deletes every namespace and temp dir. Never throws. */
  async cleanup(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.kill(1000).catch(() => undefined)));
    for (const ns of [...this.namespaces].reverse()) await removeNamespace(ns.name);
    this.namespaces.length = 0;
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
    this.dirs.length = 0;
    liveLabs.delete(this);
  }

  /** Synchronous last-resort cleanup (process exit hook). */
  cleanupSync(): void {
    for (const p of this.procs) {
      if (p.running) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    for (const ns of this.namespaces) {
      try {
        const pids = execFileSync('ip', ['netns', 'pids', ns.name], { encoding: 'utf8' }).split(/\s+/).filter(Boolean);
        for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* ignore */
      }
      try {
        execFileSync('ip', ['netns', 'del', ns.name], { stdio: 'ignore' });
      } catch {
        /* ignore */
      }
    }
    this.namespaces.length = 0;
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}

/** Kills whatever still runs in a namespace (by PID) and deletes it. */
async function removeNamespace(name: string): Promise<void> {
  const pids = (await run('ip', ['netns', 'pids', name], { check: false })).stdout.split(/\s+/).filter(Boolean).map(Number);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  if (pids.length) await sleep(100);
  await run('ip', ['netns', 'del', name], { check: false });
}

/**
 * Removes namespaces named "<prefix>-..." left behind by a crashed run, if older than olderThanMs
 * (default 10 minutes, so a lab of a run in progress is left alone). Returns the names removed.
 */
export async function sweepStale(prefix: string, olderThanMs = 10 * 60_000): Promise<string[]> {
  const list = (await run('ip', ['netns', 'list'], { check: false })).stdout;
  const removed: string[] = [];
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    if (!name || !name.startsWith(`${prefix}-`)) continue;
    let age = Infinity;
    try {
      age = Date.now() - statSync(`/run/netns/${name}`).mtimeMs;
    } catch {
      /* no file: treat as stale */
    }
    if (age < olderThanMs) continue;
    await removeNamespace(name);
    removed.push(name);
  }
  return removed;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls fn until it returns true (resolves true) or timeoutMs passes (false). */
export async function waitUntil(fn: () => boolean | Promise<boolean>, timeoutMs = 10_000, stepMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await sleep(stepMs);
  }
}
