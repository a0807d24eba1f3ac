import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import type { management } from '../proto/index.js';
import { addRoute, delRoute } from '../tun/index.js';

const NFT_TABLE = 'netbird_ts';
const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';
/** Route.NetworkType: 1 IPv4, 2 IPv6 (3 = domain routes, not handled here). */
const PREFIX_TYPES = new Set([1, 2]);

export interface RouteLogger {
  info(msg: string): void;
  warn(msg: string): void;
}

function nft(ruleset: string | undefined, args: string[] = ['-f', '-']): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = execFile('nft', args, (err, _out, stderr) => (err ? reject(new Error(`nft ${args.join(' ')}: ${stderr.trim() || err.message}`)) : resolve()));
    if (ruleset !== undefined) p.stdin?.end(ruleset);
  });
}

/**
 * Network routes of the map (protocol.md §4.6.3). As a client: for each network (HA group = NetID +
 * network) pick one routing peer — connected ones first, then the lowest metric — route the prefix into
 * the WireGuard interface and add it to that peer's allowed IPs. As a routing peer (Route.Peer is us):
 * enable IPv4 forwarding and, for masquerading routes, NAT the overlay's traffic leaving other interfaces.
 */
export class RouteManager {
  /** Kernel routes we installed: prefix -> routing peer key. */
  private installed = new Map<string, string>();
  private serving = false;
  private masquerading = false;
  private forwardBefore: string | undefined;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly iface: string,
    private readonly log: RouteLogger,
  ) {}

  /** Routed prefixes per routing peer key, for the peers' allowed IPs. */
  select(routes: readonly management.Route[], self: string, connected: (peerKey: string) => boolean): Map<string, string[]> {
    const groups = new Map<string, management.Route[]>();
    for (const r of routes) {
      if (r.Peer === self || !PREFIX_TYPES.has(r.NetworkType) || !r.Network || r.skipAutoApply) continue;
      const k = `${r.NetID}|${r.Network}`;
      const g = groups.get(k);
      if (g) g.push(r);
      else groups.set(k, [r]);
    }
    const out = new Map<string, string[]>();
    for (const g of groups.values()) {
      g.sort((a, b) => Number(connected(b.Peer)) - Number(connected(a.Peer)) || a.Metric - b.Metric || (a.Peer < b.Peer ? -1 : 1));
      const best = g[0]!;
      const list = out.get(best.Peer);
      if (list) list.push(best.Network);
      else out.set(best.Peer, [best.Network]);
    }
    return out;
  }

  /** Installs/removes kernel routes for `selection` and sets up serving for our own routes. */
  apply(selection: Map<string, string[]>, routes: readonly management.Route[], self: string, overlayCidr: string): Promise<void> {
    const run = async (): Promise<void> => {
      const wanted = new Map<string, string>();
      for (const [peer, nets] of selection) for (const n of nets) wanted.set(n, peer);
      for (const [net, peer] of this.installed) {
        if (wanted.get(net) === peer) continue;
        await delRoute(this.iface, net).catch(() => undefined);
        this.installed.delete(net);
        this.log.info(`route ${net} removed`);
      }
      for (const [net, peer] of wanted) {
        if (this.installed.get(net) === peer) continue;
        try {
          await addRoute(this.iface, net);
          this.installed.set(net, peer);
          this.log.info(`route ${net} via ${peer.slice(0, 8)}…`);
        } catch (e) {
          this.log.warn(`route ${net}: ${(e as Error).message}`);
        }
      }
      const own = routes.filter((r) => r.Peer === self && PREFIX_TYPES.has(r.NetworkType));
      await this.serve(own.length > 0, own.some((r) => r.Masquerade), overlayCidr);
    };
    this.queue = this.queue.then(run, run);
    return this.queue;
  }

  private async serve(on: boolean, masquerade: boolean, overlayCidr: string): Promise<void> {
    if (on && !this.serving) {
      try {
        this.forwardBefore = readFileSync(IP_FORWARD, 'utf8').trim();
        writeFileSync(IP_FORWARD, '1');
        this.serving = true;
        this.log.info('routing peer: IPv4 forwarding on');
      } catch (e) {
        this.log.warn(`cannot enable IPv4 forwarding: ${(e as Error).message}`);
      }
    }
    if (masquerade && on && !this.masquerading) {
      try {
        await nft(`table ip ${NFT_TABLE} {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr ${overlayCidr} oifname != "${this.iface}" masquerade
  }
}
`);
        this.masquerading = true;
      } catch (e) {
        this.log.warn(`cannot set up masquerading (is nftables installed?): ${(e as Error).message}`);
      }
    }
    if ((!masquerade || !on) && this.masquerading) {
      await nft(undefined, ['delete', 'table', 'ip', NFT_TABLE]).catch(() => undefined);
      this.masquerading = false;
    }
    if (!on && this.serving) this.restoreForwarding();
  }

  private restoreForwarding(): void {
    if (this.forwardBefore !== undefined) {
      try {
        writeFileSync(IP_FORWARD, this.forwardBefore);
      } catch {
        /* best effort */
      }
    }
    this.serving = false;
  }

  /** Removes everything we installed (the interface going away removes its routes too). */
  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
    for (const net of this.installed.keys()) await delRoute(this.iface, net).catch(() => undefined);
    this.installed.clear();
    if (this.masquerading) await nft(undefined, ['delete', 'table', 'ip', NFT_TABLE]).catch(() => undefined);
    this.masquerading = false;
    if (this.serving) this.restoreForwarding();
  }
}
