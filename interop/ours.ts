// Our netbird daemon as a lab member (the same way test/client/mesh-lab.ts runs it).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, type ExecResult, type LabProcess, type NatHost } from '../test/lab/index.js';
import type { StatusJson } from '../src/client/status.js';
import type { LabClient } from './official.js';

const NODE = process.execPath;
const CLI = ['--import', 'tsx', 'test/client/netbird-cli.ts'];

export class OurClient implements LabClient {
  readonly kind = 'ours' as const;
  daemon!: LabProcess;
  private readonly sock: string;
  private readonly config: string;
  readonly resolvConfPath: string;

  constructor(
    readonly name: string,
    readonly nat: NatHost,
    dir: string,
    private readonly extraEnv: NodeJS.ProcessEnv = {},
  ) {
    this.sock = join(dir, 'netbird.sock');
    this.config = join(dir, 'config.json');
    // `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf.
    const etc = `/etc/netns/${nat.host.name}`;
    mkdirSync(etc, { recursive: true });
    this.resolvConfPath = `${etc}/resolv.conf`;
    writeFileSync(this.resolvConfPath, 'nameserver 127.0.0.1\n');
  }

  /** Pins this client's WireGuard key (before start): scenarios use it to choose which side controls ICE. */
  setPrivateKey(privateKey: string, managementUrl: string): void {
    writeFileSync(this.config, JSON.stringify({ privateKey, managementUrl, interfaceName: 'wt0', wireguardPort: 51820 }));
  }

  async start(): Promise<void> {
    this.daemon = this.nat.host.spawn(NODE, [...CLI, 'service', 'run', '--config', this.config, '--daemon-addr', `unix://${this.sock}`], {
      env: { ...process.env, ...this.extraEnv, NB_RESOLV_CONF: this.resolvConfPath },
    });
    await this.daemon.waitFor(/listening on unix/, 30_000);
  }

  async stop(): Promise<void> {
    await this.daemon.kill(5000);
  }

  private async cli(args: string[]): Promise<string> {
    const r = await run(NODE, [...CLI, ...args, '--daemon-addr', `unix://${this.sock}`], { check: false, timeoutMs: 120_000, env: { ...process.env, ...this.extraEnv } });
    if (r.code !== 0) throw new Error(`netbird ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  async up(a: { managementUrl: string; setupKey?: string; extra?: string[] }): Promise<string> {
    const args = ['up', '--management-url', a.managementUrl, '--hostname', this.name, ...(a.extra ?? [])];
    if (a.setupKey) args.push('--setup-key', a.setupKey);
    return this.cli(args);
  }

  async down(): Promise<void> {
    await this.cli(['down']);
  }

  async status(): Promise<StatusJson> {
    return JSON.parse(await this.cli(['status', '--json'])) as StatusJson;
  }

  exec(cmd: string, args: string[], opts: { check?: boolean; timeoutMs?: number } = {}): Promise<ExecResult> {
    return this.nat.host.exec(cmd, args, opts);
  }

  logs(): string {
    return this.daemon.output();
  }
}
