// A lab of netbird-server plus NATed peers running the real daemon, for client end-to-end tests.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, run, waitUntil, type LabProcess, type NatHost, type NatType } from '../lab/index.js';
import type { StatusJson } from '../../src/client/status.js';

export const NODE = process.execPath;
export const CLI = ['--import', 'tsx', 'test/client/netbird-cli.ts'];
export const SERVER = ['--import', 'tsx', 'test/server/run-cli.ts'];

export interface Member {
  name: string;
  nat: NatHost;
  dir: string;
  sock: string;
  config: string;
  daemon: LabProcess;
}

export class MeshLab {
  server!: LabProcess;
  srv!: NatHost;
  dataDir!: string;
  setupKey = '';
  readonly members: Member[] = [];
  private readonly etcDirs: string[] = [];

  private constructor(
    readonly lab: Lab,
    private readonly serverArgs: string[],
  ) {}

  static async create(prefix: string, serverArgs: string[] = []): Promise<MeshLab> {
    const m = new MeshLab(await Lab.create({ prefix }), serverArgs);
    m.srv = await m.lab.natHost('srv', 'none');
    m.dataDir = m.lab.tmpdir();
    const keyOut = await run(NODE, [...SERVER, 'setup-keys', 'create', '--reusable', '--data-dir', m.dataDir, '--json']);
    m.setupKey = (JSON.parse(keyOut.stdout) as { key: string }).key;
    await m.startServer();
    return m;
  }

  get managementUrl(): string {
    return `http://${this.srv.ip}:33073`;
  }

  async startServer(): Promise<void> {
    this.server = this.srv.host.spawn(NODE, [...SERVER, '--data-dir', this.dataDir, '--listen', '0.0.0.0:33073', '--exposed-address', this.srv.ip, ...this.serverArgs]);
    await this.server.waitFor(/listening on/, 30_000);
  }

  async addPeer(name: string, nat: NatType = 'cone'): Promise<Member> {
    const natHost = await this.lab.natHost(name, nat);
    const dir = this.lab.tmpdir();
    // `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf: each peer gets its own,
    // and the daemon edits that file (NB_RESOLV_CONF) instead of the host's.
    const etc = `/etc/netns/${natHost.host.name}`;
    mkdirSync(etc, { recursive: true });
    writeFileSync(`${etc}/resolv.conf`, 'nameserver 127.0.0.1\n');
    this.etcDirs.push(etc);
    const m: Member = { name, nat: natHost, dir, sock: join(dir, 'netbird.sock'), config: join(dir, 'config.json'), daemon: undefined as unknown as LabProcess };
    await this.startDaemon(m);
    this.members.push(m);
    return m;
  }

  async startDaemon(m: Member): Promise<void> {
    m.daemon = m.nat.host.spawn(NODE, [...CLI, 'service', 'run', '--config', m.config, '--daemon-addr', `unix://${m.sock}`], {
      env: { ...process.env, NB_RESOLV_CONF: `/etc/netns/${m.nat.host.name}/resolv.conf` },
    });
    await m.daemon.waitFor(/listening on unix/, 30_000);
  }

  async cli(m: Member, args: string[]): Promise<string> {
    const r = await run(NODE, [...CLI, ...args, '--daemon-addr', `unix://${m.sock}`], { check: false });
    if (r.code !== 0) throw new Error(`netbird ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  async status(m: Member): Promise<StatusJson> {
    return JSON.parse(await this.cli(m, ['status', '--json'])) as StatusJson;
  }

  async up(m: Member): Promise<void> {
    await this.cli(m, ['up', '--setup-key', this.setupKey, '--management-url', this.managementUrl, '--hostname', m.name]);
  }

  /** Waits until every member sees `expected` connected peers; returns whether it happened. */
  async waitMesh(expected: number, timeoutMs: number): Promise<boolean> {
    return waitUntil(async () => {
      try {
        const sts = await Promise.all(this.members.map((m) => this.status(m)));
        return sts.every((s) => s.peers.connected === expected);
      } catch {
        return false;
      }
    }, timeoutMs, 300);
  }

  /** Overlay IP (no prefix) of a member. */
  async ip(m: Member): Promise<string> {
    return (await this.status(m)).netbirdIp.split('/')[0]!;
  }

  /** Calls the REST API from inside the server's namespace (the test process cannot reach the lab network). */
  async api<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
    return this.srv.host.restJson<T>(method, `http://127.0.0.1:33073${path}`, { body, token });
  }


  /** Creates the owner with POST /api/setup and returns the PAT. */
  async adminToken(): Promise<string> {
    const r = await this.api<{ personal_access_token: string }>('POST', '/api/setup', {
      email: 'admin@example.com', password: 'lab-password-123', name: 'Admin', create_pat: true,
    });
    return r.personal_access_token;
  }

  logs(): string {
    return [`--- server\n${this.server.output()}`, ...this.members.map((m) => `--- ${m.name}\n${m.daemon.output()}`)].join('\n');
  }

  async cleanup(): Promise<void> {
    await this.lab.cleanup();
    for (const d of this.etcDirs) rmSync(d, { recursive: true, force: true });
  }
}
