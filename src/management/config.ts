import { issueRelayToken, turnCredentials } from '../crypto/index.js';
import { management } from '../proto/index.js';

/**
 * Infrastructure settings Management hands to peers (NetbirdConfig, protocol.md §4.9.3), and the
 * credentials derived from them: relay tokens (§7.6) and time-based TURN credentials (§9.2).
 */
export interface InfraConfig {
  /** Signal address "host:port" and whether it uses TLS. */
  signal?: { uri: string; tls: boolean };
  /** NetBird relay URLs (rel://host:port or rels://host:port) and the shared auth secret. */
  relay?: { urls: string[]; secret: string; ttlSeconds?: number };
  /** STUN URIs, e.g. "stun:stun.example.com:3478". */
  stuns?: string[];
  /**
   * TURN URIs, e.g. "turn:turn.example.com:3478?transport=udp". With `secret`, time-based
   * credentials (coturn use-auth-secret) are issued on Sync; `user`/`password` are the static ones
   * (always used in LoginResponse).
   */
  turn?: { uris: string[]; secret?: string; ttlSeconds?: number; user?: string; password?: string };
  metricsEnabled?: boolean;
  /**
   * Our traffic-event collector: URL peers stream to, the token secret it checks, the aggregation interval.
   * Sent (as FlowConfig) only to peers whose account turned traffic events on.
   */
  flow?: { url: string; secret: string; intervalSeconds?: number; ttlSeconds?: number };
}

/** Per peer: whether its account (and group) has traffic events on, and with counters. */
export interface FlowSwitch {
  enabled: boolean;
  counters: boolean;
}

export const DEFAULT_FLOW_INTERVAL_SECONDS = 60;

export const DEFAULT_CREDENTIAL_TTL_SECONDS = 12 * 3600;

export class NetbirdConfigBuilder {
  constructor(
    readonly config: InfraConfig,
    private readonly nowSeconds: () => number = () => Math.floor(Date.now() / 1000),
  ) {}

  get relayTtlSeconds(): number | undefined {
    return this.config.relay ? (this.config.relay.ttlSeconds ?? DEFAULT_CREDENTIAL_TTL_SECONDS) : undefined;
  }

  /** TTL of time-based TURN credentials, or undefined when TURN credentials are static/absent. */
  get turnTtlSeconds(): number | undefined {
    return this.config.turn?.secret ? (this.config.turn.ttlSeconds ?? DEFAULT_CREDENTIAL_TTL_SECONDS) : undefined;
  }

  relayConfig(): management.RelayConfig | undefined {
    const r = this.config.relay;
    if (!r || r.urls.length === 0) return undefined;
    const token = issueRelayToken(r.secret, this.relayTtlSeconds!, this.nowSeconds());
    return { urls: [...r.urls], tokenPayload: token.payload, tokenSignature: token.signature };
  }

  private turns(timeBased: boolean): management.ProtectedHostConfig[] {
    const t = this.config.turn;
    if (!t || t.uris.length === 0) return [];
    let user = t.user ?? '';
    let password = t.password ?? '';
    if (timeBased && t.secret) {
      const c = turnCredentials(t.secret, this.turnTtlSeconds!, this.nowSeconds());
      user = c.user;
      password = c.password;
    }
    return t.uris.map((uri) => ({ hostConfig: { uri, protocol: uri.includes('transport=tcp') ? management.HostConfig_Protocol.TCP : management.HostConfig_Protocol.UDP }, user, password }));
  }

  private signal(): management.HostConfig | undefined {
    const s = this.config.signal;
    if (!s) return undefined;
    return { uri: s.uri, protocol: s.tls ? management.HostConfig_Protocol.HTTPS : management.HostConfig_Protocol.HTTP };
  }

  /**
   * FlowConfig for a peer (protocol.md §8): absent when no collector is configured; `enabled` false when
   * the account (or the peer's groups) has traffic events off, so a peer that had them stops.
   */
  flowConfig(sw: FlowSwitch | undefined): management.FlowConfig | undefined {
    const f = this.config.flow;
    if (!f) return undefined;
    const on = sw?.enabled ?? false;
    const token = on ? issueRelayToken(f.secret, f.ttlSeconds ?? DEFAULT_CREDENTIAL_TTL_SECONDS, this.nowSeconds()) : undefined;
    return {
      url: f.url,
      tokenPayload: token?.payload ?? '',
      tokenSignature: token?.signature ?? '',
      interval: { seconds: f.intervalSeconds ?? DEFAULT_FLOW_INTERVAL_SECONDS, nanos: 0 },
      enabled: on,
      counters: on && (sw?.counters ?? false),
      exitNodeCollection: false,
      dnsCollection: false,
    };
  }

  /** Full config: `timeBasedTurn` false for LoginResponse (static TURN credentials), true for Sync. */
  full(timeBasedTurn: boolean, flow?: FlowSwitch): management.NetbirdConfig {
    return {
      stuns: (this.config.stuns ?? []).map((uri) => ({ uri, protocol: management.HostConfig_Protocol.UDP })),
      turns: this.turns(timeBasedTurn),
      signal: this.signal(),
      relay: this.relayConfig(),
      flow: this.flowConfig(flow),
      metrics: { enabled: this.config.metricsEnabled ?? false },
    };
  }

  /**
   * Credential refresh (protocol.md §4.5): a fresh relay token, plus fresh TURN credentials when
   * `withTurn`; STUN omitted (clients keep the previous list when it is empty).
   */
  refresh(withTurn: boolean, flow?: FlowSwitch): management.NetbirdConfig {
    return {
      stuns: [],
      turns: withTurn ? this.turns(true) : [],
      signal: this.signal(),
      relay: this.relayConfig(),
      flow: this.flowConfig(flow),
      metrics: { enabled: this.config.metricsEnabled ?? false },
    };
  }
}
