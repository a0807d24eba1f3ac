/**
 * Handshake checks. The reference here is an independent transcription of the
 * whitepaper's formulas on node:crypto (OpenSSL's X25519, ChaCha20-Poly1305,
 * BLAKE2s and HMAC), compared byte for byte with our sodium/noble code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as nc from 'node:crypto';
import {
  StaticIdentity, Handshake, createInitiation, openInitiation, finishInitiation, createResponse, consumeResponse,
  deriveTransportKeys, ConsumeResult,
} from '../../src/wireguard/noise.js';
import { CookieChecker, CookieGenerator } from '../../src/wireguard/cookie.js';
import { tai64n } from '../../src/wireguard/crypto.js';
import { INITIATION_LEN, RESPONSE_LEN, INITIATION_MAC1_OFF, RESPONSE_MAC1_OFF, COOKIE_REPLY_LEN } from '../../src/wireguard/constants.js';

const seed = (n: number): Buffer => Buffer.alloc(32, n);

// ---- independent reference (node:crypto) ----
const H = (...p: Buffer[]): Buffer => {
  const h = nc.createHash('blake2s256');
  for (const x of p) h.update(x);
  return h.digest();
};
const HMAC = (k: Buffer, d: Buffer): Buffer => nc.createHmac('blake2s256', k).update(d).digest();
function KDF(ck: Buffer, input: Buffer, n: number): Buffer[] {
  const t0 = HMAC(ck, input);
  const out: Buffer[] = [];
  let prev: Buffer = Buffer.alloc(0);
  for (let i = 1; i <= n; i++) {
    prev = HMAC(t0, Buffer.concat([prev, Buffer.from([i])]));
    out.push(prev);
  }
  return out;
}
const privObj = (k: Buffer): nc.KeyObject =>
  nc.createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), k]), format: 'der', type: 'pkcs8' });
const pubObj = (k: Buffer): nc.KeyObject =>
  nc.createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), k]), format: 'der', type: 'spki' });
const PUB = (k: Buffer): Buffer => (nc.createPublicKey(privObj(k)).export({ format: 'der', type: 'spki' }) as Buffer).subarray(12);
const DH = (priv: Buffer, pub: Buffer): Buffer => nc.diffieHellman({ privateKey: privObj(priv), publicKey: pubObj(pub) });
function AEAD(key: Buffer, counter: number, plain: Buffer, ad: Buffer): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64LE(BigInt(counter), 4);
  const c = nc.createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  c.setAAD(ad, { plaintextLength: plain.length });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

function referenceInitiation(si: Buffer, sr: Buffer, ei: Buffer, ts: Buffer, index: number) {
  const Sr = PUB(sr);
  let ck = H(Buffer.from('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s'));
  let h = H(ck, Buffer.from('WireGuard v1 zx2c4 Jason@zx2c4.com'));
  h = H(h, Sr);
  const Ei = PUB(ei);
  [ck] = KDF(ck, Ei, 1) as [Buffer];
  h = H(h, Ei);
  let k: Buffer;
  [ck, k] = KDF(ck, DH(ei, Sr), 2) as [Buffer, Buffer];
  const encStatic = AEAD(k, 0, PUB(si), h);
  h = H(h, encStatic);
  [ck, k] = KDF(ck, DH(si, Sr), 2) as [Buffer, Buffer];
  const encTs = AEAD(k, 0, ts, h);
  h = H(h, encTs);
  const head = Buffer.alloc(8);
  head.writeUInt32LE(1, 0);
  head.writeUInt32LE(index, 4);
  return { bytes: Buffer.concat([head, Ei, encStatic, encTs]), ck, h };
}

function referenceResponse(ck: Buffer, h: Buffer, si: Buffer, er: Buffer, ei: Buffer, psk: Buffer) {
  const Er = PUB(er);
  [ck] = KDF(ck, Er, 1) as [Buffer];
  h = H(h, Er);
  [ck] = KDF(ck, DH(er, PUB(ei)), 1) as [Buffer];
  [ck] = KDF(ck, DH(er, PUB(si)), 1) as [Buffer];
  const [ck2, tau, k] = KDF(ck, psk, 3) as [Buffer, Buffer, Buffer];
  h = H(h, tau);
  const empty = AEAD(k, 0, Buffer.alloc(0), h);
  const [t1, t2] = KDF(ck2, Buffer.alloc(0), 2) as [Buffer, Buffer];
  return { Er, empty, sendInitiator: t1, sendResponder: t2 };
}

test('initiation bytes equal an independent node:crypto transcription of the whitepaper (fixed keys)', () => {
  const si = seed(1), sr = seed(2), ei = seed(3);
  const unixMs = 1_700_000_000_123;
  const I = new StaticIdentity(si);
  const R = new StaticIdentity(sr);
  const hs = new Handshake(I, R.publicKey);
  const msg = Buffer.alloc(INITIATION_LEN);
  assert.ok(createInitiation(I, hs, msg, 0x11223344, unixMs, ei));
  const ref = referenceInitiation(si, sr, ei, tai64n(unixMs), 0x11223344);
  assert.equal(msg.subarray(0, INITIATION_MAC1_OFF).toString('hex'), ref.bytes.toString('hex'));
  assert.ok(hs.chainKey.equals(ref.ck) && hs.hash.equals(ref.h));
});

test('full handshake with fixed ephemerals and a PSK: both sides derive the reference transport keys', () => {
  const si = seed(4), sr = seed(5), ei = seed(6), er = seed(7), psk = seed(9);
  const I = new StaticIdentity(si);
  const R = new StaticIdentity(sr);
  const hsI = new Handshake(I, R.publicKey);
  const hsR = new Handshake(R, I.publicKey);
  psk.copy(hsI.presharedKey);
  psk.copy(hsR.presharedKey);
  const init = Buffer.alloc(INITIATION_LEN);
  assert.ok(createInitiation(I, hsI, init, 7, Date.now(), ei));
  const opened = openInitiation(R, init)!;
  assert.ok(opened.remoteStatic.equals(I.publicKey));
  assert.equal(finishInitiation(hsR, opened, init, 1000, 20), ConsumeResult.Ok);
  const resp = Buffer.alloc(RESPONSE_LEN);
  assert.ok(createResponse(hsR, resp, 9, er));
  assert.ok(consumeResponse(I, hsI, resp));
  const kI = deriveTransportKeys(hsI, true);
  const kR = deriveTransportKeys(hsR, false);
  assert.ok(kI.send.equals(kR.recv) && kI.recv.equals(kR.send));
  // Reference from the initiator's chaining state (which depends on the timestamp inside the message).
  const refI = referenceInitiationFromMsg(si, sr, ei, init);
  const r = referenceResponse(refI.ck, refI.h, si, er, ei, psk);
  assert.ok(resp.subarray(12, 44).equals(r.Er));
  assert.ok(resp.subarray(44, 60).equals(r.empty));
  assert.ok(kI.send.equals(r.sendInitiator));
  assert.ok(kR.send.equals(r.sendResponder));
});

/** Recomputes the reference using the timestamp actually inside `init` (decrypted with the reference too). */
function referenceInitiationFromMsg(si: Buffer, sr: Buffer, ei: Buffer, init: Buffer) {
  // The TAI64N timestamp is the only input we did not fix; brute-force it out of the message via the reference AEAD key.
  const Sr = PUB(sr);
  let ck = H(Buffer.from('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s'));
  let h = H(ck, Buffer.from('WireGuard v1 zx2c4 Jason@zx2c4.com'));
  h = H(h, Sr);
  const Ei = PUB(ei);
  [ck] = KDF(ck, Ei, 1) as [Buffer];
  h = H(h, Ei);
  let k: Buffer;
  [ck, k] = KDF(ck, DH(ei, Sr), 2) as [Buffer, Buffer];
  h = H(h, init.subarray(40, 88));
  [ck, k] = KDF(ck, DH(si, Sr), 2) as [Buffer, Buffer];
  const nonce = Buffer.alloc(12);
  const d = nc.createDecipheriv('chacha20-poly1305', k, nonce, { authTagLength: 16 });
  d.setAAD(h, { plaintextLength: 12 });
  d.setAuthTag(init.subarray(100, 116));
  const ts = Buffer.concat([d.update(init.subarray(88, 100)), d.final()]);
  return referenceInitiation(si, sr, ei, ts, init.readUInt32LE(4));
}

test('TAI64N: 2^62 + 10 + seconds, big-endian, nanoseconds whitened to 2^24 ns', () => {
  const t = tai64n(1_000_000_000_500);
  assert.equal(t.readBigUInt64BE(0), (1n << 62n) + 10n + 1_000_000_000n);
  const ns = t.readUInt32BE(8);
  assert.equal(ns % 0x100_0000, 0);
  assert.ok(ns <= 500_000_000 && ns > 500_000_000 - 0x100_0000);
});

test('PSK mismatch: the initiator rejects the response', () => {
  const I = new StaticIdentity(seed(11));
  const R = new StaticIdentity(seed(12));
  const hsI = new Handshake(I, R.publicKey);
  const hsR = new Handshake(R, I.publicKey);
  seed(1).copy(hsI.presharedKey);
  seed(2).copy(hsR.presharedKey);
  const init = Buffer.alloc(INITIATION_LEN);
  createInitiation(I, hsI, init, 1, Date.now());
  assert.equal(finishInitiation(hsR, openInitiation(R, init)!, init, 0, 20), ConsumeResult.Ok);
  const resp = Buffer.alloc(RESPONSE_LEN);
  assert.ok(createResponse(hsR, resp, 2));
  assert.equal(consumeResponse(I, hsI, resp), false);
});

test('initiation replay and flood: same timestamp is refused, a newer one too soon is refused', () => {
  const I = new StaticIdentity(seed(21));
  const R = new StaticIdentity(seed(22));
  const hsI = new Handshake(I, R.publicKey);
  const hsR = new Handshake(R, I.publicKey);
  const init = Buffer.alloc(INITIATION_LEN);
  createInitiation(I, hsI, init, 1, 1_700_000_000_000);
  assert.equal(finishInitiation(hsR, openInitiation(R, init)!, init, 1000, 20), ConsumeResult.Ok);
  assert.equal(finishInitiation(hsR, openInitiation(R, init)!, init, 5000, 20), ConsumeResult.Replay);
  const init2 = Buffer.alloc(INITIATION_LEN);
  createInitiation(I, hsI, init2, 2, 1_700_000_001_000);
  assert.equal(finishInitiation(hsR, openInitiation(R, init2)!, init2, 1010, 20), ConsumeResult.Flood);
  assert.equal(finishInitiation(hsR, openInitiation(R, init2)!, init2, 1100, 20), ConsumeResult.Ok);
  // A tampered static field no longer opens.
  const bad = Buffer.from(init2);
  bad[50]! ^= 1;
  assert.equal(openInitiation(R, bad), null);
});

test('MAC1, cookie reply and MAC2 round trip; MAC2 is bound to the source', () => {
  const I = new StaticIdentity(seed(31));
  const R = new StaticIdentity(seed(32));
  const hsI = new Handshake(I, R.publicKey);
  const gen = new CookieGenerator(hsI.remoteMac1Key, hsI.remoteCookieKey, 120_000);
  const checker = new CookieChecker(R, 120_000, 0);
  const init = Buffer.alloc(INITIATION_LEN);
  createInitiation(I, hsI, init, 77, Date.now());
  gen.addMacs(init, INITIATION_MAC1_OFF, 0);
  assert.ok(checker.checkMac1(init, INITIATION_MAC1_OFF));
  const src = Buffer.from('udp:192.0.2.1');
  assert.equal(checker.checkMac2(init, INITIATION_MAC1_OFF, src, 0), false, 'no cookie yet');
  const reply = Buffer.alloc(COOKIE_REPLY_LEN);
  checker.createReply(init, INITIATION_MAC1_OFF, src, 0, reply);
  assert.equal(reply.readUInt32LE(4), 77);
  assert.ok(gen.consumeReply(reply, 10));
  assert.equal(gen.consumeReply(reply, 10), false, 'a cookie reply is only good once');
  createInitiation(I, hsI, init, 78, Date.now());
  gen.addMacs(init, INITIATION_MAC1_OFF, 20);
  assert.ok(checker.checkMac1(init, INITIATION_MAC1_OFF));
  assert.ok(checker.checkMac2(init, INITIATION_MAC1_OFF, src, 30));
  assert.equal(checker.checkMac2(init, INITIATION_MAC1_OFF, Buffer.from('udp:192.0.2.2'), 30), false);
  // A wrong mac1 is caught.
  init[INITIATION_MAC1_OFF]! ^= 1;
  assert.equal(checker.checkMac1(init, INITIATION_MAC1_OFF), false);
  // The response carries MACs at its own offset.
  assert.equal(RESPONSE_MAC1_OFF, 60);
});
