/**
 * The relay server (protocol.md §7): an authenticated packet switch between
 * peer IDs over WebSocket. It is mounted by an HTTP server through
 * handleUpgrade() so it can share the Management port at /relay.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { verifyRelayToken } from '../crypto/index.js';
import { corkForTick } from './cork.js';
import {
  CLOSE_MSG,
  HEALTH_CHECK_MSG,
  MAX_AUTH_MESSAGE,
  MAX_MESSAGE,
  MsgType,
  PEER_ID_LENGTH,
  RELAY_VERSION,
  TRANSPORT_HEADER_LENGTH,
  decodeAuth,
  encodeAuthResponse,
  encodePeerList,
} from './codec.js';

export type RelayLogLevel = 'debug' | 'info' | 'warn';
export type RelayLogger = (level: RelayLogLevel, msg: string, fields?: Record<string, unknown>) => void;

export interface RelayServerOptions {
  /** Shared secret with Management (relay --auth-secret). */
  authSecret: string;
  /** Public address with scheme, returned in AuthResponse, e.g. "rels://relay.example.com:443". */
  instanceUrl: string;
  /** WebSocket path; default "/relay". */
  path?: string;
  /** Time a new connection has to authenticate; default 10 s. */
  handshakeTimeoutMs?: number;
  /** Health-check send period; default 25 s. */
  healthCheckIntervalMs?: number;
  /** Close when no health-check answer arrived within this window; default 45 s. */
  healthCheckTimeoutMs?: number;
  /** Cap on connections that have not authenticated yet (flood bound); default 1024. */
  maxPendingHandshakes?: number;
  /** Cap on all connections; default 65536. */
  maxConnections?: number;
  /** Per-connection outbound backlog (bytes) above which forwarded messages are dropped; default 1 MiB. */
  sendBufferLimit?: number;
  /** Proxies whose X-Real-Ip / X-Real-Port headers are believed (for logs). */
  trustedProxies?: string[];
  /** Clock in Unix seconds for token expiry (tests). */
  nowSeconds?: () => number;
  log?: RelayLogger;
}

export interface RelayServerStats {
  /** All open WebSocket connections. */
  connections: number;
  /** Connections that completed Auth and are registered. */
  peers: number;
  /** Connections waiting for Auth. */
  pendingHandshakes: number;
  forwardedMessages: number;
  forwardedBytes: number;
  /** Transport messages dropped: destination absent or its send buffer full. */
  droppedMessages: number;
  authFailures: number;
  /** Upgrades refused because of the connection caps. */
  refusedConnections: number;
  /** Connections closed for protocol violations (text frames, bad version, oversize, ...). */
  protocolErrors: number;
}

/** One WebSocket connection, authenticated or not. */
class Conn {
  id: Buffer | null = null;
  idHex = '';
  idHash = 0;
  authed = false;
  closed = false;
  lastHealthAck = 0;
  handshakeTimer: NodeJS.Timeout | null = null;
  /** Next connection in the same hash bucket (collisions of the 31-bit key). */
  nextInBucket: Conn | null = null;
  /** Hex peer IDs this connection subscribed to. */
  readonly subscriptions = new Set<string>();
  constructor(
    readonly ws: WebSocket,
    readonly remote: string,
  ) {}
}

/** Hash-map key for a peer ID at buf[off..off+36]: 31 bits of the SHA-256 digest, a small integer so Map lookups don't allocate. */
function idKey(buf: Buffer, off: number): number {
  return buf.readInt32LE(off + 4) >> 1;
}

const noop = (): void => {};
/** Presence subscriptions one connection may hold (memory bound per connection). */
const MAX_SUBSCRIPTIONS_PER_CONN = 4096;

export class RelayServer {
  private readonly wss: WebSocketServer;
  private readonly opts: Required<Omit<RelayServerOptions, 'log' | 'nowSeconds' | 'trustedProxies'>> & Pick<RelayServerOptions, 'log'>;
  private readonly trustedProxies: Set<string>;
  private readonly nowSeconds: () => number;
  private readonly peers = new Map<number, Conn>();
  private readonly conns = new Set<Conn>();
  private readonly subscribers = new Map<string, Set<Conn>>();
  private readonly authResponse: Buffer;
  private healthTimer: NodeJS.Timeout | null = null;
  private pending = 0;
  private peerCount = 0;
  private closing = false;
  private counters = { forwardedMessages: 0, forwardedBytes: 0, droppedMessages: 0, authFailures: 0, refusedConnections: 0, protocolErrors: 0 };

  constructor(options: RelayServerOptions) {
    if (typeof options.authSecret !== 'string' || options.authSecret === '') throw new Error('RelayServer: authSecret is required (the secret shared with Management)');
    this.opts = {
      authSecret: options.authSecret,
      instanceUrl: options.instanceUrl,
      path: options.path ?? '/relay',
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
      healthCheckIntervalMs: options.healthCheckIntervalMs ?? 25_000,
      healthCheckTimeoutMs: options.healthCheckTimeoutMs ?? 45_000,
      maxPendingHandshakes: options.maxPendingHandshakes ?? 1024,
      maxConnections: options.maxConnections ?? 65_536,
      sendBufferLimit: options.sendBufferLimit ?? 1024 * 1024,
      log: options.log,
    };
    this.trustedProxies = new Set(options.trustedProxies ?? []);
    this.nowSeconds = options.nowSeconds ?? ((): number => Math.floor(Date.now() / 1000));
    this.authResponse = encodeAuthResponse(options.instanceUrl);
    // maxPayload makes ws close (1009) on anything above the server read buffer
    // instead of buffering it; compression is off because relayed WireGuard
    // packets don't compress and inflate bombs are a memory risk.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE, perMessageDeflate: false, clientTracking: false, skipUTF8Validation: true });
    this.healthTimer = setInterval(() => this.healthTick(), this.opts.healthCheckIntervalMs);
    this.healthTimer.unref();
  }

  get instanceUrl(): string {
    return this.opts.instanceUrl;
  }

  /** Handles an HTTP upgrade request; anything but the relay path is answered 404. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q >= 0 ? url.slice(0, q) : url;
    if (path !== this.opts.path) {
      rejectUpgrade(socket, 404, 'Not Found');
      return;
    }
    if (this.closing) {
      rejectUpgrade(socket, 503, 'Service Unavailable');
      return;
    }
    if (this.pending >= this.opts.maxPendingHandshakes || this.conns.size >= this.opts.maxConnections) {
      this.counters.refusedConnections++;
      rejectUpgrade(socket, 503, 'Service Unavailable');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, req));
  }

  /** Peer IDs (hex) currently registered. */
  connectedPeers(): string[] {
    const out: string[] = [];
    for (const c of this.conns) if (c.authed) out.push(c.idHex);
    return out;
  }

  stats(): RelayServerStats {
    return { connections: this.conns.size, peers: this.peerCount, pendingHandshakes: this.pending, ...this.counters };
  }

  /** Sends Close (01 04) to every connection, closes them and stops timers. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.healthTimer = null;
    const waits: Promise<void>[] = [];
    for (const c of this.conns) {
      waits.push(
        new Promise<void>((resolve) => {
          if (c.ws.readyState === c.ws.CLOSED) return resolve();
          const t = setTimeout(() => {
            c.ws.terminate();
            resolve();
          }, 2000);
          c.ws.once('close', () => {
            clearTimeout(t);
            resolve();
          });
          if (c.ws.readyState === c.ws.OPEN) {
            if (c.authed) c.ws.send(CLOSE_MSG);
            c.ws.close(1001, 'server shutting down');
          } else c.ws.terminate();
        }),
      );
    }
    await Promise.all(waits);
    this.wss.close();
  }

  private log(level: RelayLogLevel, msg: string, fields?: Record<string, unknown>): void {
    this.opts.log?.(level, msg, fields);
  }

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    let remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`;
    if (req.socket.remoteAddress !== undefined && this.trustedProxies.has(req.socket.remoteAddress)) {
      const ip = req.headers['x-real-ip'];
      const port = req.headers['x-real-port'];
      if (typeof ip === 'string' && ip !== '') remote = `${ip}:${typeof port === 'string' ? port : '0'}`;
    }
    const conn = new Conn(ws, remote);
    this.conns.add(conn);
    this.pending++;
    conn.handshakeTimer = setTimeout(() => {
      conn.handshakeTimer = null;
      this.drop(conn, 'handshake timeout');
    }, this.opts.handshakeTimeoutMs);
    ws.on('error', (err: Error) => {
      // ws reports oversize frames (1009) and framing errors here before closing.
      this.counters.protocolErrors++;
      this.log('debug', 'relay connection error', { remote: conn.remote, err: err.message });
    });
    ws.on('close', () => this.onClose(conn));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        this.counters.protocolErrors++;
        this.drop(conn, 'text frame');
        return;
      }
      if (conn.authed) this.onMessage(conn, data);
      else this.onAuth(conn, data);
    });
  }

  private onAuth(conn: Conn, data: Buffer): void {
    if (conn.closed) return;
    if (data.length > MAX_AUTH_MESSAGE || data.length < 2 || data[0] !== RELAY_VERSION || data[1] !== MsgType.Auth) {
      // Hello (legacy), oversize auth, any other first message: no reply, just close.
      this.counters.authFailures++;
      this.drop(conn, data.length >= 2 && data[1] === MsgType.Hello ? 'legacy hello rejected' : 'expected auth message');
      return;
    }
    const auth = decodeAuth(data);
    if (!auth || auth.peerId.compare(Buffer.from('sha-'), 0, 4, 0, 4) !== 0) {
      this.counters.authFailures++;
      this.drop(conn, 'malformed auth message');
      return;
    }
    const check = verifyRelayToken(this.opts.authSecret, auth.token, this.nowSeconds());
    if (!check.ok) {
      this.counters.authFailures++;
      this.drop(conn, `auth failed: ${check.reason}`);
      return;
    }
    if (conn.handshakeTimer) clearTimeout(conn.handshakeTimer);
    conn.handshakeTimer = null;
    conn.id = Buffer.from(auth.peerId);
    conn.idHex = conn.id.toString('hex');
    conn.idHash = idKey(conn.id, 0);
    conn.authed = true;
    conn.lastHealthAck = Date.now();
    this.pending--;
    this.register(conn);
    conn.ws.send(this.authResponse);
    this.notify(conn.idHex, MsgType.PeersOnline, conn.id);
    this.log('debug', 'relay peer authenticated', { remote: conn.remote, peer: conn.idHex });
  }

  private onMessage(src: Conn, data: Buffer): void {
    if (data.length < 2 || data[0] !== RELAY_VERSION) {
      this.counters.protocolErrors++;
      this.drop(src, 'bad protocol version');
      return;
    }
    switch (data[1]) {
      case MsgType.Transport: {
        if (data.length < TRANSPORT_HEADER_LENGTH) {
          this.counters.droppedMessages++;
          return;
        }
        const dst = this.lookup(data, 2);
        if (dst === null || dst.closed || dst.ws.bufferedAmount > this.opts.sendBufferLimit) {
          // No queueing: the destination is gone or can't keep up; WireGuard retransmits.
          this.counters.droppedMessages++;
          return;
        }
        // Rewrite the destination ID to the source in place; ws gave us a buffer of our own.
        src.id!.copy(data, 2);
        corkForTick(dst.ws);
        dst.ws.send(data);
        this.counters.forwardedMessages++;
        this.counters.forwardedBytes += data.length - TRANSPORT_HEADER_LENGTH;
        return;
      }
      case MsgType.HealthCheck:
        src.lastHealthAck = Date.now();
        return;
      case MsgType.Close:
        src.ws.close(1000);
        return;
      case MsgType.SubscribePeerState:
        this.onSubscribe(src, data);
        return;
      case MsgType.UnsubscribePeerState:
        this.onUnsubscribe(src, data);
        return;
      case MsgType.Auth:
      case MsgType.Hello:
        this.counters.protocolErrors++;
        this.drop(src, 'unexpected handshake message');
        return;
      default:
        // Unknown types from an authenticated peer are ignored (forward compatibility).
        this.log('debug', 'ignored relay message', { type: data[1], peer: src.idHex });
    }
  }

  private onSubscribe(conn: Conn, data: Buffer): void {
    if ((data.length - 2) % PEER_ID_LENGTH !== 0) {
      this.counters.protocolErrors++;
      return;
    }
    const online: Buffer[] = [];
    for (let off = 2; off < data.length; off += PEER_ID_LENGTH) {
      const hex = data.toString('hex', off, off + PEER_ID_LENGTH);
      if (conn.subscriptions.has(hex)) {
        if (this.lookup(data, off) !== null) online.push(data.subarray(off, off + PEER_ID_LENGTH));
        continue;
      }
      // Bound per-connection bookkeeping: a peer has no business watching more than this.
      if (conn.subscriptions.size >= MAX_SUBSCRIPTIONS_PER_CONN) break;
      conn.subscriptions.add(hex);
      let set = this.subscribers.get(hex);
      if (!set) this.subscribers.set(hex, (set = new Set()));
      set.add(conn);
      if (this.lookup(data, off) !== null) online.push(data.subarray(off, off + PEER_ID_LENGTH));
    }
    for (const msg of encodePeerList(MsgType.PeersOnline, online)) this.sendControl(conn, msg);
  }

  private onUnsubscribe(conn: Conn, data: Buffer): void {
    if ((data.length - 2) % PEER_ID_LENGTH !== 0) {
      this.counters.protocolErrors++;
      return;
    }
    for (let off = 2; off < data.length; off += PEER_ID_LENGTH) this.unsubscribe(conn, data.toString('hex', off, off + PEER_ID_LENGTH));
  }

  private unsubscribe(conn: Conn, hex: string): void {
    conn.subscriptions.delete(hex);
    const set = this.subscribers.get(hex);
    if (set) {
      set.delete(conn);
      if (set.size === 0) this.subscribers.delete(hex);
    }
  }

  /** Tells subscribers of `hex` that the peer came online / went offline. */
  private notify(hex: string, type: typeof MsgType.PeersOnline | typeof MsgType.PeersWentOffline, id: Buffer): void {
    const set = this.subscribers.get(hex);
    if (!set || set.size === 0) return;
    const msg = encodePeerList(type, [id])[0]!;
    for (const c of set) if (c.authed && !c.closed) this.sendControl(c, msg);
  }

  /** Control messages are small and rare; still, never queue unboundedly. */
  private sendControl(conn: Conn, msg: Buffer): void {
    if (conn.ws.readyState !== conn.ws.OPEN) return;
    if (conn.ws.bufferedAmount > this.opts.sendBufferLimit * 4) {
      this.drop(conn, 'send buffer overflow');
      return;
    }
    conn.ws.send(msg);
  }

  private lookup(buf: Buffer, off: number): Conn | null {
    let c = this.peers.get(idKey(buf, off)) ?? null;
    while (c !== null && buf.compare(c.id!, 0, PEER_ID_LENGTH, off, off + PEER_ID_LENGTH) !== 0) c = c.nextInBucket;
    return c;
  }

  private register(conn: Conn): void {
    const existing = this.lookup(conn.id!, 0);
    if (existing !== null) {
      // Same peer connected again: the newest connection wins.
      this.unregister(existing);
      existing.authed = false;
      if (existing.ws.readyState === existing.ws.OPEN) existing.ws.send(CLOSE_MSG);
      this.drop(existing, 'replaced by a new connection', 1000);
    }
    conn.nextInBucket = this.peers.get(conn.idHash) ?? null;
    this.peers.set(conn.idHash, conn);
    this.peerCount++;
  }

  private unregister(conn: Conn): boolean {
    let c = this.peers.get(conn.idHash) ?? null;
    let prev: Conn | null = null;
    while (c !== null && c !== conn) {
      prev = c;
      c = c.nextInBucket;
    }
    if (c === null) return false;
    if (prev === null) {
      if (conn.nextInBucket) this.peers.set(conn.idHash, conn.nextInBucket);
      else this.peers.delete(conn.idHash);
    } else prev.nextInBucket = conn.nextInBucket;
    conn.nextInBucket = null;
    this.peerCount--;
    return true;
  }

  private onClose(conn: Conn): void {
    if (conn.handshakeTimer) clearTimeout(conn.handshakeTimer);
    conn.handshakeTimer = null;
    this.conns.delete(conn);
    conn.closed = true;
    if (!conn.authed && conn.id === null) this.pending--;
    for (const hex of [...conn.subscriptions]) this.unsubscribe(conn, hex);
    if (conn.authed && this.unregister(conn)) {
      conn.authed = false;
      if (!this.closing) this.notify(conn.idHex, MsgType.PeersWentOffline, conn.id!);
    }
    conn.authed = false;
  }

  /** Ends a connection without any relay-level reply. */
  private drop(conn: Conn, reason: string, code?: number): void {
    if (conn.closed) return;
    conn.closed = true;
    this.log('debug', 'relay connection dropped', { remote: conn.remote, peer: conn.idHex || undefined, reason });
    if (code !== undefined) {
      conn.ws.close(code);
      // A peer that doesn't complete the close handshake is cut after a while.
      setTimeout(() => conn.ws.terminate(), 5000).unref();
    } else conn.ws.terminate();
  }

  private healthTick(): void {
    const now = Date.now();
    for (const c of this.conns) {
      if (!c.authed || c.closed) continue;
      if (now - c.lastHealthAck > this.opts.healthCheckTimeoutMs) {
        this.drop(c, 'health check timeout');
        continue;
      }
      if (c.ws.readyState === c.ws.OPEN) c.ws.send(HEALTH_CHECK_MSG, noop);
    }
  }
}

function rejectUpgrade(socket: Duplex, status: number, text: string): void {
  if (socket.writable) socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.destroy();
}
