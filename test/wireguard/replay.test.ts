import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ReplayFilter, REPLAY_WINDOW_SIZE } from '../../src/wireguard/replay.js';

const LIMIT = 2 ** 64 - 2 ** 13 - 1;

test('window is at least 2048', () => {
  assert.ok(REPLAY_WINDOW_SIZE >= 2048);
});

test('in-order, duplicates, out-of-order within the window, too old, limit', () => {
  const f = new ReplayFilter();
  assert.ok(f.validate(0, LIMIT));
  assert.equal(f.validate(0, LIMIT), false);
  for (let i = 1; i < 100; i++) assert.ok(f.validate(i, LIMIT));
  assert.equal(f.validate(50, LIMIT), false);
  assert.ok(f.validate(200, LIMIT));
  assert.ok(f.validate(150, LIMIT), 'gap inside the window accepted once');
  assert.equal(f.validate(150, LIMIT), false);
  const far = 200 + REPLAY_WINDOW_SIZE + 1;
  assert.ok(f.validate(far, LIMIT));
  assert.equal(f.validate(199, LIMIT), false, 'behind the window');
  assert.ok(f.validate(far - REPLAY_WINDOW_SIZE, LIMIT), 'oldest still in the window');
  assert.equal(f.validate(10, 10), false, 'counter >= limit');
  assert.equal(f.validate(2 ** 53 + 2, LIMIT), false, 'beyond exact doubles');
});

test('jump forward clears old bits (no stale duplicates after a big jump)', () => {
  const f = new ReplayFilter();
  for (let i = 0; i < 64; i++) f.validate(i, LIMIT);
  const base = 10 * REPLAY_WINDOW_SIZE;
  assert.ok(f.validate(base + 64, LIMIT));
  for (let i = 1; i < 64; i++) assert.ok(f.validate(base + i, LIMIT), `fresh counter ${base + i}`);
});

test('property: matches a set-based model inside the window', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 20_000 }), { maxLength: 400 }), (counters) => {
      const f = new ReplayFilter();
      const seen = new Set<number>();
      let last = 0;
      for (const c of counters) {
        const got = f.validate(c, LIMIT);
        let want: boolean;
        if (seen.has(c)) want = false;
        else if (c < last && last - c > REPLAY_WINDOW_SIZE) want = false;
        else want = true;
        assert.equal(got, want, `counter ${c} after last ${last}`);
        if (got) {
          seen.add(c);
          if (c > last) last = c;
        }
      }
    }),
    { numRuns: 300 },
  );
});
