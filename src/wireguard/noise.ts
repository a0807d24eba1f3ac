/**
 * Noise_IKpsk2 handshake as WireGuard uses it (whitepaper 5.4). Pure state
 * transitions: functions read and write message bytes in caller buffers and
 * update a Handshake object; they never send anything. MAC1/MAC2 are added
 * and checked by cookie.ts.
 */
import {
  CONSTRUCTION, IDENTIFIER, KEY_LEN, LABEL_COOKIE, LABEL_MAC1, MSG_INITIATION, MSG_RESPONSE,
  INITIATION_LEN, RESPONSE_LEN, TAG_LEN, TIMESTAMP_LEN,
} from './constants.js';
import { aeadOpen, aeadSeal, dh, equalCT, generatePrivateKey, hash, kdf, publicKeyOf, tai64n, zero } from './crypto.js';

const INITIAL_CHAIN_KEY = hash(Buffer.from(CONSTRUCTION));
const INITIAL_HASH = hash(INITIAL_CHAIN_KEY, Buffer.from(IDENTIFIER));
const EMPTY = Buffer.alloc(0);
const ZERO_KEY = Buffer.alloc(KEY_LEN);

/** Our static key pair and the values derived from it once. */
export class StaticIdentity {
  readonly publicKey: Buffer;
  /** HASH(LABEL_MAC1 || our public) — key for checking MAC1 of messages sent to us. */
  readonly mac1Key: Buffer;
  /** HASH(LABEL_COOKIE || our public) — key for encrypting cookie replies we send. */
  readonly cookieKey: Buffer;
  constructor(readonly privateKey: Buffer) {
    if (privateKey.length !== KEY_LEN) throw new Error('private key must be 32 bytes');
    this.publicKey = publicKeyOf(privateKey);
    this.mac1Key = hash(Buffer.from(LABEL_MAC1), this.publicKey);
    this.cookieKey = hash(Buffer.from(LABEL_COOKIE), this.publicKey);
  }
}

export const enum HandshakeStage {
  Zeroed = 0,
  InitiationCreated = 1,
  InitiationConsumed = 2,
  ResponseCreated = 3,
  ResponseConsumed = 4,
}

/** Per-peer handshake state (one handshake in flight at a time, like wireguard-go). */
export class Handshake {
  stage: HandshakeStage = HandshakeStage.Zeroed;
  hash: Buffer = Buffer.alloc(KEY_LEN);
  chainKey: Buffer = Buffer.alloc(KEY_LEN);
  localEphemeral: Buffer = Buffer.alloc(KEY_LEN);
  remoteEphemeral: Buffer = Buffer.alloc(KEY_LEN);
  localIndex = 0;
  remoteIndex = 0;
  /** Greatest TAI64N seen in an initiation from this peer (replay protection). */
  readonly lastTimestamp = Buffer.alloc(TIMESTAMP_LEN);
  /** Monotonic ms of the last initiation we accepted (flood protection); -Infinity if none. */
  lastInitiationConsumed = -Infinity;
  /** DH(our static, their static), or all zeros if their key is low-order. */
  precomputedStaticStatic: Buffer;
  presharedKey: Buffer = Buffer.alloc(KEY_LEN);
  /** HASH(LABEL_MAC1 || their public) — for MAC1 on messages we send them. */
  readonly remoteMac1Key: Buffer;
  /** HASH(LABEL_COOKIE || their public) — to decrypt cookie replies from them. */
  readonly remoteCookieKey: Buffer;

  constructor(local: StaticIdentity, readonly remoteStatic: Buffer) {
    this.precomputedStaticStatic = dh(local.privateKey, remoteStatic) ?? Buffer.alloc(KEY_LEN);
    this.remoteMac1Key = hash(Buffer.from(LABEL_MAC1), remoteStatic);
    this.remoteCookieKey = hash(Buffer.from(LABEL_COOKIE), remoteStatic);
  }

  /** Recomputes DH(static, static) after our private key changed. */
  rekeyLocal(local: StaticIdentity): void {
    this.precomputedStaticStatic = dh(local.privateKey, this.remoteStatic) ?? Buffer.alloc(KEY_LEN);
    this.clear();
  }

  clear(): void {
    zero(this.localEphemeral);
    zero(this.remoteEphemeral);
    zero(this.chainKey);
    zero(this.hash);
    this.localIndex = 0;
    this.remoteIndex = 0;
    this.stage = HandshakeStage.Zeroed;
  }
}

function mixHash(h: Buffer, data: Uint8Array): Buffer {
  return hash(h, data);
}

/**
 * Writes an initiation (everything before mac1) into out[0..148].
 * `ephemeralPrivate` is for test vectors; normally a fresh key is generated.
 */
export function createInitiation(
  local: StaticIdentity, hs: Handshake, out: Buffer, localIndex: number, unixMs: number, ephemeralPrivate?: Buffer,
): boolean {
  if (equalCT(hs.precomputedStaticStatic, ZERO_KEY)) return false;
  out.fill(0, 0, INITIATION_LEN);
  out.writeUInt32LE(MSG_INITIATION, 0);
  out.writeUInt32LE(localIndex >>> 0, 4);
  let h = mixHash(INITIAL_HASH, hs.remoteStatic);
  let ck: Buffer = Buffer.from(INITIAL_CHAIN_KEY);
  const ePriv = ephemeralPrivate ? Buffer.from(ephemeralPrivate) : generatePrivateKey();
  const ePub = publicKeyOf(ePriv);
  ePub.copy(out, 8);
  h = mixHash(h, ePub);
  [ck] = kdf(ck, ePub, 1) as [Buffer];
  const ss = dh(ePriv, hs.remoteStatic);
  if (!ss) return false;
  let key: Buffer;
  [ck, key] = kdf(ck, ss, 2) as [Buffer, Buffer];
  const encStatic = out.subarray(40, 40 + KEY_LEN + TAG_LEN);
  aeadSeal(encStatic, key, 0, local.publicKey, h);
  h = mixHash(h, encStatic);
  [ck, key] = kdf(ck, hs.precomputedStaticStatic, 2) as [Buffer, Buffer];
  const encTs = out.subarray(88, 88 + TIMESTAMP_LEN + TAG_LEN);
  aeadSeal(encTs, key, 0, tai64n(unixMs), h);
  h = mixHash(h, encTs);
  zero(key);
  zero(ss);
  hs.clear();
  hs.localEphemeral = ePriv;
  hs.hash = h;
  hs.chainKey = ck;
  hs.localIndex = localIndex >>> 0;
  hs.stage = HandshakeStage.InitiationCreated;
  return true;
}

/** Result of decrypting an initiation's static key: the initiator's public key and chaining state. */
export interface InitiationOpened {
  remoteStatic: Buffer;
  hash: Buffer;
  chainKey: Buffer;
  remoteEphemeral: Buffer;
}

/** First half of consuming an initiation: find out who sent it (needs our private key only). */
export function openInitiation(local: StaticIdentity, msg: Buffer): InitiationOpened | null {
  let h = mixHash(INITIAL_HASH, local.publicKey);
  let ck: Buffer = Buffer.from(INITIAL_CHAIN_KEY);
  const ePub = Buffer.from(msg.subarray(8, 40));
  h = mixHash(h, ePub);
  [ck] = kdf(ck, ePub, 1) as [Buffer];
  const ss = dh(local.privateKey, ePub);
  if (!ss) return null;
  let key: Buffer;
  [ck, key] = kdf(ck, ss, 2) as [Buffer, Buffer];
  const encStatic = msg.subarray(40, 88);
  const remoteStatic = Buffer.alloc(KEY_LEN);
  if (!aeadOpen(remoteStatic, key, 0, encStatic, h)) return null;
  h = mixHash(h, encStatic);
  return { remoteStatic, hash: h, chainKey: ck, remoteEphemeral: ePub };
}

export const enum ConsumeResult {
  Ok = 0,
  BadAuth = 1,
  Replay = 2,
  Flood = 3,
}

/** Second half: with the peer's Handshake, check the timestamp and store state. */
export function finishInitiation(
  hs: Handshake, opened: InitiationOpened, msg: Buffer, nowMono: number, floodInterval: number,
): ConsumeResult {
  if (equalCT(hs.precomputedStaticStatic, ZERO_KEY)) return ConsumeResult.BadAuth;
  let h = opened.hash;
  let ck = opened.chainKey;
  let key: Buffer;
  [ck, key] = kdf(ck, hs.precomputedStaticStatic, 2) as [Buffer, Buffer];
  const encTs = msg.subarray(88, 116);
  const ts = Buffer.alloc(TIMESTAMP_LEN);
  if (!aeadOpen(ts, key, 0, encTs, h)) return ConsumeResult.BadAuth;
  h = mixHash(h, encTs);
  // Replay: the timestamp must be strictly newer than any accepted before.
  if (Buffer.compare(ts, hs.lastTimestamp) <= 0) return ConsumeResult.Replay;
  if (nowMono - hs.lastInitiationConsumed <= floodInterval) return ConsumeResult.Flood;
  ts.copy(hs.lastTimestamp);
  hs.lastInitiationConsumed = nowMono;
  hs.clear();
  hs.hash = h;
  hs.chainKey = ck;
  hs.remoteEphemeral = opened.remoteEphemeral;
  hs.remoteIndex = msg.readUInt32LE(4);
  hs.stage = HandshakeStage.InitiationConsumed;
  return ConsumeResult.Ok;
}

/** Writes a response (everything before mac1) into out[0..92]. */
export function createResponse(hs: Handshake, out: Buffer, localIndex: number, ephemeralPrivate?: Buffer): boolean {
  if (hs.stage !== HandshakeStage.InitiationConsumed) return false;
  out.fill(0, 0, RESPONSE_LEN);
  out.writeUInt32LE(MSG_RESPONSE, 0);
  out.writeUInt32LE(localIndex >>> 0, 4);
  out.writeUInt32LE(hs.remoteIndex >>> 0, 8);
  const ePriv = ephemeralPrivate ? Buffer.from(ephemeralPrivate) : generatePrivateKey();
  const ePub = publicKeyOf(ePriv);
  ePub.copy(out, 12);
  let h = mixHash(hs.hash, ePub);
  let ck = kdf(hs.chainKey, ePub, 1)[0]!;
  const ee = dh(ePriv, hs.remoteEphemeral);
  const se = dh(ePriv, hs.remoteStatic);
  if (!ee || !se) return false;
  ck = kdf(ck, ee, 1)[0]!;
  ck = kdf(ck, se, 1)[0]!;
  const [ck2, tau, key] = kdf(ck, hs.presharedKey, 3) as [Buffer, Buffer, Buffer];
  ck = ck2;
  h = mixHash(h, tau);
  const encEmpty = out.subarray(44, 60);
  aeadSeal(encEmpty, key, 0, EMPTY, h);
  h = mixHash(h, encEmpty);
  zero(key);
  zero(ee);
  zero(se);
  zero(tau);
  hs.localEphemeral = ePriv;
  hs.hash = h;
  hs.chainKey = ck;
  hs.localIndex = localIndex >>> 0;
  hs.stage = HandshakeStage.ResponseCreated;
  return true;
}

/** Consumes a response for the initiation `hs` has in flight (matched by receiver index). */
export function consumeResponse(local: StaticIdentity, hs: Handshake, msg: Buffer): boolean {
  if (hs.stage !== HandshakeStage.InitiationCreated) return false;
  const ePub = Buffer.from(msg.subarray(12, 44));
  let h = mixHash(hs.hash, ePub);
  let ck = kdf(hs.chainKey, ePub, 1)[0]!;
  const ee = dh(hs.localEphemeral, ePub);
  const se = dh(local.privateKey, ePub);
  if (!ee || !se) return false;
  ck = kdf(ck, ee, 1)[0]!;
  ck = kdf(ck, se, 1)[0]!;
  const [ck2, tau, key] = kdf(ck, hs.presharedKey, 3) as [Buffer, Buffer, Buffer];
  h = mixHash(h, tau);
  const encEmpty = msg.subarray(44, 60);
  if (!aeadOpen(EMPTY, key, 0, encEmpty, h)) return false;
  h = mixHash(h, encEmpty);
  hs.hash = h;
  hs.chainKey = ck2;
  hs.remoteEphemeral = ePub;
  hs.remoteIndex = msg.readUInt32LE(4);
  hs.stage = HandshakeStage.ResponseConsumed;
  return true;
}

/** Transport keys once the handshake finished: [send, receive] for our side. Clears the handshake. */
export function deriveTransportKeys(hs: Handshake, isInitiator: boolean): { send: Buffer; recv: Buffer } {
  const [t1, t2] = kdf(hs.chainKey, EMPTY, 2) as [Buffer, Buffer];
  const keys = isInitiator ? { send: t1, recv: t2 } : { send: t2, recv: t1 };
  const remoteIndex = hs.remoteIndex;
  const localIndex = hs.localIndex;
  hs.clear();
  hs.remoteIndex = remoteIndex;
  hs.localIndex = localIndex;
  return keys;
}
