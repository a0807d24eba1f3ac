import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatKey, generateKeyPair } from '../../src/crypto/index.js';
import { AccountManager, SYNC_HEADROOM, Store, emptyPeerMeta, encodeNetworkMap, encodeSyncResponse, forwarderPort, type PeerMeta } from '../../src/management/index.js';
import { management } from '../../src/proto/index.js';
import { tempDir } from './helpers.js';

/** Network-map rules (management-api.md §5, protocol.md §4.6/§4.8), checked on decoded maps. */

const { IN } = management.RuleDirection;
const meta = (hostname: string, version = '0.60.2', caps: number[] = [1]): PeerMeta => ({ ...emptyPeerMeta(), hostname, netbirdVersion: version, capabilities: caps });

async function setup(t: { after(fn: () => unknown): void }) {
  const tmp = tempDir();
  const store = await Store.open({ kind: 'sqlite', path: join(tmp.dir, 'm.db') });
  const m = await AccountManager.open({ store });
  t.after(async () => {
    m.close();
    await store.close();
    tmp.remove();
  });
  const acc = await m.createAccount({ dnsDomain: 'corp.test' });
  const { key } = await m.createSetupKey(acc.id, { name: 'k' });
  const add = async (name: string, pm: PeerMeta = meta(name)) => (await m.loginPeer({ peerKey: formatKey(generateKeyPair().publicKey), setupKey: key, meta: pm })).peer;
  const mapOf = (peerId: string): management.NetworkMap => {
    const state = m.accountState(acc.id);
    const enc = encodeNetworkMap(state, state.peers.get(peerId)!, Date.now(), forwarderPort(state));
    return management.NetworkMap.decode(enc.body);
  };
  // Start from no policy at all.
  for (const p of m.listPolicies(acc.id)) await m.deletePolicy(acc.id, p.id);
  return { m, acc, add, mapOf };
}

const rulesFor = (nm: management.NetworkMap, ip: string) =>
  nm.FirewallRules.filter((r) => r.PeerIP === ip)
    .map((r) => `${r.Direction === IN ? 'IN' : 'OUT'} ${management.ruleProtocolToJSON(r.Protocol)} ${r.Action === management.RuleAction.DROP ? 'drop' : 'accept'} ${r.PortInfo?.port ?? (r.PortInfo?.range ? `${r.PortInfo.range.start}-${r.PortInfo.range.end}` : '*')}`)
    .sort();

test('no policy: nobody visible, every empty list flagged', async (t) => {
  const { add, mapOf } = await setup(t);
  const a = await add('a');
  await add('b');
  const nm = mapOf(a.id);
  assert.equal(nm.remotePeers.length, 0);
  assert.equal(nm.remotePeersIsEmpty, true);
  assert.equal(nm.firewallRulesIsEmpty, true);
  assert.equal(nm.routesFirewallRulesIsEmpty, true);
  assert.ok(nm.sshAuth, 'sshAuth present');
  // DNS zone holds only the peer itself.
  assert.deepEqual(nm.DNSConfig!.CustomZones[0]!.Records.map((r) => r.Name), ['a.corp.test']);
});

test('one-way and bidirectional rules, drop, ports and ranges, receiver on both sides', async (t) => {
  const { m, acc, add, mapOf } = await setup(t);
  const src = await add('src');
  const dst = await add('dst');
  const old = await add('old', meta('old', '0.47.0', []));
  const gs = await m.createGroup(acc.id, { name: 's', peers: [src.id] });
  const gd = await m.createGroup(acc.id, { name: 'd', peers: [dst.id, old.id] });
  await m.createPolicy(acc.id, {
    name: 'p',
    rules: [
      { name: 'web', sources: [gs.id], destinations: [gd.id], protocol: 'tcp', ports: ['443'], portRanges: [{ start: 8000, end: 8080 }, { start: 9000, end: 9000 }] },
      { name: 'no-ping', sources: [gd.id], destinations: [gs.id], protocol: 'icmp', action: 'drop' },
    ],
  });
  // src: OUT tcp to dst (443, 8000-8080, 9000) and IN icmp drop from dst.
  assert.deepEqual(rulesFor(mapOf(src.id), dst.ip), ['IN ICMP drop *', 'OUT TCP accept 443', 'OUT TCP accept 8000-8080', 'OUT TCP accept 9000'].sort());
  assert.deepEqual(rulesFor(mapOf(dst.id), src.ip), ['IN TCP accept 443', 'IN TCP accept 8000-8080', 'IN TCP accept 9000', 'OUT ICMP drop *'].sort());
  // An agent older than 0.48.0 gets no port ranges, single-port "ranges" become ports; and no
  // sourcePrefixes without the capability.
  const oldMap = mapOf(old.id);
  assert.deepEqual(rulesFor(oldMap, src.ip), ['IN TCP accept 443', 'IN TCP accept 9000', 'OUT ICMP drop *'].sort());
  assert.ok(oldMap.FirewallRules.every((r) => r.sourcePrefixes.length === 0));
  assert.ok(mapOf(dst.id).FirewallRules.every((r) => r.sourcePrefixes.length === 1));
  assert.ok(oldMap.FirewallRules.every((r) => Buffer.from(r.PolicyID).toString().length > 0));
  // dst and old do not see each other (both only destinations of 'web', sources of 'no-ping').
  assert.ok(!mapOf(dst.id).remotePeers.some((p) => p.wgPubKey === old.key));

  // A bidirectional rule with the receiver on both sides: each remote peer once per direction.
  const gall = await m.createGroup(acc.id, { name: 'all3', peers: [src.id, dst.id, old.id] });
  await m.createPolicy(acc.id, { name: 'mesh', rules: [{ name: 'mesh', sources: [gall.id], destinations: [gall.id], bidirectional: true, protocol: 'udp', ports: ['53'] }] });
  const meshRules = rulesFor(mapOf(dst.id), old.ip);
  assert.deepEqual(meshRules, ['IN UDP accept 53', 'OUT UDP accept 53']);
});

test('netbird-ssh: TCP 22, plus 22022 towards agents >= 0.60.0', async (t) => {
  const { m, acc, add, mapOf } = await setup(t);
  const admin = await add('admin');
  const newSrv = await add('new-server', meta('new-server', '0.60.0'));
  const oldSrv = await add('old-server', meta('old-server', '0.55.0'));
  const ga = await m.createGroup(acc.id, { name: 'admins', peers: [admin.id] });
  const gsrv = await m.createGroup(acc.id, { name: 'servers', peers: [newSrv.id, oldSrv.id] });
  await m.createPolicy(acc.id, { name: 'ssh', rules: [{ name: 'ssh', sources: [ga.id], destinations: [gsrv.id], protocol: 'netbird-ssh' }] });
  const nm = mapOf(admin.id);
  assert.deepEqual(rulesFor(nm, newSrv.ip), ['OUT TCP accept 22', 'OUT TCP accept 22022']);
  assert.deepEqual(rulesFor(nm, oldSrv.ip), ['OUT TCP accept 22']);
  assert.deepEqual(rulesFor(mapOf(oldSrv.id), admin.ip), ['IN TCP accept 22']);
});

test('DNS: extra labels, disabled management groups, forwarder port by versions; legacy top-level peers for old agents', async (t) => {
  const { m, acc, add, mapOf } = await setup(t);
  const sk = await m.createSetupKey(acc.id, { name: 'labels', allowExtraDnsLabels: true });
  const a = (await m.loginPeer({ peerKey: formatKey(generateKeyPair().publicKey), setupKey: sk.key, meta: meta('a'), dnsLabels: ['web', 'api'] })).peer;
  const b = await add('b');
  const all = m.listGroups(acc.id).find((g) => g.name === 'All')!;
  await m.createPolicy(acc.id, { name: 'all', rules: [{ name: 'all', sources: [all.id], destinations: [all.id], bidirectional: true }] });
  const names = mapOf(b.id).DNSConfig!.CustomZones[0]!.Records.map((r) => `${r.Name} ${r.Type} ${r.Class} ${r.TTL} ${r.RData}`).sort();
  assert.deepEqual(names, [`a.corp.test 1 IN 300 ${a.ip}`, `api.corp.test 1 IN 300 ${a.ip}`, `b.corp.test 1 IN 300 ${b.ip}`, `web.corp.test 1 IN 300 ${a.ip}`].sort());
  assert.equal(mapOf(b.id).DNSConfig!.ForwarderPort, 22054);
  assert.equal(mapOf(b.id).DNSConfig!.ServiceEnable, true);

  const off = await m.createGroup(acc.id, { name: 'no-dns', peers: [b.id] });
  await m.updateAccount(acc.id, { settings: { dnsDisabledManagementGroups: [off.id] } });
  const nb = mapOf(b.id);
  assert.equal(nb.DNSConfig!.ServiceEnable, false);
  assert.equal(nb.DNSConfig!.CustomZones.length, 0);
  assert.equal(mapOf(a.id).DNSConfig!.ServiceEnable, true);

  // One old agent in the account: forwarder port falls back to 5353 for everybody.
  const ancient = await add('ancient', meta('ancient', '0.29.0', []));
  assert.equal(mapOf(a.id).DNSConfig!.ForwarderPort, 5353);
  // The legacy SyncResponse.remotePeers copy is filled only for agents < 0.29.3.
  const state = m.accountState(acc.id);
  const frame = (peerId: string) => {
    const p = state.peers.get(peerId)!;
    return management.SyncResponse.decode(encodeSyncResponse(encodeNetworkMap(state, p, Date.now(), forwarderPort(state)), 7, p, { seconds: 0, nanos: 0 }, undefined).subarray(SYNC_HEADROOM));
  };
  const legacy = frame(ancient.id);
  assert.equal(legacy.remotePeers.length, 2);
  assert.equal(legacy.NetworkMap!.Serial, 7);
  assert.equal(legacy.netbirdConfig, undefined);
  assert.equal(frame(a.id).remotePeers.length, 0);
  assert.equal(frame(a.id).NetworkMap!.remotePeers.length, 2);
});

// Interop regression: every map said "no route firewall rules" (routesFirewallRulesIsEmpty), so an official
// routing peer dropped all the traffic it should have forwarded to its network. NetBird's rules, checked here.
const routeRules = (nm: management.NetworkMap) =>
  nm.routesFirewallRules.map((r) => `${r.sourceRanges.join(',')} -> ${r.destination} ${management.ruleProtocolToJSON(r.protocol)} ${r.portInfo?.port ?? '*'} ${r.action === management.RuleAction.DROP ? 'drop' : 'accept'} ${r.RouteID}`).sort();

test('route firewall rules: default permit without access-control groups, policy sources and ports with them', async (t) => {
  const { m, acc, add, mapOf } = await setup(t);
  const router = await add('router');
  const a = await add('a');
  const b = await add('b');
  const outsider = await add('outsider');
  const clients = await m.createGroup(acc.id, { name: 'clients', peers: [a.id, b.id] });
  const route = await m.createRoute(acc.id, { description: '', networkId: 'lan', enabled: true, peer: router.id, network: '10.99.0.0/24', metric: 9999, masquerade: true, groups: [clients.id], keepRoute: true });
  assert.deepEqual(routeRules(mapOf(router.id)), [`0.0.0.0/0 -> 10.99.0.0/24 ALL * accept ${route.id}`]);
  assert.equal(mapOf(router.id).routesFirewallRulesIsEmpty, false);
  // Non-routers get none.
  assert.equal(mapOf(a.id).routesFirewallRules.length, 0);
  assert.equal(mapOf(a.id).routesFirewallRulesIsEmpty, true);

  const acg = await m.createGroup(acc.id, { name: 'acg', peers: [] });
  await m.updateRoute(acc.id, route.id, { description: '', networkId: 'lan', enabled: true, peer: router.id, network: '10.99.0.0/24', metric: 9999, masquerade: true, groups: [clients.id], keepRoute: true, accessControlGroups: [acg.id] });
  // Access control without a policy to the group: nothing may pass.
  assert.deepEqual(routeRules(mapOf(router.id)), []);
  assert.equal(mapOf(router.id).routesFirewallRulesIsEmpty, true);
  const everyone = await m.createGroup(acc.id, { name: 'everyone', peers: [a.id, b.id, outsider.id, router.id] });
  await m.createPolicy(acc.id, { name: 'web', rules: [{ name: 'web', protocol: 'tcp', ports: ['80', '443'], sources: [everyone.id], destinations: [acg.id] }] });
  // Sources are the rule's peers that also receive the route (not the outsider, not the router itself).
  const sources = [`${a.ip}/32`, `${b.ip}/32`].sort().join(',');
  assert.deepEqual(routeRules(mapOf(router.id)), [
    `${sources} -> 10.99.0.0/24 TCP 443 accept ${route.id}`,
    `${sources} -> 10.99.0.0/24 TCP 80 accept ${route.id}`,
  ].sort());
});

test('route firewall rules and peers for network resources: routers and sources see each other without a peer policy', async (t) => {
  const { m, acc, add, mapOf } = await setup(t);
  const router = await add('router');
  const a = await add('a');
  const b = await add('b');
  const resGroup = await m.createGroup(acc.id, { name: 'res', peers: [] });
  const srcGroup = await m.createGroup(acc.id, { name: 'src', peers: [a.id] });
  const net = await m.saveNetwork(acc.id, undefined, { name: 'office' });
  const res = await m.saveNetworkResource(acc.id, net.id, undefined, { name: 'host', description: '', address: '10.99.0.10/32', enabled: true, groups: [resGroup.id] });
  const rt = await m.saveNetworkRouter(acc.id, net.id, undefined, { peer: router.id, peerGroups: [], metric: 9999, masquerade: true, enabled: true });
  await m.createPolicy(acc.id, { name: 'res', rules: [{ name: 'res', protocol: 'udp', portRanges: [{ start: 5000, end: 5010 }], sources: [srcGroup.id], destinations: [resGroup.id] }] });
  const rm = mapOf(router.id);
  assert.equal(rm.routesFirewallRules.length, 1);
  const rule = rm.routesFirewallRules[0]!;
  assert.deepEqual(rule.sourceRanges, [`${a.ip}/32`]);
  assert.equal(rule.destination, '10.99.0.10/32');
  assert.equal(rule.protocol, management.RuleProtocol.UDP);
  assert.deepEqual(rule.portInfo?.range, { start: 5000, end: 5010 });
  assert.equal(rule.RouteID, `${res.id}:${rt.id}:${router.id}`);
  // The router and A reach each other; B (no policy) sees neither.
  assert.deepEqual(rm.remotePeers.map((p) => p.allowedIps[0]), [`${a.ip}/32`]);
  assert.ok(mapOf(a.id).remotePeers.some((p) => p.allowedIps[0] === `${router.ip}/32`));
  assert.equal(mapOf(b.id).remotePeers.length, 0);
});

test('a policy change re-pushes routing peers, whose route firewall rules depend on it', async (t) => {
  const { m, acc, add } = await setup(t);
  const router = await add('router');
  const a = await add('a');
  const ga = await m.createGroup(acc.id, { name: 'ga', peers: [a.id] });
  const acg = await m.createGroup(acc.id, { name: 'acg', peers: [] });
  await m.createRoute(acc.id, { description: '', networkId: 'lan', enabled: true, peer: router.id, network: '10.99.0.0/24', metric: 9999, masquerade: true, groups: [ga.id], keepRoute: true, accessControlGroups: [acg.id] });
  const seen: string[][] = [];
  m.addListener({ accountChanged: (_acc, affected) => seen.push(affected === 'all' ? ['all'] : [...affected]), peerDeleted: () => undefined });
  await m.createPolicy(acc.id, { name: 'p', rules: [{ name: 'p', sources: [ga.id], destinations: [acg.id] }] });
  assert.ok(seen.at(-1)!.includes(router.id), `router not among the affected peers: ${JSON.stringify(seen)}`);
});

/** Small deterministic PRNG (mulberry32), so a failing case can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('maps from shared views are byte for byte the maps computed for each peer alone, through changes', async (t) => {
  const { m, acc, add } = await setup(t);
  const versions = ['0.60.2', '0.47.0', '0.59.0', '0.28.0'];
  const peers = [];
  for (let i = 0; i < 24; i++) peers.push(await add(`p${i}`, meta(`p${i}`, versions[i % versions.length]!, i % 3 === 0 ? [] : [1])));
  const protocols = ['all', 'tcp', 'udp', 'icmp', 'netbird-ssh'] as const;
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const rnd = prng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    for (const p of m.listPolicies(acc.id)) await m.deletePolicy(acc.id, p.id);
    const groups = [];
    for (let g = 0; g < 4; g++) groups.push(await m.createGroup(acc.id, { name: `s${seed}g${g}`, peers: peers.filter(() => rnd() < 0.4).map((p) => p.id) }));
    for (let k = 0; k < 3; k++) {
      const protocol = pick(protocols);
      await m.createPolicy(acc.id, {
        name: `s${seed}p${k}`,
        rules: [
          {
            name: `r${k}`,
            sources: [pick(groups).id],
            destinations: [pick(groups).id],
            bidirectional: protocol !== 'netbird-ssh' && rnd() < 0.5,
            protocol,
            action: rnd() < 0.2 ? 'drop' : 'accept',
            ports: protocol === 'tcp' || protocol === 'udp' ? ['443'] : [],
            portRanges: protocol === 'tcp' ? [{ start: 8000, end: 8080 }] : [],
          },
        ],
      });
    }
    const compare = (round: string): void => {
      const state = m.accountState(acc.id);
      const fwd = forwarderPort(state);
      // Twice: the first pass makes the shared views, the second uses them.
      for (const pass of [1, 2]) {
        for (const p of state.peers.values()) {
          const shared = encodeNetworkMap(state, p, Date.now(), fwd);
          const alone = encodeNetworkMap(state, p, Date.now(), fwd, false);
          assert.deepEqual(Buffer.from(shared.body), Buffer.from(alone.body), `seed ${seed} ${round} pass ${pass}: map of ${p.name}`);
          assert.equal(shared.remotePeerCount, alone.remotePeerCount);
          assert.equal(shared.firewallRuleCount, alone.firewallRuleCount);
          assert.deepEqual(Buffer.concat(shared.remotePeerParts), Buffer.concat(alone.remotePeerParts));
        }
      }
    };
    compare('start');
    // Each change must make stale shared views go away: a renamed peer, one awaiting approval, a
    // member added, a policy edited.
    const renamed = pick(peers);
    await m.updatePeer(acc.id, renamed.id, { name: `renamed-${seed}` });
    compare('rename');
    const held = pick(peers);
    await m.updatePeer(acc.id, held.id, { approvalRequired: true });
    compare('approval');
    await m.updatePeer(acc.id, held.id, { approvalRequired: false });
    const g = pick(groups);
    await m.updateGroup(acc.id, g.id, { name: g.name, peers: [...new Set([...g.peers, pick(peers).id])] });
    compare('membership');
    const pol = m.listPolicies(acc.id)[0]!;
    await m.updatePolicy(acc.id, pol.id, { name: pol.name, enabled: true, rules: pol.rules.map((r) => ({ ...r, protocol: 'udp', ports: ['53'], portRanges: [] })) });
    compare('policy');
  }
});

test('digests are the same with and without shared views and follow content', async (t) => {
  const { m, acc, add } = await setup(t);
  const ps = [];
  for (let i = 0; i < 6; i++) ps.push(await add(`d${i}`));
  const all = m.listGroups(acc.id).find((g) => g.name === 'All')!;
  await m.createPolicy(acc.id, { name: 'all', rules: [{ name: 'all', sources: [all.id], destinations: [all.id], bidirectional: true }] });
  const state = m.accountState(acc.id);
  const fwd = forwarderPort(state);
  const first = ps.map((p) => encodeNetworkMap(state, state.peers.get(p.id)!, Date.now(), fwd));
  const again = ps.map((p) => encodeNetworkMap(state, state.peers.get(p.id)!, Date.now(), fwd));
  // Unchanged state: the same digest whether or not the view was shared yet; different peers differ.
  for (let i = 0; i < ps.length; i++) assert.equal(again[i]!.digest, first[i]!.digest);
  assert.equal(new Set(again.map((e) => e.digest)).size, ps.length);
  await m.updatePeer(acc.id, ps[0]!.id, { name: 'moved' });
  const after = ps.map((p) => encodeNetworkMap(state, state.peers.get(p.id)!, Date.now(), fwd));
  for (let i = 1; i < ps.length; i++) assert.notEqual(after[i]!.digest, again[i]!.digest, `peer ${i} sees the rename`);
});

test('a rule whose destination is one network resource: its sources reach it through the routers, nobody else', async (t) => {
  const { m, acc, add, mapOf } = await setup(t);
  const router = await add('router');
  const a = await add('a');
  const b = await add('b');
  const srcGroup = await m.createGroup(acc.id, { name: 'src', peers: [a.id] });
  const net = await m.saveNetwork(acc.id, undefined, { name: 'office' });
  const db = await m.saveNetworkResource(acc.id, net.id, undefined, { name: 'db', description: '', address: '10.99.0.10/32', enabled: true, groups: [] });
  await m.saveNetworkResource(acc.id, net.id, undefined, { name: 'other', description: '', address: '10.99.1.0/24', enabled: true, groups: [] });
  const rt = await m.saveNetworkRouter(acc.id, net.id, undefined, { peer: router.id, peerGroups: [], metric: 9999, masquerade: true, enabled: true });
  const seen: string[][] = [];
  m.addListener({ accountChanged: (_acc, affected) => seen.push(affected === 'all' ? ['all'] : [...affected]), peerDeleted: () => undefined });
  const pol = await m.createPolicy(acc.id, { name: 'db', rules: [{ name: 'db', protocol: 'tcp', ports: ['5432'], sources: [srcGroup.id], destinationResource: { id: db.id, type: 'host' } }] });
  assert.ok(seen.at(-1)!.includes(router.id) && seen.at(-1)!.includes(a.id), `router and source re-pushed: ${JSON.stringify(seen)}`);

  // The router lets A in to the resource's address only, on the rule's port.
  const rm = mapOf(router.id);
  assert.deepEqual(routeRules(rm), [`${a.ip}/32 -> 10.99.0.10/32 TCP 5432 accept ${db.id}:${rt.id}:${router.id}`]);
  assert.deepEqual(rm.remotePeers.map((p) => p.allowedIps[0]), [`${a.ip}/32`]);
  // A gets the route to the resource via the router (not the other resource) and sees the router.
  const am = mapOf(a.id);
  assert.deepEqual(am.Routes.map((r) => `${r.Network} via ${r.Peer}`), [`10.99.0.10/32 via ${router.key}`]);
  assert.deepEqual(am.remotePeers.map((p) => p.allowedIps[0]), [`${router.ip}/32`]);
  assert.equal(am.routesFirewallRules.length, 0);
  // B, outside the rule, gets nothing; neither peer-to-peer rules nor routes.
  const bm = mapOf(b.id);
  assert.equal(bm.Routes.length, 0);
  assert.equal(bm.remotePeers.length, 0);
  assert.equal(bm.FirewallRules.length, 0);
  // A network resource is no peer: nobody gets peer firewall rules from the rule.
  assert.equal(am.FirewallRules.length, 0);
  assert.equal(rm.FirewallRules.length, 0);

  // Disabled: nothing left.
  await m.updatePolicy(acc.id, pol.id, { name: 'db', enabled: false, rules: [{ name: 'db', protocol: 'tcp', ports: ['5432'], sources: [srcGroup.id], destinationResource: { id: db.id, type: 'host' } }] });
  assert.equal(mapOf(router.id).routesFirewallRules.length, 0);
  assert.equal(mapOf(a.id).Routes.length, 0);
  assert.equal(mapOf(a.id).remotePeers.length, 0);
});

test('a rule whose sides are single peers (type "peer") means those peers themselves', async (t) => {
  const { m, acc, add, mapOf } = await setup(t);
  const a = await add('a');
  const b = await add('b');
  const c = await add('c');
  // C shares a group with B, which must not matter.
  await m.createGroup(acc.id, { name: 'bc', peers: [b.id, c.id] });
  await m.createPolicy(acc.id, { name: 'a-to-b', rules: [{ name: 'r', protocol: 'tcp', ports: ['22'], sourceResource: { id: a.id, type: 'peer' }, destinationResource: { id: b.id, type: 'peer' } }] });
  assert.deepEqual(rulesFor(mapOf(a.id), b.ip), ['OUT TCP accept 22']);
  assert.deepEqual(rulesFor(mapOf(b.id), a.ip), ['IN TCP accept 22']);
  assert.deepEqual(mapOf(a.id).remotePeers.map((p) => p.allowedIps[0]), [`${b.ip}/32`]);
  assert.equal(mapOf(c.id).remotePeers.length, 0);
  assert.equal(mapOf(c.id).FirewallRules.length, 0);
  // The peer gone: the rule matches nobody.
  await m.deletePeer(acc.id, b.id);
  assert.equal(mapOf(a.id).remotePeers.length, 0);
  assert.equal(mapOf(a.id).FirewallRules.length, 0);
});

test('source posture checks: a failing source peer is no source of the policy in anybody\'s map, until it passes', async (t) => {
  const { m, acc, add, mapOf } = await setup(t);
  const old = await add('old', meta('old', '0.50.0'));
  const fresh = await add('fresh', meta('fresh', '0.70.0'));
  const srv = await add('srv');
  const gs = await m.createGroup(acc.id, { name: 'laptops', peers: [old.id, fresh.id] });
  const gd = await m.createGroup(acc.id, { name: 'servers', peers: [srv.id] });
  const check = await m.createPostureCheck(acc.id, { name: 'new agents', checks: { nb_version_check: { min_version: '0.60.0' } } });
  await m.createPolicy(acc.id, { name: 'ssh', sourcePostureChecks: [check.id], rules: [{ name: 'ssh', sources: [gs.id], destinations: [gd.id], bidirectional: true, protocol: 'tcp', ports: ['22'] }] });
  const names = (peerId: string) => mapOf(peerId).remotePeers.map((r) => r.fqdn.split('.')[0]).sort();
  assert.deepEqual(names(srv.id), ['fresh'], 'the server lists only the source that passes');
  assert.deepEqual(names(old.id), [], 'the failing peer reaches nobody');
  assert.deepEqual(rulesFor(mapOf(old.id), srv.ip), []);
  assert.deepEqual(names(fresh.id), ['srv']);

  // The old peer upgrades: its verdict flips and every map is pushed again.
  const pushed: Array<'all' | string[]> = [];
  m.addListener({ accountChanged: (_account, affected) => void pushed.push(affected === 'all' ? 'all' : [...affected]), peerDeleted: () => {} });
  await m.syncMeta(old.key, meta('old', '0.61.0'));
  assert.ok(pushed.includes('all'), `a posture flip re-sends every map (got ${JSON.stringify(pushed)})`);
  assert.deepEqual(names(srv.id), ['fresh', 'old']);
  assert.deepEqual(rulesFor(mapOf(old.id), srv.ip), ['IN TCP accept 22', 'OUT TCP accept 22']);

  // A stricter check takes it away again.
  await m.updatePostureCheck(acc.id, check.id, { name: 'newer agents', checks: { nb_version_check: { min_version: '0.65.0' } } });
  assert.deepEqual(names(srv.id), ['fresh']);
  assert.deepEqual(names(old.id), []);
});

test('source posture checks also gate network resources: a failing source gets no route and no router', async (t) => {
  const { m, acc, add, mapOf } = await setup(t);
  const router = await add('router');
  const old = await add('old', meta('old', '0.50.0'));
  const fresh = await add('fresh', meta('fresh', '0.70.0'));
  const src = await m.createGroup(acc.id, { name: 'src', peers: [old.id, fresh.id] });
  const net = await m.saveNetwork(acc.id, undefined, { name: 'office' });
  const db = await m.saveNetworkResource(acc.id, net.id, undefined, { name: 'db', description: '', address: '10.99.0.10/32', enabled: true, groups: [] });
  await m.saveNetworkRouter(acc.id, net.id, undefined, { peer: router.id, peerGroups: [], metric: 9999, masquerade: true, enabled: true });
  const check = await m.createPostureCheck(acc.id, { name: 'new agents', checks: { nb_version_check: { min_version: '0.60.0' } } });
  await m.createPolicy(acc.id, { name: 'db', sourcePostureChecks: [check.id], rules: [{ name: 'db', protocol: 'tcp', ports: ['5432'], sources: [src.id], destinationResource: { id: db.id, type: 'host' } }] });
  assert.deepEqual(mapOf(fresh.id).Routes.map((r) => r.Network), ['10.99.0.10/32']);
  assert.deepEqual(mapOf(old.id).Routes, [], 'the failing source gets no route');
  assert.deepEqual(mapOf(old.id).remotePeers, [], 'nor the router');
  assert.deepEqual(mapOf(router.id).remotePeers.map((p) => p.allowedIps[0]), [`${fresh.ip}/32`]);
});

test('firewall rules follow each policy change; the other policies\' rules stay as they were', async (t) => {
  const { m, acc, add, mapOf } = await setup(t);
  const a = await add('a');
  const b = await add('b');
  const ga = await m.createGroup(acc.id, { name: 'ga', peers: [a.id] });
  const gb = await m.createGroup(acc.id, { name: 'gb', peers: [b.id] });
  const fixed = await m.createPolicy(acc.id, { name: 'ssh', rules: [{ name: 'ssh', sources: [ga.id], destinations: [gb.id], protocol: 'tcp', ports: ['22'] }] });
  const moving = await m.createPolicy(acc.id, { name: 'web', rules: [{ name: 'web', sources: [ga.id], destinations: [gb.id], protocol: 'tcp', ports: ['1000'] }] });
  // Many changes of one policy (past the fragments' chunk cache), each seen at once, the other kept.
  for (let port = 1001; port <= 1040; port++) {
    await m.updatePolicy(acc.id, moving.id, { name: 'web', rules: [{ name: 'web', sources: [ga.id], destinations: [gb.id], protocol: 'tcp', ports: [String(port)] }] });
    assert.deepEqual(rulesFor(mapOf(a.id), b.ip), [`OUT TCP accept ${port}`, 'OUT TCP accept 22'].sort(), `after port ${port}`);
    assert.deepEqual(rulesFor(mapOf(b.id), a.ip), [`IN TCP accept ${port}`, 'IN TCP accept 22'].sort());
  }
  await m.deletePolicy(acc.id, moving.id);
  assert.deepEqual(rulesFor(mapOf(a.id), b.ip), ['OUT TCP accept 22']);
  await m.updatePolicy(acc.id, fixed.id, { name: 'ssh', rules: [{ name: 'ssh', sources: [ga.id], destinations: [gb.id], protocol: 'udp', ports: ['22'] }] });
  assert.deepEqual(rulesFor(mapOf(b.id), a.ip), ['IN UDP accept 22']);
});
