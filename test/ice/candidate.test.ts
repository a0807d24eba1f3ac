import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  parseCandidate, formatCandidate, candidatePriority, pairPriority, parseIceUrl, CandidateParseError, type Candidate,
} from '../../src/ice/index.js';

test('candidate strings as Pion writes them round-trip exactly', () => {
  const samples = [
    '1052353102 1 udp 2130706431 192.168.1.2 51820 typ host',
    '2996863587 1 udp 1694498815 203.0.113.7 51820 typ srflx raddr 0.0.0.0 rport 51820',
    '1845990221 1 udp 16777215 198.51.100.9 49152 typ relay raddr 203.0.113.7 rport 40000',
    '3712283417 1 udp 2130706431 fd00::1 51820 typ host',
    '123 1 tcp 1671430143 10.0.0.1 9 typ host tcptype active',
    '4 1 udp 1862270975 10.1.1.1 3000 typ prflx raddr 10.0.0.2 rport 51820 generation 0 ufrag abcd network-id 1',
  ];
  for (const s of samples) assert.equal(formatCandidate(parseCandidate(s)), s);
});

test('candidate parsing: prefixes, fields, unknown extensions ignored but kept', () => {
  const c = parseCandidate('candidate:842163049 1 UDP 1677729535 203.0.113.7 51820 typ srflx raddr 10.0.0.2 rport 51820 candidate-id c1 future-ext x');
  assert.equal(c.protocol, 'udp');
  assert.equal(c.type, 'srflx');
  assert.equal(c.relatedAddress, '10.0.0.2');
  assert.equal(c.relatedPort, 51820);
  assert.deepEqual(c.extensions, [['candidate-id', 'c1'], ['future-ext', 'x']]);
  assert.equal(parseCandidate('a=candidate:1 1 udp 1 1.2.3.4 5 typ host').port, 5);
});

test('candidate parsing rejects malformed input with a reason', () => {
  const bad = [
    '', '1 1 udp 1 1.2.3.4 5 typ', '1 1 sctp 1 1.2.3.4 5 typ host', '1 1 udp x 1.2.3.4 5 typ host',
    '1 1 udp 1 1.2.3.4 70000 typ host', '1 1 udp 1 1.2.3.4 5 type host', '1 1 udp 1 1.2.3.4 5 typ bogus',
    '1 0 udp 1 1.2.3.4 5 typ host', '1 1 udp 1 1.2.3.4 5 typ host raddr',
  ];
  for (const s of bad) assert.throws(() => parseCandidate(s), CandidateParseError, s);
});

test('candidate round trip (property)', () => {
  const arb = fc.record({
    foundation: fc.stringMatching(/^[0-9a-zA-Z+/]{1,32}$/),
    component: fc.integer({ min: 1, max: 256 }),
    protocol: fc.constant('udp' as const),
    priority: fc.integer({ min: 0, max: 0xffffffff }),
    address: fc.ipV4(),
    port: fc.integer({ min: 0, max: 65535 }),
    type: fc.constantFrom('host' as const, 'srflx' as const, 'prflx' as const, 'relay' as const),
    related: fc.option(fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 65535 })), { nil: undefined }),
    extensions: fc.array(fc.tuple(fc.constantFrom('generation', 'ufrag', 'network-id', 'x-ext'), fc.stringMatching(/^[a-z0-9]{1,8}$/)), { maxLength: 3 }),
  });
  fc.assert(
    fc.property(arb, (r) => {
      const c: Candidate = { foundation: r.foundation, component: r.component, protocol: r.protocol, priority: r.priority, address: r.address, port: r.port, type: r.type, extensions: r.extensions };
      if (r.related) {
        c.relatedAddress = r.related[0];
        c.relatedPort = r.related[1];
      }
      assert.deepEqual(parseCandidate(formatCandidate(c)), c);
    }),
  );
});

test('priorities follow RFC 8445 §5.1.2 (Pion values for UDP component 1)', () => {
  assert.equal(candidatePriority('host'), 2130706431);
  assert.equal(candidatePriority('srflx'), 1694498815);
  assert.equal(candidatePriority('prflx'), 1862270975);
  assert.equal(candidatePriority('relay'), 16777215);
  assert.ok(candidatePriority('host', 65534) < candidatePriority('host', 65535));
  // Pair priority: 2^32*min + 2*max + (G>D).
  assert.equal(pairPriority(10, 20), 2 ** 32 * 10 + 40);
  assert.equal(pairPriority(20, 10), 2 ** 32 * 10 + 40 + 1);
});

test('STUN/TURN URIs from management', () => {
  assert.deepEqual(parseIceUrl('stun:stun.netbird.io:3478'), { scheme: 'stun', host: 'stun.netbird.io', port: 3478, transport: 'udp', secure: false });
  assert.deepEqual(parseIceUrl('turn:turn.example.com?transport=tcp'), { scheme: 'turn', host: 'turn.example.com', port: 3478, transport: 'tcp', secure: false });
  assert.equal(parseIceUrl('turns:t.example.com').port, 5349);
  assert.equal(parseIceUrl('stun:[2001:db8::1]:19302').host, '2001:db8::1');
  assert.throws(() => parseIceUrl('http://x'), /STUN\/TURN URI/);
  assert.throws(() => parseIceUrl('stun:x?transport=udp'), /no query/);
});
