// The spec's Appendix A test vectors, reproduced byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import sodium from 'sodium-native';
import {
  formatKey, openEnvelope, parseKey, publicKeyFromPrivate, relayPeerId, relayPeerIdString, relayTokenBinary,
  sealEnvelope, turnCredentials, verifyRelayToken, issueRelayToken, boxSharedKey, sealEnvelopeWithKey, openEnvelopeWithKey,
} from '../../src/crypto/index.js';
import { management } from '../../src/proto/index.js';
import { decodeCompactPrefix, encodeCompactPrefix } from '../../src/shared/index.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

const clientPriv = parseKey('ERERERERERERERERERERERERERERERERERERERERERE=');
const serverPriv = parseKey('IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=');
const clientPubB64 = 'e06Qm75//kTEZaIgA31gjuNYl9Me+XLwf3SJLLD3PxM=';
const serverPubB64 = 'D6poTtKIZ7l/Smot7l34zpdOdrcBjj8iocTPJnhXDyA=';
const nonce = hex('000102030405060708090a0b0c0d0e0f1011121314151617');
const box = hex('a2341c9ab39d23bf55a599400cd3fb44518b13932ef69fba0b');
const body = hex('000102030405060708090a0b0c0d0e0f1011121314151617a2341c9ab39d23bf55a599400cd3fb44518b13932ef69fba0b');
const encryptedMessage = hex(
  '0a2c653036516d37352f2f6b54455a614967413331676a754e596c394d652b584c776633534a4c4c443350784d3d1231000102030405060708090a0b0c0d0e0f1011121314151617a2341c9ab39d23bf55a599400cd3fb44518b13932ef69fba0b',
);

test('A.1 keys: public keys derived from the private keys', () => {
  assert.equal(formatKey(publicKeyFromPrivate(clientPriv)), clientPubB64);
  assert.equal(publicKeyFromPrivate(clientPriv).toString('hex'), '7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13');
  assert.equal(formatKey(publicKeyFromPrivate(serverPriv)), serverPubB64);
  assert.equal(publicKeyFromPrivate(serverPriv).toString('hex'), '0faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20');
});

test('A.1 shared box key: secretbox under the vector key gives the same box as crypto_box', () => {
  // crypto_box = secretbox keyed with beforenm(pk, sk); so the vector's shared key must reproduce the box.
  const shared = hex('8abe7c8ae6800b76d4f5986b04b77f6e9b4f332403c90df02428336e8bd9b525');
  const plain = hex('0a070a057065657231');
  const out = Buffer.alloc(plain.length + 16);
  sodium.crypto_secretbox_easy(out, plain, nonce, shared);
  assert.equal(out.toString('hex'), box.toString('hex'));
  // ... and our beforenm derives exactly that key, from either side.
  assert.equal(boxSharedKey(parseKey(serverPubB64), clientPriv).toString('hex'), shared.toString('hex'));
  assert.equal(boxSharedKey(parseKey(clientPubB64), serverPriv).toString('hex'), shared.toString('hex'));
  // The keyed envelope gives the vector's body and opens it; a wrong key is refused.
  assert.equal(sealEnvelopeWithKey(plain, shared, nonce).toString('hex'), body.toString('hex'));
  assert.equal(openEnvelopeWithKey(body, shared).toString('hex'), plain.toString('hex'));
  assert.throws(() => openEnvelopeWithKey(body, Buffer.alloc(32, 7)), /authentication failed/);
  assert.throws(() => openEnvelopeWithKey(body.subarray(0, 30), shared), /too short/);
});

test('A.1 SyncRequest envelope and EncryptedMessage bytes', () => {
  const plaintext = management.SyncRequest.encode({ meta: management.PeerSystemMeta.fromPartial({ hostname: 'peer1' }) }).finish();
  assert.equal(Buffer.from(plaintext).toString('hex'), '0a070a057065657231');
  const sealed = sealEnvelope(plaintext, parseKey(serverPubB64), clientPriv, nonce);
  assert.equal(sealed.toString('hex'), body.toString('hex'));
  assert.equal(sealed.length, 49);
  const msg = management.EncryptedMessage.encode({ wgPubKey: clientPubB64, body: sealed, version: 0 }).finish();
  assert.equal(Buffer.from(msg).toString('hex'), encryptedMessage.toString('hex'));
  assert.equal(msg.length, 97);
  // Server side: decode, decrypt with its private key and the client key from field 1.
  const got = management.EncryptedMessage.decode(encryptedMessage);
  const opened = openEnvelope(got.body, parseKey(got.wgPubKey), serverPriv);
  assert.equal(opened.toString('hex'), '0a070a057065657231');
  assert.equal(management.SyncRequest.decode(opened).meta?.hostname, 'peer1');
});

test('A.2 relay peer ID', () => {
  const id = relayPeerId(clientPubB64);
  assert.equal(id.toString('hex'), '7368612d87fd6ef30d64210a572357ee60c16edd302d81cedfdd4515ad8095218e947e61');
  assert.equal(relayPeerIdString(id), 'sha-h/1u8w1kIQpXI1fuYMFu3TAtgc7f3UUVrYCVIY6UfmE=');
});

test('A.3 relay token, binary token and Auth message', () => {
  assert.equal(createHash('sha256').update('relay-secret').digest('hex'), 'e2ee0f71b8609552218a4d0cc72f57e0860fb488e8180514130f1f22d5a6571f');
  const token = issueRelayToken('relay-secret', 0, 1767225600);
  assert.deepEqual(token, { payload: '1767225600', signature: 'VKdBGWTyXSmxa1R8fbxIl+XUsP6u0Pqg438kA5n56ZQ=' });
  assert.equal(Buffer.from(token.signature, 'base64').toString('hex'), '54a7411964f25d29b16b547c7dbc4897e5d4b0feaed0faa0e37f240399f9e994');
  const bin = relayTokenBinary(token);
  assert.equal(bin.length, 43);
  assert.equal(bin.toString('hex'), '0154a7411964f25d29b16b547c7dbc4897e5d4b0feaed0faa0e37f240399f9e99431373637323235363030');
  const auth = Buffer.concat([Buffer.from([0x01, 0x06, 0x21, 0x12, 0xa4, 0x42]), relayPeerId(clientPubB64), bin]);
  assert.equal(auth.length, 85);
  assert.equal(
    auth.toString('hex'),
    '01062112a4427368612d87fd6ef30d64210a572357ee60c16edd302d81cedfdd4515ad8095218e947e610154a7411964f25d29b16b547c7dbc4897e5d4b0feaed0faa0e37f240399f9e99431373637323235363030',
  );
  assert.deepEqual(verifyRelayToken('relay-secret', bin, 1767225600), { ok: true, expiresAt: 1767225600 });
});

test('relay token: expired, forged, wrong algorithm and short tokens are refused', () => {
  const bin = relayTokenBinary(issueRelayToken('relay-secret', 0, 1767225600));
  assert.equal(verifyRelayToken('relay-secret', bin, 1767225601).ok, false);
  assert.equal(verifyRelayToken('other-secret', bin, 1767225600).ok, false);
  const flipped = Buffer.from(bin);
  flipped[5]! ^= 1;
  assert.equal(verifyRelayToken('relay-secret', flipped, 1767225600).ok, false);
  const alg = Buffer.from(bin);
  alg[0] = 2;
  assert.equal(verifyRelayToken('relay-secret', alg, 1767225600).ok, false);
  assert.equal(verifyRelayToken('relay-secret', bin.subarray(0, 40), 1767225600).ok, false);
  // A signed but non-numeric payload is refused.
  const sig = createHmac('sha256', createHash('sha256').update('relay-secret').digest()).update('abcdefghijk').digest();
  const weird = Buffer.concat([Buffer.from([1]), sig, Buffer.from('abcdefghijk')]);
  assert.equal(verifyRelayToken('relay-secret', weird, 0).ok, false);
});

test('A.4 TURN credentials', () => {
  assert.deepEqual(turnCredentials('turn-secret', 0, 1767225600), { user: '1767225600', password: 'pIEpdcDWmaQ6clQuKcvrIphz/Xg=' });
  assert.equal(turnCredentials('turn-secret', 3600, 1767222000).user, '1767225600');
});

test('A.5 compact prefixes', () => {
  assert.equal(encodeCompactPrefix('100.64.0.5/32').toString('hex'), '6440000520');
  assert.equal(encodeCompactPrefix('0.0.0.0/0').toString('hex'), '0000000000');
  assert.equal(encodeCompactPrefix('::/0').toString('hex'), '00'.repeat(17));
  assert.equal(encodeCompactPrefix('::ffff:100.64.0.5/32').toString('hex'), '6440000520');
  assert.equal(decodeCompactPrefix(hex('6440000520')), '100.64.0.5/32');
  assert.equal(decodeCompactPrefix(encodeCompactPrefix('fd00:1234::7/128')), 'fd00:1234::7/128');
  assert.throws(() => decodeCompactPrefix(hex('644000')), /5 or 17 bytes/);
  assert.throws(() => encodeCompactPrefix('10.0.0.1/33'), /prefix length/);
  assert.throws(() => encodeCompactPrefix('nonsense/3'), /not an IP/);
});
