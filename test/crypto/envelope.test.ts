import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  EnvelopeError, KeyFormatError, formatKey, generateKeyPair, openEnvelope, openMessage, parseKey, sealEnvelope, sealMessage,
} from '../../src/crypto/index.js';
import { management } from '../../src/proto/index.js';

const alice = generateKeyPair();
const bob = generateKeyPair();
const eve = generateKeyPair();

test('envelope round trip, including an empty message', () => {
  for (const plain of [Buffer.alloc(0), Buffer.from('hello'), Buffer.alloc(70000, 7)]) {
    const body = sealEnvelope(plain, bob.publicKey, alice.privateKey);
    assert.equal(body.length, plain.length + 40);
    assert.deepEqual(openEnvelope(body, alice.publicKey, bob.privateKey), plain);
  }
});

test('every seal uses a fresh nonce', () => {
  const a = sealEnvelope(Buffer.from('x'), bob.publicKey, alice.privateKey);
  const b = sealEnvelope(Buffer.from('x'), bob.publicKey, alice.privateKey);
  assert.notDeepEqual(a.subarray(0, 24), b.subarray(0, 24));
});

test('a flipped bit anywhere in nonce, tag or ciphertext is refused with a clear error', () => {
  const body = sealEnvelope(Buffer.from('attack at dawn'), bob.publicKey, alice.privateKey);
  for (const i of [0, 23, 24, 39, 40, body.length - 1]) {
    const bad = Buffer.from(body);
    bad[i]! ^= 0x01;
    assert.throws(() => openEnvelope(bad, alice.publicKey, bob.privateKey), (e: unknown) => e instanceof EnvelopeError && /authentication failed/.test(e.message));
  }
});

test('the wrong key is refused', () => {
  const body = sealEnvelope(Buffer.from('secret'), bob.publicKey, alice.privateKey);
  assert.throws(() => openEnvelope(body, alice.publicKey, eve.privateKey), EnvelopeError);
  assert.throws(() => openEnvelope(body, eve.publicKey, bob.privateKey), EnvelopeError);
});

test('short bodies are refused without crashing', () => {
  for (const n of [0, 1, 23, 24, 39]) {
    assert.throws(() => openEnvelope(Buffer.alloc(n), alice.publicKey, bob.privateKey), (e: unknown) => e instanceof EnvelopeError && /too short/.test(e.message));
  }
});

test('bad key lengths are refused', () => {
  assert.throws(() => sealEnvelope(Buffer.from('x'), Buffer.alloc(31), alice.privateKey), EnvelopeError);
  assert.throws(() => openEnvelope(Buffer.alloc(60), alice.publicKey, Buffer.alloc(33)), EnvelopeError);
});

test('protobuf messages round trip through the envelope; garbage plaintext is an EnvelopeError', () => {
  const req = management.LoginRequest.fromPartial({ setupKey: 'A2C8E62B-38F5-4553-B31E-DD66C696CEBB', meta: { hostname: 'h', netbirdVersion: '0.60.0' } });
  const body = sealMessage(management.LoginRequest, req, bob.publicKey, alice.privateKey);
  assert.deepEqual(openMessage(management.LoginRequest, body, alice.publicKey, bob.privateKey), req);
  const garbage = sealEnvelope(Buffer.from([0x0a, 0xff, 0xff, 0xff]), bob.publicKey, alice.privateKey);
  assert.throws(() => openMessage(management.LoginRequest, garbage, alice.publicKey, bob.privateKey), EnvelopeError);
});

test('property: opening arbitrary bytes only ever fails with EnvelopeError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        openEnvelope(bytes, alice.publicKey, bob.privateKey);
        return false; // forging a valid box by chance is impossible
      } catch (e) {
        return e instanceof EnvelopeError;
      }
    }),
    { numRuns: 2000 },
  );
});

test('keys: generate, format, parse', () => {
  const kp = generateKeyPair();
  assert.equal(kp.privateKey[0]! & 7, 0);
  assert.equal(kp.privateKey[31]! & 0xc0, 0x40);
  const text = formatKey(kp.publicKey);
  assert.equal(text.length, 44);
  assert.deepEqual(parseKey(text), kp.publicKey);
  assert.deepEqual(parseKey(` ${text}\n`), kp.publicKey);
});

test('keys: bad input gives a KeyFormatError that says what was expected', () => {
  const bad = ['', 'abc', 'e06Qm75//kTEZaIgA31gjuNYl9Me+XLwf3SJLLD3PxM', 'e06Qm75//kTEZaIgA31gjuNYl9Me+XLwf3SJLLD3Px*=', 'e06Qm75//kTEZaIgA31gjuNYl9Me+XLwf3SJLLD3PxN=', 'e06Qm75_-kTEZaIgA31gjuNYl9Me+XLwf3SJLLD3PxM='];
  for (const s of bad) {
    assert.throws(() => parseKey(s, 'peer public key'), (e: unknown) => e instanceof KeyFormatError && /invalid peer public key/.test(e.message), s);
  }
  assert.throws(() => formatKey(Buffer.alloc(31)), KeyFormatError);
});

test('property: parseKey accepts exactly the canonical base64 of 32 bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (raw) => parseKey(formatKey(raw)).equals(Buffer.from(raw))),
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), (s) => {
      try {
        const k = parseKey(s);
        return k.length === 32 && formatKey(k) === s.trim();
      } catch (e) {
        return e instanceof KeyFormatError;
      }
    }),
  );
});
