import assert from 'node:assert/strict';
import { test } from 'node:test';
import sodium from 'sodium-native';
import { generateKeyPair, openEnvelope, parseKey } from '../../src/crypto/index.js';
import * as grpcInterceptors from '@grpc/grpc-js/build/src/server-interceptors.js';
import { PrefixedMessage, SYNC_HEADROOM, boxBeforeNm, installPrefixedPassThrough, sealFrameInPlace, withGrpcPrefix } from '../../src/management/index.js';
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
    // gRPC's prefix sits right in front, in the same memory: flag 0, big-endian length.
    const framed = withGrpcPrefix(wire);
    assert.equal(framed.buffer, frame.buffer);
    assert.equal(framed[0], 0);
    assert.equal(framed.readUInt32BE(1), wire.length);
    assert.deepEqual(framed.subarray(5), wire);
  }
});

test('grpc-js sends a PrefixedMessage as it is (the pinned grpc-js still has the hook), other messages as before', () => {
  assert.equal(installPrefixedPassThrough(), true, 'grpc-js internals moved: BaseServerInterceptingCall.serializeMessage is gone; map pushes fall back to a copy');
  const proto = (grpcInterceptors as unknown as { BaseServerInterceptingCall: { prototype: { serializeMessage(this: unknown, v: unknown): Buffer } } }).BaseServerInterceptingCall.prototype;
  const framed = Buffer.from([0, 0, 0, 0, 3, 7, 8, 9]);
  const fakeCall = { handler: { serialize: (v: Buffer): Buffer => v } };
  assert.equal(proto.serializeMessage.call(fakeCall, new PrefixedMessage(framed)), framed, 'the framed bytes go out uncopied');
  assert.deepEqual(proto.serializeMessage.call(fakeCall, Buffer.from([1, 2])), Buffer.from([0, 0, 0, 0, 2, 1, 2]), 'others get the prefix from grpc-js');
  assert.deepEqual(new PrefixedMessage(framed).message, Buffer.from([7, 8, 9]));
});
