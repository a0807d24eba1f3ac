import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatKey, generateKeyPair, sealMessage, verifyRelayToken } from '../../src/crypto/index.js';
import { hashSetupKey } from '../../src/management/index.js';
import { management } from '../../src/proto/index.js';
import { TestPeer, codeOf, keyOf, startServer, tempDir } from './helpers.js';
import { pgUnavailableReason, startPgCluster } from './pg-cluster.js';

const INFRA = {
  signal: { uri: '127.0.0.1:10000', tls: false },
  relay: { urls: ['rel://127.0.0.1:33080'], secret: 'relay-secret' },
  stuns: ['stun:127.0.0.1:3478'],
  turn: { uris: ['turn:127.0.0.1:3478?transport=udp'], secret: 'turn-secret', user: 'static', password: 'static-pw' },
};

test('register with a setup key, first Sync map, live updates on join, policy separation', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await startServer({ dataDir: tmp.dir, infra: INFRA });
  t.after(() => srv.close());
  const m = srv.mgmt.manager;
  const account = await m.defaultAccount();
  const { key } = await m.createSetupKey(account.id, { name: 'test', type: 'reusable' });
  assert.match(key, /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/);

  const a = new TestPeer(srv.address, 'Alpha Host');
  const b = new TestPeer(srv.address, 'beta');
  t.after(() => {
    a.close();
    b.close();
  });

  // Unknown peer without key: PermissionDenied (login required).
  assert.equal(await codeOf(a.login('')), grpc.status.PERMISSION_DENIED);

  // The client sends the lower-case form; keys are case-insensitive.
  const la = await a.login(key.toLowerCase());
  assert.match(la.peerConfig!.address, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d+\.\d+\/16$/);
  assert.equal(la.peerConfig!.fqdn, 'alpha-host.netbird.cloud');
  assert.equal(la.netbirdConfig!.signal!.uri, '127.0.0.1:10000');
  assert.equal(la.netbirdConfig!.turns[0]!.user, 'static', 'Login carries static TURN credentials');
  assert.deepEqual(la.sessionExpiresAt, { seconds: 0, nanos: 0 });
  const relay = la.netbirdConfig!.relay!;
  assert.deepEqual(relay.urls, ['rel://127.0.0.1:33080']);
  const token = Buffer.concat([Buffer.from([1]), Buffer.from(relay.tokenSignature, 'base64'), Buffer.from(relay.tokenPayload)]);
  assert.equal(verifyRelayToken('relay-secret', token).ok, true);

  // A second login of the known key (no setup key) succeeds; with nothing changed it writes nothing.
  const serialBefore = m.getAccount(account.id).serial;
  await a.login('');
  assert.equal(m.getAccount(account.id).serial, serialBefore);

  const syncA = await a.sync();
  const first = await syncA.next();
  assert.ok(first.netbirdConfig, 'first message carries NetbirdConfig');
  assert.equal(first.netbirdConfig.turns[0]!.user.length, 10, 'time-based TURN user is a Unix expiry');
  assert.notEqual(first.netbirdConfig.turns[0]!.password, 'static-pw');
  assert.ok(first.netbirdConfig.relay);
  const nm0 = first.NetworkMap!;
  assert.equal(nm0.remotePeers.length, 0);
  assert.equal(nm0.remotePeersIsEmpty, true);
  assert.equal(nm0.FirewallRules.length, 0);
  assert.equal(nm0.firewallRulesIsEmpty, true);
  assert.equal(nm0.routesFirewallRulesIsEmpty, true);
  assert.equal(nm0.peerConfig!.fqdn, 'alpha-host.netbird.cloud');
  assert.equal(nm0.DNSConfig!.CustomZones[0]!.Domain, 'netbird.cloud.');
  const serial0 = nm0.Serial;
  assert.ok(serial0 > 0);

  // B joins: A gets a map containing B, without NetbirdConfig.
  const lb = await b.login(key);
  const upd = await syncA.next();
  assert.equal(upd.netbirdConfig, undefined);
  const nm1 = upd.NetworkMap!;
  assert.ok(nm1.Serial > serial0);
  assert.deepEqual(nm1.remotePeers.map(keyOf), [b.publicKey]);
  assert.equal(nm1.remotePeersIsEmpty, false);
  const rp = nm1.remotePeers[0]!;
  assert.deepEqual(rp.allowedIps, [lb.peerConfig!.address.replace(/\/\d+$/, '/32')]);
  assert.equal(rp.fqdn, 'beta.netbird.cloud');
  assert.equal(Buffer.from(rp.sshConfig!.sshPubKey).toString(), 'ssh-ed25519 AAAATEST beta');
  // Default policy All->All bidirectional, protocol all: one IN and one OUT rule for B.
  const bIp = lb.peerConfig!.address.split('/')[0]!;
  assert.deepEqual(nm1.FirewallRules.map((r) => [r.PeerIP, r.Direction, r.Protocol, r.Action]).sort(), [
    [bIp, management.RuleDirection.IN, management.RuleProtocol.ALL, management.RuleAction.ACCEPT],
    [bIp, management.RuleDirection.OUT, management.RuleProtocol.ALL, management.RuleAction.ACCEPT],
  ].sort());
  // A advertised source-prefix support: compact prefix of B /32.
  assert.deepEqual([...nm1.FirewallRules[0]!.sourcePrefixes[0]!], [...bIp.split('.').map(Number), 32]);
  const names = nm1.DNSConfig!.CustomZones[0]!.Records.map((r) => `${r.Name}=${r.RData}`).sort();
  assert.deepEqual(names, [`alpha-host.netbird.cloud=${la.peerConfig!.address.split('/')[0]}`, `beta.netbird.cloud=${bIp}`].sort());

  const syncB = await b.sync();
  const bFirst = await syncB.next();
  assert.deepEqual(bFirst.NetworkMap!.remotePeers.map(keyOf), [a.publicKey]);
  // B connecting does not change A's map: A gets nothing.
  assert.equal(await syncA.quiet(300), true, 'an unaffected peer gets no message');

  // Separate them: groups GA={A}, GB={B}; replace the default policy by GA->GA and GB->GB.
  const pa = m.findPeerByKey(a.publicKey)!.peer;
  const pb = m.findPeerByKey(b.publicKey)!.peer;
  const ga = await m.createGroup(account.id, { name: 'ga', peers: [pa.id] });
  const gb = await m.createGroup(account.id, { name: 'gb', peers: [pb.id] });
  assert.equal(await syncA.quiet(200), true, 'a group no rule uses changes nobody\'s map');
  const def = m.listPolicies(account.id)[0]!;
  await m.updatePolicy(account.id, def.id, {
    name: 'separate',
    rules: [
      { name: 'a', sources: [ga.id], destinations: [ga.id], bidirectional: true },
      { name: 'b', sources: [gb.id], destinations: [gb.id], bidirectional: true },
    ],
  });
  const sepA = (await syncA.next()).NetworkMap!;
  const sepB = (await syncB.next()).NetworkMap!;
  assert.equal(sepA.remotePeers.length, 0);
  assert.equal(sepA.remotePeersIsEmpty, true);
  assert.equal(sepA.firewallRulesIsEmpty, true);
  assert.equal(sepB.remotePeers.length, 0);
  assert.equal(sepB.firewallRulesIsEmpty, true);
  assert.deepEqual(sepB.DNSConfig!.CustomZones[0]!.Records.map((r) => r.Name), ['beta.netbird.cloud']);

  // A TCP policy with a port and a range from GA to GB brings them back, one-way rules.
  await m.createPolicy(account.id, {
    name: 'a-to-b-web',
    rules: [{ name: 'web', sources: [ga.id], destinations: [gb.id], protocol: 'tcp', ports: ['443'], portRanges: [{ start: 8000, end: 8100 }] }],
  });
  const webA = (await syncA.next()).NetworkMap!;
  const webB = (await syncB.next()).NetworkMap!;
  assert.deepEqual(webA.remotePeers.map(keyOf), [b.publicKey]);
  assert.deepEqual(webB.remotePeers.map(keyOf), [a.publicKey]);
  assert.ok(webA.FirewallRules.every((r) => r.Direction === management.RuleDirection.OUT && r.Protocol === management.RuleProtocol.TCP));
  assert.ok(webB.FirewallRules.every((r) => r.Direction === management.RuleDirection.IN));
  assert.deepEqual(webB.FirewallRules.map((r) => r.PortInfo).sort((x, y) => (x?.port ?? 0) - (y?.port ?? 0)), [
    { port: undefined, range: { start: 8000, end: 8100 } },
    { port: 443, range: undefined },
  ].sort((x, y) => (x.port ?? 0) - (y.port ?? 0)));

  // Renaming B reaches A (FQDN in remote peer and DNS zone).
  await m.updatePeer(account.id, pb.id, { name: 'Beta Renamed' });
  const renA = (await syncA.next()).NetworkMap!;
  assert.equal(renA.remotePeers[0]!.fqdn, 'beta-renamed.netbird.cloud');
  const renB = (await syncB.next()).NetworkMap!;
  assert.equal(renB.peerConfig!.fqdn, 'beta-renamed.netbird.cloud');

  // Deleting B: B gets the empty map and its stream ends; A gets a map without B.
  await m.deletePeer(account.id, pb.id);
  const lastB = await syncB.next();
  assert.equal(lastB.NetworkMap!.remotePeersIsEmpty, true);
  assert.equal(lastB.NetworkMap!.firewallRulesIsEmpty, true);
  const endB = await syncB.waitEnd();
  assert.equal((endB as grpc.StatusObject).code, grpc.status.OK);
  const delA = (await syncA.next()).NetworkMap!;
  assert.equal(delA.remotePeers.length, 0);
  // B's key is unknown now.
  assert.equal(await codeOf(b.sync().then((s) => s.next())), grpc.status.PERMISSION_DENIED);
});

test('bad requests get the right status and leave the store unchanged', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await startServer({ dataDir: tmp.dir });
  t.after(() => srv.close());
  const m = srv.mgmt.manager;
  const acc = await m.defaultAccount();
  const oneOff = await m.createSetupKey(acc.id, { name: 'one', type: 'one-off' });
  const expired = await m.createSetupKey(acc.id, { name: 'exp', expiresIn: 0.001 });
  const revoked = await m.createSetupKey(acc.id, { name: 'rev' });
  await m.updateSetupKey(acc.id, revoked.setupKey.id, { revoked: true });
  const limited = await m.createSetupKey(acc.id, { name: 'lim', usageLimit: 1 });
  await new Promise((r) => setTimeout(r, 10));

  const snapshot = async (): Promise<string> => {
    const peers = await srv.mgmt.store.countPeers(acc.id);
    const data = await srv.mgmt.store.loadAccount(acc.id);
    return JSON.stringify({ peers, keys: data!.setupKeys.map((k) => [k.id, k.usedTimes, k.revoked]), groups: data!.groups });
  };

  const p1 = new TestPeer(srv.address, 'p1');
  const p2 = new TestPeer(srv.address, 'p2');
  const p3 = new TestPeer(srv.address, 'p3');
  t.after(() => {
    p1.close();
    p2.close();
    p3.close();
  });
  await p1.login(oneOff.key);
  await p3.login(limited.key);
  const before = await snapshot();

  assert.equal(await codeOf(p2.login('00000000-0000-0000-0000-000000000000')), grpc.status.NOT_FOUND, 'unknown key');
  assert.equal(await codeOf(p2.login('not-a-uuid')), grpc.status.NOT_FOUND, 'garbage key');
  assert.equal(await codeOf(p2.login(oneOff.key)), grpc.status.NOT_FOUND, 'used-up one-off key');
  assert.equal(await codeOf(p2.login(limited.key)), grpc.status.NOT_FOUND, 'usage limit reached');
  assert.equal(await codeOf(p2.login(expired.key)), grpc.status.NOT_FOUND, 'expired key');
  assert.equal(await codeOf(p2.login(revoked.key)), grpc.status.NOT_FOUND, 'revoked key');

  // Missing meta: FailedPrecondition.
  await p2.serverKey();
  const noMeta = p2.encrypt(management.LoginRequest, management.LoginRequest.fromPartial({ setupKey: oneOff.key }));
  assert.equal(await codeOf(p2.rawLogin(noMeta)), grpc.status.FAILED_PRECONDITION);

  // Garbage envelopes: InvalidArgument.
  const good = p2.encrypt(management.LoginRequest, management.LoginRequest.fromPartial({ setupKey: limited.key, meta: { hostname: 'x' } }));
  assert.equal(await codeOf(p2.rawLogin({ ...good, wgPubKey: 'not a key' })), grpc.status.INVALID_ARGUMENT, 'bad wgPubKey');
  assert.equal(await codeOf(p2.rawLogin({ ...good, body: Buffer.from('short') })), grpc.status.INVALID_ARGUMENT, 'short body');
  const flipped = Buffer.from(good.body);
  flipped[flipped.length - 1]! ^= 1;
  assert.equal(await codeOf(p2.rawLogin({ ...good, body: flipped })), grpc.status.INVALID_ARGUMENT, 'tampered body');
  const other = generateKeyPair();
  assert.equal(await codeOf(p2.rawLogin({ ...good, wgPubKey: formatKey(other.publicKey) })), grpc.status.INVALID_ARGUMENT, 'key mismatch');
  // Valid box, but not a LoginRequest inside.
  const junk = sealMessage({ encode: () => ({ finish: () => Buffer.from([0xff, 0xff, 0xff]) }), decode: () => ({}) }, {}, (await p2.serverKey()), p2.keys.privateKey);
  assert.equal(await codeOf(p2.rawLogin({ ...good, body: junk })), grpc.status.INVALID_ARGUMENT, 'junk protobuf');

  // Sync / Logout of unknown peer.
  assert.equal(await codeOf(p2.sync().then((s) => s.next())), grpc.status.PERMISSION_DENIED);
  const logout = p2.encrypt(management.Empty, {});
  assert.equal(await codeOf(new Promise((res, rej) => p2.client.logout(logout, (e, r) => (e ? rej(e) : res(r))))), grpc.status.NOT_FOUND);
  // Unimplemented RPCs.
  assert.equal(await codeOf(new Promise((res, rej) => p2.client.extendAuthSession(logout, (e, r) => (e ? rej(e) : res(r))))), grpc.status.UNIMPLEMENTED);
  assert.equal(await codeOf(new Promise((res, rej) => p2.client.getPkceAuthorizationFlow(logout, (e, r) => (e ? rej(e) : res(r))))), grpc.status.UNIMPLEMENTED);

  assert.equal(await snapshot(), before, 'no rejected request changed the store');
  assert.equal(hashSetupKey(oneOff.key.toLowerCase()), oneOff.setupKey.keyHash);

  // Logout of a known peer deletes it.
  await p1.serverKey();
  const lo = p1.encrypt(management.Empty, {});
  await new Promise((res, rej) => p1.client.logout(lo, (e, r) => (e ? rej(e) : res(r))));
  assert.equal(await srv.mgmt.store.countPeers(acc.id), 1);
});

test('a one-off key used by concurrent registrations registers exactly one peer; IPs never repeat', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await startServer({ dataDir: tmp.dir });
  t.after(() => srv.close());
  const m = srv.mgmt.manager;
  const acc = await m.defaultAccount();
  const oneOff = await m.createSetupKey(acc.id, { name: 'one', type: 'one-off' });
  const peers = Array.from({ length: 8 }, (_, i) => new TestPeer(srv.address, 'same-name'));
  t.after(() => peers.forEach((p) => p.close()));
  const codes = await Promise.all(peers.map((p) => codeOf(p.login(oneOff.key))));
  assert.equal(codes.filter((c) => c === grpc.status.OK).length, 1);
  assert.equal(codes.filter((c) => c === grpc.status.NOT_FOUND).length, 7);

  const reusable = await m.createSetupKey(acc.id, { name: 'many' });
  const many = Array.from({ length: 30 }, () => new TestPeer(srv.address, 'same-name'));
  t.after(() => many.forEach((p) => p.close()));
  await Promise.all(many.map((p) => p.login(reusable.key)));
  const all = m.listPeers(acc.id);
  assert.equal(all.length, 31);
  assert.equal(new Set(all.map((p) => p.ip)).size, 31, 'no duplicate IP');
  assert.equal(new Set(all.map((p) => p.dnsLabel)).size, 31, 'no duplicate DNS label');
  assert.ok(all.some((p) => p.dnsLabel === 'same-name-1'));
  assert.equal(m.getSetupKey(acc.id, reusable.setupKey.id).usedTimes, 30);
});

test('Sync handshakes beyond the limit get RESOURCE_EXHAUSTED', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await startServer({ dataDir: tmp.dir, maxSyncHandshakes: 0 });
  t.after(() => srv.close());
  const acc = await srv.mgmt.manager.defaultAccount();
  const { key } = await srv.mgmt.manager.createSetupKey(acc.id, { name: 'k' });
  const a = new TestPeer(srv.address, 'busy');
  t.after(() => a.close());
  await a.login(key);
  assert.equal(await codeOf(a.sync().then((s) => s.next())), grpc.status.RESOURCE_EXHAUSTED);
});

test('a second Sync stream of the same peer replaces the first and the peer stays connected', async (t) => {
  const tmp = tempDir();
  t.after(() => tmp.remove());
  const srv = await startServer({ dataDir: tmp.dir });
  t.after(() => srv.close());
  const m = srv.mgmt.manager;
  const acc = await m.defaultAccount();
  const { key } = await m.createSetupKey(acc.id, { name: 'k' });
  const a = new TestPeer(srv.address, 'twice');
  t.after(() => a.close());
  await a.login(key);
  const s1 = await a.sync();
  await s1.next();
  const s2 = await a.sync();
  await s2.next();
  const end1 = (await s1.waitEnd()) as grpc.StatusObject;
  assert.equal(end1.code, grpc.status.OK, 'old stream ends normally');
  await new Promise((r) => setTimeout(r, 100));
  const p = m.findPeerByKey(a.publicKey)!.peer;
  assert.equal(p.connected, true);
  assert.equal(srv.mgmt.hub.connectedCount, 1);
  // Closing the client stream marks the peer offline.
  a.close();
  for (let i = 0; i < 50 && m.findPeerByKey(a.publicKey)!.peer.connected; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(m.findPeerByKey(a.publicKey)!.peer.connected, false);
  assert.equal(srv.mgmt.hub.connectedCount, 0);
});

test('the gRPC service on PostgreSQL: register, sync, restart keeps peers and IPs', { skip: pgUnavailableReason() }, async (t) => {
  const pg = await startPgCluster();
  t.after(() => pg.stop());
  const tmp = tempDir();
  t.after(() => tmp.remove());
  let srv = await startServer({ dataDir: tmp.dir, postgresDsn: pg.dsn });
  let closed = false;
  t.after(async () => {
    if (!closed) await srv.close();
  });
  const acc = await srv.mgmt.manager.defaultAccount();
  const { key } = await srv.mgmt.manager.createSetupKey(acc.id, { name: 'pg', type: 'one-off' });
  const a = new TestPeer(srv.address, 'pg-a');
  t.after(() => a.close());
  const la = await a.login(key);
  const inbox = await a.sync();
  assert.equal((await inbox.next()).NetworkMap!.peerConfig!.address, la.peerConfig!.address);
  a.close();
  await srv.close();
  closed = true;
  srv = await startServer({ dataDir: tmp.dir, postgresDsn: pg.dsn });
  closed = false;
  const a2 = new TestPeer(srv.address, 'pg-a');
  (a2 as unknown as { keys: unknown }).keys = a.keys;
  t.after(() => a2.close());
  assert.equal((await a2.login('')).peerConfig!.address, la.peerConfig!.address);
  const b = new TestPeer(srv.address, 'pg-b');
  t.after(() => b.close());
  assert.equal(await codeOf(b.login(key)), grpc.status.NOT_FOUND, 'one-off key stays used across restarts');
});
