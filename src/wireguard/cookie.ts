/**
 * MAC1/MAC2 and cookies (whitepaper 5.4.4, 5.4.7). The checker is the
 * responder side kept by the device; the generator is the initiator side
 * kept per peer. Both are pure: "now" is passed in.
 */
import { COOKIE_NONCE_LEN, COOKIE_REPLY_LEN, KEY_LEN, MAC_LEN, MSG_COOKIE_REPLY, TAG_LEN } from './constants.js';
import { equalCT, mac, randomBytes, xaeadOpen, xaeadSeal, zero } from './crypto.js';
import type { StaticIdentity } from './noise.js';

export class CookieChecker {
  private secret = randomBytes(KEY_LEN);
  private secretSetAt: number;

  constructor(private local: StaticIdentity, private readonly refreshMs: number, now: number) {
    this.secretSetAt = now;
  }

  setIdentity(local: StaticIdentity): void {
    this.local = local;
  }

  /** MAC1 = MAC(HASH("mac1----" || our public), msg[0:macOff]). Cheap check done before anything else. */
  checkMac1(msg: Buffer, macOff: number): boolean {
    const want = mac(this.local.mac1Key, msg.subarray(0, macOff));
    return equalCT(want, msg.subarray(macOff, macOff + MAC_LEN));
  }

  private cookieFor(source: Uint8Array, now: number): Buffer {
    if (now - this.secretSetAt >= this.refreshMs) {
      // The secret rotates so a cookie is only good for about two minutes.
      zero(this.secret);
      this.secret = randomBytes(KEY_LEN);
      this.secretSetAt = now;
    }
    return mac(this.secret, source);
  }

  /** MAC2 = MAC(cookie(source), msg[0:macOff+16]) — proves the sender can receive at its address. */
  checkMac2(msg: Buffer, macOff: number, source: Uint8Array, now: number): boolean {
    const cookie = this.cookieFor(source, now);
    const want = mac(cookie, msg.subarray(0, macOff + MAC_LEN));
    return equalCT(want, msg.subarray(macOff + MAC_LEN, macOff + 2 * MAC_LEN));
  }

  /** Writes a cookie reply to `msg` (whose mac1 is at macOff) into out[0..64]. */
  createReply(msg: Buffer, macOff: number, source: Uint8Array, now: number, out: Buffer): number {
    const cookie = this.cookieFor(source, now);
    out.writeUInt32LE(MSG_COOKIE_REPLY, 0);
    // Receiver is the sender index of the message we answer (offset 4 in both handshake types).
    out.writeUInt32LE(msg.readUInt32LE(4), 4);
    const nonce = randomBytes(COOKIE_NONCE_LEN);
    nonce.copy(out, 8);
    xaeadSeal(out.subarray(32, 32 + MAC_LEN + TAG_LEN), this.local.cookieKey, nonce, cookie, msg.subarray(macOff, macOff + MAC_LEN));
    return COOKIE_REPLY_LEN;
  }
}

export class CookieGenerator {
  private cookie = Buffer.alloc(MAC_LEN);
  private cookieSetAt = -Infinity;
  private lastMac1 = Buffer.alloc(MAC_LEN);
  private hasLastMac1 = false;

  constructor(private readonly remoteMac1Key: Buffer, private readonly remoteCookieKey: Buffer, private readonly refreshMs: number) {}

  /** Fills mac1 and (if we hold a fresh cookie) mac2 of an outgoing handshake message. */
  addMacs(msg: Buffer, macOff: number, now: number): void {
    const m1 = mac(this.remoteMac1Key, msg.subarray(0, macOff));
    m1.copy(msg, macOff);
    m1.copy(this.lastMac1);
    this.hasLastMac1 = true;
    if (now - this.cookieSetAt < this.refreshMs) {
      mac(this.cookie, msg.subarray(0, macOff + MAC_LEN)).copy(msg, macOff + MAC_LEN);
    } else {
      msg.fill(0, macOff + MAC_LEN, macOff + 2 * MAC_LEN);
    }
  }

  /** Takes the cookie out of a cookie reply answering our last handshake message. */
  consumeReply(msg: Buffer, now: number): boolean {
    if (!this.hasLastMac1) return false;
    const cookie = Buffer.alloc(MAC_LEN);
    if (!xaeadOpen(cookie, this.remoteCookieKey, msg.subarray(8, 32), msg.subarray(32, COOKIE_REPLY_LEN), this.lastMac1)) return false;
    cookie.copy(this.cookie);
    this.cookieSetAt = now;
    this.hasLastMac1 = false;
    return true;
  }
}
