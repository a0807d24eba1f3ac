/**
 * Per-peer protocol state: the handshake in flight, the three keypair slots
 * (previous / current / next), staged packets and the timer deadlines of
 * wireguard-go's timers.go expressed as absolute times. Nothing here performs
 * I/O: timer expiry returns the actions the device must carry out.
 */
import type { Endpoint } from './bind.js';
import { KEY_LEN } from './constants.js';
import type { TimerConfig } from './constants.js';
import { CookieGenerator } from './cookie.js';
import { keyToBase64, zero } from './crypto.js';
import { Handshake, type StaticIdentity } from './noise.js';
import { ReplayFilter } from './replay.js';

export class Keypair {
  sendCounter = 0;
  readonly replay = new ReplayFilter();
  constructor(
    readonly peer: Peer,
    readonly sendKey: Buffer,
    readonly recvKey: Buffer,
    readonly isInitiator: boolean,
    readonly localIndex: number,
    readonly remoteIndex: number,
    /** Monotonic ms when derived. */
    readonly created: number,
  ) {}

  zero(): void {
    zero(this.sendKey);
    zero(this.recvKey);
  }
}

export const enum TimerAction {
  None = 0,
  SendInitiation = 1,
  RetryInitiation = 2,
  SendKeepalive = 4,
  ZeroKeys = 8,
  GiveUp = 16,
}

export class Peer {
  readonly publicKeyB64: string;
  readonly handshake: Handshake;
  readonly cookies: CookieGenerator;
  previous: Keypair | null = null;
  current: Keypair | null = null;
  next: Keypair | null = null;
  endpoint: Endpoint | null = null;
  /** Seconds; 0 disables. */
  persistentKeepalive = 0;

  // Timer deadlines in monotonic ms; Infinity = not armed.
  retransmitAt = Infinity;
  sendKeepaliveAt = Infinity;
  newHandshakeAt = Infinity;
  zeroKeysAt = Infinity;
  persistentKeepaliveAt = Infinity;
  needAnotherKeepalive = false;
  handshakeAttempts = 0;
  lastSentHandshake = -Infinity;
  /** Time from our last initiation to its response (ms), 0 until one completed: a path latency estimate. */
  handshakeRttMs = 0;
  sentLastMinuteHandshake = false;

  /** Wall-clock ms of the last completed handshake, 0 if none. */
  lastHandshake = 0;
  rxBytes = 0;
  txBytes = 0;
  rxPackets = 0;
  txPackets = 0;

  /** Packets waiting for a session (copies), oldest first. */
  staged: Buffer[] = [];

  constructor(local: StaticIdentity, readonly publicKey: Buffer, private readonly t: TimerConfig) {
    if (publicKey.length !== KEY_LEN) throw new Error('peer public key must be 32 bytes');
    this.publicKeyB64 = keyToBase64(publicKey);
    this.handshake = new Handshake(local, publicKey);
    this.cookies = new CookieGenerator(this.handshake.remoteMac1Key, this.handshake.remoteCookieKey, t.cookieRefreshTime);
  }

  /** True if `kp` may still encrypt (whitepaper: Reject-After-Messages / Reject-After-Time). */
  canSend(kp: Keypair | null, now: number): kp is Keypair {
    return kp !== null && kp.sendCounter < this.t.rejectAfterMessages && now - kp.created < this.t.rejectAfterTime;
  }

  /** After sending with `kp`: should we start a new handshake (we initiated the session and it is getting old)? */
  wantsRekeyAfterSend(kp: Keypair, now: number): boolean {
    return kp.isInitiator && (kp.sendCounter > this.t.rekeyAfterMessages || now - kp.created > this.t.rekeyAfterTime);
  }

  /** After receiving with the current keypair: one last-minute handshake before the session dies. */
  wantsRekeyAfterReceive(kp: Keypair, now: number): boolean {
    if (this.sentLastMinuteHandshake || kp !== this.current || !kp.isInitiator) return false;
    if (now - kp.created > this.t.rejectAfterTime - this.t.keepaliveTimeout - this.t.rekeyTimeout) {
      this.sentLastMinuteHandshake = true;
      return true;
    }
    return false;
  }

  // ---- timer events (names as in wireguard-go's timers.go) ----

  private jitter(): number {
    return Math.random() * this.t.rekeyTimeoutJitter;
  }

  dataSent(now: number): void {
    if (this.newHandshakeAt === Infinity) this.newHandshakeAt = now + this.t.keepaliveTimeout + this.t.rekeyTimeout + this.jitter();
  }

  dataReceived(now: number): void {
    if (this.sendKeepaliveAt === Infinity) this.sendKeepaliveAt = now + this.t.keepaliveTimeout;
    else this.needAnotherKeepalive = true;
  }

  anyAuthenticatedPacketSent(): void {
    this.sendKeepaliveAt = Infinity;
  }

  anyAuthenticatedPacketReceived(): void {
    this.newHandshakeAt = Infinity;
  }

  anyAuthenticatedPacketTraversal(now: number): void {
    if (this.persistentKeepalive > 0) this.persistentKeepaliveAt = now + this.persistentKeepalive * 1000;
  }

  handshakeInitiated(now: number): void {
    this.retransmitAt = now + this.t.rekeyTimeout + this.jitter();
  }

  handshakeComplete(wallNow: number): void {
    this.retransmitAt = Infinity;
    this.handshakeAttempts = 0;
    this.sentLastMinuteHandshake = false;
    this.lastHandshake = wallNow;
  }

  sessionDerived(now: number): void {
    this.zeroKeysAt = now + 3 * this.t.rejectAfterTime;
  }

  /** Fires expired deadlines and returns what the device must do (bit set of TimerAction). */
  expire(now: number): number {
    let actions = TimerAction.None;
    if (this.retransmitAt <= now) {
      this.retransmitAt = Infinity;
      if (this.handshakeAttempts > Math.floor(this.t.rekeyAttemptTime / this.t.rekeyTimeout)) {
        // Give up: drop what waited for this handshake; keys die later unless a handshake succeeds.
        actions |= TimerAction.GiveUp;
        this.sendKeepaliveAt = Infinity;
        if (this.zeroKeysAt === Infinity) this.zeroKeysAt = now + 3 * this.t.rejectAfterTime;
      } else {
        this.handshakeAttempts++;
        actions |= TimerAction.RetryInitiation;
      }
    }
    if (this.sendKeepaliveAt <= now) {
      this.sendKeepaliveAt = Infinity;
      actions |= TimerAction.SendKeepalive;
      if (this.needAnotherKeepalive) {
        this.needAnotherKeepalive = false;
        this.sendKeepaliveAt = now + this.t.keepaliveTimeout;
      }
    }
    if (this.newHandshakeAt <= now) {
      // We sent data but heard nothing back for KEEPALIVE + REKEY_TIMEOUT.
      this.newHandshakeAt = Infinity;
      actions |= TimerAction.SendInitiation;
    }
    if (this.zeroKeysAt <= now) {
      this.zeroKeysAt = Infinity;
      actions |= TimerAction.ZeroKeys;
    }
    if (this.persistentKeepaliveAt <= now) {
      this.persistentKeepaliveAt = Infinity;
      if (this.persistentKeepalive > 0) actions |= TimerAction.SendKeepalive;
    }
    return actions;
  }

  stopAllTimers(): void {
    this.retransmitAt = Infinity;
    this.sendKeepaliveAt = Infinity;
    this.newHandshakeAt = Infinity;
    this.zeroKeysAt = Infinity;
    this.persistentKeepaliveAt = Infinity;
    this.needAnotherKeepalive = false;
  }

  /** Queue a copy of a packet waiting for a session. Returns false if the oldest had to be dropped. */
  stage(buf: Buffer, off: number, len: number, limit: number): boolean {
    let ok = true;
    if (this.staged.length >= limit) {
      this.staged.shift();
      ok = false;
    }
    const copy = Buffer.allocUnsafe(len);
    buf.copy(copy, 0, off, off + len);
    this.staged.push(copy);
    return ok;
  }
}
