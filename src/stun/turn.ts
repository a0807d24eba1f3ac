/**
 * A minimal TURN client over UDP (RFC 5766 / 8656): Allocate with long-term
 * credentials, CreatePermission, ChannelBind, ChannelData, Refresh. Enough
 * for ICE relay candidates and for benchmarking against coturn.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import {
  StunAttr,
  StunClass,
  StunError,
  StunMethod,
  decodeErrorCode,
  decodeStun,
  decodeXorAddress,
  encodeStun,
  encodeXorAddress,
  getAttr,
  type StunAttribute,
  type StunMessage,
  type TransportAddress,
} from './message.js';

export interface TurnClientOptions {
  host: string;
  port?: number;
  username: string;
  password: string;
  /** Socket to use; a new udp4/udp6 socket is bound otherwise. */
  socket?: Socket;
  /** Per-request timeout (with retransmissions); default 3 s. */
  timeoutMs?: number;
}

export type ChannelDataHandler = (channel: number, data: Buffer) => void;

const REQUESTED_TRANSPORT_UDP = Buffer.from([17, 0, 0, 0]);

export class TurnClient {
  readonly socket: Socket;
  private readonly own: boolean;
  private readonly opts: TurnClientOptions;
  private realm = '';
  private nonce = '';
  private key: Buffer | null = null;
  private readonly pending = new Map<string, (msg: StunMessage) => void>();
  private channelHandler: ChannelDataHandler | null = null;
  private refreshTimer: NodeJS.Timeout | null = null;
  relayed: TransportAddress | null = null;
  mapped: TransportAddress | null = null;

  constructor(opts: TurnClientOptions) {
    this.opts = opts;
    this.own = opts.socket === undefined;
    this.socket = opts.socket ?? createSocket(opts.host.includes(':') ? 'udp6' : 'udp4');
    this.socket.on('message', (buf: Buffer) => this.onMessage(buf));
  }

  /** Receives ChannelData payloads (views valid during the call). */
  onChannelData(handler: ChannelDataHandler | null): void {
    this.channelHandler = handler;
  }

  /** Allocates a relayed UDP address (handles the 401 realm/nonce round and stale nonces). */
  async allocate(lifetimeSeconds = 600): Promise<TransportAddress> {
    if (this.own) await new Promise<void>((r) => this.socket.bind(0, r));
    const lifetime = Buffer.alloc(4);
    lifetime.writeUInt32BE(lifetimeSeconds, 0);
    const res = await this.request(StunMethod.Allocate, () => [
      { type: StunAttr.RequestedTransport, value: REQUESTED_TRANSPORT_UDP },
      { type: StunAttr.Lifetime, value: lifetime },
    ]);
    const relayed = decodeXorAddress(getAttr(res, StunAttr.XorRelayedAddress) ?? Buffer.alloc(0), res.transactionId);
    if (relayed === null) throw new StunError('TURN Allocate answer without XOR-RELAYED-ADDRESS');
    this.relayed = relayed;
    const mapped = getAttr(res, StunAttr.XorMappedAddress);
    this.mapped = mapped ? decodeXorAddress(mapped, res.transactionId) : null;
    const granted = getAttr(res, StunAttr.Lifetime)?.readUInt32BE(0) ?? lifetimeSeconds;
    // Refresh well before expiry.
    this.refreshTimer = setInterval(() => void this.refresh(granted).catch(() => {}), Math.max(granted * 500, 30_000));
    this.refreshTimer.unref();
    return relayed;
  }

  async createPermission(peer: { address: string; port: number }): Promise<void> {
    await this.request(StunMethod.CreatePermission, (tid) => [{ type: StunAttr.XorPeerAddress, value: encodeXorAddress(peer, tid) }]);
  }

  /** Binds a channel number (0x4000..0x7FFF) to a peer; also installs the permission. */
  async channelBind(channel: number, peer: { address: string; port: number }): Promise<void> {
    if (channel < 0x4000 || channel > 0x7fff) throw new StunError('TURN channel numbers are 0x4000..0x7FFF');
    const ch = Buffer.alloc(4);
    ch.writeUInt16BE(channel, 0);
    await this.request(StunMethod.ChannelBind, (tid) => [
      { type: StunAttr.ChannelNumber, value: ch },
      { type: StunAttr.XorPeerAddress, value: encodeXorAddress(peer, tid) },
    ]);
  }

  /** Sends data on a bound channel (ChannelData framing, no padding over UDP). */
  sendChannelData(channel: number, data: Uint8Array, offset = 0, length = data.length - offset): void {
    // dgram may keep the buffers until the send completes, so the 4-byte header is fresh per call.
    const hdr = Buffer.allocUnsafe(4);
    hdr.writeUInt16BE(channel, 0);
    hdr.writeUInt16BE(length, 2);
    this.socket.send([hdr, offset === 0 && length === data.length ? data : data.subarray(offset, offset + length)], this.opts.port ?? 3478, this.opts.host);
  }

  /** Releases the allocation (Refresh with lifetime 0) and closes the socket if we own it. */
  async close(): Promise<void> {
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    this.refreshTimer = null;
    if (this.relayed) await this.refresh(0).catch(() => {});
    this.relayed = null;
    this.pending.clear();
    if (this.own) this.socket.close();
  }

  private async refresh(lifetimeSeconds: number): Promise<void> {
    const lifetime = Buffer.alloc(4);
    lifetime.writeUInt32BE(lifetimeSeconds, 0);
    await this.request(StunMethod.Refresh, () => [{ type: StunAttr.Lifetime, value: lifetime }]);
  }

  private onMessage(buf: Buffer): void {
    if (buf.length >= 4 && (buf[0]! & 0xc0) === 0x40) {
      const channel = buf.readUInt16BE(0);
      const len = buf.readUInt16BE(2);
      if (len + 4 <= buf.length && this.channelHandler) this.channelHandler(channel, buf.subarray(4, 4 + len));
      return;
    }
    const msg = decodeStun(buf);
    if (msg === null) return;
    const cb = this.pending.get(msg.transactionId.toString('hex'));
    if (cb) cb(msg);
  }

  /** One authenticated transaction; retries once on 401 (first contact) or 438 (stale nonce). */
  private async request(method: number, build: (tid: Buffer) => StunAttribute[]): Promise<StunMessage> {
    for (let attempt = 0; attempt < 3; attempt++) {
      // Every attempt is a new transaction; XOR-PEER-ADDRESS depends on its ID.
      const tid = randomBytes(12);
      const attrs = build(tid);
      const auth: StunAttribute[] = this.key
        ? [
            { type: StunAttr.Username, value: Buffer.from(this.opts.username) },
            { type: StunAttr.Realm, value: Buffer.from(this.realm) },
            { type: StunAttr.Nonce, value: Buffer.from(this.nonce) },
          ]
        : [];
      const req = encodeStun({ method, cls: StunClass.Request, transactionId: tid, attributes: [...attrs, ...auth] }, this.key ? { integrityKey: this.key, fingerprint: true } : { fingerprint: true });
      const res = await this.transact(req, tid);
      if (res.cls === StunClass.SuccessResponse) return res;
      const err = decodeErrorCode(getAttr(res, StunAttr.ErrorCode) ?? Buffer.alloc(0));
      const code = err?.code ?? 0;
      if ((code === 401 || code === 438) && attempt < 2) {
        const realm = getAttr(res, StunAttr.Realm);
        const nonce = getAttr(res, StunAttr.Nonce);
        if (realm) this.realm = realm.toString();
        if (nonce) this.nonce = nonce.toString();
        this.key = createHash('md5').update(`${this.opts.username}:${this.realm}:${this.opts.password}`).digest();
        continue;
      }
      throw new StunError(`TURN ${methodName(method)} failed: ${code} ${err?.reason ?? ''}`.trim());
    }
    throw new StunError(`TURN ${methodName(method)}: authentication failed (check username/password)`);
  }

  private transact(req: Buffer, tid: Buffer): Promise<StunMessage> {
    const key = tid.toString('hex');
    const port = this.opts.port ?? 3478;
    const timeoutMs = this.opts.timeoutMs ?? 3000;
    return new Promise<StunMessage>((resolve, reject) => {
      let rto = 250;
      let timer: NodeJS.Timeout;
      const deadline = setTimeout(() => {
        clearTimeout(timer);
        this.pending.delete(key);
        reject(new StunError(`no TURN answer from ${this.opts.host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      const send = (): void => {
        this.socket.send(req, port, this.opts.host);
        timer = setTimeout(send, rto);
        rto *= 2;
      };
      this.pending.set(key, (msg) => {
        clearTimeout(timer);
        clearTimeout(deadline);
        this.pending.delete(key);
        resolve(msg);
      });
      send();
    });
  }
}

function methodName(m: number): string {
  for (const [k, v] of Object.entries(StunMethod)) if (v === m) return k;
  return `0x${m.toString(16)}`;
}
