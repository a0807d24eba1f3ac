import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  StunAttr,
  StunClass,
  StunMethod,
  checkFingerprint,
  checkIntegrity,
  decodeErrorCode,
  decodeStun,
  decodeAddress,
  decodeXorAddress,
  encodeStun,
  encodeXorAddress,
  getAttr,
  startStunServer,
  stunBinding,
} from '../../src/stun/index.js';

// RFC 5769 §2.1 / §2.2 sample request and IPv4 response.
const RFC5769_REQUEST =
  '000100582112a442b7e7a701bc34d686fa87dfae802200105354554e2074657374' +
  '20636c69656e74002400046e0001ff80290008932ff9b151263b36000600096576' +
  '746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2' +
  '80280004e57a3bcf';
const RFC5769_RESPONSE =
  '0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f' +
  '7220002000080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53' +
  'f06be7d780280004c07d4c96';
const RFC5769_PASSWORD = 'VOkJxbRl1RmTxUk/WvJxBt';

test('RFC 5769 sample messages: decode, integrity, fingerprint, XOR address', () => {
  const req = Buffer.from(RFC5769_REQUEST, 'hex');
  const msg = decodeStun(req);
  assert.ok(msg);
  assert.equal(msg.method, StunMethod.Binding);
  assert.equal(msg.cls, StunClass.Request);
  assert.equal(getAttr(msg, StunAttr.Username)!.toString(), 'evtj:h6vY');
  assert.ok(checkFingerprint(req));
  assert.ok(checkIntegrity(req, Buffer.from(RFC5769_PASSWORD)));
  assert.ok(!checkIntegrity(req, Buffer.from('wrong')));
  const res = Buffer.from(RFC5769_RESPONSE, 'hex');
  const r = decodeStun(res)!;
  assert.equal(r.cls, StunClass.SuccessResponse);
  assert.ok(checkFingerprint(res));
  assert.ok(checkIntegrity(res, Buffer.from(RFC5769_PASSWORD)));
  assert.deepEqual(decodeXorAddress(getAttr(r, StunAttr.XorMappedAddress)!, r.transactionId), { family: 4, address: '192.0.2.1', port: 32853 });
  // Re-encoding gives the same layout (the sample pads with spaces, we pad with zeros, so MAC/CRC differ).
  const again = encodeStun({ ...r, attributes: r.attributes.filter((a) => a.type !== StunAttr.MessageIntegrity && a.type !== StunAttr.Fingerprint) }, { integrityKey: Buffer.from(RFC5769_PASSWORD), fingerprint: true });
  assert.equal(again.length, res.length);
  const padded = Buffer.from(again);
  padded[20 + 4 + 11] = 0x20;
  assert.equal(padded.subarray(0, 52).toString('hex'), res.subarray(0, 52).toString('hex'));
  assert.ok(checkIntegrity(again, Buffer.from(RFC5769_PASSWORD)) && checkFingerprint(again));
  const bad = Buffer.from(res);
  bad[bad.length - 1]! ^= 1;
  assert.ok(!checkFingerprint(bad));
  // IPv6 XOR round trip.
  const tid = randomBytes(12);
  assert.deepEqual(decodeXorAddress(encodeXorAddress({ address: '2001:db8::1:2', port: 40000 }, tid), tid), { family: 6, address: '2001:db8::1:2', port: 40000 });
});

async function udp(type: 'udp4' | 'udp6', host: string): Promise<Socket> {
  const s = createSocket(type);
  await new Promise<void>((r) => s.bind(0, host, r));
  return s;
}

test('binding server answers with the right XOR-MAPPED-ADDRESS (IPv4, IPv6, dual stack)', async (t) => {
  const v4 = await startStunServer({ host: '127.0.0.1', port: 0 });
  t.after(() => v4.close());
  const s4 = await udp('udp4', '127.0.0.1');
  t.after(() => s4.close());
  const r4 = await stunBinding({ host: '127.0.0.1', port: v4.port, socket: s4 });
  assert.deepEqual({ family: r4.family, address: r4.address, port: r4.port }, { family: 4, address: '127.0.0.1', port: s4.address().port });
  assert.equal(r4.software, 'netbird-ts stun');

  const dual = await startStunServer({ host: '::', port: 0 });
  t.after(() => dual.close());
  const s6 = await udp('udp6', '::1');
  t.after(() => s6.close());
  const r6 = await stunBinding({ host: '::1', port: dual.port, socket: s6 });
  assert.deepEqual({ family: r6.family, address: r6.address, port: r6.port }, { family: 6, address: '::1', port: s6.address().port });
  const r46 = await stunBinding({ host: '127.0.0.1', port: dual.port, socket: s4 });
  assert.deepEqual({ family: r46.family, address: r46.address, port: r46.port }, { family: 4, address: '127.0.0.1', port: s4.address().port }, 'IPv4 client on a dual-stack socket gets an IPv4 address');
});

function exchange(sock: Socket, port: number, data: Buffer, waitMs = 300): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      sock.off('message', on);
      resolve(null);
    }, waitMs);
    const on = (m: Buffer): void => {
      clearTimeout(t);
      sock.off('message', on);
      resolve(m);
    };
    sock.on('message', on);
    sock.send(data, port, '127.0.0.1');
  });
}

test('garbage is dropped, unknown required attributes get 420, RFC 3489 clients get MAPPED-ADDRESS', async (t) => {
  const srv = await startStunServer({ host: '127.0.0.1', port: 0 });
  t.after(() => srv.close());
  const s = await udp('udp4', '127.0.0.1');
  t.after(() => s.close());
  const tid = randomBytes(12);
  const good = encodeStun({ method: StunMethod.Binding, cls: StunClass.Request, transactionId: tid, attributes: [] }, { fingerprint: true });
  const badFp = Buffer.from(good);
  badFp[badFp.length - 1]! ^= 0xff;
  const truncated = good.subarray(0, 24);
  const indication = encodeStun({ method: StunMethod.Binding, cls: StunClass.Indication, transactionId: tid, attributes: [] });
  const allocate = encodeStun({ method: StunMethod.Allocate, cls: StunClass.Request, transactionId: tid, attributes: [] });
  for (const junk of [randomBytes(100), Buffer.alloc(0), Buffer.from('GET / HTTP/1.1\r\n\r\n'), badFp, truncated, indication, allocate, randomBytes(1400)]) {
    assert.equal(await exchange(s, srv.port, junk, 150), null, 'dropped');
  }
  assert.ok(srv.stats().dropped >= 7);

  const withUnknown = encodeStun({ method: StunMethod.Binding, cls: StunClass.Request, transactionId: tid, attributes: [{ type: 0x0031, value: Buffer.from('abcd') }] });
  const err = decodeStun((await exchange(s, srv.port, withUnknown))!)!;
  assert.equal(err.cls, StunClass.ErrorResponse);
  assert.equal(decodeErrorCode(getAttr(err, StunAttr.ErrorCode)!)!.code, 420);
  assert.equal(getAttr(err, StunAttr.UnknownAttributes)!.readUInt16BE(0), 0x0031);

  const legacyTid = randomBytes(16);
  const legacy = encodeStun({ method: StunMethod.Binding, cls: StunClass.Request, transactionId: legacyTid, attributes: [] });
  const lr = (await exchange(s, srv.port, legacy))!;
  assert.ok(lr);
  assert.ok(lr.subarray(4, 20).equals(legacyTid));
  const lm = decodeStun(lr)!;
  assert.deepEqual(decodeAddress(getAttr(lm, StunAttr.MappedAddress)!), { family: 4, address: '127.0.0.1', port: s.address().port });
  assert.equal(getAttr(lm, StunAttr.XorMappedAddress), undefined);

  // Still serving after all that.
  const ok = decodeStun((await exchange(s, srv.port, good))!)!;
  assert.deepEqual(decodeXorAddress(getAttr(ok, StunAttr.XorMappedAddress)!, tid), { family: 4, address: '127.0.0.1', port: s.address().port });
});

test('coturn turnutils_stunclient gets the right reflexive address from our server', async (t) => {
  const srv = await startStunServer({ host: '127.0.0.1', port: 0 });
  t.after(() => srv.close());
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn('turnutils_stunclient', ['-p', String(srv.port), '-L', '127.0.0.1', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    p.stdout.on('data', (d: Buffer) => (text += d.toString()));
    p.stderr.on('data', (d: Buffer) => (text += d.toString()));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`turnutils_stunclient timed out: ${text}`));
    }, 8000);
    p.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`turnutils_stunclient not runnable (apt-get install -y coturn): ${e.message}`));
    });
    p.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
  const m = /UDP reflexive addr:\s*127\.0\.0\.1:(\d+)/.exec(out);
  assert.ok(m, `unexpected output:\n${out}`);
  assert.ok(Number(m[1]) > 0);
  assert.ok(srv.stats().answered >= 1);
});
