// The official NetBird client as a lab member: its daemon runs inside a namespace with a private /etc
// (an overlay, so the resolv.conf it writes and its backups stay its own) and its own state directory.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { run, waitUntil, type LabProcess, type NatHost, type ExecResult } from '../test/lab/index.js';
import type { StatusJson } from '../src/client/status.js';

/** What scenarios need from any client, ours or official. */
export interface LabClient {
  readonly name: string;
  readonly kind: 'ours' | 'official';
  readonly nat: NatHost;
  status(): Promise<StatusJson>;
  up(args: { managementUrl: string; setupKey?: string; extra?: string[] }): Promise<string>;
  down(): Promise<void>;
  /** Runs a command in the client's network (and, for the official client, mount) namespace. */
  exec(cmd: string, args: string[], opts?: { check?: boolean; timeoutMs?: number }): Promise<ExecResult>;
  logs(): string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export class OfficialClient implements LabClient {
  readonly kind = 'official' as const;
  daemon!: LabProcess;
  private readonly state: string;
  private readonly sock: string;
  private readonly upper: string;
  private readonly work: string;

  constructor(
    readonly name: string,
    readonly nat: NatHost,
    private readonly binary: string,
    dir: string,
    private readonly extraEnv: NodeJS.ProcessEnv = {},
  ) {
    this.state = join(dir, 'state');
    this.sock = join(dir, 'daemon.sock');
    this.upper = join(dir, 'etc-upper');
    this.work = join(dir, 'etc-work');
    for (const d of [this.state, this.upper, this.work]) mkdirSync(d, { recursive: true });
    // `ip netns exec` would bind its own resolv.conf, but the overlay below hides that mount: give the
    // overlay the file instead.
    writeFileSync(join(this.upper, 'resolv.conf'), 'nameserver 127.0.0.1\n');
  }

  private get env(): NodeJS.ProcessEnv {
    return { ...process.env, ...this.extraEnv, NB_STATE_DIR: this.state };
  }

  async start(): Promise<void> {
    const script = [
      `mount -t overlay overlay -o lowerdir=/etc,upperdir=${this.upper},workdir=${this.work} /etc`,
      `exec ${this.binary} service run --daemon-addr unix://${this.sock} --log-file console --log-level ${process.env['NB_INTEROP_LOG_LEVEL'] ?? 'debug'}`,
    ].join(' && ');
    this.daemon = this.nat.host.spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { env: this.env });
    const ok = await waitUntil(() => existsSync(this.sock) || !this.daemon.running, 30_000, 100);
    if (!ok || !this.daemon.running) throw new Error(`official daemon ${this.name} did not start:\n${this.daemon.output()}`);
  }

  async stop(): Promise<void> {
    await this.daemon.kill(5000);
  }

  private async cli(args: string[], timeoutMs = 120_000): Promise<string> {
    const r = await run(this.binary, [...args, '--daemon-addr', `unix://${this.sock}`], { check: false, env: this.env, timeoutMs });
    if (r.code !== 0) throw new Error(`official netbird ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout + r.stderr;
  }

  async up(a: { managementUrl: string; setupKey?: string; extra?: string[] }): Promise<string> {
    const args = ['up', '--management-url', a.managementUrl, '--hostname', this.name, '--no-browser', ...(a.extra ?? [])];
    if (a.setupKey) args.push('--setup-key', a.setupKey);
    return this.cli(args);
  }

  /**
   * `netbird up` without a setup key: resolves `url` with the SSO login URL the CLI prints, and `done`
   * when the CLI exits (after the user logged in, or on error).
   */
  upSso(managementUrl: string): { url: Promise<string>; done: Promise<{ code: number | null; output: string }> } {
    const child = spawn(this.binary, ['up', '--management-url', managementUrl, '--hostname', this.name, '--no-browser', '--daemon-addr', `unix://${this.sock}`], {
      env: this.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let found: ((u: string) => void) | undefined;
    const url = new Promise<string>((resolve) => (found = resolve));
    const take = (d: Buffer): void => {
      out += d.toString();
      const m = /(https?:\/\/\S+user_code=\S+)/.exec(out);
      if (m) found?.(m[1]!);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const done = new Promise<{ code: number | null; output: string }>((resolve) => child.on('exit', (code) => resolve({ code, output: out })));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    void done.then(() => clearTimeout(timer));
    return { url, done };
  }

  async down(): Promise<void> {
    await this.cli(['down']);
  }

  async status(): Promise<StatusJson> {
    return JSON.parse(await this.cli(['status', '--json'], 20_000)) as StatusJson;
  }

  async statusText(): Promise<string> {
    return this.cli(['status', '-d'], 20_000);
  }

  /** The /etc/resolv.conf the official client wrote. */
  resolvConf(): string {
    return readFileSync(join(this.upper, 'resolv.conf'), 'utf8');
  }

  async exec(cmd: string, args: string[], opts: { check?: boolean; timeoutMs?: number } = {}): Promise<ExecResult> {
    // nsenter into the daemon's mount namespace too, so name lookups see the resolv.conf it wrote.
    return run('nsenter', ['-t', String(this.daemon.pid), '-m', '-n', cmd, ...args], opts);
  }

  logs(): string {
    return this.daemon.output();
  }
}
