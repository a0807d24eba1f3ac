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
}

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

  /** Full config: `timeBasedTurn` false for LoginResponse (static TURN credentials), true for Sync. */
  full(timeBasedTurn: boolean): management.NetbirdConfig {
    return {
      stuns: (this.config.stuns ?? []).map((uri) => ({ uri, protocol: management.HostConfig_Protocol.UDP })),
      turns: this.turns(timeBasedTurn),
      signal: this.signal(),
      relay: this.relayConfig(),
      flow: undefined,
      metrics: { enabled: this.config.metricsEnabled ?? false },
    };
  }

  /**
   * Credential refresh (protocol.md §4.5): a fresh relay token, plus fresh TURN credentials when
   * `withTurn`; STUN omitted (clients keep the previous list when it is empty).
   */
  refresh(withTurn: boolean): management.NetbirdConfig {
    return {
      stuns: [],
      turns: withTurn ? this.turns(true) : [],
      signal: this.signal(),
      relay: this.relayConfig(),
      flow: undefined,
      metrics: { enabled: this.config.metricsEnabled ?? false },
    };
  }
}
