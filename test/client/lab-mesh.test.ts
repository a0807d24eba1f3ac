// End to end: netbird-server in one namespace, three peers behind NAT in their own namespaces.
// Each runs the real daemon (`netbird service run`) and joins with `netbird up --setup-key`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeshLab } from './mesh-lab.js';

test('three peers behind NAT join with a setup key and reach each other through the relay', { timeout: 240_000 }, async (t) => {
  const mesh = await MeshLab.create('nbcl');
  t.after(() => mesh.cleanup());
  for (const name of ['p1', 'p2', 'p3']) await mesh.addPeer(name);
  const members = mesh.members;
  const upStarted = Date.now();
  await Promise.all(members.map((m) => mesh.up(m)));

  const allConnected = await mesh.waitMesh(2, 90_000);
  assert.ok(allConnected, `not all peers connected\n${mesh.logs()}`);
  t.diagnostic(`all three peers connected ${Date.now() - upStarted} ms after netbird up`);
  const statuses = await Promise.all(members.map((m) => mesh.status(m)));

  // Ping every other peer by overlay IP.
  for (const [i, m] of members.entries()) {
    for (const [j, other] of members.entries()) {
      if (i === j) continue;
      const ip = statuses[j]!.netbirdIp.split('/')[0]!;
      const r = await m.nat.host.exec('ping', ['-c2', '-W2', '-n', ip], { check: false });
      assert.equal(r.code, 0, `${m.name} -> ${other.name} (${ip}) ping failed: ${r.stdout}${r.stderr}`);
    }
  }

  // ... and by DNS name, through the resolver each daemon runs on its overlay address.
  for (const [i, m] of members.entries()) {
    const j = (i + 1) % members.length;
    const fqdn = statuses[j]!.fqdn;
    assert.match(fqdn, new RegExp(`^${members[j]!.name}\\.`));
    const r = await m.nat.host.exec('ping', ['-c1', '-W2', fqdn], { check: false });
    assert.equal(r.code, 0, `${m.name} -> ${fqdn} ping by name failed: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, new RegExp(statuses[j]!.netbirdIp.split('/')[0]!.replace(/\./g, '\\.')));
  }

  // status tells the truth.
  const st = await mesh.status(members[0]!);
  assert.equal(st.management.connected, true);
  assert.equal(st.signal.connected, true);
  assert.ok(st.relays.available >= 1);
  assert.match(st.netbirdIp, /^100\.\d+\.\d+\.\d+\/\d+$/);
  assert.match(st.fqdn, /^p1\./);
  assert.equal(st.peers.total, 2);
  for (const p of st.peers.details) {
    assert.equal(p.status, 'Connected');
    assert.equal(p.connectionType, 'Relayed');
    assert.notEqual(p.relayAddress, '');
    assert.ok(p.transferReceived > 0 && p.transferSent > 0, JSON.stringify(p));
    assert.notEqual(p.lastWireguardHandshake, '0001-01-01T00:00:00Z');
  }
  // Latency on relayed paths comes from the WireGuard handshake round trip of the initiating side: every
  // pair has it on at least one end.
  const all = await Promise.all(members.map((m) => mesh.status(m)));
  for (const [i, si] of all.entries()) {
    for (const [j, sj] of all.entries()) {
      if (j <= i) continue;
      const ij = si.peers.details.find((d) => d.publicKey === sj.publicKey)!;
      const ji = sj.peers.details.find((d) => d.publicKey === si.publicKey)!;
      assert.ok(ij.latency > 0 || ji.latency > 0, `no latency between ${members[i]!.name} and ${members[j]!.name}`);
      assert.ok(Math.max(ij.latency, ji.latency) < 5e9, 'latency above 5 s is not plausible on a veth lab');
    }
  }
  const text = await mesh.cli(members[0]!, ['status', '-d']);
  assert.match(text, /Peers count: 2\/2 Connected/);
  assert.match(text, /Connection type: Relayed/);

  // down removes the interface; up brings it back with the same identity and address.
  const before = st.netbirdIp;
  await mesh.cli(members[0]!, ['down']);
  const link = await members[0]!.nat.host.exec('ip', ['link', 'show', 'wt0'], { check: false });
  assert.notEqual(link.code, 0, 'wt0 still exists after down');
  assert.equal((await mesh.status(members[0]!)).daemonStatus, 'Idle');
  await mesh.cli(members[0]!, ['up']);
  assert.equal((await mesh.status(members[0]!)).netbirdIp, before);
  const back = await members[0]!.nat.host.waitPing(statuses[1]!.netbirdIp.split('/')[0]!, 30_000);
  assert.ok(back, 'p1 cannot reach p2 again after down/up');
});
