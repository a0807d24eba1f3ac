import * as grpc from '@grpc/grpc-js';
import { formatKey, openMessage, parseKey, sealMessage, type KeyPair } from '../crypto/index.js';
import { management } from '../proto/index.js';

/** How to reach a management server given as a URL: http:// is h2c, https:// is TLS. */
export interface GrpcTarget {
  readonly target: string;
  readonly tls: boolean;
}

/** Parses "https://host[:port]" / "http://host[:port]" (IPv6 in brackets) into a grpc target. */
export function parseGrpcUrl(url: string): GrpcTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`invalid URL ${JSON.stringify(url)}: expected http(s)://host[:port], e.g. https://netbird.example.com:443`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new Error(`unsupported URL scheme ${JSON.stringify(u.protocol)} in ${url}: use http:// or https://`);
  }
  const tls = u.protocol === 'https:';
  const port = u.port || (tls ? '443' : '80');
  return { target: `${u.hostname}:${port}`, tls };
}

export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // Network maps of big accounts exceed gRPC's 4 MiB default (protocol.md §2.1).
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
};

/** A management error the caller must act on (PermissionDenied: log in again; NotFound: bad setup key ...). */
export class ManagementError extends Error {
  override readonly name = 'ManagementError';
  constructor(readonly code: grpc.status, message: string) {
    super(message);
  }
}

function asManagementError(err: unknown): ManagementError {
  const e = err as Partial<grpc.ServiceError>;
  const code = typeof e.code === 'number' ? e.code : grpc.status.UNKNOWN;
  return new ManagementError(code, e.details || e.message || String(err));
}

export interface SyncHandlers {
  /** A decrypted SyncResponse (full map, map update, or config-only refresh). */
  onResponse(resp: management.SyncResponse): void;
  /** Stream state changes; `error` set when it went down. */
  onState?(connected: boolean, error?: ManagementError): void;
  /** PermissionDenied: the peer must log in again; the sync loop has stopped. */
  onFatal?(error: ManagementError): void;
}

export interface SyncHandle {
  stop(): void;
}

/** Backoff of the reference client for management streams: 0.8 s, x1.7, max 10 s (jitter added by the caller). */
export function nextBackoff(previousMs: number): number {
  return previousMs === 0 ? 800 : Math.min(previousMs * 1.7, 10_000);
}

function jitter(ms: number): number {
  return Math.round(ms * (0.75 + Math.random() * 0.5));
}

/** Client side of management.ManagementService with the envelope encryption of protocol.md §3. */
export class ManagementClient {
  private readonly client: management.ManagementServiceClient;
  private readonly publicKeyText: string;

  constructor(
    readonly url: string,
    private readonly keys: KeyPair,
  ) {
    const { target, tls } = parseGrpcUrl(url);
    const creds = tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure();
    this.client = new management.ManagementServiceClient(target, creds, CHANNEL_OPTIONS);
    this.publicKeyText = formatKey(keys.publicKey);
  }

  close(): void {
    this.client.close();
  }

  private deadline(ms = 15_000): grpc.CallOptions {
    return { deadline: Date.now() + ms };
  }

  async isHealthy(): Promise<boolean> {
    return new Promise((resolve) => this.client.isHealthy({}, new grpc.Metadata(), this.deadline(5000), (err) => resolve(!err)));
  }

  /** Fetches the server's envelope key (it may change on every server restart, so call it before each RPC). */
  async getServerKey(): Promise<Buffer> {
    const resp = await new Promise<management.ServerKeyResponse>((resolve, reject) =>
      this.client.getServerKey({}, new grpc.Metadata(), this.deadline(), (err, r) => (err ? reject(asManagementError(err)) : resolve(r))),
    );
    return parseKey(resp.key, 'management server key');
  }

  private seal<T>(codec: { encode(m: T): { finish(): Uint8Array }; decode(b: Uint8Array): T }, msg: T, serverKey: Buffer): management.EncryptedMessage {
    return { wgPubKey: this.publicKeyText, body: sealMessage(codec, msg, serverKey, this.keys.privateKey), version: 0 };
  }

  private open<T>(codec: { encode(m: T): { finish(): Uint8Array }; decode(b: Uint8Array): T }, msg: management.EncryptedMessage, serverKey: Buffer): T {
    return openMessage(codec, msg.body, serverKey, this.keys.privateKey);
  }

  /** Logs in (or registers, with a setup key or JWT). PermissionDenied means registration is needed. */
  async login(req: { setupKey?: string; jwtToken?: string; meta: management.PeerSystemMeta; dnsLabels?: string[]; sshPubKey?: string }): Promise<management.LoginResponse> {
    const serverKey = await this.getServerKey();
    const login = management.LoginRequest.fromPartial({
      setupKey: req.setupKey ?? '',
      jwtToken: req.jwtToken ?? '',
      meta: req.meta,
      dnsLabels: req.dnsLabels ?? [],
      peerKeys: { sshPubKey: Buffer.from(req.sshPubKey ?? ''), wgPubKey: Buffer.from(this.publicKeyText, 'ascii') },
    });
    const resp = await new Promise<management.EncryptedMessage>((resolve, reject) =>
      this.client.login(this.seal(management.LoginRequest, login, serverKey), new grpc.Metadata(), this.deadline(), (err, r) => (err ? reject(asManagementError(err)) : resolve(r))),
    );
    return this.open(management.LoginResponse, resp, serverKey);
  }

  async syncMeta(meta: management.PeerSystemMeta): Promise<void> {
    const serverKey = await this.getServerKey();
    await new Promise<void>((resolve, reject) =>
      this.client.syncMeta(this.seal(management.SyncMetaRequest, { meta }, serverKey), new grpc.Metadata(), this.deadline(), (err) => (err ? reject(asManagementError(err)) : resolve())),
    );
  }

  /** Deletes this peer on the server. */
  async logout(): Promise<void> {
    const serverKey = await this.getServerKey();
    await new Promise<void>((resolve, reject) =>
      this.client.logout(this.seal(management.Empty, {}, serverKey), new grpc.Metadata(), this.deadline(), (err) => (err ? reject(asManagementError(err)) : resolve())),
    );
  }

  /**
   * Opens the Sync stream and keeps it open: reconnects with backoff (re-fetching the server key each time)
   * until stop() or a PermissionDenied.
   */
  sync(meta: () => management.PeerSystemMeta, handlers: SyncHandlers): SyncHandle {
    let stopped = false;
    let call: grpc.ClientReadableStream<management.EncryptedMessage> | undefined;
    let timer: NodeJS.Timeout | undefined;
    let backoff = 0;

    const schedule = (err: ManagementError): void => {
      if (stopped) return;
      handlers.onState?.(false, err);
      if (err.code === grpc.status.PERMISSION_DENIED) {
        stopped = true;
        handlers.onFatal?.(err);
        return;
      }
      backoff = nextBackoff(backoff);
      timer = setTimeout(connect, jitter(backoff));
    };

    const connect = (): void => {
      if (stopped) return;
      this.getServerKey().then(
        (serverKey) => {
          if (stopped) return;
          const c = this.client.sync(this.seal(management.SyncRequest, { meta: meta() }, serverKey));
          call = c;
          let failed = false;
          let announced = false;
          const fail = (err: ManagementError): void => {
            if (failed) return;
            failed = true;
            if (call === c) call = undefined;
            schedule(err);
          };
          c.on('data', (msg: management.EncryptedMessage) => {
            let resp: management.SyncResponse;
            try {
              resp = this.open(management.SyncResponse, msg, serverKey);
            } catch (e) {
              // The server key changed under us: reconnect, which re-fetches it.
              c.cancel();
              fail(new ManagementError(grpc.status.INVALID_ARGUMENT, `cannot decrypt sync message: ${(e as Error).message}`));
              return;
            }
            if (!announced) {
              announced = true;
              backoff = 0;
              handlers.onState?.(true);
            }
            handlers.onResponse(resp);
          });
          c.on('error', (err) => fail(asManagementError(err)));
          c.on('end', () => fail(new ManagementError(grpc.status.UNAVAILABLE, 'sync stream ended by the server')));
        },
        (err: unknown) => schedule(err instanceof ManagementError ? err : asManagementError(err)),
      );
    };

    connect();
    return {
      stop: () => {
        stopped = true;
        if (timer) clearTimeout(timer);
        call?.cancel();
      },
    };
  }
}
