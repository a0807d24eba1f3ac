/**
 * ICE across NATs in network-namespace labs: cone NATs connect directly (srflx through the NATs),
 * symmetric NATs need TURN (coturn with time-limited credentials) or fail cleanly, peers on one LAN
 * use host candidates, and coturn's STUN gives the same answers as our embedded STUN.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, waitUntil, type NatHost, type Netns } from '../lab/index.js';
import { openSide, connect, sendText, withTimeout, type Side } from './helpers.js';
import { hostAddresses, startLabCoturn, startLabStun } from './lab.js';
import type { IceServer } from '../../src/ice/index.js';

let lab: Lab;
let cone: [NatHost, NatHost];
let sym: [NatHost, NatHost];
let lanA: Netns;
let lanB: Netns;
let stunUrl = '';
let turn: { url: string; username: string; password: string };

before(async () => {
  lab = await Lab.create({ prefix: 'nbic' });
  cone = [await lab.natHost('ca', 'cone'), await lab.natHost('cb', 'cone')];
  sym = [await lab.natHost('sa', 'symmetric'), await lab.natHost('sb', 'symmetric')];
  // One LAN behind one cone NAT: two hosts on a bridge in the router namespace.
  const lanNat = await lab.natHost('la', 'cone');
  lanA = lanNat.host;
  lanB = await lab.ns('lb');
  const r = lanNat.router!;
  await r.ip('link', 'add', 'br-lan', 'type', 'bridge');
  await r.ip('link', 'set', 'br-lan', 'up');
  await lab.link(r, 'lanb', [], lanB, 'eth0', [`${lanNat.ip.replace(/\.2$/, '.3')}/24`]);
  await r.ip('link', 'set', 'lanb', 'master', 'br-lan');
  // Move the LAN address of the router and host A's link onto the bridge.
  const routerLan = lanNat.ip.replace(/\.2$/, '.1');
  await r.delAddr('lan', `${routerLan}/24`);
  await r.ip('link', 'set', 'lan', 'master', 'br-lan');
  await r.addr('br-lan', `${routerLan}/24`);
  await lanB.route('default', { via: routerLan });
  stunUrl = (await startLabStun(lab, cone[0].host)).url;
  turn = await startLabCoturn(lab, cone[0].host);
});

after(() => lab?.cleanup());

async function pair(a: Netns, b: Netns, servers: IceServer[], extra: { connectTimeoutMs?: number } = {}): Promise<[Side, Side]> {
  const sa = await openSide({ netns: a.name, hostAddresses: await hostAddresses(a), controlling: true, servers, ...extra });
  const sb = await openSide({ netns: b.name, hostAddresses: await hostAddresses(b), controlling: false, servers, ...extra });
  return [sa, sb];
}

async function exchange(sa: Side, sb: Side): Promise<void> {
  const pa = sa.agent.selectedPath()!;
  const pb = sb.agent.selectedPath()!;
  sendText(pa.endpoint, 'wg-a');
  sendText(pb.endpoint, 'wg-b');
  assert.ok(await waitUntil(() => sa.received.length > 0 && sb.received.length > 0, 3000), 'datagrams cross the selected path both ways');
  assert.equal(sb.received[0]!.text, 'wg-a');
  assert.equal(sa.received[0]!.text, 'wg-b');
  assert.equal(sb.received[0]!.from.key, pb.endpoint.key);
}

for (const which of ['embedded', 'coturn'] as const) {
  test(`cone NATs connect directly with srflx candidates (STUN: ${which})`, async (t) => {
    const servers = [{ url: which === 'embedded' ? stunUrl : turn.url.replace(/^turn:/, 'stun:').replace(/\?.*$/, '') }];
    const [a, b] = await pair(cone[0].host, cone[1].host, servers);
    t.after(() => Promise.all([a.close(), b.close()]));
    const gathered: string[] = [];
    a.agent.on('candidate', (c) => gathered.push(`${c.type} ${c.address}:${c.port}`));
    const t0 = Date.now();
    await connect(a, b);
    assert.ok(gathered.includes(`srflx ${cone[0].publicIp}:${a.mux.port}`), `srflx on the WireGuard port through the cone NAT: ${gathered.join(', ')}`);
    const [pa, pb] = await withTimeout(Promise.all([a.selected, b.selected]), 8000, 'selection');
    const ms = Date.now() - t0;
    t.diagnostic(`cone/${which}: selected after ${ms} ms: ${pa.local.type}->${pa.remote.type} ${pa.endpoint}`);
    assert.equal(pa.relayed, false);
    assert.equal(pa.remote.type, 'srflx');
    assert.equal(pa.local.type, 'srflx');
    assert.equal(pa.endpoint.toString(), `${cone[1].publicIp}:${b.mux.port}`);
    assert.equal(pb.endpoint.toString(), `${cone[0].publicIp}:${a.mux.port}`);
    assert.ok(ms < 4000, `took ${ms} ms`);
    await exchange(a, b);
  });
}

test('symmetric NATs: no direct pair; TURN relay candidates (coturn, time-limited credentials) carry the traffic', async (t) => {
  const [a, b] = await pair(sym[0].host, sym[1].host, [{ url: stunUrl }, turn]);
  t.after(() => Promise.all([a.close(), b.close()]));
  const t0 = Date.now();
  await connect(a, b);
  assert.ok(a.agent.localCandidates.some((c) => c.type === 'relay' && c.address === '10.77.0.1'), 'relay candidate allocated on coturn');
  const [pa, pb] = await withTimeout(Promise.all([a.selected, b.selected]), 12_000, 'selection');
  const ms = Date.now() - t0;
  t.diagnostic(`symmetric+TURN: selected after ${ms} ms: A ${pa.local.type}->${pa.remote.type} ${pa.endpoint}; B ${pb.local.type}->${pb.remote.type} ${pb.endpoint}`);
  assert.equal(pa.relayed, true);
  assert.equal(pb.relayed, true);
  assert.ok(pa.local.type === 'relay' || pa.remote.type === 'relay');
  await exchange(a, b);
});

test('symmetric NATs without TURN fail cleanly (both sides report failed, nothing selected) so the caller keeps the relay', async (t) => {
  const [a, b] = await pair(sym[0].host, sym[1].host, [{ url: stunUrl }], { connectTimeoutMs: 3000 });
  t.after(() => Promise.all([a.close(), b.close()]));
  const t0 = Date.now();
  await connect(a, b);
  assert.ok(await waitUntil(() => a.agent.state === 'failed' && b.agent.state === 'failed', 8000), `states ${a.agent.state}/${b.agent.state}`);
  const ms = Date.now() - t0;
  t.diagnostic(`symmetric without TURN: failed after ${ms} ms`);
  assert.equal(a.agent.selectedPath(), null);
  assert.equal(b.agent.selectedPath(), null);
  assert.ok(a.agent.stats().pairs > 0, 'pairs were formed and checked');
});

test('two peers on one LAN select host candidates (srflx also gathered)', async (t) => {
  const [a, b] = await pair(lanA, lanB, [{ url: stunUrl }]);
  t.after(() => Promise.all([a.close(), b.close()]));
  const t0 = Date.now();
  await connect(a, b);
  const [pa] = await withTimeout(Promise.all([a.selected, b.selected]), 8000, 'selection');
  t.diagnostic(`LAN: selected after ${Date.now() - t0} ms: ${pa.local.type}->${pa.remote.type} ${pa.endpoint}`);
  assert.ok(a.agent.localCandidates.some((c) => c.type === 'srflx'));
  assert.equal(pa.local.type, 'host');
  assert.equal(pa.remote.type, 'host');
  assert.equal(pa.endpoint.toString(), `${(await hostAddresses(lanB))[0]}:${b.mux.port}`);
  await exchange(a, b);
});
