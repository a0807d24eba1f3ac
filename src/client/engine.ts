import { formatKey, relayPeerId, relayTokenBinary, type KeyPair, type RelayToken } from '../crypto/index.js';
import { DnsServer, HostDns } from '../dns/index.js';
import { PacketFilter } from '../filter/index.js';
import { FlowReporter } from '../flow/index.js';
import { management, signalexchange } from '../proto/index.js';
import { RelayBind, RelayClient } from '../relay/index.js';
import { RouteManager } from './routes.js';
import { SignalClient, type SignalBody } from '../signal/index.js';
import { createUdpBind, openTun, type LinuxTunDevice, type LinuxUdpBind } from '../tun/index.js';
import { Device, type Endpoint } from '../wireguard/index.js';
import { IceMux, IceSession, parseIceUrl, watchHostAddresses, type IceServer, type SelectedPath } from '../ice/index.js';
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
  /** Negotiation detail (ICE checks, signal messages); printed with NB_LOG_LEVEL=debug, as NetBird's client does. */
  debug(msg: string): void;
}

const debugEnabled = /^(debug|trace)$/i.test(process.env['NB_LOG_LEVEL'] ?? '');

const stderrLogger: EngineLogger = {
  info: (m) => process.stderr.write(`netbird: ${m}\n`),
  warn: (m) => process.stderr.write(`netbird: warning: ${m}\n`),
  debug: debugEnabled ? (m) => process.stderr.write(`netbird: debug: ${m}\n`) : () => undefined,
};

/** Connection to one remote peer: negotiation over Signal, WireGuard packets over a relay. */
class PeerConnection {
  relayUrl = '';
  remoteRelayAddress = '';
  /** The NetBird relay endpoint once the relay path is up (fallback while ICE is not). */
  private relayEndpoint: Endpoint | undefined;
  /** ICE half (protocol.md §6.2-§6.4): credentials, candidates, direct path. */
  readonly ice: IceSession;
  /** Signal messages to this peer go out one after another (OFFER/ANSWER before its CANDIDATEs). */
  private sendQueue: Promise<void> = Promise.resolve();
  /** When the first OFFER of the current attempt went out (time-to-P2P in the log). */
  private offerSentAt = 0;
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
  ) {
    this.ice = new IceSession({
      mux: engine.mux,
      controlling: engine.publicKey > publicKey,
      servers: () => engine.iceServers,
      agent: { excludeInterfaces: [engine.interfaceName] },
      sendCandidate: (text) => this.send(signalexchange.Body_Type.CANDIDATE, text),
      requestOffer: () => this.renegotiate(),
      onDirect: (path) => this.useDirect(path),
      onLost: (reason) => this.useRelay(reason),
      logger: { debug: (m) => engine.log.debug(`peer ${this.name}: ${m}`) },
    });
  }

  private get name(): string {
    return this.config.fqdn || this.publicKey;
  }

  /** Queues one Signal message to this peer (CANDIDATE: payload only, §6.3). */
  private send(type: signalexchange.Body_Type, candidate?: string): void {
    if (this.closed) return;
    // OFFER/ANSWER carry the ICE credentials current when they are sent.
    const creds = candidate === undefined ? this.ice.credentials : undefined;
    this.sendQueue = this.sendQueue.then(() => this.engine.sendSignal(this.publicKey, type, candidate ?? creds));
  }

  private useDirect(path: SelectedPath): void {
    if (this.closed) return;
    this.engine.device.setPeerEndpoint(this.publicKey, path.endpoint);
    this.statusSince = Date.now();
    const since = this.offerSentAt ? ` ${Date.now() - this.offerSentAt} ms after the offer` : '';
    this.engine.log.info(`peer ${this.name}: ICE connected ${path.relayed ? 'via TURN' : 'P2P'} (${path.local.type} -> ${path.remote.type} ${path.endpoint})${since}`);
    if (this.weControl) this.engine.device.initiateHandshake(this.publicKey);
  }

  private useRelay(reason: string): void {
    if (this.closed) return;
    this.statusSince = Date.now();
    if (this.relayEndpoint) {
      this.engine.device.setPeerEndpoint(this.publicKey, this.relayEndpoint);
      if (this.weControl) this.engine.device.initiateHandshake(this.publicKey);
    }
    this.engine.log.info(`peer ${this.name}: ${reason}; ${this.relayEndpoint ? 'back on the relay' : 'no relay path yet'}`);
  }

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
    if (type === signalexchange.Body_Type.OFFER && this.offerSentAt === 0) this.offerSentAt = Date.now();
    this.send(type);
    if (type === signalexchange.Body_Type.OFFER && !this.remoteSeen) {
      clearTimeout(this.offerTimer);
      this.offerTimer = setTimeout(() => this.sendOffer(signalexchange.Body_Type.OFFER), this.offerDelay);
      this.offerDelay = Math.min(this.offerDelay * 2, 30_000);
    }
  }

  /** Restart negotiation (the remote went offline on the relay, or reconnected). */
  renegotiate(): void {
    this.remoteSeen = false;
    this.offerSentAt = 0;
    this.offerDelay = 1000;
    this.statusSince = Date.now();
    this.sendOffer(signalexchange.Body_Type.OFFER);
  }

  onSignal(body: SignalBody): void {
    if (body.type === signalexchange.Body_Type.CANDIDATE) {
      this.ice.onRemoteCandidate(body.payload);
      return;
    }
    if (body.type !== signalexchange.Body_Type.OFFER && body.type !== signalexchange.Body_Type.ANSWER) return;
    this.remoteSeen = true;
    clearTimeout(this.offerTimer);
    this.remoteRelayAddress = body.relayServerAddress ?? '';
    // ICE first: a restarted session changes the credentials and sessionId our ANSWER carries;
    // TURN candidates only when one side has no NetBird relay (§6.3).
    this.ice.onRemoteCredentials(body.payload, body.sessionId, !!this.engine.homeRelayUrl && !!this.remoteRelayAddress);
    if (body.type === signalexchange.Body_Type.OFFER) this.sendOffer(signalexchange.Body_Type.ANSWER);
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
      this.relayEndpoint = this.engine.relayBind.endpoint(client, peerId);
      // The relay is used at once; ICE moves the peer to the direct path when it succeeds (§6.4).
      if (this.ice.isDirect) return;
      this.engine.device.setPeerEndpoint(this.publicKey, this.relayEndpoint);
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
    void this.ice.close();
  }
}

/** Joins management sync, signal, relays and the WireGuard device into a running peer. */
export class Engine implements EngineHandle {
  readonly publicKey: string;
  readonly relayBind = new RelayBind([], { ownsClients: false });
  device!: Device;
  /** The WireGuard UDP socket shared with ICE (STUN demultiplexed, protocol.md §6.3). */
  mux!: IceMux;
  /** STUN/TURN servers from management (§9.1). */
  iceServers: IceServer[] = [];
  private stopNetWatch: (() => void) | undefined;
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
  private readonly routes: RouteManager;
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
    this.routes = new RouteManager(config.interfaceName, this.log);
    this.applyNetbirdConfig(login.netbirdConfig);
  }

  get interfaceName(): string {
    return this.config.interfaceName;
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
    this.mux = new IceMux(this.udp);
    this.device = new Device({ privateKey: this.keys.privateKey, tun: this.tun, binds: [this.mux, this.relayBind] });
    // New host addresses (roaming, DHCP): every ICE session regathers with a fresh offer.
    this.stopNetWatch = watchHostAddresses(() => {
      this.log.info('network addresses changed: restarting ICE');
      for (const p of this.peers.values()) p.ice.networkChanged();
    }, { excludeInterfaces: [this.config.interfaceName] });
    // Until the first network map arrives nothing may come in: deny new inbound connections.
    this.filter.setRules([], { rulesIsEmpty: true });
    this.filter.setRouteRules([], { rulesIsEmpty: true });
    this.filter.setLocalAddresses([address.split('/')[0]!]);
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
    this.applyIceServers(cfg);
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

  /** STUN and TURN URIs (+ TURN credentials) for ICE; empty lists mean "unchanged" (§9.1). */
  private applyIceServers(cfg: management.NetbirdConfig): void {
    if (cfg.stuns.length === 0 && cfg.turns.length === 0) return;
    const servers: IceServer[] = [];
    const keep = (s: IceServer): void => {
      try {
        parseIceUrl(s.url);
        servers.push(s);
      } catch (e) {
        this.log.warn(`ignoring ICE server from management: ${(e as Error).message}`);
      }
    };
    const old = this.iceServers;
    for (const s of cfg.stuns.length ? cfg.stuns : []) keep({ url: s.uri });
    if (!cfg.stuns.length) for (const s of old) if (s.url.startsWith('stun')) servers.push(s);
    for (const t of cfg.turns) if (t.hostConfig?.uri) keep({ url: t.hostConfig.uri, username: t.user, password: t.password });
    if (!cfg.turns.length) for (const s of old) if (s.url.startsWith('turn')) servers.push(s);
    this.iceServers = servers;
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

  /**
   * OFFER/ANSWER with the peer's ICE credentials (`ice`: payload "<ufrag>:<pwd>" or ":", sessionId),
   * or a CANDIDATE (`ice` is the candidate string; only type and payload are set, §6.3).
   */
  async sendSignal(remoteKey: string, type: signalexchange.Body_Type, ice?: string | { payload: string; sessionId: Buffer | undefined }): Promise<void> {
    if (!this.signal) return;
    if (type === signalexchange.Body_Type.CANDIDATE) {
      try {
        await this.signal.send(remoteKey, { type, payload: typeof ice === 'string' ? ice : '' });
      } catch {
        // Lost candidates only cost a pair; ICE retries with a new session if it fails.
      }
      return;
    }
    const creds = typeof ice === 'object' ? ice : { payload: ':', sessionId: undefined };
    const body: Partial<SignalBody> & { type: signalexchange.Body_Type } = {
      type,
      payload: creds.payload,
      wgListenPort: this.udp.port,
      netBirdVersion: NETBIRD_COMPAT_VERSION,
      rosenpassConfig: { rosenpassPubKey: Buffer.alloc(0), rosenpassServerAddr: '' },
    };
    if (creds.sessionId) body.sessionId = creds.sessionId;
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
    const routed = this.routes.select(map.Routes, this.publicKey, (key) => this.isConnected(key));
    this.applyPeers(map, routed);
    void this.routes.apply(routed, map.Routes, this.publicKey, networkOf(this.peerConfig.address));
    const res = this.filter.setRules(map.FirewallRules, { rulesIsEmpty: map.firewallRulesIsEmpty });
    if (res.rejected > 0) this.log.warn(`ignored ${res.rejected} firewall rule(s): ${res.rejections.join('; ')}`);
    // What we forward as a routing peer (to networks behind us) is judged by the route rules.
    const routeRes = this.filter.setRouteRules(map.routesFirewallRules, { rulesIsEmpty: map.routesFirewallRulesIsEmpty });
    if (routeRes.rejected > 0) this.log.warn(`ignored ${routeRes.rejected} route firewall rule(s): ${routeRes.rejections.join('; ')}`);
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

  /** Whether WireGuard has a fresh session with a peer over some path (status and route selection). */
  private isConnected(key: string, now = Date.now()): boolean {
    const st = this.device.peerStats(key);
    return st !== undefined && st.lastHandshake > 0 && now - st.lastHandshake < HANDSHAKE_FRESH_MS && st.endpoint !== '';
  }

  private applyPeers(map: management.NetworkMap, routed: Map<string, string[]>): void {
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
      // A routing peer also carries the networks we route through it (protocol.md §4.6.1: not in allowedIps).
      this.device.setPeer({ publicKey: key, allowedIps: [...rp.allowedIps, ...(routed.get(key) ?? [])], persistentKeepalive: KEEPALIVE_SECONDS });
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
      const fresh = this.isConnected(p.publicKey, now);
      if (fresh) connected++;
      const ice = p.ice.status();
      // ICE is in use when WireGuard sits on the endpoint it selected (not on the NetBird relay).
      const onIce = fresh && ice.connected && st!.endpoint === ice.wgEndpoint;
      details.push({
        fqdn: p.config.fqdn,
        netbirdIp: (p.config.allowedIps[0] ?? '').split('/')[0] ?? '',
        publicKey: p.publicKey,
        status: fresh ? 'Connected' : 'Connecting',
        statusSince: new Date(p.statusSince).toISOString(),
        connectionType: fresh ? (st!.endpointKind === 'relay' ? 'Relayed' : 'P2P') : '',
        iceCandidateType: onIce ? { local: ice.localType, remote: ice.remoteType } : { local: '', remote: '' },
        iceCandidateEndpoint: onIce ? { local: ice.localEndpoint, remote: ice.remoteEndpoint } : { local: '', remote: '' },
        relayAddress: fresh && st!.endpointKind === 'relay' ? st!.endpoint : '',
        lastWireguardHandshake: timeOrZero(st?.lastHandshake ?? 0),
        transferReceived: st?.rxBytes ?? 0,
        transferSent: st?.txBytes ?? 0,
        // ICE measures its pair's RTT; on the relay the WireGuard handshake round trip is our estimate.
        latency: onIce ? ice.latencyNs : fresh ? Math.round(st!.handshakeRttMs * 1e6) : 0,
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
    this.stopNetWatch?.();
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
    await this.routes.close();
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
