import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { AccountManager, Store, hashSetupKey, type StoreOptions } from '../../src/management/index.js';
import { emptyPeerMeta } from '../../src/management/index.js';
import { generateKeyPair, formatKey } from '../../src/crypto/index.js';
import { pgUnavailableReason, startPgCluster } from './pg-cluster.js';
import { tempDir } from './helpers.js';

/**
 * The same store/domain tests on SQLite and PostgreSQL: everything goes through one Kysely query
 * layer, so both engines must behave identically.
 */

type Engine = { name: string; open(): Promise<{ options: StoreOptions; cleanup(): Promise<void> }>; skip?: string };

const engines: Engine[] = [
  {
    name: 'sqlite',
    async open() {
      const tmp = tempDir();
      return { options: { kind: 'sqlite', path: join(tmp.dir, 'm.db') }, cleanup: async () => tmp.remove() };
    },
  },
  {
    name: 'postgres',
    skip: pgUnavailableReason(),
    async open() {
      const pg = await startPgCluster();
      return { options: { kind: 'postgres', dsn: pg.dsn }, cleanup: () => pg.stop() };
    },
  },
];

const newKey = (): string => formatKey(generateKeyPair().publicKey);
const meta = (hostname: string) => ({ ...emptyPeerMeta(), hostname, netbirdVersion: '0.60.0' });

for (const engine of engines) {
  test(`store on ${engine.name}: migrations, account lifecycle, persistence across reopen`, { skip: engine.skip }, async (t) => {
    const env = await engine.open();
    t.after(() => env.cleanup());

    let store = await Store.open(env.options);
    let closed = false;
    t.after(async () => {
      if (!closed) await store.close();
    });
    // Migrating twice is a no-op.
    assert.equal(await store.migrate(), '0003_user_invites');

    let m = await AccountManager.open({ store, dnsDomain: 'corp.example' });
    const acc = await m.createAccount({ createdBy: 'tester', network: '100.70.0.0/16' });
    assert.equal(acc.dnsDomain, 'corp.example');
    const groups = m.listGroups(acc.id);
    assert.deepEqual(groups.map((g) => g.name), ['All']);
    const [def] = m.listPolicies(acc.id);
    assert.equal(def!.name, 'Default');
    assert.deepEqual(
      { ...def!.rules[0]!, id: '' },
      { id: '', name: 'Default', description: def!.rules[0]!.description, enabled: true, action: 'accept', bidirectional: true, protocol: 'all', ports: [], portRanges: [], sources: [groups[0]!.id], destinations: [groups[0]!.id] },
    );

    const dev = await m.createGroup(acc.id, { name: 'dev' });
    const sk = await m.createSetupKey(acc.id, { name: 'k', type: 'reusable', usageLimit: 5, autoGroups: [dev.id], ephemeral: false, expiresIn: 3600 });
    assert.equal(sk.setupKey.keyHash, hashSetupKey(sk.key));
    assert.ok(!JSON.stringify(await store.loadAccount(acc.id)).includes(sk.key), 'plain key is never stored');

    const keys = [newKey(), newKey(), newKey()];
    for (const [i, k] of keys.entries()) await m.loginPeer({ peerKey: k, setupKey: sk.key, meta: meta(`host-${i}`) });
    const peers = m.listPeers(acc.id);
    assert.equal(peers.length, 3);
    assert.ok(peers.every((p) => p.ip.startsWith('100.70.')));
    assert.deepEqual(m.getGroup(acc.id, dev.id).peers.length, 3, 'auto-groups applied');

    const policy = await m.createPolicy(acc.id, {
      name: 'web',
      rules: [{ name: 'r', sources: [dev.id], destinations: [dev.id], protocol: 'udp', ports: ['53'], portRanges: [{ start: 1000, end: 2000 }], action: 'drop' }],
    });
    await m.updatePeer(acc.id, peers[0]!.id, { name: 'Renamed One', sshEnabled: true });
    await m.updateAccount(acc.id, { settings: { peerLoginExpiration: 7200 } });
    const serial = m.getAccount(acc.id).serial;
    const snapshot = JSON.stringify({
      peers: m.listPeers(acc.id).map((p) => [p.id, p.key, p.ip, p.dnsLabel, p.name, p.sshEnabled, p.meta.hostname]).sort(),
      groups: m.listGroups(acc.id).map((g) => [g.id, g.name, [...g.peers].sort()]).sort(),
      policies: m.listPolicies(acc.id),
      keys: m.listSetupKeys(acc.id).map((k) => [k.id, k.usedTimes, k.usageLimit, k.keyHash]),
      settings: m.getAccount(acc.id).settings,
    });
    m.close();
    await store.close();

    // Reopen: same state, serial kept, and registration continues without IP reuse.
    store = await Store.open(env.options);
    m = await AccountManager.open({ store });
    assert.equal(m.getAccount(acc.id).serial, serial);
    const again = JSON.stringify({
      peers: m.listPeers(acc.id).map((p) => [p.id, p.key, p.ip, p.dnsLabel, p.name, p.sshEnabled, p.meta.hostname]).sort(),
      groups: m.listGroups(acc.id).map((g) => [g.id, g.name, [...g.peers].sort()]).sort(),
      policies: m.listPolicies(acc.id),
      keys: m.listSetupKeys(acc.id).map((k) => [k.id, k.usedTimes, k.usageLimit, k.keyHash]),
      settings: m.getAccount(acc.id).settings,
    });
    assert.equal(again, snapshot);
    assert.equal(m.getPolicy(acc.id, policy.id).rules[0]!.portRanges[0]!.end, 2000);

    // Usage limit 5: two more work, the sixth fails without a trace.
    await m.loginPeer({ peerKey: newKey(), setupKey: sk.key, meta: meta('h4') });
    await m.loginPeer({ peerKey: newKey(), setupKey: sk.key, meta: meta('h5') });
    await assert.rejects(m.loginPeer({ peerKey: newKey(), setupKey: sk.key, meta: meta('h6') }), /setup key is invalid/);
    assert.equal(await store.countPeers(acc.id), 5);
    assert.equal(new Set(m.listPeers(acc.id).map((p) => p.ip)).size, 5);

    // Referential rules.
    await assert.rejects(m.deleteGroup(acc.id, dev.id), /used by policy/);
    await assert.rejects(m.deleteGroup(acc.id, m.listGroups(acc.id).find((g) => g.name === 'All')!.id), /cannot be deleted/);
    await assert.rejects(m.createPolicy(acc.id, { name: 'bad', rules: [{ name: 'x', sources: ['nope'], destinations: [dev.id] }] }), /does not exist/);
    await assert.rejects(m.createPolicy(acc.id, { name: 'bad', rules: [{ name: 'x', sources: [dev.id], destinations: [dev.id], protocol: 'icmp', ports: ['1'] }] }), /only allowed/);

    // Deleting a peer removes its memberships; deleting the account removes everything.
    const victim = m.listPeers(acc.id)[0]!;
    await m.deletePeer(acc.id, victim.id);
    assert.equal((await store.loadAccount(acc.id))!.groups.every((g) => !g.peers.includes(victim.id)), true);
    const events = await m.listEvents(acc.id);
    assert.ok(events.some((e) => e.activityCode === 'peer.setupkey.add'));
    assert.ok(events.some((e) => e.activityCode === 'user.peer.delete'));
    await m.deleteAccount(acc.id);
    assert.equal(await store.loadAccount(acc.id), undefined);
    assert.deepEqual(await store.listAccountIds(), []);
    m.close();
    await store.close();
    closed = true;
  });

  test(`store on ${engine.name}: conditional setup-key use is atomic under concurrency`, { skip: engine.skip }, async (t) => {
    const env = await engine.open();
    t.after(() => env.cleanup());
    const store = await Store.open(env.options);
    t.after(() => store.close());
    const m = await AccountManager.open({ store });
    t.after(() => m.close());
    const acc = await m.createAccount();
    const sk = await m.createSetupKey(acc.id, { name: 'k', usageLimit: 3 });
    // Straight to the store, bypassing the account lock: the UPDATE ... WHERE itself must refuse.
    const results = await Promise.all(Array.from({ length: 10 }, () => store.transaction((q) => q.consumeSetupKey(sk.setupKey.id, Date.now()))));
    assert.equal(results.filter(Boolean).length, 3);
    const after = (await store.loadAccount(acc.id))!.setupKeys[0]!;
    assert.equal(after.usedTimes, 3);
    // The database refuses a duplicate IP in one account even if the process would try.
    await assert.rejects(m.loginPeer({ peerKey: newKey(), setupKey: sk.key, meta: meta('x') }), /setup key is invalid/);
    const sk2 = await m.createSetupKey(acc.id, { name: 'k2' });
    const ref = await m.loginPeer({ peerKey: newKey(), setupKey: sk2.key, meta: meta('one') });
    await assert.rejects(
      store.insertPeer({ ...ref.peer, id: 'dup', key: newKey(), dnsLabel: 'other' }),
      /unique|UNIQUE|duplicate/,
    );
  });
}
