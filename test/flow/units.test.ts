import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ExponentialBackoff,
  FLOW_BACKOFF_MAX_ELAPSED_MS,
  FlowUrlError,
  flowAuthorizationValue,
  flowBackoffOptions,
  issueFlowToken,
  parseFlowAuthorization,
  parseFlowTarget,
  verifyFlowAuthorization,
} from '../../src/flow/index.js';
import type { FlowLogger } from '../../src/flow/index.js';

function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

test('flow backoff: NetBird parameters (800 ms, x1.7, max interval/2, 3 months)', () => {
  const o = flowBackoffOptions(60_000);
  assert.deepEqual(o, { initialMs: 800, multiplier: 1.7, randomization: 0.5, maxIntervalMs: 30_000, maxElapsedMs: 90 * 24 * 3600 * 1000 });
  assert.equal(FLOW_BACKOFF_MAX_ELAPSED_MS, 7_776_000_000);
});

test('flow backoff: growth without jitter, capped at half the interval', () => {
  const clk = fakeClock();
  const b = new ExponentialBackoff(flowBackoffOptions(10_000), clk.now, () => 0.5);
  const got: number[] = [];
  for (let i = 0; i < 7; i++) got.push(Math.round(b.next()!));
  // 800, 1360, 2312, 3930.4, 5000 (cap = 10 s / 2) ...
  assert.deepEqual(got, [800, 1360, 2312, 3930, 5000, 5000, 5000]);
});

test('flow backoff: randomization spans exactly ±50 %', () => {
  const clk = fakeClock();
  const lo = new ExponentialBackoff(flowBackoffOptions(60_000), clk.now, () => 0);
  const hi = new ExponentialBackoff(flowBackoffOptions(60_000), clk.now, () => 0.999999);
  assert.equal(lo.next(), 400);
  assert.ok(Math.abs(hi.next()! - 1200) < 0.01);
  assert.equal(lo.next(), 680); // 1360 * 0.5
  const rnd = new ExponentialBackoff(flowBackoffOptions(60_000), clk.now);
  for (let i = 0; i < 200; i++) {
    const cur = rnd.currentIntervalMs;
    const d = rnd.next()!;
    assert.ok(d >= cur * 0.5 - 1e-9 && d <= cur * 1.5 + 1e-9, `${d} outside [${cur * 0.5}, ${cur * 1.5}]`);
  }
});

test('flow backoff: reset returns to 800 ms and restarts the elapsed budget; gives up after max elapsed', () => {
  const clk = fakeClock();
  const b = new ExponentialBackoff({ ...flowBackoffOptions(60_000), maxElapsedMs: 10_000 }, clk.now, () => 0.5);
  b.next();
  b.next();
  assert.equal(Math.round(b.currentIntervalMs), 2312);
  clk.advance(9_000);
  b.reset();
  assert.equal(b.currentIntervalMs, 800);
  clk.advance(9_999);
  assert.equal(b.next(), 800, 'budget counted from the reset, not from construction');
  clk.advance(2);
  assert.equal(b.next(), null, 'past max elapsed: stop');
});

test('flow target: URL to grpc target table', () => {
  const cases: Array<[string, string, boolean]> = [
    ['http://[::1]:443', '[::1]:443', false],
    ['https://[2001:db8::1]:8443', '[2001:db8::1]:8443', true],
    ['https://[2001:db8::1]', '[2001:db8::1]:443', true],
    ['http://example.com', 'example.com:80', false],
    ['https://example.com', 'example.com:443', true],
    ['https://example.com:443', 'example.com:443', true],
    ['http://example.com:80/', 'example.com:80', false],
    ['http://127.0.0.1:33073', '127.0.0.1:33073', false],
    ['https://flow.netbird.io:443/some/path', 'flow.netbird.io:443', true],
    ['HTTPS://Example.COM', 'example.com:443', true],
  ];
  for (const [url, target, tls] of cases) {
    assert.deepEqual(parseFlowTarget(url), { target, tls }, url);
    assert.ok(!parseFlowTarget(url).target.endsWith(':'), url);
  }
  for (const bad of ['example.com:443', 'ftp://example.com', 'not a url', 'grpc://host:1']) {
    assert.throws(() => parseFlowTarget(bad), FlowUrlError, bad);
  }
});

test('flow token: issued by management, checked by the receiver', () => {
  const now = 1_700_000_000;
  const tok = issueFlowToken('secret', 3600, now);
  assert.equal(tok.payload, String(now + 3600));
  assert.equal(Buffer.from(tok.signature, 'base64').length, 32);
  const header = flowAuthorizationValue(tok);
  assert.equal(header, `Bearer ${tok.signature}.${tok.payload}`);
  assert.deepEqual(parseFlowAuthorization(header), tok);
  assert.deepEqual(verifyFlowAuthorization('secret', header, now), { ok: true, expiresAt: now + 3600 });
  // wrong secret, expired, tampered payload, malformed, missing
  assert.equal(verifyFlowAuthorization('other', header, now).ok, false);
  assert.equal(verifyFlowAuthorization('secret', header, now + 3601).ok, false);
  assert.equal(verifyFlowAuthorization('secret', `Bearer ${tok.signature}.${now + 7200}`, now).ok, false);
  assert.equal(verifyFlowAuthorization('secret', `Bearer ${tok.payload}.${tok.signature}`, now).ok, false, 'payload/signature swapped');
  assert.equal(verifyFlowAuthorization('secret', 'Bearer abc', now).ok, false);
  assert.equal(verifyFlowAuthorization('secret', `Basic ${tok.signature}.${tok.payload}`, now).ok, false);
  assert.equal(verifyFlowAuthorization('secret', undefined, now).ok, false);
});

test('a pino logger fits FlowLogger', async () => {
  const { pino } = await import('pino');
  const logger: FlowLogger = pino({ level: 'silent' });
  logger.warn({ a: 1 }, 'fits');
});
