// End to end: netbird-server in one namespace, three peers behind NAT in their own namespaces.
// Each runs the real daemon (`netbird service run`) and joins with `netbird up --setup-key`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, run, waitUntil, type LabProcess, type NatHost } from '../lab/index.js';
import type { StatusJson } from '../../src/client/status.js';

const NODE = process.execPath;
const CLI = ['--import', 'tsx', 'test/client/netbird-cli.ts'];
const SERVER = ['--import', 'tsx', 'test/server/run-cli.ts'];

interface Member {
  name: string;
  nat: NatHost;
  sock: string;
  config: string;
  daemon: LabProcess;
}

async function cli(m: Member, args: string[]): Promise<string> {
  const r = await run(NODE, [...CLI, ...args, '--daemon-addr', `unix://${m.sock}`], { check: false });
  if (r.code !== 0) throw new Error(`netbird ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function status(m: Member): Promise<StatusJson> {
  return JSON.parse(await cli(m, ['status', '--json'])) as StatusJson;
}

test('three peers behind NAT join with a setup key and reach each other through the relay', { timeout: 240_000 }, async (t) => {
  const lab = await Lab.create({ prefix: 'nbcl' });
  t.after(() => lab.cleanup());
  const srv = await lab.natHost('srv', 'none');
  const dataDir = lab.tmpdir();
  const keyOut = await run(NODE, [...SERVER, 'setup-keys', 'create', '--reusable', '--data-dir', dataDir, '--json']);
  const setupKey = (JSON.parse(keyOut.stdout) as { key: string }).key;
  const server = srv.host.spawn(NODE, [...SERVER, '--data-dir', dataDir, '--listen', '0.0.0.0:33073', '--public-host', srv.ip]);
  await server.waitFor(/listening on/, 30_000);
  const mgmtUrl = `http://${srv.ip}:33073`;

  const members: Member[] = [];
  for (const name of ['p1', 'p2', 'p3']) {
    const nat = await lab.natHost(name, 'cone');
    const dir = lab.tmpdir();
    const sock = join(dir, 'netbird.sock');
    const config = join(dir, 'config.json');
    // `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf: each peer gets its own,
    // and the daemon edits that file (NB_RESOLV_CONF) instead of the host's.
    const etc = `/etc/netns/${nat.host.name}`;
    mkdirSync(etc, { recursive: true });
    writeFileSync(`${etc}/resolv.conf`, 'nameserver 127.0.0.1\n');
    t.after(() => rmSync(etc, { recursive: true, force: true }));
    const daemon = nat.host.spawn(NODE, [...CLI, 'service', 'run', '--config', config, '--daemon-addr', `unix://${sock}`], {
      env: { ...process.env, NB_RESOLV_CONF: `${etc}/resolv.conf` },
    });
    await daemon.waitFor(/listening on unix/, 30_000);
    members.push({ name, nat, sock, config, daemon });
  }
  const upStarted = Date.now();
  await Promise.all(members.map((m) => cli(m, ['up', '--setup-key', setupKey, '--management-url', mgmtUrl, '--hostname', m.name])));

  // Every peer sees the two others connected.
  const allConnected = await waitUntil(async () => {
    const sts = await Promise.all(members.map(status));
    return sts.every((s) => s.peers.total === 2 && s.peers.connected === 2);
  }, 90_000, 500);
  const statuses = await Promise.all(members.map(status));
  assert.ok(allConnected, `not all peers connected: ${JSON.stringify(statuses.map((s) => s.peers), null, 1)}\n${members.map((m) => m.daemon.output()).join('\n---\n')}`);
  t.diagnostic(`all three peers connected ${Date.now() - upStarted} ms after netbird up`);

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
    const other = members[(i + 1) % members.length]!;
    const fqdn = statuses[(i + 1) % members.length]!.fqdn;
    assert.match(fqdn, new RegExp(`^${other.name}\\.`));
    const r = await m.nat.host.exec('ping', ['-c1', '-W2', fqdn], { check: false });
    assert.equal(r.code, 0, `${m.name} -> ${fqdn} ping by name failed: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, new RegExp(statuses[(i + 1) % members.length]!.netbirdIp.split('/')[0]!.replace(/\./g, '\\.')));
  }

  // status tells the truth.
  const st = await status(members[0]!);
  assert.equal(st.management.connected, true);
  assert.equal(st.signal.connected, true);
  assert.ok(st.relays.available >= 1);
  assert.match(st.netbirdIp, /^100\.\d+\.\d+\.\d+\/\d+$/);
  assert.match(st.fqdn, /^p1\./);
  for (const p of st.peers.details) {
    assert.equal(p.status, 'Connected');
    assert.equal(p.connectionType, 'Relayed');
    assert.notEqual(p.relayAddress, '');
    assert.ok(p.transferReceived > 0 && p.transferSent > 0, JSON.stringify(p));
    assert.notEqual(p.lastWireguardHandshake, '0001-01-01T00:00:00Z');
  }
  const text = await cli(members[0]!, ['status', '-d']);
  assert.match(text, /Peers count: 2\/2 Connected/);
  assert.match(text, /Connection type: Relayed/);

  // down removes the interface; up brings it back with the same identity and address.
  const before = st.netbirdIp;
  await cli(members[0]!, ['down']);
  const link = await members[0]!.nat.host.exec('ip', ['link', 'show', 'wt0'], { check: false });
  assert.notEqual(link.code, 0, 'wt0 still exists after down');
  await cli(members[0]!, ['up']);
  assert.equal((await status(members[0]!)).netbirdIp, before);
  const back = await members[0]!.nat.host.waitPing(statuses[1]!.netbirdIp.split('/')[0]!, 30_000);
  assert.ok(back, 'p1 cannot reach p2 again after down/up');
});
