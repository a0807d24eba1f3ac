// Admission control of the one listener (issue 15 item 1): pending connections are bounded per
// address and in all, the oldest go first, handshaken ones are kept apart from silent ones, and every
// pending connection has a deadline; HTTP/1.1 header timeouts hold on keep-alive connections too.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { ConnectionAdmission, addressKey, markActive, markHandshaken } from '../../src/server/admission.js';
import { NetbirdServer } from '../../src/server/index.js';
import { tempDir } from '../management/helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('addressKey: IPv4 by address, IPv4-mapped as IPv4, IPv6 by /64', () => {
  assert.equal(addressKey('192.0.2.7'), '192.0.2.7');
  assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:db8:1:2::9'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:0db8::1'), '2001:db8:0:0::/64');
  assert.equal(addressKey('::1'), '0:0:0:0::/64');
  assert.equal(addressKey(undefined), '?');
});

test('over the per-address allowance the oldest pending connections of that address are closed, not new ones and not other addresses', async (t) => {
  const adm = new ConnectionAdmission({ perAddress: 3, total: 100, timeoutMs: 60_000 });
  t.after(() => adm.close());
  const closed: string[] = [];
  const conn = (name: string, ip: string): object => {
    const s = { name };
    adm.admit(s, ip, () => closed.push(name));
    return s;
  };
  const other = conn('other', '198.51.100.1');
  const a1 = conn('a1', '192.0.2.1');
  conn('a2', '192.0.2.1');
  const a3 = conn('a3', '192.0.2.1');
  markActive(a1); // made its request: no longer pending, never evicted
  conn('a4', '192.0.2.1');
  conn('a5', '192.0.2.1');
  assert.equal(closed.length, 0); // enforced a moment later (the newest get time to send their request)
  await sleep(60);
  assert.deepEqual(closed, ['a2']);
  // A handshaken connection (HTTP/2 preface, TLS) is not pushed out by silent ones.
  markHandshaken(a3);
  for (let i = 6; i < 12; i++) conn(`a${i}`, '192.0.2.1');
  await sleep(60);
  assert.ok(!closed.includes('a3'), closed.join(','));
  assert.ok(!closed.includes('other'));
  assert.equal(adm.stats().pending, 1 + 1 + 3);
  markActive(other);
  assert.equal(adm.stats().pending, 4);
});

test('the global allowance closes the oldest connection of the busiest address', () => {
  const adm = new ConnectionAdmission({ perAddress: 100, total: 4, timeoutMs: 60_000 });
  const closed: string[] = [];
  for (const [name, ip] of [['b1', '192.0.2.2'], ['a1', '192.0.2.1'], ['a2', '192.0.2.1'], ['a3', '192.0.2.1'], ['b2', '192.0.2.2']]) adm.admit({ name }, ip, () => closed.push(name!));
  assert.deepEqual(closed, ['a1']);
  assert.equal(adm.stats().pending, 4);
  adm.close();
});

test('pending connections are closed at their deadline, counted from accept', async () => {
  const adm = new ConnectionAdmission({ perAddress: 100, total: 100, timeoutMs: 200 });
  const closed: string[] = [];
  adm.admit({}, '192.0.2.1', () => closed.push('silent'));
  const done = {};
  adm.admit(done, '192.0.2.1', () => closed.push('done'));
  markActive(done);
  await sleep(500);
  assert.deepEqual(closed, ['silent']);
  assert.equal(adm.stats().timedOut, 1);
  adm.close();
});

test('HTTP/1.1: a keep-alive connection trickling the headers of its next request gets 408 and is closed', { timeout: 20_000 }, async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await NetbirdServer.start({ dataDir: tmp.dir, host: '127.0.0.1', port: 0, httpTimeouts: { headersMs: 1500 } });
  t.after(() => srv.close());
  const s = connect(srv.port, '127.0.0.1');
  let out = '';
  s.on('data', (d: Buffer) => (out += d.toString('latin1')));
  const closed = new Promise<number>((resolve) => s.on('close', () => resolve(Date.now())));
  s.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  for (let i = 0; i < 40 && !/\r\n\r\n/.test(out); i++) await sleep(25);
  assert.match(out, /^HTTP\/1\.1 200/);
  const started = Date.now();
  s.write('GET /health HTTP/1.1\r\nHost: x\r\n');
  const trickle = setInterval(() => s.write('X-Slow: 1\r\n'), 300);
  t.after(() => clearInterval(trickle));
  const end = await Promise.race([closed, sleep(8000).then(() => 0)]);
  clearInterval(trickle);
  s.destroy();
  assert.ok(end > 0, 'the slow keep-alive request was never cut');
  assert.ok(end - started < 6000, `cut after ${end - started} ms`);
  assert.match(out, /HTTP\/1\.1 408/);
  const metrics = await (await fetch(`http://127.0.0.1:${srv.port}/metrics`)).text();
  assert.match(metrics, /^netbird_server_pending_connections \d+$/m);
  assert.match(metrics, /^netbird_server_handshake_timeouts_total \d+$/m);
});
