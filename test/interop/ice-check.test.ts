// Regression fixtures from the official NetBird client (v0.77.1, netbirdio/ice fork of pion), captured in
// the interop lab (`npm run interop`). Defect: its Binding requests carry a comprehension-optional
// attribute 0x8100 (candidate pair ID) AFTER FINGERPRINT; we dropped every one as "bad FINGERPRINT", so
// an official client and ours never went P2P.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCheckRequest } from '../../src/ice/index.js';
import { checkFingerprint, decodeStun } from '../../src/stun/index.js';

/** A request the official client sent to our agent: USERNAME "<our ufrag>:<its ufrag>", integrity with our pwd. */
const OFFICIAL_REQUEST = Buffer.from(
  '000100a42112a442924467c7aa992961350c92e1000600216a7177624d6d46686e4772764e5a79423a725163464d6b707349715a49755751690000008029000848e5f710d1a0feba0024000464ffffff000800148d1f0e4b699337ee2d79b52b122bb525b7a8809680280004cb606f52810000414d47666e4e68315a6b775949694e4c79495162426462394a31754c4c756a56363a2b2f655276794f706d43613338756a656933487848416341304e67757578385a000000',
  'hex',
);
const OUR_UFRAG = 'jqwbMmFhnGrvNZyB';
const OUR_PWD = 'mnNMFKWBMSBpAHxbqPwMQdhrYaKiklOh';

test('official client check request: FINGERPRINT followed by 0x8100 is accepted', () => {
  const m = decodeStun(OFFICIAL_REQUEST)!;
  assert.deepEqual(m.attributes.map((a) => a.type).slice(-3), [0x0008, 0x8028, 0x8100]);
  assert.ok(checkFingerprint(OFFICIAL_REQUEST));
  const r = parseCheckRequest(OFFICIAL_REQUEST, OUR_UFRAG, OUR_PWD);
  assert.ok(r.ok, r.ok ? '' : r.reason);
  if (r.ok) {
    assert.equal(r.request.remoteUfrag, 'rQcFMkpsIqZIuWQi');
    assert.equal(r.request.useCandidate, false);
    assert.equal(r.request.controlled, 0x48e5f710d1a0feban);
    assert.equal(r.request.controlling, undefined);
  }
});

test('official client check request: still rejected when the CRC, the pwd or the trailing attribute is wrong', () => {
  const badCrc = Buffer.from(OFFICIAL_REQUEST);
  const fpOff = OFFICIAL_REQUEST.indexOf(Buffer.from([0x80, 0x28, 0x00, 0x04]));
  badCrc[fpOff + 4] ^= 0x01;
  assert.equal(checkFingerprint(badCrc), false);
  assert.equal(parseCheckRequest(badCrc, OUR_UFRAG, OUR_PWD).ok, false);

  assert.equal(parseCheckRequest(OFFICIAL_REQUEST, OUR_UFRAG, 'x'.repeat(32)).ok, false);

  // A comprehension-required attribute (< 0x8000) after FINGERPRINT is not something to ignore.
  const required = Buffer.from(OFFICIAL_REQUEST);
  required.writeUInt16BE(0x0100, fpOff + 8);
  assert.equal(checkFingerprint(required), false);
});
