/**
 * The WireGuard device: joins a TUN device, an optional packet filter and one
 * or more binds, and runs the protocol state (noise.ts, peer.ts) over them.
 *
 *   outbound: TUN -> filter.outbound -> allowed-IPs route -> encrypt -> bind
 *   inbound:  bind -> decrypt -> replay check -> allowed-IPs source check -> filter.inbound -> TUN
 *
 * Everything runs on the event loop in whole batches. Encryption writes into
 * preallocated per-bind batch buffers and decryption into a preallocated TUN
 * batch; a packet costs no buffer allocation, only the small views sodium
 * needs for its length-checked arguments. One interval tick drives the
 * timers of every peer.
 */
import { sodium } from './sodium.js';
import type { TunDevice } from '../tun/types.js';
import { AllowedIps } from './allowedips.js';
import type { Bind, Endpoint, PacketBatch } from './bind.js';
import {
  COOKIE_REPLY_LEN, INITIATION_LEN, INITIATION_MAC1_OFF, MSG_COOKIE_REPLY, MSG_INITIATION, MSG_RESPONSE,
  MSG_TRANSPORT, PADDING_MULTIPLE, RESPONSE_LEN, RESPONSE_MAC1_OFF, TAG_LEN, TRANSPORT_HEADER_LEN,
  TRANSPORT_MIN_LEN, resolveTimers, type TimerConfig,
} from './constants.js';
import { CookieChecker } from './cookie.js';
import { keyFromBase64, keyToBase64, randomU32 } from './crypto.js';
import {
  ConsumeResult, HandshakeStage, StaticIdentity, consumeResponse, createInitiation, createResponse,
  deriveTransportKeys, finishInitiation, openInitiation,
} from './noise.js';
import { Keypair, Peer, TimerAction } from './peer.js';

export type KeyInput = Buffer | string;

/** Optional stateful packet filter on the plaintext path; return false to drop. */
export interface PacketFilter {
  inbound(pkt: Buffer): boolean;
  outbound(pkt: Buffer): boolean;
}

export interface DeviceLogger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

export interface DeviceOptions {
  /** Our X25519 private key (32 bytes or WireGuard base64). */
  privateKey: KeyInput;
  tun: TunDevice;
  binds?: Bind[];
  /** Overrides of protocol timers/limits (ms), mainly for tests. */
  timers?: Partial<TimerConfig>;
  logger?: DeviceLogger;
  /** Monotonic clock in ms (tests may inject one). Default: performance.now(). */
  now?: () => number;
  /** Wall clock in ms since the epoch, for TAI64N timestamps and lastHandshake. Default: Date.now. */
  wallClock?: () => number;
  /** Do not start the interval tick (tests then call device.tick()). */
  manualTick?: boolean;
}

export interface PeerConfig {
  publicKey: KeyInput;
  /** Replaces the peer's allowed IPs ("10.0.0.2/32", "fd00::/64"). */
  allowedIps: string[];
  endpoint?: Endpoint;
  /** Seconds between keepalives when idle; 0 or undefined disables. */
  persistentKeepalive?: number;
  presharedKey?: KeyInput;
}

export interface PeerStats {
  publicKey: string;
  /** Current endpoint as text ("203.0.113.5:51820"), "" if none. */
  endpoint: string;
  /** Kind of bind the endpoint belongs to ("udp", "relay", ...), "" if none. */
  endpointKind: string;
  allowedIps: string[];
  /** Wall-clock ms of the last completed handshake, 0 if never. */
  lastHandshake: number;
  /** Round trip of our last handshake initiation over the current path (ms); 0 until we initiated one. */
  handshakeRttMs: number;
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
  persistentKeepalive: number;
  /** Packets waiting for a handshake to finish. */
  stagedPackets: number;
  /** True while a session key is usable for sending. */
  hasSession: boolean;
}

/** Packets the device refused, by reason. */
export interface DropCounters {
  /** Shorter than the smallest valid message / IP header. */
  short: number;
  /** Unknown message type, wrong handshake size, bad inner IP header. */
  malformed: number;
  /** Transport counter already seen or outside the window; replayed initiation timestamp. */
  replayed: number;
  /** Handshake message with a wrong MAC1, or an unusable cookie reply. */
  badMac: number;
  /** AEAD authentication failed (transport or handshake). */
  badAuth: number;
  /** Receiver index or initiator static key unknown. */
  unknownPeer: number;
  /** No peer's allowed IPs cover the destination of an outgoing packet. */
  noRoute: number;
  /** Decrypted packet's source address not in the sending peer's allowed IPs. */
  notAllowed: number;
  /** Handshake refused for load: cookie demanded, rate limit, initiation too soon. */
  handshakeFlood: number;
  /** Refused by the packet filter. */
  filtered: number;
  /** Transport packet for a session that expired. */
  expired: number;
  /** Staged packet dropped because the peer's queue was full or the handshake gave up. */
  queueOverflow: number;
}

export interface DeviceStats {
  publicKey: string;
  peers: PeerStats[];
  drops: DropCounters;
  handshakesCompleted: number;
  cookieRepliesSent: number;
  underLoad: boolean;
}

const MAX_BATCH = 128;
const BATCH_BYTES = 512 * 1024;

/** A reusable outgoing batch (one per bind, one for the TUN). */
class OutBatch implements PacketBatch {
  readonly buf: Buffer = Buffer.allocUnsafe(BATCH_BYTES);
  readonly offsets = new Uint32Array(MAX_BATCH);
  readonly lengths = new Uint32Array(MAX_BATCH);
  count = 0;
  readonly to: Endpoint[] = [];
  private used = 0;

  constructor(private readonly sink: (b: OutBatch) => void) {}

  /** Offset where `n` bytes may be written (flushing first if the batch is full). */
  reserve(n: number): number {
    if (this.count === MAX_BATCH || this.used + n > BATCH_BYTES) this.flush();
    return this.used;
  }

  /** Appends the packet written at the last reserve() offset. */
  commit(len: number, to: Endpoint | null): void {
    const i = this.count++;
    this.offsets[i] = this.used;
    this.lengths[i] = len;
    if (to !== null) this.to[i] = to;
    this.used += (len + 15) & ~15;
  }

  flush(): void {
    if (this.count === 0) return;
    if (this.to.length > this.count) this.to.length = this.count;
    try {
      this.sink(this);
    } finally {
      this.count = 0;
      this.used = 0;
    }
  }
}

interface IndexEntry {
  peer: Peer;
  /** Null while the index names a handshake we initiated and no session exists yet. */
  keypair: Keypair | null;
}

function toKey(k: KeyInput, what: string): Buffer {
  if (typeof k === 'string') return keyFromBase64(k, what);
  if (k.length !== 32) throw new Error(`${what} must be 32 bytes, got ${k.length}`);
  return Buffer.from(k);
}

const noopLogger: DeviceLogger = { debug() {}, info() {}, warn() {} };

export class Device {
  private identity: StaticIdentity;
  private readonly t: TimerConfig;
  private readonly tun: TunDevice;
  private readonly binds: Bind[] = [];
  private readonly log: DeviceLogger;
  private readonly clock: () => number;
  private readonly wallClock: () => number;
  private readonly peers = new Map<string, Peer>();
  private readonly allowed = new AllowedIps<Peer>();
  private readonly indices = new Map<number, IndexEntry>();
  private readonly cookieChecker: CookieChecker;
  private readonly outBatches = new Map<Bind, OutBatch>();
  private readonly tunOut: OutBatch;
  private filter: PacketFilter | undefined;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** True while a batch or tick is being processed (re-entrancy guard). */
  private busy = false;
  private readonly mtu: number;
  // Reusable scratch: nonces and one handshake message buffer.
  private readonly nonceTx = Buffer.alloc(12);
  private readonly nonceRx = Buffer.alloc(12);
  private readonly hsBuf = Buffer.alloc(256);
  // Load detection for the cookie mechanism.
  private hsWindowStart = 0;
  private hsWindowCount = 0;
  private underLoadUntil = -Infinity;
  private readonly ratelimit = new Map<string, { tokens: number; last: number }>();
  private readonly drops: DropCounters = {
    short: 0, malformed: 0, replayed: 0, badMac: 0, badAuth: 0, unknownPeer: 0, noRoute: 0, notAllowed: 0,
    handshakeFlood: 0, filtered: 0, expired: 0, queueOverflow: 0,
  };
  private handshakesCompleted = 0;
  private cookieRepliesSent = 0;

  constructor(opts: DeviceOptions) {
    this.identity = new StaticIdentity(toKey(opts.privateKey, 'private key'));
    this.t = resolveTimers(opts.timers);
    this.tun = opts.tun;
    this.mtu = opts.tun.mtu;
    this.log = opts.logger ?? noopLogger;
    this.clock = opts.now ?? (() => performance.now());
    this.wallClock = opts.wallClock ?? Date.now;
    this.cookieChecker = new CookieChecker(this.identity, this.t.cookieRefreshTime, this.clock());
    this.tunOut = new OutBatch((b) => this.tun.write(b));
    this.tun.setReadHandler((batch) => this.enter(batch, null, false));
    for (const b of opts.binds ?? []) this.addBind(b);
    if (!opts.manualTick) {
      this.timer = setInterval(() => this.tick(), this.t.tickInterval);
      this.timer.unref();
    }
  }

  get publicKey(): string {
    return keyToBase64(this.identity.publicKey);
  }

  // ------------------------------------------------------------------ configuration

  addBind(bind: Bind): void {
    if (this.binds.includes(bind)) return;
    this.binds.push(bind);
    this.batchFor(bind);
    bind.setReceiveHandler((batch, from) => this.enter(batch, from, true));
  }

  /** Forget a bind (peers whose endpoint is on it keep the endpoint until it roams). Does not close it. */
  removeBind(bind: Bind): void {
    const i = this.binds.indexOf(bind);
    if (i >= 0) this.binds.splice(i, 1);
    this.outBatches.get(bind)?.flush();
    this.outBatches.delete(bind);
  }

  setFilter(f?: PacketFilter): void {
    this.filter = f;
  }

  setPrivateKey(key: KeyInput): void {
    const id = new StaticIdentity(toKey(key, 'private key'));
    if (id.publicKey.equals(this.identity.publicKey)) return;
    this.identity = id;
    this.cookieChecker.setIdentity(id);
    // A peer with our own public key would be pointless (and wireguard-go removes it).
    if (this.peers.has(keyToBase64(id.publicKey))) this.removePeer(id.publicKey);
    for (const p of this.peers.values()) {
      this.dropSessions(p);
      p.handshake.rekeyLocal(id);
      // Like wireguard-go's ExpireCurrentKeypairs: the next packet may start a handshake at once.
      p.lastSentHandshake = -Infinity;
    }
  }

  /** Adds a peer or updates an existing one (allowed IPs are replaced). */
  setPeer(cfg: PeerConfig): void {
    const pub = toKey(cfg.publicKey, 'peer public key');
    const b64 = keyToBase64(pub);
    if (pub.equals(this.identity.publicKey)) throw new Error('cannot add our own public key as a peer');
    let peer = this.peers.get(b64);
    const isNew = !peer;
    if (!peer) {
      peer = new Peer(this.identity, pub, this.t);
      this.peers.set(b64, peer);
    }
    if (cfg.presharedKey !== undefined) toKey(cfg.presharedKey, 'preshared key').copy(peer.handshake.presharedKey);
    this.allowed.removePeer(peer);
    for (const ip of cfg.allowedIps) this.allowed.insert(ip, peer);
    if (cfg.endpoint) peer.endpoint = cfg.endpoint;
    const oldKa = peer.persistentKeepalive;
    peer.persistentKeepalive = cfg.persistentKeepalive ?? 0;
    const now = this.clock();
    if (peer.persistentKeepalive > 0 && (isNew || oldKa !== peer.persistentKeepalive) && peer.endpoint) {
      // As wireguard-go: turning keepalive on sends one now, which also brings the session up.
      this.sendKeepalive(peer, now);
      this.flushBinds();
    } else if (cfg.endpoint && peer.staged.length > 0) {
      this.sendStaged(peer, now);
      this.flushBinds();
    }
  }

  removePeer(publicKey: KeyInput): boolean {
    const b64 = keyToBase64(toKey(publicKey, 'peer public key'));
    const peer = this.peers.get(b64);
    if (!peer) return false;
    this.peers.delete(b64);
    this.allowed.removePeer(peer);
    this.dropSessions(peer);
    peer.stopAllTimers();
    peer.staged = [];
    return true;
  }

  /** Moves a peer to another path (UDP / relay / ICE); pending packets are sent there. */
  setPeerEndpoint(publicKey: KeyInput, endpoint: Endpoint): void {
    const peer = this.peers.get(keyToBase64(toKey(publicKey, 'peer public key')));
    if (!peer) throw new Error(`unknown peer ${String(publicKey)}: add it with setPeer first`);
    peer.endpoint = endpoint;
    if (peer.staged.length > 0) {
      this.sendStaged(peer, this.clock());
      this.flushBinds();
    }
  }

  /** Starts a handshake now (normally traffic or keepalive does this). */
  initiateHandshake(publicKey: KeyInput): void {
    const peer = this.peers.get(keyToBase64(toKey(publicKey, 'peer public key')));
    if (!peer) return;
    this.sendInitiation(peer, false, this.clock());
    this.flushBinds();
  }

  peerStats(publicKey: KeyInput): PeerStats | undefined {
    const peer = this.peers.get(keyToBase64(toKey(publicKey, 'peer public key')));
    return peer ? this.statsOf(peer) : undefined;
  }

  stats(): DeviceStats {
    return {
      publicKey: this.publicKey,
      peers: [...this.peers.values()].map((p) => this.statsOf(p)),
      drops: { ...this.drops },
      handshakesCompleted: this.handshakesCompleted,
      cookieRepliesSent: this.cookieRepliesSent,
      underLoad: this.clock() < this.underLoadUntil,
    };
  }

  private statsOf(p: Peer): PeerStats {
    return {
      publicKey: p.publicKeyB64,
      endpoint: p.endpoint ? p.endpoint.toString() : '',
      endpointKind: p.endpoint ? p.endpoint.bind.kind : '',
      allowedIps: this.allowed.entriesFor(p),
      lastHandshake: p.lastHandshake,
      handshakeRttMs: p.handshakeRttMs,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      rxPackets: p.rxPackets,
      txPackets: p.txPackets,
      persistentKeepalive: p.persistentKeepalive,
      stagedPackets: p.staged.length,
      hasSession: p.canSend(p.current, this.clock()),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const p of this.peers.values()) {
      this.dropSessions(p);
      p.stopAllTimers();
      p.staged = [];
    }
    this.peers.clear();
    this.allowed.clear();
    const results = await Promise.allSettled([...this.binds.map((b) => b.close()), this.tun.close()]);
    for (const r of results) if (r.status === 'rejected') this.log.warn(`wireguard: close: ${String(r.reason)}`);
  }

  // ------------------------------------------------------------------ timers

  /** One step of the timer wheel for all peers (called by the interval, or by tests). */
  tick(): void {
    if (this.closed) return;
    if (this.busy) {
      queueMicrotask(() => this.tick());
      return;
    }
    this.busy = true;
    try {
      this.runTimers();
    } finally {
      this.busy = false;
    }
  }

  private runTimers(): void {
    const now = this.clock();
    for (const peer of this.peers.values()) {
      const a = peer.expire(now);
      if (a === TimerAction.None) continue;
      if (a & TimerAction.ZeroKeys) {
        this.log.debug(`wireguard: ${peer.publicKeyB64}: zeroing keys after 3*REJECT_AFTER_TIME`);
        this.dropSessions(peer);
      }
      if (a & TimerAction.GiveUp) {
        this.log.info(`wireguard: ${peer.publicKeyB64}: handshake did not complete after ${this.t.rekeyAttemptTime} ms, giving up`);
        this.drops.queueOverflow += peer.staged.length;
        peer.staged = [];
      }
      if (a & TimerAction.RetryInitiation) this.sendInitiation(peer, true, now);
      if (a & TimerAction.SendInitiation) this.sendInitiation(peer, false, now);
      if (a & TimerAction.SendKeepalive) this.sendKeepalive(peer, now);
    }
    if (this.ratelimit.size > 0) {
      for (const [k, v] of this.ratelimit) if (now - v.last > 1000) this.ratelimit.delete(k);
    }
    this.flushBinds();
  }

  // ------------------------------------------------------------------ outbound data path

  /**
   * Entry for batches from the TUN and the binds. A bind or TUN that called
   * back synchronously from inside send()/write() would find our batch
   * buffers half-built, so such a nested batch is copied and run afterwards.
   */
  private enter(batch: PacketBatch, from: readonly Endpoint[] | null, fromBind: boolean): void {
    if (this.closed) return;
    if (this.busy) {
      const copy = copyBatch(batch);
      const f = from ? [...from] : null;
      queueMicrotask(() => this.enter(copy, f, fromBind));
      return;
    }
    this.busy = true;
    try {
      if (fromBind) this.onBindBatch(batch, from!);
      else this.onTunBatch(batch);
    } finally {
      this.busy = false;
    }
  }

  private onTunBatch(batch: PacketBatch): void {
    const now = this.clock();
    const buf = batch.buf;
    const filter = this.filter;
    for (let i = 0; i < batch.count; i++) {
      const off = batch.offsets[i]!;
      const len = batch.lengths[i]!;
      if (len < 20) {
        this.drops.short++;
        continue;
      }
      const version = buf[off]! >> 4;
      let peer: Peer | null;
      if (version === 4) peer = this.allowed.lookup4(buf, off + 16);
      else if (version === 6 && len >= 40) peer = this.allowed.lookup6(buf, off + 24);
      else {
        this.drops.malformed++;
        continue;
      }
      if (peer === null) {
        this.drops.noRoute++;
        continue;
      }
      if (filter !== undefined && !filter.outbound(buf.subarray(off, off + len))) {
        this.drops.filtered++;
        continue;
      }
      const kp = peer.current;
      if (peer.staged.length === 0 && peer.endpoint !== null && peer.canSend(kp, now)) {
        this.encryptTo(peer, kp, buf, off, len, now);
        if (peer.wantsRekeyAfterSend(kp, now)) this.sendInitiation(peer, false, now);
      } else {
        if (!peer.stage(buf, off, len, this.t.maxStagedPackets)) this.drops.queueOverflow++;
        this.sendStaged(peer, now);
      }
    }
    this.flushBinds();
  }

  /** Encrypts one packet (len 0 = keepalive) into the batch of the peer's bind. Caller checked keypair and endpoint. */
  private encryptTo(peer: Peer, kp: Keypair, src: Buffer, srcOff: number, len: number, now: number): void {
    const ep = peer.endpoint!;
    const ob = this.batchFor(ep.bind);
    const padded = paddedLength(len, this.mtu);
    const total = TRANSPORT_HEADER_LEN + padded + TAG_LEN;
    const o = ob.reserve(total);
    const out = ob.buf;
    const counter = kp.sendCounter++;
    const lo = counter >>> 0;
    const hi = (counter - lo) / 0x1_0000_0000;
    out.writeUInt32LE(MSG_TRANSPORT, o);
    out.writeUInt32LE(kp.remoteIndex, o + 4);
    out.writeUInt32LE(lo, o + 8);
    out.writeUInt32LE(hi, o + 12);
    const nonce = this.nonceTx;
    nonce.writeUInt32LE(lo, 4);
    nonce.writeUInt32LE(hi, 8);
    const p = o + TRANSPORT_HEADER_LEN;
    if (len > 0) src.copy(out, p, srcOff, srcOff + len);
    if (padded > len) out.fill(0, p + len, p + padded);
    // In place: libsodium allows the ciphertext to start where the plaintext does.
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out.subarray(p, p + padded + TAG_LEN), out.subarray(p, p + padded), null, null, nonce, kp.sendKey);
    ob.commit(total, ep);
    peer.txBytes += total;
    peer.txPackets++;
    peer.anyAuthenticatedPacketTraversal(now);
    peer.anyAuthenticatedPacketSent();
    if (len > 0) peer.dataSent(now);
  }

  /** Sends staged packets if a session exists; otherwise asks for a handshake. */
  private sendStaged(peer: Peer, now: number): void {
    const kp = peer.current;
    if (!peer.canSend(kp, now) || peer.endpoint === null) {
      this.sendInitiation(peer, false, now);
      return;
    }
    const staged = peer.staged;
    peer.staged = [];
    for (const pkt of staged) {
      if (!peer.canSend(kp, now)) {
        // Ran out of nonces mid-way: keep the rest for the next session.
        peer.staged.push(pkt);
        continue;
      }
      this.encryptTo(peer, kp, pkt, 0, pkt.length, now);
    }
    if (peer.staged.length > 0 || peer.wantsRekeyAfterSend(kp, now)) this.sendInitiation(peer, false, now);
  }

  private sendKeepalive(peer: Peer, now: number): void {
    if (peer.staged.length === 0) peer.staged.push(EMPTY_PACKET);
    this.sendStaged(peer, now);
  }

  // ------------------------------------------------------------------ handshake (send side)

  private sendInitiation(peer: Peer, isRetry: boolean, now: number): void {
    if (!isRetry) peer.handshakeAttempts = 0;
    if (peer.endpoint === null) {
      // Nowhere to send: keep the retransmit timer running so we try again (and give up) as usual,
      // without spending the rate limit, so setPeerEndpoint can start the handshake at once.
      this.log.debug(`wireguard: ${peer.publicKeyB64}: no endpoint, handshake waits`);
      if (peer.retransmitAt === Infinity) peer.handshakeInitiated(now);
      return;
    }
    if (now - peer.lastSentHandshake < this.t.rekeyTimeout) return;
    peer.lastSentHandshake = now;
    this.forgetHandshakeIndex(peer);
    const idx = this.newIndex();
    const msg = this.hsBuf.subarray(0, INITIATION_LEN);
    if (!createInitiation(this.identity, peer.handshake, msg, idx, this.wallClock())) {
      this.log.warn(`wireguard: ${peer.publicKeyB64}: cannot create handshake (low-order public key?)`);
      return;
    }
    this.indices.set(idx, { peer, keypair: null });
    peer.cookies.addMacs(msg, INITIATION_MAC1_OFF, now);
    peer.anyAuthenticatedPacketTraversal(now);
    peer.anyAuthenticatedPacketSent();
    this.sendControl(peer.endpoint, msg);
    peer.handshakeInitiated(now);
  }

  private sendControl(to: Endpoint, msg: Buffer): void {
    const ob = this.batchFor(to.bind);
    const o = ob.reserve(msg.length);
    msg.copy(ob.buf, o);
    ob.commit(msg.length, to);
  }

  /** Removes the index of a handshake that never produced a keypair. */
  private forgetHandshakeIndex(peer: Peer): void {
    const hs = peer.handshake;
    if (hs.localIndex === 0 && hs.stage === HandshakeStage.Zeroed) return;
    const e = this.indices.get(hs.localIndex);
    if (e && e.peer === peer && e.keypair === null) this.indices.delete(hs.localIndex);
  }

  private newIndex(): number {
    for (;;) {
      const i = randomU32();
      if (i !== 0 && !this.indices.has(i)) return i;
    }
  }

  private beginSession(peer: Peer, isInitiator: boolean, now: number): void {
    const hs = peer.handshake;
    const { send, recv } = deriveTransportKeys(hs, isInitiator);
    const kp = new Keypair(peer, send, recv, isInitiator, hs.localIndex, hs.remoteIndex, now);
    this.indices.set(kp.localIndex, { peer, keypair: kp });
    if (isInitiator) {
      if (peer.next !== null) {
        const next = peer.next;
        peer.next = null;
        this.deleteKeypair(peer.previous);
        peer.previous = next;
        this.deleteKeypair(peer.current);
      } else {
        this.deleteKeypair(peer.previous);
        peer.previous = peer.current;
      }
      peer.current = kp;
    } else {
      this.deleteKeypair(peer.next);
      peer.next = kp;
      this.deleteKeypair(peer.previous);
      peer.previous = null;
    }
    peer.sessionDerived(now);
  }

  private deleteKeypair(kp: Keypair | null): void {
    if (kp === null) return;
    const e = this.indices.get(kp.localIndex);
    if (e && e.keypair === kp) this.indices.delete(kp.localIndex);
    kp.zero();
  }

  private dropSessions(peer: Peer): void {
    this.deleteKeypair(peer.previous);
    this.deleteKeypair(peer.current);
    this.deleteKeypair(peer.next);
    peer.previous = peer.current = peer.next = null;
    this.forgetHandshakeIndex(peer);
    peer.handshake.clear();
  }

  // ------------------------------------------------------------------ inbound path

  private onBindBatch(batch: PacketBatch, from: readonly Endpoint[]): void {
    const now = this.clock();
    const buf = batch.buf;
    for (let i = 0; i < batch.count; i++) {
      const off = batch.offsets[i]!;
      const len = batch.lengths[i]!;
      const src = from[i];
      if (len < 4 || src === undefined) {
        this.drops.short++;
        continue;
      }
      // Type is a little-endian u32: the three reserved bytes must be zero.
      const type = buf.readUInt32LE(off);
      if (type === MSG_TRANSPORT) {
        if (len < TRANSPORT_MIN_LEN) this.drops.short++;
        else this.receiveTransport(buf, off, len, src, now);
      } else if (type === MSG_INITIATION || type === MSG_RESPONSE || type === MSG_COOKIE_REPLY) {
        this.receiveHandshake(type, buf, off, len, src, now);
      } else {
        this.drops.malformed++;
      }
    }
    try {
      this.tunOut.flush();
    } catch (err) {
      this.log.warn(`wireguard: TUN write failed: ${String(err)}`);
    }
    this.flushBinds();
  }

  private receiveTransport(buf: Buffer, off: number, len: number, src: Endpoint, now: number): void {
    const entry = this.indices.get(buf.readUInt32LE(off + 4));
    const kp = entry?.keypair;
    if (kp === undefined || kp === null) {
      this.drops.unknownPeer++;
      return;
    }
    const peer = kp.peer;
    if (now - kp.created >= this.t.rejectAfterTime) {
      this.drops.expired++;
      return;
    }
    const lo = buf.readUInt32LE(off + 8);
    const hi = buf.readUInt32LE(off + 12);
    // Counters beyond 2^53 cannot come from an honest peer and would lose precision.
    if (hi >= 0x20_0000) {
      this.drops.replayed++;
      return;
    }
    const counter = hi * 0x1_0000_0000 + lo;
    if (counter >= this.t.rejectAfterMessages) {
      this.drops.replayed++;
      return;
    }
    const nonce = this.nonceRx;
    nonce.writeUInt32LE(lo, 4);
    nonce.writeUInt32LE(hi, 8);
    const ptLen = len - TRANSPORT_MIN_LEN;
    const ob = this.tunOut;
    const o = ob.reserve(ptLen);
    const out = ob.buf;
    try {
      sodium.crypto_aead_chacha20poly1305_ietf_decrypt(
        out.subarray(o, o + ptLen), null, buf.subarray(off + TRANSPORT_HEADER_LEN, off + len), null, nonce, kp.recvKey,
      );
    } catch {
      this.drops.badAuth++;
      return;
    }
    if (!kp.replay.validate(counter, this.t.rejectAfterMessages)) {
      this.drops.replayed++;
      return;
    }
    // Authenticated from here on.
    if (kp === peer.next) {
      // First packet on the responder's new session confirms it: rotate.
      this.deleteKeypair(peer.previous);
      peer.previous = peer.current;
      peer.current = kp;
      peer.next = null;
      peer.handshakeComplete(this.wallClock());
      this.handshakesCompleted++;
      if (peer.staged.length > 0) this.sendStaged(peer, now);
    }
    if (peer.wantsRekeyAfterReceive(kp, now)) this.sendInitiation(peer, false, now);
    peer.anyAuthenticatedPacketTraversal(now);
    peer.anyAuthenticatedPacketReceived();
    if (peer.endpoint !== src && (peer.endpoint === null || peer.endpoint.key !== src.key)) peer.endpoint = src;
    peer.rxBytes += len;
    peer.rxPackets++;
    if (ptLen === 0) return; // keepalive
    let innerLen: number;
    const version = out[o]! >> 4;
    if (version === 4 && ptLen >= 20) {
      innerLen = out.readUInt16BE(o + 2);
      if (innerLen < 20 || innerLen > ptLen) {
        this.drops.malformed++;
        return;
      }
      if (this.allowed.lookup4(out, o + 12) !== peer) {
        this.drops.notAllowed++;
        return;
      }
    } else if (version === 6 && ptLen >= 40) {
      innerLen = 40 + out.readUInt16BE(o + 4);
      if (innerLen > ptLen) {
        this.drops.malformed++;
        return;
      }
      if (this.allowed.lookup6(out, o + 8) !== peer) {
        this.drops.notAllowed++;
        return;
      }
    } else {
      this.drops.malformed++;
      return;
    }
    peer.dataReceived(now);
    const filter = this.filter;
    if (filter !== undefined && !filter.inbound(out.subarray(o, o + innerLen))) {
      this.drops.filtered++;
      return;
    }
    ob.commit(innerLen, null);
  }

  private isUnderLoad(now: number): boolean {
    if (now - this.hsWindowStart >= 1000) {
      this.hsWindowStart = now;
      this.hsWindowCount = 0;
    }
    if (++this.hsWindowCount > this.t.underLoadThreshold) this.underLoadUntil = now + this.t.underLoadAfterTime;
    return now < this.underLoadUntil;
  }

  private allowHandshakeFrom(src: Endpoint, now: number): boolean {
    const key = sourceIdentity(src);
    let b = this.ratelimit.get(key);
    if (!b) {
      b = { tokens: this.t.ratelimitBurst, last: now };
      this.ratelimit.set(key, b);
    }
    b.tokens = Math.min(this.t.ratelimitBurst, b.tokens + ((now - b.last) * this.t.ratelimitPerSecond) / 1000);
    b.last = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private receiveHandshake(type: number, buf: Buffer, off: number, len: number, src: Endpoint, now: number): void {
    if (type === MSG_COOKIE_REPLY) {
      if (len !== COOKIE_REPLY_LEN) {
        this.drops.malformed++;
        return;
      }
      const entry = this.indices.get(buf.readUInt32LE(off + 4));
      if (!entry) {
        this.drops.unknownPeer++;
        return;
      }
      if (!entry.peer.cookies.consumeReply(buf.subarray(off, off + len), now)) this.drops.badMac++;
      else this.log.debug(`wireguard: ${entry.peer.publicKeyB64}: got cookie, next handshake carries MAC2`);
      return;
    }
    const expectLen = type === MSG_INITIATION ? INITIATION_LEN : RESPONSE_LEN;
    if (len !== expectLen) {
      this.drops.malformed++;
      return;
    }
    const macOff = type === MSG_INITIATION ? INITIATION_MAC1_OFF : RESPONSE_MAC1_OFF;
    const msg = buf.subarray(off, off + len);
    const underLoad = this.isUnderLoad(now);
    if (!this.cookieChecker.checkMac1(msg, macOff)) {
      this.drops.badMac++;
      return;
    }
    if (underLoad) {
      const source = Buffer.from(sourceIdentity(src));
      if (!this.cookieChecker.checkMac2(msg, macOff, source, now)) {
        // Prove you own your address before we spend a Diffie-Hellman on you.
        const reply = this.hsBuf.subarray(0, COOKIE_REPLY_LEN);
        this.cookieChecker.createReply(msg, macOff, source, now, reply);
        this.sendControl(src, reply);
        this.cookieRepliesSent++;
        this.drops.handshakeFlood++;
        return;
      }
      if (!this.allowHandshakeFrom(src, now)) {
        this.drops.handshakeFlood++;
        return;
      }
    }
    if (type === MSG_INITIATION) this.receiveInitiation(msg, src, now);
    else this.receiveResponse(msg, src, now);
  }

  private receiveInitiation(msg: Buffer, src: Endpoint, now: number): void {
    const opened = openInitiation(this.identity, msg);
    if (!opened) {
      this.drops.badAuth++;
      return;
    }
    const peer = this.peers.get(keyToBase64(opened.remoteStatic));
    if (!peer) {
      this.drops.unknownPeer++;
      return;
    }
    const hs = peer.handshake;
    const pendingIndex = hs.localIndex;
    const pendingStage = hs.stage;
    const r = finishInitiation(hs, opened, msg, now, this.t.handshakeInitiationRate);
    if (r !== ConsumeResult.Ok) {
      if (r === ConsumeResult.Replay) this.drops.replayed++;
      else if (r === ConsumeResult.Flood) this.drops.handshakeFlood++;
      else this.drops.badAuth++;
      return;
    }
    // Our own initiation in flight (if any) is superseded by theirs.
    if (pendingStage === HandshakeStage.InitiationCreated) {
      const e = this.indices.get(pendingIndex);
      if (e && e.peer === peer && e.keypair === null) this.indices.delete(pendingIndex);
    }
    peer.endpoint = src;
    peer.anyAuthenticatedPacketTraversal(now);
    peer.anyAuthenticatedPacketReceived();
    const idx = this.newIndex();
    const resp = this.hsBuf.subarray(0, RESPONSE_LEN);
    if (!createResponse(hs, resp, idx)) {
      this.drops.badAuth++;
      return;
    }
    peer.cookies.addMacs(resp, RESPONSE_MAC1_OFF, now);
    peer.lastSentHandshake = now;
    this.beginSession(peer, false, now);
    this.sendControl(src, resp);
    peer.anyAuthenticatedPacketTraversal(now);
    peer.anyAuthenticatedPacketSent();
  }

  private receiveResponse(msg: Buffer, src: Endpoint, now: number): void {
    const entry = this.indices.get(msg.readUInt32LE(8));
    if (!entry || entry.keypair !== null || entry.peer.handshake.localIndex !== msg.readUInt32LE(8)) {
      this.drops.unknownPeer++;
      return;
    }
    const peer = entry.peer;
    if (!consumeResponse(this.identity, peer.handshake, msg)) {
      this.drops.badAuth++;
      return;
    }
    peer.endpoint = src;
    if (Number.isFinite(peer.lastSentHandshake)) peer.handshakeRttMs = now - peer.lastSentHandshake;
    peer.anyAuthenticatedPacketTraversal(now);
    peer.anyAuthenticatedPacketReceived();
    this.beginSession(peer, true, now);
    peer.handshakeComplete(this.wallClock());
    this.handshakesCompleted++;
    // Confirms the session to the responder and flushes what waited for it.
    this.sendKeepalive(peer, now);
  }

  // ------------------------------------------------------------------ helpers

  private batchFor(bind: Bind): OutBatch {
    let ob = this.outBatches.get(bind);
    if (!ob) {
      ob = new OutBatch((b) => bind.send(b, b.to));
      this.outBatches.set(bind, ob);
    }
    return ob;
  }

  private flushBinds(): void {
    for (const ob of this.outBatches.values()) {
      try {
        ob.flush();
      } catch (err) {
        this.log.warn(`wireguard: send failed: ${String(err)}`);
      }
    }
  }
}

const EMPTY_PACKET = Buffer.alloc(0);

function copyBatch(b: PacketBatch): PacketBatch {
  const buf = Buffer.alloc(b.buf.length);
  b.buf.copy(buf);
  return { buf, offsets: b.offsets.slice(), lengths: b.lengths.slice(), count: b.count };
}

/** Plaintext is padded to a multiple of 16, but never beyond the MTU (as wireguard-go). */
export function paddedLength(len: number, mtu: number): number {
  let last = len;
  if (mtu > 0 && last > mtu) last %= mtu;
  let padded = (last + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  if (mtu > 0 && padded > mtu) padded = mtu;
  return len + (padded - last);
}

/** Identity of a handshake source for cookies and rate limits: the address without the port for UDP. */
function sourceIdentity(ep: Endpoint): string {
  const k = ep.key;
  if (k.startsWith('udp:')) {
    const i = k.lastIndexOf(':');
    return i > 3 ? k.slice(0, i) : k;
  }
  return k;
}
