import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatKey, generateKeyPair, verifyRelayToken, relayTokenBinary } from '../../src/crypto/index.js';
import {
  AccountManager,
  ManagementError,
  NetbirdConfigBuilder,
  SYNC_HEADROOM,
  Store,
  UpdateHub,
  emptyPeerMeta,
  type InfraConfig,
  type PeerMeta,
  type SyncSink,
} from '../../src/management/index.js';
import { management } from '../../src/proto/index.js';
import { Inbox, tempDir } from './helpers.js';

/** Live-update behaviour at the Sync-stream layer: coalescing, refreshes, expiry, ephemeral peers. */

const meta = (hostname: string, version = '0.60.2'): PeerMeta => ({ ...emptyPeerMeta(), hostname, netbirdVersion: version, capabilities: [1] });
const newKey = (): string => formatKey(generateKeyPair().publicKey);

interface Env {
  store: Store;
  manager: AccountManager;
  hub: UpdateHub;
  accountId: string;
  setupKey: string;
  clock: { now: number };
}

async function env(t: { after(fn: () => unknown): void }, opts: { infra?: InfraConfig; debounceMs?: number; maxDelayMs?: number; maxInFlightBytes?: number; ephemeralTimeoutMs?: number; fakeClock?: boolean } = {}): Promise<Env> {
  const tmp = tempDir();
  const store = await Store.open({ kind: 'sqlite', path: join(tmp.dir, 'm.db') });
  const clock = { now: Date.now() };
  const manager = await AccountManager.open({
    store,
    ephemeralTimeoutMs: opts.ephemeralTimeoutMs,
    expirationCheckMs: 3_600_000,
    now: opts.fakeClock ? () => clock.now : undefined,
  });
  const hub = new UpdateHub(manager, new NetbirdConfigBuilder(opts.infra ?? {}), { debounceMs: opts.debounceMs ?? 50, maxDelayMs: opts.maxDelayMs ?? 1000, maxInFlightBytes: opts.maxInFlightBytes });
  t.after(async () => {
    hub.shutdown();
    manager.close();
    await store.close();
    tmp.remove();
  });
  const acc = await manager.createAccount();
  const { key } = await manager.createSetupKey(acc.id, { name: 'k' });
  return { store, manager, hub, accountId: acc.id, setupKey: key, clock };
}

/** An in-process Sync stream: decodes every frame into an inbox. */
function sink(): { sink: SyncSink; inbox: Inbox<management.SyncResponse>; ended: Array<ManagementError | undefined> } {
  const inbox = new Inbox<management.SyncResponse>();
  const ended: Array<ManagementError | undefined> = [];
  return {
    inbox,
    ended,
    sink: {
      send: (frame, written) => {
        inbox.push(management.SyncResponse.decode(frame.subarray(SYNC_HEADROOM)));
        written();
      },
      end: (err) => {
        ended.push(err);
        inbox.end(err ?? new Error('ended'));
      },
    },
  };
}

async function connect(e: Env, key: string, m: PeerMeta): Promise<ReturnType<typeof sink> & { session: ReturnType<UpdateHub['open']> }> {
  const ref = await e.manager.syncPeer(key, m);
  const s = sink();
  return { ...s, session: e.hub.open(ref, s.sink) };
}

test('bursts are coalesced: first update at once, then only the newest after the quiet period', async (t) => {
  const e = await env(t, { debounceMs: 300, maxDelayMs: 2000 });
  const ka = newKey();
  const kb = newKey();
  await e.manager.loginPeer({ peerKey: ka, setupKey: e.setupKey, meta: meta('a') });
  const b = await e.manager.loginPeer({ peerKey: kb, setupKey: e.setupKey, meta: meta('b') });
  const a = await connect(e, ka, meta('a'));
  await a.inbox.next();

  await e.manager.updatePeer(e.accountId, b.peer.id, { name: 'b-1' });
  const first = await a.inbox.next(1000);
  assert.equal(first.NetworkMap!.remotePeers[0]!.fqdn, 'b-1.netbird.cloud', 'first update goes out immediately');
  const t0 = Date.now();
  for (let i = 2; i <= 6; i++) {
    await e.manager.updatePeer(e.accountId, b.peer.id, { name: `b-${i}` });
    await new Promise((r) => setTimeout(r, 50));
  }
  const merged = await a.inbox.next(3000);
  assert.equal(merged.NetworkMap!.remotePeers[0]!.fqdn, 'b-6.netbird.cloud', 'only the newest map of the burst');
  assert.ok(Date.now() - t0 >= 300, 'held back until the burst went quiet');
  assert.equal(await a.inbox.quiet(500), true, 'nothing else follows');
  assert.ok(merged.NetworkMap!.Serial > first.NetworkMap!.Serial);
});

/** A stream whose transport takes frames only when told to (a slow reader). */
function heldSink(): { sink: SyncSink; inbox: Inbox<management.SyncResponse>; release(): number } {
  const inbox = new Inbox<management.SyncResponse>();
  const held: Array<() => void> = [];
  return {
    inbox,
    sink: {
      send: (frame, written) => {
        inbox.push(management.SyncResponse.decode(frame.subarray(SYNC_HEADROOM)));
        held.push(written);
      },
      end: (err) => inbox.end(err ?? new Error('ended')),
    },
    release: () => {
      const n = held.length;
      for (const w of held.splice(0)) w();
      return n;
    },
  };
}

test('flow control: a stream that has not taken its map gets no other; then only the newest', async (t) => {
  const e = await env(t, { debounceMs: 10, maxDelayMs: 50 });
  const ka = newKey();
  const kb = newKey();
  await e.manager.loginPeer({ peerKey: ka, setupKey: e.setupKey, meta: meta('a') });
  const b = await e.manager.loginPeer({ peerKey: kb, setupKey: e.setupKey, meta: meta('b') });
  const a = heldSink();
  e.hub.open(await e.manager.syncPeer(ka, meta('a')), a.sink);
  const first = await a.inbox.next();
  assert.ok(first.netbirdConfig, 'the first message carries the NetbirdConfig');
  for (let i = 1; i <= 3; i++) {
    await e.manager.updatePeer(e.accountId, b.peer.id, { name: `b-${i}` });
    await new Promise((r) => setTimeout(r, 40));
  }
  assert.equal(await a.inbox.quiet(300), true, 'nothing more while the first map is still in the transport');
  assert.equal(e.hub.stats.inFlightBytes > 0, true);
  a.release();
  const next = await a.inbox.next(2000);
  assert.equal(next.NetworkMap!.remotePeers[0]!.fqdn, 'b-3.netbird.cloud', 'the newest state, not the ones in between');
  a.release();
  assert.equal(await a.inbox.quiet(300), true, 'one map for the whole backlog');
  assert.equal(e.hub.stats.inFlightBytes, 0);
});

test('in-flight bound: streams wait for room in turn and every one gets its map', async (t) => {
  // A bound of one byte: one frame in flight for the whole hub at a time.
  const e = await env(t, { maxInFlightBytes: 1 });
  const sinks: Array<ReturnType<typeof heldSink>> = [];
  for (let i = 0; i < 4; i++) {
    const k = newKey();
    await e.manager.loginPeer({ peerKey: k, setupKey: e.setupKey, meta: meta(`p${i}`) });
    const s = heldSink();
    e.hub.open(await e.manager.syncPeer(k, meta(`p${i}`)), s.sink);
    sinks.push(s);
  }
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(sinks.map((s) => s.inbox.size), [1, 0, 0, 0], 'only the first stream got its map');
  assert.equal(e.hub.stats.queued, 3);
  for (let i = 0; i < 3; i++) {
    assert.equal(sinks[i]!.release(), 1);
    await sinks[i + 1]!.inbox.next(2000);
  }
  sinks[3]!.release();
  assert.ok((await sinks[0]!.inbox.next()).netbirdConfig, 'each stream got its first message');
  for (const s of sinks) assert.equal(await s.inbox.quiet(100), true);
  assert.equal(e.hub.stats.queued, 0);
  assert.equal(e.hub.stats.inFlightBytes, 0);
  assert.ok(e.hub.stats.inFlightPeakBytes > 0);
});

test('a closed stream frees its place in flight for the others', async (t) => {
  const e = await env(t, { maxInFlightBytes: 1 });
  const ka = newKey();
  const kb = newKey();
  await e.manager.loginPeer({ peerKey: ka, setupKey: e.setupKey, meta: meta('a') });
  await e.manager.loginPeer({ peerKey: kb, setupKey: e.setupKey, meta: meta('b') });
  const a = heldSink();
  const b = heldSink();
  const sa = e.hub.open(await e.manager.syncPeer(ka, meta('a')), a.sink);
  e.hub.open(await e.manager.syncPeer(kb, meta('b')), b.sink);
  await a.inbox.next();
  assert.equal(await b.inbox.quiet(150), true, 'b waits for room');
  e.hub.close(sa); // a went away without reading
  const mb = await b.inbox.next(2000);
  assert.ok(mb.netbirdConfig);
});

test('on-/offline changes nobody else\'s map; a version change reaches the peers that see it', async (t) => {
  const e = await env(t);
  const ka = newKey();
  const kb = newKey();
  const kc = newKey();
  await e.manager.loginPeer({ peerKey: ka, setupKey: e.setupKey, meta: meta('a') });
  const b = await e.manager.loginPeer({ peerKey: kb, setupKey: e.setupKey, meta: meta('b') });
  const c = await e.manager.loginPeer({ peerKey: kc, setupKey: e.setupKey, meta: meta('c') });
  // c is isolated from a and b.
  const gab = await e.manager.createGroup(e.accountId, { name: 'ab', peers: e.manager.listPeers(e.accountId).filter((p) => p.id !== c.peer.id).map((p) => p.id) });
  const gc = await e.manager.createGroup(e.accountId, { name: 'c', peers: [c.peer.id] });
  const def = e.manager.listPolicies(e.accountId)[0]!;
  await e.manager.updatePolicy(e.accountId, def.id, {
    name: 'split',
    rules: [
      { name: 'ab', sources: [gab.id], destinations: [gab.id], bidirectional: true },
      { name: 'c', sources: [gc.id], destinations: [gc.id], bidirectional: true },
    ],
  });
  const a = await connect(e, ka, meta('a'));
  const cs = await connect(e, kc, meta('c'));
  await a.inbox.next();
  await cs.inbox.next();

  const bs = await connect(e, kb, meta('b'));
  await bs.inbox.next();
  e.hub.close(bs.session);
  await e.manager.peerDisconnected(kb);
  assert.equal(e.manager.getPeer(e.accountId, b.peer.id).connected, false);
  // Status is written behind in batches; after a flush the store agrees.
  await e.manager.flushStatus();
  assert.equal((await e.store.loadAccount(e.accountId))!.peers.find((p) => p.id === b.peer.id)!.connected, false);
  assert.equal(await a.inbox.quiet(200), true, 'b going on- and offline sends a nothing');

  // b comes back with a new agent version: a sees agentVersion change, c does not see b at all.
  const bs2 = await connect(e, kb, meta('b', '0.61.0'));
  await bs2.inbox.next();
  await e.manager.flushStatus();
  assert.equal((await e.store.loadAccount(e.accountId))!.peers.find((p) => p.id === b.peer.id)!.connected, true);
  const upd = await a.inbox.next(1000);
  assert.equal(upd.NetworkMap!.remotePeers[0]!.agentVersion, '0.61.0');
  assert.equal(await cs.inbox.quiet(200), true, 'c is unaffected');

  // SyncMeta with the same meta changes nothing; with new meta it is stored.
  await e.manager.syncMeta(kb, meta('b', '0.61.0'));
  assert.equal(await a.inbox.quiet(150), true);
  await e.manager.syncMeta(kb, { ...meta('b', '0.61.0'), OS: 'Plan 9' });
  assert.equal(e.manager.getPeer(e.accountId, b.peer.id).meta.OS, 'Plan 9');
  assert.equal((await e.store.loadAccount(e.accountId))!.peers.find((p) => p.id === b.peer.id)!.meta.OS, 'Plan 9');
});

test('credential refresh every 3/4 TTL: config-only messages with fresh relay token and TURN credentials', async (t) => {
  const infra: InfraConfig = {
    relay: { urls: ['rel://127.0.0.1:1'], secret: 'rs', ttlSeconds: 2 },
    turn: { uris: ['turn:127.0.0.1:3478?transport=udp'], secret: 'ts', ttlSeconds: 2 },
    stuns: ['stun:127.0.0.1:3478'],
  };
  const e = await env(t, { infra });
  const ka = newKey();
  await e.manager.loginPeer({ peerKey: ka, setupKey: e.setupKey, meta: meta('a') });
  const a = await connect(e, ka, meta('a'));
  const first = await a.inbox.next();
  assert.equal(first.netbirdConfig!.stuns.length, 1);
  const t0 = Date.now();
  const refresh = await a.inbox.next(4000);
  const dt = Date.now() - t0;
  assert.ok(dt >= 1300 && dt < 2500, `refresh after ~1.5 s, got ${dt} ms`);
  assert.equal(refresh.NetworkMap, undefined, 'config-only: no map');
  assert.ok(refresh.netbirdConfig);
  assert.equal(refresh.netbirdConfig.stuns.length, 0, 'STUN omitted in refreshes');
  assert.equal(refresh.netbirdConfig.turns.length, 1);
  assert.ok(Number(refresh.netbirdConfig.turns[0]!.user) >= Math.floor(Date.now() / 1000) + 1);
  const r = refresh.netbirdConfig.relay!;
  assert.equal(verifyRelayToken('rs', relayTokenBinary({ payload: r.tokenPayload, signature: r.tokenSignature })).ok, true);
});

test('ephemeral peers are deleted after staying disconnected; others are kept', async (t) => {
  const e = await env(t, { ephemeralTimeoutMs: 300 });
  const eph = await e.manager.createSetupKey(e.accountId, { name: 'eph', ephemeral: true });
  const ka = newKey();
  const ke = newKey();
  const kn = newKey();
  await e.manager.loginPeer({ peerKey: ka, setupKey: e.setupKey, meta: meta('a') });
  const ep = await e.manager.loginPeer({ peerKey: ke, setupKey: eph.key, meta: meta('eph') });
  assert.equal(ep.peer.ephemeral, true);
  await e.manager.loginPeer({ peerKey: kn, setupKey: e.setupKey, meta: meta('normal') });
  const a = await connect(e, ka, meta('a'));
  assert.equal((await a.inbox.next()).NetworkMap!.remotePeers.length, 2);

  // Connected, it survives past the timeout.
  const es = await connect(e, ke, meta('eph'));
  await es.inbox.next();
  await new Promise((r) => setTimeout(r, 450));
  assert.ok(e.manager.findPeerByKey(ke), 'connected ephemeral peer stays');
  e.hub.close(es.session);
  await e.manager.peerDisconnected(ke);
  const upd = await a.inbox.next(2000);
  assert.equal(upd.NetworkMap!.remotePeers.length, 1, 'a is told the ephemeral peer is gone');
  assert.equal(e.manager.findPeerByKey(ke), undefined);
  assert.equal(await e.store.countPeers(e.accountId), 2);
  assert.ok(e.manager.findPeerByKey(kn), 'disconnected non-ephemeral peer is kept');
});

test('peer login expiration: SSO peer moves to offlinePeers, its stream ends, re-login needs the JWT', async (t) => {
  const e = await env(t, { fakeClock: true });
  const user = await e.manager.createUser(e.accountId, { role: 'user', email: 'u@example.com' });
  await e.manager.updateAccount(e.accountId, { settings: { peerLoginExpirationEnabled: true, peerLoginExpiration: 60 } });
  const ka = newKey();
  const ks = newKey();
  await e.manager.loginPeer({ peerKey: ka, setupKey: e.setupKey, meta: meta('a') });
  const sso = await e.manager.loginPeer({ peerKey: ks, jwtUserId: user.id, meta: meta('sso') });
  assert.equal(sso.peer.userId, user.id);
  const a = await connect(e, ka, meta('a'));
  assert.equal((await a.inbox.next()).NetworkMap!.remotePeers.length, 1);
  const s = await connect(e, ks, meta('sso'));
  const sFirst = await s.inbox.next();
  assert.equal(sFirst.sessionExpiresAt!.seconds, Math.floor((e.clock.now + 60_000) / 1000));

  e.clock.now += 61_000;
  await e.manager.checkLoginExpiration();
  const upd = await a.inbox.next(1000);
  assert.equal(upd.NetworkMap!.remotePeers.length, 0);
  assert.equal(upd.NetworkMap!.offlinePeers.length, 1);
  assert.equal(upd.NetworkMap!.offlinePeers[0]!.wgPubKey, ks);
  assert.equal(upd.NetworkMap!.firewallRulesIsEmpty, true);
  assert.equal(s.ended[0]?.kind, 'permission_denied');

  await assert.rejects(e.manager.syncPeer(ks, meta('sso')), (err: ManagementError) => err.kind === 'permission_denied');
  await assert.rejects(e.manager.loginPeer({ peerKey: ks, meta: meta('sso') }), /expired/);
  await assert.rejects(e.manager.loginPeer({ peerKey: ks, jwtUserId: 'someone-else', meta: meta('sso') }), /another user/);
  await e.manager.loginPeer({ peerKey: ks, jwtUserId: user.id, meta: meta('sso') });
  const back = await a.inbox.next(1000);
  assert.equal(back.NetworkMap!.remotePeers.length, 1, 'logged in again: connectable');
  // Setup-key peers never expire.
  e.clock.now += 10 * 86_400_000;
  await e.manager.syncPeer(ka, meta('a'));
});

test('routes, name-server groups and user DNS zones reach the maps of the peers they are for', async (t) => {
  const e = await env(t);
  const ka = newKey();
  const kr = newKey();
  await e.manager.loginPeer({ peerKey: ka, setupKey: e.setupKey, meta: meta('client') });
  const router = await e.manager.loginPeer({ peerKey: kr, setupKey: e.setupKey, meta: meta('router') });
  const all = e.manager.listGroups(e.accountId).find((g) => g.name === 'All')!;
  const a = await connect(e, ka, meta('client'));
  await a.inbox.next();

  await e.manager.createRoute(e.accountId, {
    description: 'lan',
    networkId: 'office',
    enabled: true,
    peer: router.peer.id,
    network: '192.168.50.0/24',
    metric: 100,
    masquerade: true,
    groups: [all.id],
    keepRoute: false,
  });
  const withRoute = (await a.inbox.next(1000)).NetworkMap!;
  assert.equal(withRoute.Routes.length, 1);
  assert.equal(withRoute.Routes[0]!.Network, '192.168.50.0/24');
  assert.equal(withRoute.Routes[0]!.Peer, kr);
  assert.equal(withRoute.Routes[0]!.NetID, 'office');

  await e.manager.createNameserverGroup(e.accountId, {
    name: 'corp',
    description: '',
    nameservers: [{ ip: '10.0.0.53', nsType: 'udp', port: 53 }],
    enabled: true,
    groups: [all.id],
    primary: false,
    domains: ['corp.example'],
    searchDomainsEnabled: false,
  });
  const withNs = (await a.inbox.next(1000)).NetworkMap!;
  assert.equal(withNs.DNSConfig!.NameServerGroups.length, 1);
  assert.equal(withNs.DNSConfig!.NameServerGroups[0]!.NameServers[0]!.IP, '10.0.0.53');
  assert.deepEqual(withNs.DNSConfig!.NameServerGroups[0]!.Domains, ['corp.example']);
  // The peer zone stays first, with its records, and the forwarder port survives the extra fields.
  assert.equal(withNs.DNSConfig!.CustomZones[0]!.Domain, 'netbird.cloud.');
  assert.equal(withNs.DNSConfig!.CustomZones[0]!.Records.length, 2);
  assert.equal(withNs.DNSConfig!.ForwarderPort, 22054);
  assert.equal(withNs.Routes.length, 1);
});

test('blocking a user ends their peers\' streams and lists those peers as offline for others', async (t) => {
  const e = await env(t);
  const user = await e.manager.createUser(e.accountId, { role: 'user', email: 'blocked@example.com' });
  const ka = newKey();
  const ku = newKey();
  await e.manager.loginPeer({ peerKey: ka, setupKey: e.setupKey, meta: meta('a') });
  await e.manager.loginPeer({ peerKey: ku, jwtUserId: user.id, meta: meta('users-laptop') });
  const a = await connect(e, ka, meta('a'));
  assert.equal((await a.inbox.next()).NetworkMap!.remotePeers.length, 1);
  const u = await connect(e, ku, meta('users-laptop'));
  await u.inbox.next();

  await e.manager.updateUser(e.accountId, user.id, { blocked: true });
  const upd = (await a.inbox.next(1000)).NetworkMap!;
  assert.equal(upd.remotePeers.length, 0);
  assert.deepEqual(upd.offlinePeers.map((p) => p.wgPubKey), [ku]);
  assert.equal(u.ended[0]?.kind, 'permission_denied');
  await assert.rejects(e.manager.syncPeer(ku, meta('users-laptop')), /blocked/);

  await e.manager.updateUser(e.accountId, user.id, { blocked: false });
  const back = (await a.inbox.next(1000)).NetworkMap!;
  assert.equal(back.remotePeers.length, 1);
  assert.equal(back.offlinePeers.length, 0);
});
