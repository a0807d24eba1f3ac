import assert from 'node:assert/strict';
import { test } from 'node:test';
import sodium from 'sodium-native';
import { generateKeyPair, openEnvelope, parseKey } from '../../src/crypto/index.js';
import { SYNC_HEADROOM, boxBeforeNm, sealFrameInPlace } from '../../src/management/index.js';
import { management } from '../../src/proto/index.js';

test('boxBeforeNm matches the spec vector (Appendix A.1) and both directions', () => {
  const clientPriv = parseKey('ERERERERERERERERERERERERERERERERERERERERERE=');
  const serverPub = parseKey('D6poTtKIZ7l/Smot7l34zpdOdrcBjj8iocTPJnhXDyA=');
  const serverPriv = parseKey('IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=');
  const clientPub = parseKey('e06Qm75//kTEZaIgA31gjuNYl9Me+XLwf3SJLLD3PxM=');
  const expected = '8abe7c8ae6800b76d4f5986b04b77f6e9b4f332403c90df02428336e8bd9b525';
  assert.equal(boxBeforeNm(serverPub, clientPriv).toString('hex'), expected);
  assert.equal(boxBeforeNm(clientPub, serverPriv).toString('hex'), expected);
});

test('in-place sealed frames open with crypto_box and decode as EncryptedMessage', () => {
  for (let i = 0; i < 50; i++) {
    const server = generateKeyPair();
    const peer = generateKeyPair();
    const plain = Buffer.alloc(i * 997 + (i % 3));
    sodium.randombytes_buf(plain);
    const frame = Buffer.alloc(SYNC_HEADROOM + plain.length);
    plain.copy(frame, SYNC_HEADROOM);
    const serverText = server.publicKey.toString('base64');
    const wire = sealFrameInPlace(frame, boxBeforeNm(peer.publicKey, server.privateKey), serverText);
    const msg = management.EncryptedMessage.decode(wire);
    assert.equal(msg.wgPubKey, serverText);
    assert.equal(msg.body.length, plain.length + 40);
    assert.deepEqual(openEnvelope(msg.body, server.publicKey, peer.privateKey), plain);
  }
});
