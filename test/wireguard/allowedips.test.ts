import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AllowedIps, parsePrefix } from '../../src/wireguard/index.js';

const a = (s: string): Uint8Array => parsePrefix(s).addr;

test('IPv4 longest-prefix match', () => {
  const t = new AllowedIps<string>();
  t.insert('10.0.0.0/8', 'wide');
  t.insert('10.1.0.0/16', 'mid');
  t.insert('10.1.2.3/32', 'host');
  t.insert('0.0.0.0/0', 'default');
  assert.equal(t.lookup(a('10.1.2.3')), 'host');
  assert.equal(t.lookup(a('10.1.2.4')), 'mid');
  assert.equal(t.lookup(a('10.2.0.1')), 'wide');
  assert.equal(t.lookup(a('192.168.1.1')), 'default');
  t.removePeer('default');
  assert.equal(t.lookup(a('192.168.1.1')), null);
  t.removePeer('mid');
  assert.equal(t.lookup(a('10.1.2.4')), 'wide');
  assert.equal(t.lookup(a('10.1.2.3')), 'host');
});

test('IPv6 longest-prefix match and families kept apart', () => {
  const t = new AllowedIps<string>();
  t.insert('fd00::/8', 'ula');
  t.insert('fd00:1234::/32', 'site');
  t.insert('fd00:1234::1/128', 'host');
  t.insert('::/0', 'v6default');
  t.insert('10.0.0.1/32', 'v4');
  assert.equal(t.lookup(a('fd00:1234::1')), 'host');
  assert.equal(t.lookup(a('fd00:1234::2')), 'site');
  assert.equal(t.lookup(a('fdff::1')), 'ula');
  assert.equal(t.lookup(a('2001:db8::1')), 'v6default');
  assert.equal(t.lookup(a('10.0.0.1')), 'v4');
  assert.equal(t.lookup(a('10.0.0.2')), null, 'v6 ::/0 does not cover IPv4');
  assert.equal(t.lookup(a('::ffff:10.0.0.1')), 'v6default');
});

test('re-inserting a prefix moves it to the new owner; host bits are masked; entries listed', () => {
  const t = new AllowedIps<string>();
  t.insert('10.0.0.7/24', 'p1');
  t.insert('10.0.0.0/24', 'p2');
  assert.equal(t.lookup(a('10.0.0.9')), 'p2');
  assert.deepEqual(t.entriesFor('p1'), []);
  assert.deepEqual(t.entriesFor('p2'), ['10.0.0.0/24']);
  t.insert('fd00::1:2/112', 'p2');
  assert.deepEqual(t.entriesFor('p2'), ['10.0.0.0/24', 'fd00::1:0/112']);
  t.remove('10.0.0.0/24');
  assert.equal(t.lookup(a('10.0.0.9')), null);
});

test('lookup reads the address in place from a packet buffer', () => {
  const t = new AllowedIps<string>();
  t.insert('192.0.2.0/24', 'x');
  const pkt = Buffer.alloc(20);
  Buffer.from([192, 0, 2, 55]).copy(pkt, 16);
  assert.equal(t.lookup4(pkt, 16), 'x');
});

test('bad prefixes are refused with a helpful message', () => {
  const t = new AllowedIps<string>();
  assert.throws(() => t.insert('10.0.0.0/33', 'x'), /prefix length/);
  assert.throws(() => t.insert('nonsense', 'x'), /invalid allowed IP/);
});

function naive(entries: Array<[Uint8Array, number, number]>, addr: Uint8Array): number | null {
  let best = -1;
  let who: number | null = null;
  for (const [p, cidr, owner] of entries) {
    let ok = true;
    for (let i = 0; i < cidr; i++) {
      const bit = (x: Uint8Array) => (x[i >> 3]! >> (7 - (i & 7))) & 1;
      if (bit(p) !== bit(addr)) { ok = false; break; }
    }
    if (ok && cidr >= best) { best = cidr; who = owner; }
  }
  return who;
}

for (const len of [4, 16]) {
  test(`property: trie equals a linear longest-prefix scan (${len === 4 ? 'IPv4' : 'IPv6'}, with removals)`, () => {
    const max = len * 8;
    const bytes = fc.uint8Array({ minLength: len, maxLength: len });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(bytes, fc.integer({ min: 0, max }), fc.integer({ min: 0, max: 5 })), { maxLength: 40 }),
        fc.array(bytes, { minLength: 1, maxLength: 30 }),
        fc.integer({ min: -1, max: 5 }),
        (ins, probes, removed) => {
          const t = new AllowedIps<number>();
          // Later inserts of the same prefix win, like the trie.
          const map = new Map<string, [Uint8Array, number, number]>();
          for (const [addr, cidr, owner] of ins) {
            const m = Uint8Array.from(addr);
            for (let i = 0; i < len; i++) {
              const b = cidr - i * 8;
              if (b < 8) m[i] = b <= 0 ? 0 : m[i]! & (0xff << (8 - b));
            }
            t.insert({ addr: m, cidr }, owner);
            map.set(`${Buffer.from(m).toString('hex')}/${cidr}`, [m, cidr, owner]);
          }
          if (removed >= 0) {
            t.removePeer(removed);
            for (const [k, v] of map) if (v[2] === removed) map.delete(k);
          }
          const probesAll = [...probes, ...ins.map((x) => x[0])];
          for (const p of probesAll) assert.equal(t.lookup(p), naive([...map.values()], p));
        },
      ),
      { numRuns: 300 },
    );
  });
}
