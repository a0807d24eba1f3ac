import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { buildCheckRequest, buildCheckSuccess, buildCheckError, parseCheckRequest, parseCheckResponse } from '../../src/ice/index.js';
import { StunAttr, decodeStun, getAttr, checkIntegrity, checkFingerprint, isStunMessage } from '../../src/stun/index.js';

const A = { ufrag: 'AAAAAAAAAAAAAAAA', pwd: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' };
const B = { ufrag: 'BBBBBBBBBBBBBBBB', pwd: 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' };

function reqAtoB(over: Partial<Parameters<typeof buildCheckRequest>[0]> = {}): Buffer {
  return buildCheckRequest({
    transactionId: randomBytes(12), localUfrag: A.ufrag, remoteUfrag: B.ufrag, remotePwd: B.pwd,
    priority: 1862270975, controlling: true, tieBreaker: 0x0102030405060708n, useCandidate: false, ...over,
  });
}

test('check request: USERNAME "remote:local", ICE-CONTROLLING tie-breaker, PRIORITY, integrity with the remote pwd, FINGERPRINT last', () => {
  const buf = reqAtoB({ useCandidate: true });
  assert.ok(isStunMessage(buf));
  const m = decodeStun(buf)!;
  assert.equal(getAttr(m, StunAttr.Username)!.toString(), `${B.ufrag}:${A.ufrag}`);
  assert.equal(getAttr(m, StunAttr.IceControlling)!.readBigUInt64BE(0), 0x0102030405060708n);
  assert.equal(getAttr(m, StunAttr.IceControlled), undefined);
  assert.equal(getAttr(m, StunAttr.Priority)!.readUInt32BE(0), 1862270975);
  assert.ok(getAttr(m, StunAttr.UseCandidate) !== undefined);
  assert.ok(checkIntegrity(buf, Buffer.from(B.pwd)));
  assert.ok(!checkIntegrity(buf, Buffer.from(A.pwd)));
  assert.equal(m.attributes.at(-1)!.type, StunAttr.Fingerprint);
  assert.equal(m.attributes.at(-2)!.type, StunAttr.MessageIntegrity);
  assert.ok(checkFingerprint(buf));
});

test('B accepts the check with its own ufrag/pwd and learns role, tie-breaker and nomination', () => {
  const r = parseCheckRequest(reqAtoB({ useCandidate: true }), B.ufrag, B.pwd);
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(r.request.remoteUfrag, A.ufrag);
  assert.equal(r.request.controlling, 0x0102030405060708n);
  assert.equal(r.request.controlled, undefined);
  assert.equal(r.request.useCandidate, true);
  const controlled = parseCheckRequest(reqAtoB({ controlling: false }), B.ufrag, B.pwd);
  assert.ok(controlled.ok && controlled.request.controlled === 0x0102030405060708n && controlled.request.useCandidate === false);
});

test('checks with the wrong ufrag, wrong pwd, corrupted bytes or no fingerprint are refused', () => {
  const wrongUfrag = parseCheckRequest(reqAtoB(), 'CCCCCCCCCCCCCCCC', B.pwd);
  assert.ok(!wrongUfrag.ok && wrongUfrag.answerWith === 401);
  const wrongPwd = parseCheckRequest(reqAtoB({ remotePwd: 'x'.repeat(32) }), B.ufrag, B.pwd);
  assert.ok(!wrongPwd.ok && /INTEGRITY/.test(wrongPwd.reason));
  const corrupt = reqAtoB();
  corrupt[30]! ^= 1;
  assert.ok(!parseCheckRequest(corrupt, B.ufrag, B.pwd).ok);
  const fp = reqAtoB();
  const noFp = Buffer.from(fp.subarray(0, fp.length - 8));
  noFp.writeUInt16BE(noFp.length - 20, 2);
  assert.ok(!parseCheckRequest(noFp, B.ufrag, B.pwd).ok);
});

test('responses: success carries XOR-MAPPED-ADDRESS keyed with the answerer pwd; 487 role conflict decoded', () => {
  const tid = randomBytes(12);
  const ok = buildCheckSuccess(tid, { address: '203.0.113.5', port: 40000 }, B.pwd);
  const r = parseCheckResponse(ok, B.pwd);
  assert.deepEqual(r, { kind: 'success', transactionId: tid, mapped: { family: 4, address: '203.0.113.5', port: 40000 } });
  assert.equal(parseCheckResponse(ok, A.pwd), null, 'integrity must match the remote pwd');
  const v6 = parseCheckResponse(buildCheckSuccess(tid, { address: '2001:db8::5', port: 1 }, B.pwd), B.pwd);
  assert.ok(v6?.kind === 'success' && v6.mapped.address === '2001:db8::5');
  const err = parseCheckResponse(buildCheckError(tid, 487, 'Role Conflict', B.pwd), B.pwd);
  assert.deepEqual(err, { kind: 'error', transactionId: tid, code: 487, reason: 'Role Conflict' });
});
