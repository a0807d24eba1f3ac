/**
 * Signal client (protocol.md §5): registers on ConnectStream, receives and
 * decrypts Body messages, sends through the unary Send with retries, and
 * keeps the stream alive with the self-addressed HEARTBEAT watchdog (§5.5).
 */
import { EventEmitter } from 'node:events';
import { ChannelCredentials, Metadata, status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { formatKey, openMessage, parseKey, publicKeyFromPrivate, sealMessage } from '../crypto/index.js';
import { signalexchange } from '../proto/index.js';
import { PEER_ID_HEADER, PEER_REGISTERED_HEADER } from './server.js';

type EncryptedMessage = signalexchange.EncryptedMessage;
export type SignalBody = signalexchange.Body;
/** Fields of a Body; unset ones get their defaults. */
export type SignalBodyInit = signalexchange.DeepPartial<SignalBody>;

export interface SignalClientOptions {
  /** "host:port" of the Signal server. */
  address: string;
  /** Use TLS (HostConfig.protocol == HTTPS); ignored if credentials is given. */
  tls?: boolean;
  credentials?: ChannelCredentials;
  /** Own WireGuard private key, raw 32 bytes. */
  privateKey: Uint8Array;
  /** Send a self-addressed HEARTBEAT after this long without any message (default 30 s). */
  heartbeatIntervalMs?: number;
  /** Reconnect if the HEARTBEAT does not come back within this long (default 10 s). */
  heartbeatTimeoutMs?: number;
  /** Wait this long for the registration header (default 10 s). */
  registerTimeoutMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Deadline per Send attempt; the number of entries is the number of attempts (default 10, 10, 10, 15 s). */
  sendAttemptTimeoutsMs?: readonly number[];
  /** Extra grpc-js channel options. */
  channelOptions?: Record<string, string | number>;
}

export interface SignalClientEvents {
  /** A decrypted message from `from` (base64 key). HEARTBEATs are not reported. */
  message: [from: string, body: SignalBody];
  connected: [];
  disconnected: [reason: string];
  /** Undecryptable messages; informative only (stream problems show up as 'disconnected'). */
  error: [err: Error];
}

export class SignalError extends Error {
  constructor(
    message: string,
    readonly code?: number,
  ) {
    super(message);
    this.name = 'SignalError';
  }
}

export class SignalClient extends EventEmitter<SignalClientEvents> {
  readonly publicKey: string;
  private readonly privateKey: Buffer;
  private readonly client: signalexchange.SignalExchangeClient;
  private readonly opts: SignalClientOptions;
  private stream: ClientDuplexStream<EncryptedMessage, EncryptedMessage> | null = null;
  private isConnected = false;
  private closed = false;
  private backoff: number;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private opening: Promise<void> | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private connectWaiters: (() => void)[] = [];

  constructor(opts: SignalClientOptions) {
    super();
    this.opts = opts;
    this.privateKey = Buffer.from(opts.privateKey);
    this.publicKey = formatKey(publicKeyFromPrivate(this.privateKey));
    const creds = opts.credentials ?? (opts.tls ? ChannelCredentials.createSsl() : ChannelCredentials.createInsecure());
    this.client = new signalexchange.SignalExchangeClient(opts.address, creds, {
      // Reference keepalive: ping every 30 s, 10 s timeout (the server allows >= 5 s).
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      // Keep the channel's own reconnect backoff in line with ours (grpc-js defaults go up to 120 s).
      'grpc.initial_reconnect_backoff_ms': Math.min(1000, opts.backoffInitialMs ?? 500),
      'grpc.max_reconnect_backoff_ms': opts.backoffMaxMs ?? 30_000,
      ...opts.channelOptions,
    });
    this.backoff = opts.backoffInitialMs ?? 500;
  }

  get connected(): boolean {
    return this.isConnected;
  }

  /**
   * Opens ConnectStream and waits for registration. Rejects if this first
   * attempt fails, but keeps retrying in the background with backoff (and
   * reconnecting whenever the stream is lost) until close().
   */
  async connect(): Promise<void> {
    this.closed = false;
    if (this.isConnected) return;
    if (this.opening) return this.opening;
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    try {
      await this.openOnce();
    } catch (err) {
      this.emit('disconnected', (err as Error).message);
      this.scheduleReconnect();
      throw err;
    }
  }

  /** At most one stream attempt at a time. */
  private openOnce(): Promise<void> {
    if (this.opening === null) {
      this.opening = this.open().finally(() => {
        this.opening = null;
      });
    }
    return this.opening;
  }

  /** connect() without waiting: retries in the background; await ready() to know when. */
  start(): void {
    this.connect().catch(() => {
      // Retried in the background; 'disconnected' carries the reason.
    });
  }

  /** Resolves once connected (immediately if already). */
  ready(): Promise<void> {
    if (this.isConnected) return Promise.resolve();
    return new Promise((resolve) => this.connectWaiters.push(resolve));
  }

  /** Encrypts `body` for `remoteKey` and sends it (up to 4 attempts, as the reference). */
  async send(remoteKey: string, body: SignalBodyInit): Promise<void> {
    const full = signalexchange.Body.fromPartial(body);
    const sealed = sealMessage(signalexchange.Body, full, parseKey(remoteKey, 'remote peer key'), this.privateKey);
    await this.sendEncrypted({ key: this.publicKey, remoteKey, body: sealed });
  }

  /** Sends an already-encrypted message with retries. */
  async sendEncrypted(msg: EncryptedMessage): Promise<void> {
    const timeouts = this.opts.sendAttemptTimeoutsMs ?? [10_000, 10_000, 10_000, 15_000];
    let last: Error | null = null;
    for (let i = 0; i < timeouts.length; i++) {
      if (this.closed) throw new SignalError('signal client closed');
      try {
        await new Promise<void>((resolve, reject) => {
          this.client.send(msg, new Metadata(), { deadline: Date.now() + timeouts[i]! }, (err: ServiceError | null) => (err ? reject(err) : resolve()));
        });
        return;
      } catch (err) {
        last = err as Error;
        if (i < timeouts.length - 1) await sleep(Math.min(200 * 2 ** i, 2000));
      }
    }
    throw new SignalError(`sending to ${msg.remoteKey} via signal ${this.opts.address} failed after ${timeouts.length} attempts: ${last?.message ?? 'unknown error'}`, (last as ServiceError | null)?.code);
  }

  /** Stops reconnecting, cancels the stream and closes the channel. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.stopWatchdog();
    const s = this.stream;
    this.stream = null;
    this.isConnected = false;
    if (s) s.cancel();
    this.client.close();
  }

  private open(): Promise<void> {
    const md = new Metadata();
    md.set(PEER_ID_HEADER, this.publicKey);
    const stream = this.client.connectStream(md);
    this.stream = stream;
    return new Promise<void>((resolve, reject) => {
      let registered = false;
      const regTimeout = this.opts.registerTimeoutMs ?? 10_000;
      const timer = setTimeout(() => fail(new SignalError(`signal ${this.opts.address}: no registration within ${regTimeout} ms`)), regTimeout);
      const fail = (err: Error): void => {
        if (registered) return;
        registered = true; // settled
        clearTimeout(timer);
        if (this.stream === stream) this.stream = null;
        stream.cancel();
        reject(err);
      };
      stream.on('metadata', (m: Metadata) => {
        if (registered) return;
        if (m.get(PEER_REGISTERED_HEADER)[0] !== '1') {
          fail(new SignalError(`signal ${this.opts.address} did not confirm registration (missing ${PEER_REGISTERED_HEADER} header)`));
          return;
        }
        registered = true;
        clearTimeout(timer);
        this.isConnected = true;
        this.backoff = this.opts.backoffInitialMs ?? 500;
        this.armWatchdog();
        const waiters = this.connectWaiters;
        this.connectWaiters = [];
        for (const w of waiters) w();
        this.emit('connected');
        resolve();
      });
      stream.on('data', (msg: EncryptedMessage) => this.onData(msg));
      stream.on('error', (err: ServiceError) => {
        if (!registered) {
          fail(new SignalError(`signal ${this.opts.address}: ${err.details || err.message}`, err.code));
          return;
        }
        this.lost(stream, `${status[err.code] ?? err.code}: ${err.details || err.message}`);
      });
      stream.on('end', () => {
        if (!registered) fail(new SignalError(`signal ${this.opts.address} ended the stream before registration`));
        else this.lost(stream, 'stream ended');
      });
    });
  }

  private onData(msg: EncryptedMessage): void {
    this.armWatchdog();
    let body: SignalBody;
    try {
      body = openMessage(signalexchange.Body, msg.body, parseKey(msg.key, 'sender key'), this.privateKey);
    } catch (err) {
      if (this.listenerCount('error') > 0) this.emit('error', new SignalError(`undecryptable signal message from ${msg.key}: ${(err as Error).message}`));
      return;
    }
    if (body.type === signalexchange.Body_Type.HEARTBEAT) return;
    this.emit('message', msg.key, body);
  }

  /** Watchdog: idle -> send ourselves a HEARTBEAT; no answer -> reconnect. Any received message re-arms it. */
  private armWatchdog(): void {
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = null;
    const interval = this.opts.heartbeatIntervalMs ?? 30_000;
    if (this.idleTimer) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(() => this.onIdle(), interval);
    this.idleTimer.unref();
  }

  private onIdle(): void {
    this.idleTimer = null;
    if (!this.isConnected || this.closed) return;
    const stream = this.stream;
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeatTimer = null;
      if (this.stream === stream && stream) {
        stream.cancel();
        this.lost(stream, 'heartbeat did not come back');
      }
    }, this.opts.heartbeatTimeoutMs ?? 10_000);
    this.heartbeatTimer.unref();
    this.send(this.publicKey, { type: signalexchange.Body_Type.HEARTBEAT }).catch(() => {
      // The heartbeat timer handles a dead path.
    });
  }

  private stopWatchdog(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.idleTimer = null;
    this.heartbeatTimer = null;
  }

  private lost(stream: ClientDuplexStream<EncryptedMessage, EncryptedMessage>, reason: string): void {
    if (this.stream !== stream) return;
    this.stream = null;
    this.isConnected = false;
    this.stopWatchdog();
    this.emit('disconnected', reason);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const max = this.opts.backoffMaxMs ?? 30_000;
    const delay = Math.min(this.backoff, max) * (0.8 + Math.random() * 0.4);
    this.backoff = Math.min(this.backoff * 2, max);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.closed || this.isConnected) return;
      this.openOnce().catch((err: Error) => {
        this.emit('disconnected', err.message);
        this.scheduleReconnect();
      });
    }, delay);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
