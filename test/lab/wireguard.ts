/**
 * wireguard-go (Debian package `wireguard-go`, configured with `wg` from `wireguard-tools`) as an
 * independent WireGuard peer inside a lab namespace.
 *
 *   const wg = await WireguardGo.start(ns, { privateKey, listenPort: 51820, addresses: ['10.10.0.2/24'],
 *                                           peers: [{ publicKey, allowedIps: ['10.10.0.1/32'] }] });
 *   await wg.latestHandshake(pub)   // seconds since epoch, 0 = never
 *
 * The interface name must be unique machine-wide: wireguard-go's control socket lives in
 * /var/run/wireguard/<ifname>.sock, which namespaces do not separate. The process runs in the
 * foreground (WG_PROCESS_FOREGROUND=1) and is killed by PID by stop() or the lab's cleanup.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { generateKeyPair, formatKey } from '../../src/crypto/index.js';
import { type Netns, type LabProcess, waitUntil } from './index.js';

export interface WgKeys {
  privateKey: string;
  publicKey: string;
}

/** A fresh WireGuard key pair, base64 as `wg genkey`/`wg pubkey` print them. */
export function wgKeys(): WgKeys {
  const kp = generateKeyPair();
  return { privateKey: formatKey(kp.privateKey), publicKey: formatKey(kp.publicKey) };
}

export interface WgPeerSpec {
  publicKey: string;
  allowedIps: string[];
  endpoint?: string;
  persistentKeepalive?: number;
  presharedKey?: string;
}

export interface WireguardGoOptions {
  /** Default: "nbwg" + 6 random hex digits. */
  ifname?: string;
  privateKey: string;
  listenPort?: number;
  addresses?: string[];
  mtu?: number;
  peers?: WgPeerSpec[];
}

export class WireguardGo {
  private constructor(
    readonly ns: Netns,
    readonly ifname: string,
    readonly proc: LabProcess,
    private readonly dir: string,
  ) {}

  static async start(ns: Netns, opts: WireguardGoOptions): Promise<WireguardGo> {
    const ifname = opts.ifname ?? `nbwg${randomBytes(3).toString('hex')}`;
    const dir = ns.lab.tmpdir();
    const proc = ns.spawn('wireguard-go', ['-f', ifname], {
      env: { ...process.env, WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'error' },
    });
    const wg = new WireguardGo(ns, ifname, proc, dir);
    const ok = await waitUntil(async () => (await ns.exec('wg', ['show', ifname], { check: false })).code === 0 || !proc.running, 10_000);
    if (!ok || !proc.running) throw new Error(`wireguard-go did not come up in ${ns.name}: ${proc.output()}`);
    const keyFile = join(dir, 'private.key');
    writeFileSync(keyFile, opts.privateKey + '\n', { mode: 0o600 });
    const args = ['private-key', keyFile];
    if (opts.listenPort !== undefined) args.push('listen-port', String(opts.listenPort));
    await wg.set(args);
    for (const p of opts.peers ?? []) await wg.setPeer(p);
    if (opts.mtu) await ns.ip('link', 'set', 'dev', ifname, 'mtu', String(opts.mtu));
    for (const a of opts.addresses ?? []) await ns.addr(ifname, a);
    await ns.ip('link', 'set', 'dev', ifname, 'up');
    return wg;
  }

  /** `wg set <ifname> args...` */
  async set(args: string[]): Promise<void> {
    await this.ns.exec('wg', ['set', this.ifname, ...args]);
  }

  async setPeer(p: WgPeerSpec): Promise<void> {
    const args = ['peer', p.publicKey, 'allowed-ips', p.allowedIps.join(',')];
    if (p.endpoint) args.push('endpoint', p.endpoint);
    if (p.persistentKeepalive !== undefined) args.push('persistent-keepalive', String(p.persistentKeepalive));
    if (p.presharedKey) {
      const f = join(this.dir, `psk-${randomBytes(4).toString('hex')}`);
      writeFileSync(f, p.presharedKey + '\n', { mode: 0o600 });
      args.push('preshared-key', f);
    }
    await this.set(args);
  }

  /** `wg show <ifname> <field>` parsed into peer -> value. */
  async show(field: 'endpoints' | 'latest-handshakes' | 'transfer' | 'allowed-ips'): Promise<Map<string, string>> {
    const out = (await this.ns.exec('wg', ['show', this.ifname, field])).stdout;
    const m = new Map<string, string>();
    for (const line of out.split('\n')) {
      const [k, ...rest] = line.trim().split(/\s+/);
      if (k) m.set(k, rest.join(' '));
    }
    return m;
  }

  /** Unix time (s) of the last handshake with `peer`, 0 if none. */
  async latestHandshake(peer: string): Promise<number> {
    return Number((await this.show('latest-handshakes')).get(peer) ?? 0);
  }

  async endpoint(peer: string): Promise<string> {
    return (await this.show('endpoints')).get(peer) ?? '';
  }

  /** Kills wireguard-go by PID (its interface disappears with it). */
  async stop(): Promise<void> {
    await this.proc.kill();
  }
}
