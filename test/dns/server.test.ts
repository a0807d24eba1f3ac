import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { DnsServer, type DnsServerOptions } from '../../src/dns/index.js';
import { dnsConfig, encodeQuery, fakeUpstream, nsGroup, query, queryRaw, rec } from './helpers.js';

type TestCtx = { after(fn: () => Promise<void> | void): void };

async function server(t: TestCtx, opts: Partial<DnsServerOptions> = {}): Promise<DnsServer> {
  const s = new DnsServer({ host: '127.0.0.1', port: 0, upstreamTimeoutMs: 300, ...opts });
  await s.start();
  t.after(() => s.stop());
  return s;
}

const peerZone = {
  Domain: 'netbird.cloud.', SearchDomainDisabled: false, NonAuthoritative: false,
  Records: [
    rec('laptop.netbird.cloud', 1, '100.64.0.7'),
    rec('laptop.netbird.cloud', 28, 'fd00:1234::7'),
    rec('server.netbird.cloud', 1, '100.64.0.9', 120),
    rec('alias.netbird.cloud', 5, 'server.netbird.cloud'),
    rec('api.svc.netbird.cloud', 1, '100.64.0.11'),
  ],
};

function data(r: { pkt: dnsPacket.DecodedPacket }): unknown[] {
  return (r.pkt.answers ?? []).map((a) => ('data' in a ? a.data : undefined));
}

test('answers A/AAAA from the custom zone (case-insensitive, trailing dot), NXDOMAIN and NODATA', async (t) => {
  const s = await server(t);
  s.setConfig(dnsConfig({ CustomZones: [peerZone] }));
  const port = s.address().port;
  const a = await query(port, 'LapTop.NetBird.Cloud.', 'A');
  assert.equal(a.rcode, 0);
  assert.equal(a.aa, true);
  assert.deepEqual(data(a), ['100.64.0.7']);
  assert.equal(a.pkt.answers![0]!.name, 'LapTop.NetBird.Cloud', 'owner name echoes the question');
  assert.equal((a.pkt.answers![0] as dnsPacket.StringAnswer).ttl, 300);
  const aaaa = await query(port, 'laptop.netbird.cloud', 'AAAA');
  assert.deepEqual(data(aaaa), ['fd00:1234::7']);
  const cname = await query(port, 'alias.netbird.cloud', 'A');
  assert.deepEqual(data(cname), ['server.netbird.cloud', '100.64.0.9'], 'CNAME chased inside the zone');
  const nx = await query(port, 'nobody.netbird.cloud', 'A');
  assert.equal(nx.rcode, 3);
  assert.equal(nx.pkt.authorities![0]!.type, 'SOA');
  const nodata = await query(port, 'server.netbird.cloud', 'AAAA');
  assert.equal(nodata.rcode, 0);
  assert.equal(nodata.pkt.answers!.length, 0);
  const apex = await query(port, 'netbird.cloud', 'A');
  assert.equal(apex.rcode, 0, 'the apex exists (NODATA)');
  assert.equal(apex.pkt.answers!.length, 0);
  const apexSoa = await query(port, 'netbird.cloud.', 'SOA');
  assert.equal(apexSoa.pkt.answers![0]!.type, 'SOA');
  const ent = await query(port, 'svc.netbird.cloud', 'A');
  assert.equal(ent.rcode, 0, 'empty non-terminal is NODATA, not NXDOMAIN');
  // Also over TCP.
  const tcp = await query(port, 'laptop.netbird.cloud', 'A', { tcp: true });
  assert.deepEqual(data(tcp), ['100.64.0.7']);
  assert.ok(s.stats().local >= 7);
});

test('synthesized PTR for peer addresses; unknown overlay reverse is NXDOMAIN, others are forwarded', async (t) => {
  const up = await fakeUpstream();
  t.after(() => up.close());
  const s = await server(t, { hostResolvers: [{ ip: '127.0.0.1', port: up.port }] });
  s.setConfig(dnsConfig({ CustomZones: [peerZone] }), { reversePrefixes: ['100.64.0.0/10', 'fd00:1234::/64'] });
  const port = s.address().port;
  const ptr = await query(port, '7.0.64.100.in-addr.arpa', 'PTR');
  assert.deepEqual(data(ptr), ['laptop.netbird.cloud']);
  const nib = 'fd00:1234:0000:0000:0000:0000:0000:0007'.replace(/:/g, '').split('').reverse().join('.');
  const ptr6 = await query(port, `${nib}.ip6.arpa`, 'PTR');
  assert.deepEqual(data(ptr6), ['laptop.netbird.cloud']);
  const nx = await query(port, '99.0.64.100.in-addr.arpa', 'PTR');
  assert.equal(nx.rcode, 3);
  assert.equal(up.seen.length, 0);
  const fwd = await query(port, '1.2.0.192.in-addr.arpa', 'PTR');
  assert.equal(fwd.rcode, 0);
  assert.deepEqual(up.seen, ['1.2.0.192.in-addr.arpa']);
});

test('forwarding: host resolvers without a primary group, primary group, match-domain routing', async (t) => {
  const hostUp = await fakeUpstream({ address: '192.0.2.10' });
  const primary = await fakeUpstream({ address: '192.0.2.20' });
  const corp = await fakeUpstream({ address: '192.0.2.30' });
  t.after(async () => { await hostUp.close(); await primary.close(); await corp.close(); });
  const s = await server(t, { hostResolvers: [{ ip: '127.0.0.1', port: hostUp.port }], cacheSize: 0 });
  const port = s.address().port;
  s.setConfig(dnsConfig({ CustomZones: [peerZone], NameServerGroups: [nsGroup([corp.port], { Domains: ['corp.example.'] })] }));
  assert.deepEqual(data(await query(port, 'www.example.org', 'A')), ['192.0.2.10'], 'no primary: host resolver');
  assert.deepEqual(data(await query(port, 'git.CORP.example', 'A')), ['192.0.2.30'], 'match domain');
  assert.deepEqual(data(await query(port, 'corp.example', 'A')), ['192.0.2.30'], 'the match domain itself');
  assert.deepEqual(data(await query(port, 'notcorp.example', 'A')), ['192.0.2.10'], 'suffix must be a label boundary');
  s.setConfig(dnsConfig({
    CustomZones: [peerZone],
    NameServerGroups: [nsGroup([primary.port], { Primary: true }), nsGroup([corp.port], { Domains: ['corp.example'] })],
  }));
  assert.deepEqual(data(await query(port, 'www.example.org', 'A')), ['192.0.2.20'], 'primary group');
  assert.deepEqual(data(await query(port, 'a.corp.example', 'A')), ['192.0.2.30']);
  assert.deepEqual(data(await query(port, 'laptop.netbird.cloud', 'A')), ['100.64.0.7'], 'local zone first');
  assert.deepEqual(data(await query(port, 'www.example.org', 'A', { tcp: true })), ['192.0.2.20'], 'TCP forwarded over TCP');
  assert.deepEqual(corp.seen, ['git.corp.example', 'corp.example', 'a.corp.example']);
  assert.deepEqual(hostUp.seen, ['www.example.org', 'notcorp.example']);
  assert.deepEqual(primary.seen, ['www.example.org', 'www.example.org']);
});

test('non-authoritative zones fall through to upstreams for unknown names', async (t) => {
  const up = await fakeUpstream({ address: '192.0.2.40' });
  t.after(() => up.close());
  const s = await server(t, { hostResolvers: [{ ip: '127.0.0.1', port: up.port }] });
  s.setConfig(dnsConfig({
    CustomZones: [peerZone, { Domain: 'user.example.', NonAuthoritative: true, SearchDomainDisabled: true, Records: [rec('db.user.example', 1, '100.64.3.3')] }],
  }));
  const port = s.address().port;
  assert.deepEqual(data(await query(port, 'db.user.example', 'A')), ['100.64.3.3']);
  const other = await query(port, 'web.user.example', 'A');
  assert.equal(other.aa, false);
  assert.deepEqual(data(other), ['192.0.2.40']);
  assert.equal((await query(port, 'x.netbird.cloud', 'A')).rcode, 3, 'peer zone stays authoritative');
  // A lone zone is authoritative even if flagged otherwise (old servers).
  s.setConfig(dnsConfig({ CustomZones: [{ ...peerZone, NonAuthoritative: true }] }));
  assert.equal((await query(port, 'x.netbird.cloud', 'A')).rcode, 3);
  assert.deepEqual(up.seen, ['web.user.example']);
});

test('cache respects TTLs (positive and negative) and counts them down', async (t) => {
  const up = await fakeUpstream({ ttl: 100 });
  t.after(() => up.close());
  const clock = { t: 1_000_000 };
  const s = await server(t, { hostResolvers: [{ ip: '127.0.0.1', port: up.port }], now: () => clock.t });
  const port = s.address().port;
  const first = await query(port, 'a.example.org', 'A');
  assert.equal((first.pkt.answers![0] as dnsPacket.StringAnswer).ttl, 100);
  clock.t += 30_000;
  const second = await query(port, 'A.example.org', 'A');
  assert.equal((second.pkt.answers![0] as dnsPacket.StringAnswer).ttl, 70, 'TTL counted down');
  assert.equal(up.seen.length, 1, 'served from cache');
  clock.t += 71_000;
  await query(port, 'a.example.org', 'A');
  assert.equal(up.seen.length, 2, 'expired entry refetched');
  // Negative: NXDOMAIN cached for min(SOA TTL 50, minimum 40) = 40 s.
  assert.equal((await query(port, 'nx.example.org', 'A')).rcode, 3);
  clock.t += 39_000;
  assert.equal((await query(port, 'nx.example.org', 'A')).rcode, 3);
  assert.equal(up.seen.length, 3);
  clock.t += 2_000;
  await query(port, 'nx.example.org', 'A');
  assert.equal(up.seen.length, 4);
  assert.ok(s.stats().cacheHits >= 2);
  // A config change clears the cache.
  s.setConfig(dnsConfig({}));
  await query(port, 'a.example.org', 'A');
  assert.equal(up.seen.length, 5);
});

test('upstream timeout fails over to the next server; all silent gives SERVFAIL', async (t) => {
  const silent = await fakeUpstream({ silent: true });
  const good = await fakeUpstream({ address: '192.0.2.50' });
  t.after(async () => { await silent.close(); await good.close(); });
  const s = await server(t, { upstreamTimeoutMs: 200 });
  const port = s.address().port;
  s.setConfig(dnsConfig({ NameServerGroups: [nsGroup([silent.port, good.port], { Primary: true })] }));
  const t0 = Date.now();
  assert.deepEqual(data(await query(port, 'x.example.org', 'A')), ['192.0.2.50']);
  assert.ok(Date.now() - t0 >= 180, 'waited for the first server');
  s.setConfig(dnsConfig({ NameServerGroups: [nsGroup([silent.port], { Primary: true })] }));
  const r = await query(port, 'y.example.org', 'A');
  assert.equal(r.rcode, 2);
  assert.equal(s.stats().servfail, 1);
  // No resolvers at all: SERVFAIL immediately.
  s.setConfig(dnsConfig({}));
  assert.equal((await query(port, 'z.example.org', 'A')).rcode, 2);
});

test('malformed and unsupported queries get FORMERR/NOTIMP or are ignored, never crash', async (t) => {
  const s = await server(t);
  s.setConfig(dnsConfig({ CustomZones: [peerZone] }));
  const port = s.address().port;
  const junk = Buffer.from('0102ffffffffffffffffffff', 'hex');
  const r = await queryRaw(port, junk);
  assert.ok(r !== undefined);
  assert.equal(r.readUInt16BE(0), 0x0102);
  assert.equal(r[3]! & 0x0f, 1, 'FORMERR');
  assert.equal(await queryRaw(port, Buffer.from([1, 2, 3]), 300), undefined, 'too short to answer');
  const notify = encodeQuery('laptop.netbird.cloud', 'A');
  notify[2] = (notify[2]! & 0x87) | (4 << 3); // opcode NOTIFY
  const n = await queryRaw(port, notify);
  assert.equal(n![3]! & 0x0f, 4, 'NOTIMP');
  // Still serving.
  assert.deepEqual(data(await query(port, 'laptop.netbird.cloud', 'A', { edns: true })), ['100.64.0.7']);
});
