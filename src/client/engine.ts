import { formatKey, relayPeerId, relayTokenBinary, type KeyPair, type RelayToken } from '../crypto/index.js';
import { DnsServer, HostDns } from '../dns/index.js';
import { PacketFilter } from '../filter/index.js';
import { FlowReporter } from '../flow/index.js';
import { management, signalexchange } from '../proto/index.js';
import { RelayBind, RelayClient } from '../relay/index.js';
import { SignalClient, type SignalBody } from '../signal/index.js';
import { createUdpBind, openTun, type LinuxTunDevice, type LinuxUdpBind } from '../tun/index.js';
import { Device } from '../wireguard/index.js';
import type { ClientConfig } from './config.js';
import type { EngineHandle, EngineStartArgs, EngineStatus } from './daemon.js';
import type { ManagementClient, ManagementError } from './management.js';
import { timeOrZero, type PeerStatusJson } from './status.js';
import { NETBIRD_COMPAT_VERSION } from './system.js';

/** NetBird's default interface MTU. */
const DEFAULT_MTU = 1280;
/** Reference persistent keepalive for mesh peers (protocol.md §4.6.1). */
const KEEPALIVE_SECONDS = 25;
/** A peer counts as connected while its last handshake is younger than this (WireGuard rejects after 180 s). */
const HANDSHAKE_FRESH_MS = 180_000;

export interface EngineLogger {
  info(msg: string): void;
  warn(msg: string): void;
}

const stderrLogger: EngineLogger = {
  info: (m) => process.stderr.write(`netbird: ${m}\n`),
  warn: (m) => process.stderr.write(`netbird: warning: ${m}\n`),
};

/** Connection to one remote peer: negotiation over Signal, WireGuard packets over a relay. */
class PeerConnection {
  relayUrl = '';
  remoteRelayAddress = '';
  private offerTimer: NodeJS.Timeout | undefined;
  private offerDelay = 1000;
  private remoteSeen = false;
  private connecting: Promise<void> | undefined;
  statusSince = Date.now();
  closed = false;

  constructor(
    private readonly engine: Engine,
    readonly publicKey: string,
    public config: management.RemotePeerConfig,
  ) {}

  /** The controller (greater key, byte-wise) dials and its home relay is used (protocol.md §6.1). */
  get weControl(): boolean {
    return this.engine.publicKey > this.publicKey;
  }

  start(): void {
    this.sendOffer(signalexchange.Body_Type.OFFER);
  }

  /** Offers are resent with backoff until the remote answers (the reference "guard"). */
  private sendOffer(type: signalexchange.Body_Type): void {
    if (this.closed) return;
    void this.engine.sendSignal(this.publicKey, type);
    if (type === signalexchange.Body_Type.OFFER && !this.remoteSeen) {
      clearTimeout(this.offerTimer);
      this.offerTimer = setTimeout(() => this.sendOffer(signalexchange.Body_Type.OFFER), this.offerDelay);
      this.offerDelay = Math.min(this.offerDelay * 2, 30_000);
    }
  }

  /** Restart negotiation (the remote went offline on the relay, or reconnected). */
  renegotiate(): void {
    this.remoteSeen = false;
    this.offerDelay = 1000;
    this.statusSince = Date.now();
    this.sendOffer(signalexchange.Body_Type.OFFER);
  }

  onSignal(body: SignalBody): void {
    if (body.type !== signalexchange.Body_Type.OFFER && body.type !== signalexchange.Body_Type.ANSWER) return;
    this.remoteSeen = true;
    clearTimeout(this.offerTimer);
    if (body.type === signalexchange.Body_Type.OFFER) this.sendOffer(signalexchange.Body_Type.ANSWER);
    this.remoteRelayAddress = body.relayServerAddress ?? '';
    const url = this.weControl ? this.engine.homeRelayUrl : this.remoteRelayAddress;
    if (!url) {
      this.engine.log.warn(`peer ${this.config.fqdn || this.publicKey}: no relay to meet on (ours: ${this.engine.homeRelayUrl || 'none'}, theirs: ${this.remoteRelayAddress || 'none'})`);
      return;
    }
    if (url === this.relayUrl && this.connecting) return;
    this.relayUrl = url;
    this.connecting = this.connectRelay(url).finally(() => {
      this.connecting = undefined;
    });
  }

  private async connectRelay(url: string): Promise<void> {
    try {
      const client = await this.engine.relayFor(url);
      const peerId = relayPeerId(this.publicKey);
      await client.waitForPeer(peerId);
      if (this.closed || this.relayUrl !== url) return;
      this.engine.device.setPeerEndpoint(this.publicKey, this.engine.relayBind.endpoint(client, peerId));
      this.statusSince = Date.now();
      if (this.weControl) this.engine.device.initiateHandshake(this.publicKey);
    } catch (e) {
      if (!this.closed) {
        this.engine.log.warn(`peer ${this.config.fqdn || this.publicKey}: relay ${url}: ${(e as Error).message}; retrying`);
        setTimeout(() => !this.closed && this.renegotiate(), 2000);
      }
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.offerTimer);
  }
}

/** Joins management sync, signal, relays and the WireGuard device into a running peer. */
export class Engine implements EngineHandle {
  readonly publicKey: string;
  readonly relayBind = new RelayBind([], { ownsClients: false });
  device!: Device;
  log: EngineLogger;
  private tun!: LinuxTunDevice;
  private udp!: LinuxUdpBind;
  private signal!: SignalClient;
  private signalUrl = '';
  private syncStop: (() => void) | undefined;
  private mgmtConnected = false;
  private mgmtError = '';
  private serial = 0;
  private peerConfig: management.PeerConfig;
  private readonly peers = new Map<string, PeerConnection>();
  private offline: management.RemotePeerConfig[] = [];
  private relayUrls: string[] = [];
  private relayToken: RelayToken | undefined;
  private readonly relays = new Map<string, RelayClient>();
  private readonly relayErrors = new Map<string, string>();
  private home: RelayClient | undefined;
  private stopped = false;
  readonly filter = new PacketFilter();
  private dns: DnsServer | undefined;
  private hostDns: HostDns | undefined;
  private dnsKey = '';
  private flow: FlowReporter | undefined;
  private flowKey = '';
  private flowUnsubscribe: (() => void) | undefined;

  constructor(
    private readonly config: ClientConfig,
    private readonly keys: KeyPair,
    private readonly mgmt: ManagementClient,
    login: management.LoginResponse,
    private readonly meta: () => management.PeerSystemMeta,
    private readonly onNeedsLogin: (reason: string) => void,
    logger?: EngineLogger,
  ) {
    this.publicKey = formatKey(keys.publicKey);
    this.peerConfig = login.peerConfig ?? management.PeerConfig.fromPartial({});
    this.log = logger ?? stderrLogger;
    this.applyNetbirdConfig(login.netbirdConfig);
  }

  get homeRelayUrl(): string {
    return this.home?.instanceUrl ?? '';
  }

  async start(): Promise<void> {
    const address = this.peerConfig.address;
    if (!address) throw new Error('management sent no overlay address for this peer');
    this.tun = await openTun({ name: this.config.interfaceName, mtu: this.peerConfig.mtu || DEFAULT_MTU, addresses: [address] });
    try {
      this.udp = await createUdpBind({ port: this.config.wireguardPort });
    } catch (e) {
      await this.tun.close();
      throw new Error(`cannot open WireGuard UDP port ${this.config.wireguardPort}: ${(e as Error).message} (choose another with --wireguard-port)`);
    }
    this.device = new Device({ privateKey: this.keys.privateKey, tun: this.tun, binds: [this.udp, this.relayBind] });
    // Until the first network map arrives nothing may come in: deny new inbound connections.
    this.filter.setRules([], { rulesIsEmpty: true });
    this.device.setFilter(this.filter);
    this.log.info(`interface ${this.config.interfaceName} up with ${address} (${this.peerConfig.fqdn})`);
    await this.connectRelays();
    this.startSignal();
    const handle = this.mgmt.sync(this.meta, {
      onResponse: (r) => this.onSync(r),
      onState: (connected, err?: ManagementError) => {
        this.mgmtConnected = connected;
        this.mgmtError = err ? err.message : '';
      },
      onFatal: (err) => {
        this.log.warn(`management refused this peer: ${err.message}`);
        this.onNeedsLogin(err.message);
      },
    });
    this.syncStop = () => handle.stop();
  }

  private applyNetbirdConfig(cfg: management.NetbirdConfig | undefined): void {
    if (!cfg) return;
    this.applyFlow(cfg.flow);
    if (cfg.relay) {
      this.relayUrls = cfg.relay.urls;
      this.relayToken = { payload: cfg.relay.tokenPayload, signature: cfg.relay.tokenSignature };
    } else {
      this.relayUrls = [];
    }
    if (cfg.signal?.uri) {
      const scheme = cfg.signal.protocol === management.HostConfig_Protocol.HTTPS ? 'https' : 'http';
      const url = `${scheme}://${cfg.signal.uri}`;
      if (this.signalUrl && this.signalUrl !== url) this.log.warn(`signal moved to ${url}; applied on the next connect`);
      if (!this.signalUrl) this.signalUrl = url;
    }
  }

  /** Traffic events: the filter's connection events go to the flow collector when the account enables it. */
  private applyFlow(cfg: management.FlowConfig | undefined): void {
    const intervalMs = cfg?.interval ? cfg.interval.seconds * 1000 + Math.floor(cfg.interval.nanos / 1e6) : 0;
    const enabled = cfg !== undefined && cfg.enabled && cfg.url !== '' && intervalMs > 0;
    const key = enabled ? JSON.stringify([cfg.url, cfg.tokenPayload, cfg.tokenSignature, intervalMs, cfg.counters]) : '';
    if (key === this.flowKey) return;
    this.flowKey = key;
    const old = this.flow;
    this.stopFlow();
    if (!enabled) return;
    const reporter = new FlowReporter({
      url: cfg.url, tokenPayload: cfg.tokenPayload, tokenSignature: cfg.tokenSignature, intervalMs, counters: cfg.counters,
      publicKey: this.keys.publicKey, ...(old ? { queue: old.queue } : {}),
    });
    reporter.start();
    this.flow = reporter;
    // Connection events are only produced while someone listens: no flow, no cost.
    this.flowUnsubscribe = this.filter.onEvent((ev) => reporter.record(ev));
  }

  private stopFlow(): void {
    this.flowUnsubscribe?.();
    this.flowUnsubscribe = undefined;
    this.flow?.close();
    this.flow = undefined;
  }

  private tokenBinary(): Uint8Array {
    if (!this.relayToken) throw new Error('no relay token from management');
    return relayTokenBinary(this.relayToken);
  }

  /** Connects to every advertised relay; the first to authenticate is home (protocol.md §7.7). */
  private async connectRelays(): Promise<void> {
    if (this.relayUrls.length === 0) {
      this.log.warn('management advertises no relay: peers cannot connect until one is configured');
      return;
    }
    const attempts = this.relayUrls.map(async (url) => {
      const c = await this.relayFor(url);
      if (!this.home) {
        this.home = c;
        this.log.info(`home relay ${c.instanceUrl}`);
      }
      return c;
    });
    try {
      await Promise.any(attempts);
    } catch {
      this.log.warn(`no relay reachable (${[...this.relayErrors.values()].join('; ')}); retrying in the background`);
    }
  }

  /** The relay connection for an URL (home or foreign), created and authenticated on first use. */
  async relayFor(url: string): Promise<RelayClient> {
    for (const c of this.relays.values()) if (c.url === url || (c.instanceUrl && c.instanceUrl === url)) {
      if (!c.connected) await c.connect();
      return c;
    }
    const client = new RelayClient({ url, publicKey: this.publicKey, token: () => this.tokenBinary() });
    this.relays.set(url, client);
    this.relayBind.addClient(client);
    client.on('error', (e) => this.relayErrors.set(url, e.message));
    client.on('connected', () => {
      this.relayErrors.delete(url);
      // After a relay restart, peers meeting there must negotiate again.
      for (const p of this.peers.values()) if (p.relayUrl === client.instanceUrl) p.renegotiate();
    });
    client.on('disconnected', (reason) => this.relayErrors.set(url, reason));
    client.on('peersOffline', (ids) => {
      const gone = new Set(ids.map((b) => b.toString('hex')));
      for (const p of this.peers.values()) {
        if (p.relayUrl && gone.has(relayPeerId(p.publicKey).toString('hex'))) p.renegotiate();
      }
    });
    try {
      await client.connect();
    } catch (e) {
      this.relayErrors.set(url, (e as Error).message);
      throw e;
    }
    return client;
  }

  private startSignal(): void {
    if (!this.signalUrl) {
      this.log.warn('management advertises no signal server: peers cannot negotiate');
      return;
    }
    const u = new URL(this.signalUrl);
    this.signal = new SignalClient({ address: u.host, tls: u.protocol === 'https:', privateKey: this.keys.privateKey });
    this.signal.on('message', (from, body) => this.peers.get(from)?.onSignal(body));
    this.signal.on('connected', () => {
      for (const p of this.peers.values()) p.renegotiate();
    });
    this.signal.on('error', () => undefined);
    this.signal.connect().catch((e: Error) => this.log.warn(`signal ${this.signalUrl}: ${e.message}; retrying`));
  }

  async sendSignal(remoteKey: string, type: signalexchange.Body_Type): Promise<void> {
    if (!this.signal) return;
    const body: Partial<SignalBody> & { type: signalexchange.Body_Type } = {
      type,
      payload: ':', // no ICE yet: the relay is the only path (protocol.md §6.2)
      wgListenPort: this.udp.port,
      netBirdVersion: NETBIRD_COMPAT_VERSION,
      rosenpassConfig: { rosenpassPubKey: Buffer.alloc(0), rosenpassServerAddr: '' },
    };
    if (this.home?.connected) body.relayServerAddress = this.home.instanceUrl;
    try {
      await this.signal.send(remoteKey, body);
    } catch {
      // The offer guard resends; signal reconnects on its own.
    }
  }

  private onSync(resp: management.SyncResponse): void {
    if (resp.netbirdConfig) {
      this.applyNetbirdConfig(resp.netbirdConfig);
      if (!this.home && this.relayUrls.length > 0) void this.connectRelays();
    }
    const map = resp.NetworkMap;
    if (!map) return; // config-only refresh: keep peers and rules
    if (map.peerConfig) this.peerConfig = map.peerConfig;
    if (map.Serial < this.serial) return;
    this.serial = map.Serial;
    this.applyPeers(map);
    const res = this.filter.setRules(map.FirewallRules, { rulesIsEmpty: map.firewallRulesIsEmpty });
    if (res.rejected > 0) this.log.warn(`ignored ${res.rejected} firewall rule(s): ${res.rejections.join('; ')}`);
    void this.applyDns(map.DNSConfig).catch((e: Error) => this.log.warn(`DNS: ${e.message}`));
  }

  /** Runs the resolver on the overlay address and points the host at it for the account's zones. */
  private async applyDns(cfg: management.DNSConfig | undefined): Promise<void> {
    const overlayIp = this.peerConfig.address.split('/')[0]!;
    if (!cfg || !cfg.ServiceEnable) {
      await this.stopDns();
      return;
    }
    if (!this.dns) {
      this.dns = new DnsServer({ host: overlayIp, port: 53 });
      await this.dns.start();
    }
    this.dns.setConfig(cfg, { reversePrefixes: [networkOf(this.peerConfig.address)] });
    const domains = cfg.CustomZones.filter((z) => !z.SearchDomainDisabled).map((z) => z.Domain);
    const matchDomains = cfg.NameServerGroups.filter((g) => !g.Primary).flatMap((g) => g.Domains);
    const routeAll = cfg.NameServerGroups.some((g) => g.Primary);
    const key = JSON.stringify([domains, matchDomains, routeAll]);
    if (key === this.dnsKey) return;
    this.dnsKey = key;
    // NB_RESOLV_CONF lets a host (or a test lab) point us at another resolv.conf than /etc/resolv.conf.
    this.hostDns ??= new HostDns(process.env.NB_RESOLV_CONF ? { resolvConfPath: process.env.NB_RESOLV_CONF } : {});
    const applied = await this.hostDns.apply({ serverIp: overlayIp, domains, matchDomains, routeAll, interfaceName: this.config.interfaceName });
    this.dns.setHostResolvers(applied.originalNameservers.filter((ip) => ip !== overlayIp).map((ip) => ({ ip, port: 53 })));
  }

  private async stopDns(): Promise<void> {
    const host = this.hostDns;
    this.hostDns = undefined;
    this.dnsKey = '';
    if (host) await host.restore().catch((e: Error) => this.log.warn(`could not restore the host DNS config: ${e.message}`));
    const dns = this.dns;
    this.dns = undefined;
    await dns?.stop();
  }

  private applyPeers(map: management.NetworkMap): void {
    const wanted = new Map<string, management.RemotePeerConfig>();
    for (const rp of map.remotePeers) if (rp.wgPubKey !== this.publicKey) wanted.set(rp.wgPubKey, rp);
    for (const [key, conn] of this.peers) {
      if (wanted.has(key)) continue;
      conn.close();
      this.peers.delete(key);
      this.device.removePeer(key);
      this.log.info(`peer ${conn.config.fqdn || key} removed`);
    }
    for (const [key, rp] of wanted) {
      this.device.setPeer({ publicKey: key, allowedIps: rp.allowedIps, persistentKeepalive: KEEPALIVE_SECONDS });
      const existing = this.peers.get(key);
      if (existing) {
        existing.config = rp;
        continue;
      }
      const conn = new PeerConnection(this, key, rp);
      this.peers.set(key, conn);
      this.log.info(`peer ${rp.fqdn || key} added (${rp.allowedIps.join(', ')})`);
      conn.start();
    }
    this.offline = map.offlinePeers;
  }

  status(): EngineStatus {
    const now = Date.now();
    const details: PeerStatusJson[] = [];
    let connected = 0;
    for (const p of this.peers.values()) {
      const st = this.device.peerStats(p.publicKey);
      const fresh = st !== undefined && st.lastHandshake > 0 && now - st.lastHandshake < HANDSHAKE_FRESH_MS && st.endpoint !== '';
      if (fresh) connected++;
      details.push({
        fqdn: p.config.fqdn,
        netbirdIp: (p.config.allowedIps[0] ?? '').split('/')[0] ?? '',
        publicKey: p.publicKey,
        status: fresh ? 'Connected' : 'Connecting',
        statusSince: new Date(p.statusSince).toISOString(),
        connectionType: fresh ? (st!.endpointKind === 'relay' ? 'Relayed' : 'P2P') : '',
        iceCandidateType: { local: '', remote: '' },
        iceCandidateEndpoint: { local: '', remote: '' },
        relayAddress: fresh && st!.endpointKind === 'relay' ? st!.endpoint : '',
        lastWireguardHandshake: timeOrZero(st?.lastHandshake ?? 0),
        transferReceived: st?.rxBytes ?? 0,
        transferSent: st?.txBytes ?? 0,
        latency: 0,
        quantumResistance: false,
        networks: [],
      });
    }
    for (const o of this.offline) {
      details.push({
        fqdn: o.fqdn, netbirdIp: (o.allowedIps[0] ?? '').split('/')[0] ?? '', publicKey: o.wgPubKey, status: 'Idle',
        statusSince: timeOrZero(0), connectionType: '', iceCandidateType: { local: '', remote: '' },
        iceCandidateEndpoint: { local: '', remote: '' }, relayAddress: '', lastWireguardHandshake: timeOrZero(0),
        transferReceived: 0, transferSent: 0, latency: 0, quantumResistance: false, networks: [],
      });
    }
    details.sort((a, b) => a.fqdn.localeCompare(b.fqdn));
    const relayDetails = this.relayUrls.map((uri) => {
      const c = [...this.relays.values()].find((r) => r.url === uri);
      return { uri, available: c?.connected ?? false, error: c?.connected ? '' : (this.relayErrors.get(uri) ?? '') };
    });
    return {
      peers: { total: details.length, connected, details },
      management: { url: this.mgmt.url, connected: this.mgmtConnected, error: this.mgmtError },
      signal: { url: this.signalUrl, connected: this.signal?.connected ?? false, error: '' },
      relays: { total: relayDetails.length, available: relayDetails.filter((r) => r.available).length, details: relayDetails },
      netbirdIp: this.peerConfig.address,
      publicKey: this.publicKey,
      usesKernelInterface: false,
      fqdn: this.peerConfig.fqdn,
      quantumResistance: false,
      networks: [],
      dnsServers: this.dns
        ? [{ servers: [`${this.peerConfig.address.split('/')[0]}:53`], domains: JSON.parse(this.dnsKey || '[[]]')[0] as string[], enabled: true, error: '' }]
        : [],
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.syncStop?.();
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
    await this.stopDns();
    this.stopFlow();
    this.filter.close();
    await this.signal?.close().catch(() => undefined);
    await Promise.all([...this.relays.values()].map((r) => r.close().catch(() => undefined)));
    this.relays.clear();
    await this.device?.close();
    this.log.info(`interface ${this.config.interfaceName} removed`);
  }
}

/** "100.64.3.7/16" -> "100.64.0.0/16" (IPv4 overlay). */
function networkOf(cidr: string): string {
  const [ip, lenText] = cidr.split('/') as [string, string | undefined];
  const len = Number(lenText ?? 32);
  const n = ip.split('.').reduce((a, o) => (a << 8) | Number(o), 0) >>> 0;
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const net = (n & mask) >>> 0;
  return `${[24, 16, 8, 0].map((s) => (net >>> s) & 255).join('.')}/${len}`;
}

/** EngineFactory used by the daemon. */
export async function startEngine(args: EngineStartArgs): Promise<EngineHandle> {
  const engine = new Engine(args.config, args.keys, args.management, args.login, args.meta, args.onNeedsLogin);
  try {
    await engine.start();
  } catch (e) {
    await engine.stop().catch(() => undefined);
    throw e;
  }
  return engine;
}
