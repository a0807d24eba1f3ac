/**
 * Relay client (protocol.md §7): one WebSocket connection to a relay server,
 * authenticated with the binary token, carrying transport messages to and
 * from other peer IDs. Reconnects with backoff using the newest token.
 */
import { EventEmitter } from 'node:events';
import type { LookupFunction } from 'node:net';
import WebSocket from 'ws';
import { corkForTick } from './cork.js';
import { relayPeerId } from '../crypto/index.js';
import {
  CLOSE_MSG,
  HEALTH_CHECK_MSG,
  MAX_MESSAGE,
  MAX_TRANSPORT_PAYLOAD,
  MsgType,
  PEER_ID_LENGTH,
  RELAY_VERSION,
  TRANSPORT_HEADER_LENGTH,
  decodeAuthResponse,
  encodeAuth,
  encodePeerList,
  relayWebSocketUrl,
  writeTransport,
} from './codec.js';

export type TokenSource = Uint8Array | (() => Uint8Array | Promise<Uint8Array>);

export interface RelayClientOptions {
  /** Relay address, rel://host[:port] or rels://host[:port]. */
  url: string;
  /** Own WireGuard public key (base64); the peer ID is derived from it. */
  publicKey: string;
  /** Binary relay token (relayTokenBinary), or a function returning the newest one (called on every (re)connect). */
  token: TokenSource;
  /** Reconnect after an established connection is lost; default true. */
  reconnect?: boolean;
  /** Close when no health check arrived for this long; default 35 s. */
  healthTimeoutMs?: number;
  /** Wait this long for the AuthResponse; default 8 s. */
  authTimeoutMs?: number;
  /** Reconnect backoff; defaults 500 ms doubling up to 30 s. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Dial this IP instead of resolving the host (Signal relayServerIP); TLS SNI still uses the URL host. */
  dialAddress?: string;
  /** Outbound backlog above which send() drops; default 4 MiB. */
  sendBufferLimit?: number;
  /** Extra TLS options for rels:// (e.g. ca for tests). */
  tls?: { ca?: string | Buffer; rejectUnauthorized?: boolean };
}

export type TransportHandler = (srcPeerId: Buffer, payload: Buffer) => void;

export interface RelayClientEvents {
  connected: [instanceUrl: string];
  disconnected: [reason: string];
  peersOnline: [peerIds: Buffer[]];
  peersOffline: [peerIds: Buffer[]];
  error: [err: Error];
}

export class RelayConnectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RelayConnectError';
  }
}

/**
 * Masks for client frames. WebSocket masking only protects browsers' proxies;
 * a cheap non-zero PRNG mask keeps ws from ever sending our scratch buffer
 * unmasked (a zero mask makes ws skip its copy).
 */
let maskState = (Math.random() * 0xffffffff) >>> 0 || 1;
function generateMask(mask: Buffer): void {
  let x = maskState;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  maskState = x >>> 0 || 1;
  mask.writeUInt32LE(maskState, 0);
}

export class RelayClient extends EventEmitter<RelayClientEvents> {
  readonly peerId: Buffer;
  readonly url: string;
  private readonly opts: RelayClientOptions;
  private ws: WebSocket | null = null;
  private instance = '';
  private isConnected = false;
  private closedByUser = false;
  private everConnected = false;
  private healthTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private dialing: Promise<string> | null = null;
  private backoff: number;
  private transportHandler: TransportHandler | null = null;
  /** Reused for every outgoing transport message; ws copies it while masking. */
  private readonly scratch = Buffer.allocUnsafe(MAX_MESSAGE);
  private readonly subscribed = new Map<string, Buffer>();
  private readonly online = new Set<string>();
  private readonly onlineWaiters = new Map<string, Set<() => void>>();

  constructor(options: RelayClientOptions) {
    super();
    this.opts = options;
    this.url = options.url;
    relayWebSocketUrl(options.url); // validate early
    this.peerId = relayPeerId(options.publicKey);
    this.backoff = options.backoffInitialMs ?? 500;
  }

  /** The relay's instance URL from the AuthResponse (advertise it in Signal). */
  get instanceUrl(): string {
    return this.instance;
  }

  get connected(): boolean {
    return this.isConnected;
  }

  /** Local and remote address of the current connection (remote IP goes into Signal relayServerIP). */
  get remoteAddress(): string | undefined {
    const sock = (this.ws as unknown as { _socket?: { remoteAddress?: string } } | null)?._socket;
    return sock?.remoteAddress;
  }

  /** The single receiver of transport messages; views are only valid during the call. */
  onTransport(handler: TransportHandler | null): void {
    this.transportHandler = handler;
  }

  /** Connects and authenticates; resolves with the instance URL. */
  async connect(): Promise<string> {
    if (this.isConnected) return this.instance;
    this.closedByUser = false;
    // Join an attempt in progress; a pending backoff timer is skipped (the caller wants it now).
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    const url = await this.dialOnce();
    this.everConnected = true;
    return url;
  }

  /** At most one dial at a time. */
  private dialOnce(): Promise<string> {
    if (this.dialing === null) {
      this.dialing = this.dial().finally(() => {
        this.dialing = null;
      });
    }
    return this.dialing;
  }

  /**
   * Sends `payload` (or payload[offset..offset+length]) to a peer ID. Returns
   * false when not connected, the payload is too large or the send buffer is full (dropped).
   */
  send(peerId: Uint8Array, payload: Uint8Array, offset = 0, length = payload.length - offset): boolean {
    const ws = this.ws;
    if (!this.isConnected || ws === null || length > MAX_TRANSPORT_PAYLOAD) return false;
    if (ws.bufferedAmount > (this.opts.sendBufferLimit ?? 4 * 1024 * 1024)) return false;
    const n = writeTransport(this.scratch, peerId, payload, offset, length);
    corkForTick(ws);
    ws.send(this.scratch.subarray(0, n));
    return true;
  }

  /** Subscribes to presence of peers; remembered across reconnects. */
  subscribe(peerIds: readonly Uint8Array[]): void {
    const fresh: Buffer[] = [];
    for (const id of peerIds) {
      const hex = Buffer.from(id).toString('hex');
      if (this.subscribed.has(hex)) continue;
      const copy = Buffer.from(id);
      this.subscribed.set(hex, copy);
      fresh.push(copy);
    }
    if (this.isConnected) for (const m of encodePeerList(MsgType.SubscribePeerState, fresh)) this.ws!.send(m);
  }

  unsubscribe(peerIds: readonly Uint8Array[]): void {
    const gone: Buffer[] = [];
    for (const id of peerIds) {
      const hex = Buffer.from(id).toString('hex');
      const b = this.subscribed.get(hex);
      if (!b) continue;
      this.subscribed.delete(hex);
      this.online.delete(hex);
      gone.push(b);
    }
    if (this.isConnected) for (const m of encodePeerList(MsgType.UnsubscribePeerState, gone)) this.ws!.send(m);
  }

  isPeerOnline(peerId: Uint8Array): boolean {
    return this.online.has(Buffer.from(peerId).toString('hex'));
  }

  /** Subscribes (if needed) and waits until the peer is online; default timeout 30 s as the reference. */
  waitForPeer(peerId: Uint8Array, timeoutMs = 30_000): Promise<void> {
    const hex = Buffer.from(peerId).toString('hex');
    this.subscribe([peerId]);
    if (this.online.has(hex)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let set = this.onlineWaiters.get(hex);
      if (!set) this.onlineWaiters.set(hex, (set = new Set()));
      const done = (): void => {
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(() => {
        set!.delete(done);
        reject(new RelayConnectError(`peer ${hex.slice(8, 24)}… did not come online on ${this.url} within ${timeoutMs} ms`));
      }, timeoutMs);
      set.add(done);
    });
  }

  /** Sends Close (01 04), closes the connection and stops reconnecting. */
  async close(): Promise<void> {
    this.closedByUser = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.stopHealth();
    const ws = this.ws;
    if (ws === null) return;
    await new Promise<void>((resolve) => {
      if (ws.readyState === WebSocket.CLOSED) return resolve();
      const t = setTimeout(() => {
        ws.terminate();
        resolve();
      }, 2000);
      ws.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(CLOSE_MSG);
        ws.close(1000);
      } else ws.terminate();
    });
  }

  private async dial(): Promise<string> {
    const tokenSrc = this.opts.token;
    const token = typeof tokenSrc === 'function' ? await tokenSrc() : tokenSrc;
    const auth = encodeAuth(this.peerId, token);
    const { wsUrl, tls } = relayWebSocketUrl(this.opts.url);
    const dialAddress = this.opts.dialAddress;
    const lookup: LookupFunction | undefined =
      dialAddress !== undefined
        ? (_host, options, cb): void => {
            const family = dialAddress.includes(':') ? 6 : 4;
            if ((options as { all?: boolean }).all) (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: dialAddress, family }]);
            else cb(null, dialAddress, family);
          }
        : undefined;
    const ws = new WebSocket(wsUrl, {
      perMessageDeflate: false,
      maxPayload: MAX_MESSAGE,
      skipUTF8Validation: true,
      generateMask,
      handshakeTimeout: this.opts.authTimeoutMs ?? 8000,
      ...(lookup ? { lookup } : {}),
      ...(tls && this.opts.tls ? this.opts.tls : {}),
    });
    this.ws = ws;
    return new Promise<string>((resolve, reject) => {
      let settled = false;
      let established = false;
      const authTimer = setTimeout(() => fail(new RelayConnectError(`relay ${this.url}: no auth response within ${this.opts.authTimeoutMs ?? 8000} ms`)), this.opts.authTimeoutMs ?? 8000);
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(authTimer);
        ws.terminate();
        reject(err);
      };
      ws.on('error', (err: Error) => {
        if (!settled) fail(new RelayConnectError(`relay ${this.url}: ${err.message}`));
        else if (this.listenerCount('error') > 0) this.emit('error', err);
      });
      ws.on('open', () => ws.send(auth));
      ws.on('close', (code: number) => {
        if (!settled) {
          // The relay closes without a reply on a bad or expired token.
          fail(new RelayConnectError(`relay ${this.url} closed the connection during auth (code ${code}); the relay token may be invalid or expired`));
          return;
        }
        if (established) this.onDisconnect(ws, `closed (code ${code})`);
      });
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (!settled) {
          const url = isBinary ? decodeAuthResponse(data) : null;
          if (url === null) {
            fail(new RelayConnectError(`relay ${this.url}: unexpected answer to auth`));
            return;
          }
          settled = true;
          established = true;
          clearTimeout(authTimer);
          this.instance = url;
          this.isConnected = true;
          this.backoff = this.opts.backoffInitialMs ?? 500;
          this.armHealth();
          const subs = [...this.subscribed.values()];
          for (const m of encodePeerList(MsgType.SubscribePeerState, subs)) ws.send(m);
          this.emit('connected', url);
          resolve(url);
          return;
        }
        if (isBinary) this.onMessage(ws, data);
      });
    });
  }

  private onMessage(ws: WebSocket, data: Buffer): void {
    if (data.length < 2 || data[0] !== RELAY_VERSION) return;
    switch (data[1]) {
      case MsgType.Transport:
        if (data.length >= TRANSPORT_HEADER_LENGTH && this.transportHandler !== null) {
          this.transportHandler(data.subarray(2, TRANSPORT_HEADER_LENGTH), data.subarray(TRANSPORT_HEADER_LENGTH));
        }
        return;
      case MsgType.HealthCheck:
        this.armHealth();
        ws.send(HEALTH_CHECK_MSG);
        return;
      case MsgType.PeersOnline:
      case MsgType.PeersWentOffline: {
        if ((data.length - 2) % PEER_ID_LENGTH !== 0) return;
        const ids: Buffer[] = [];
        const on = data[1] === MsgType.PeersOnline;
        for (let off = 2; off < data.length; off += PEER_ID_LENGTH) {
          const id = Buffer.from(data.subarray(off, off + PEER_ID_LENGTH));
          const hex = id.toString('hex');
          if (on) {
            this.online.add(hex);
            const waiters = this.onlineWaiters.get(hex);
            if (waiters) {
              this.onlineWaiters.delete(hex);
              for (const w of waiters) w();
            }
          } else this.online.delete(hex);
          ids.push(id);
        }
        this.emit(on ? 'peersOnline' : 'peersOffline', ids);
        return;
      }
      case MsgType.Close:
        ws.close(1000);
        return;
      default:
        return;
    }
  }

  private armHealth(): void {
    this.stopHealth();
    const ws = this.ws;
    this.healthTimer = setTimeout(() => {
      // No health check from the server: the path is dead.
      if (ws && this.ws === ws) {
        ws.terminate();
      }
    }, this.opts.healthTimeoutMs ?? 35_000);
    this.healthTimer.unref();
  }

  private stopHealth(): void {
    if (this.healthTimer) clearTimeout(this.healthTimer);
    this.healthTimer = null;
  }

  private onDisconnect(ws: WebSocket, reason: string): void {
    if (this.ws !== ws) return;
    this.isConnected = false;
    this.stopHealth();
    // Presence is unknown until we resubscribe.
    const wasOnline = [...this.online].map((h) => Buffer.from(h, 'hex'));
    this.online.clear();
    if (wasOnline.length > 0) this.emit('peersOffline', wasOnline);
    this.emit('disconnected', reason);
    if (!this.closedByUser && this.everConnected && (this.opts.reconnect ?? true)) this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.closedByUser) return;
    const max = this.opts.backoffMaxMs ?? 30_000;
    const delay = Math.min(this.backoff, max) * (0.8 + Math.random() * 0.4);
    this.backoff = Math.min(this.backoff * 2, max);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.closedByUser || this.isConnected) return;
      this.dialOnce().catch((err: Error) => {
        this.emit('disconnected', err.message);
        this.scheduleReconnect();
      });
    }, delay);
  }
}

/**
 * Home relay selection (§7.7): connects to the advertised relay URLs in
 * parallel (at most 7 at a time) and keeps the first that authenticates; the
 * others are closed. Rejects if none does.
 */
export async function connectHomeRelay(urls: readonly string[], opts: Omit<RelayClientOptions, 'url'>): Promise<RelayClient> {
  if (urls.length === 0) throw new RelayConnectError('no relay URLs to connect to');
  const errors: string[] = [];
  let winner: RelayClient | null = null;
  const queue = [...urls];
  await new Promise<void>((resolve) => {
    let running = 0;
    const next = (): void => {
      while (winner === null && running < 7 && queue.length > 0) {
        const url = queue.shift()!;
        running++;
        let c: RelayClient;
        try {
          c = new RelayClient({ ...opts, url });
        } catch (err) {
          errors.push(`${url}: ${(err as Error).message}`);
          running--;
          continue;
        }
        c.connect().then(
          () => {
            running--;
            if (winner === null) {
              winner = c;
              resolve();
            } else void c.close(); // a slower relay: not needed
          },
          (err: Error) => {
            running--;
            errors.push(err.message);
            void c.close();
            if (winner === null && running === 0 && queue.length === 0) resolve();
            else next();
          },
        );
      }
      if (winner === null && running === 0 && queue.length === 0) resolve();
    };
    next();
  });
  if (winner === null) throw new RelayConnectError(`no relay server reachable: ${errors.join('; ')}`);
  return winner;
}
