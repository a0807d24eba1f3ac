import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { HostDns, applyHostDns, hostDnsSettings, parseNameservers, restoreHostDns, reverseZoneOf, type CommandRunner } from '../../src/dns/index.js';
import { dnsConfig, nsGroup } from './helpers.js';

type TestCtx = { after(fn: () => Promise<void> | void): void };

async function tempDir(t: TestCtx): Promise<string> {
  const dir = await fs.mkdtemp(join(tmpdir(), 'nbfd-dns-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

const noResolved: CommandRunner = async () => ({ code: 3, stdout: 'inactive', stderr: '' });
const ORIGINAL = '# from DHCP\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch lan home.arpa\noptions edns0 timeout:2\n';

test('resolv.conf: apply writes our server first with search domains, restore puts the exact bytes and mode back', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'resolv.conf');
  await fs.writeFile(path, ORIGINAL, { mode: 0o640 });
  await fs.chmod(path, 0o640);
  const h = new HostDns({ resolvConfPath: path, run: noResolved });
  const r = await h.apply({ serverIp: '100.64.0.1', domains: ['netbird.cloud.', 'Corp.Example'], interfaceName: 'wt0' });
  assert.equal(r.mode, 'file');
  assert.deepEqual(r.originalNameservers, ['192.0.2.53', '2001:db8::53']);
  const text = await fs.readFile(path, 'utf8');
  assert.deepEqual(parseNameservers(text), ['100.64.0.1']);
  assert.match(text, /^search netbird\.cloud corp\.example lan home\.arpa$/m);
  assert.match(text, /^options edns0 timeout:2$/m);
  // Applying again (new config) keeps the true original in the backup.
  const r2 = await h.apply({ serverIp: '100.64.0.1', domains: ['netbird.cloud'], interfaceName: 'wt0' });
  assert.deepEqual(r2.originalNameservers, ['192.0.2.53', '2001:db8::53']);
  assert.equal(await h.restore(), true);
  assert.equal(await fs.readFile(path, 'utf8'), ORIGINAL);
  assert.equal((await fs.stat(path)).mode & 0o777, 0o640);
  assert.deepEqual((await fs.readdir(dir)).sort(), ['resolv.conf'], 'backup and temp files removed');
  assert.equal(await h.restore(), false, 'nothing left to restore');
});

test('resolv.conf: a symlink is restored as the same symlink; a crashed run is restored by a new instance', async (t) => {
  const dir = await tempDir(t);
  const target = join(dir, 'stub-resolv.conf');
  const path = join(dir, 'resolv.conf');
  await fs.writeFile(target, ORIGINAL);
  await fs.symlink('stub-resolv.conf', path);
  const env = { resolvConfPath: path, run: noResolved };
  const r = await applyHostDns({ serverIp: 'fd00::1', domains: [], interfaceName: 'wt0' }, env);
  assert.deepEqual(r.originalNameservers, ['192.0.2.53', '2001:db8::53']);
  assert.equal((await fs.lstat(path)).isSymbolicLink(), false);
  assert.deepEqual(parseNameservers(await fs.readFile(path, 'utf8')), ['fd00::1']);
  assert.equal(await fs.readFile(target, 'utf8'), ORIGINAL, 'the link target is untouched');
  // Simulate a crash: a fresh HostDns (no in-memory state) finds the backup and restores.
  assert.equal(await new HostDns(env).restore(), true);
  assert.equal(await fs.readlink(path), 'stub-resolv.conf');
  assert.equal(await fs.readFile(path, 'utf8'), ORIGINAL);
  assert.equal(await restoreHostDns(env), false);
});

test('systemd-resolved: per-interface dns/domain/default-route, revert on restore', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'resolv.conf');
  await fs.writeFile(path, 'nameserver 127.0.0.53\n');
  const calls: string[] = [];
  const run: CommandRunner = async (cmd, args) => {
    calls.push([cmd, ...args].join(' '));
    return { code: 0, stdout: '', stderr: '' };
  };
  const h = new HostDns({ resolvConfPath: path, run });
  const r = await h.apply({ serverIp: '100.64.0.1', domains: ['netbird.cloud.'], matchDomains: ['corp.example'], routeAll: true, interfaceName: 'wt0' });
  assert.equal(r.mode, 'resolved');
  assert.deepEqual(calls, [
    'systemctl is-active --quiet systemd-resolved',
    'resolvectl dns wt0 100.64.0.1',
    'resolvectl domain wt0 netbird.cloud ~corp.example ~.',
    'resolvectl default-route wt0 true',
  ]);
  assert.equal(await fs.readFile(path, 'utf8'), 'nameserver 127.0.0.53\n', 'resolv.conf untouched');
  await h.restore();
  assert.equal(calls.at(-1), 'resolvectl revert wt0');
  // A failing resolvectl is reported with what went wrong.
  const bad = new HostDns({ resolvConfPath: path, mode: 'resolved', run: async () => ({ code: 1, stdout: '', stderr: 'Failed to set DNS configuration: Link wt9 not known' }) });
  await assert.rejects(bad.apply({ serverIp: '100.64.0.1', domains: [], interfaceName: 'wt9' }), /Link wt9 not known/);
});

test('real /etc/resolv.conf inside a private mount namespace (unshare -m)', async (t) => {
  const probe = spawnSync('unshare', ['-m', 'true']);
  if (probe.status !== 0) { t.skip('unshare -m not permitted here'); return; }
  const dir = await tempDir(t);
  // In a private mount namespace, bind a copy of /etc over /etc so neither the real resolv.conf
  // nor the real /etc directory (temp/backup files) is touched. Then run applyHostDns/restoreHostDns
  // against the real path twice: as a plain file, and bind-mounted (as in containers, where it
  // cannot be renamed over and must be rewritten in place).
  const run = (label: string): string => `
    node --import tsx -e "
      import('${process.cwd()}/src/dns/index.ts').then(async (m) => {
        const fs = await import('node:fs');
        const r = await m.applyHostDns({ serverIp: '100.64.0.1', domains: ['netbird.cloud'], interfaceName: 'wt0' }, { mode: 'file' });
        const during = fs.readFileSync('/etc/resolv.conf', 'utf8');
        if (!during.includes('nameserver 100.64.0.1')) throw new Error('${label}: not applied: ' + during);
        if (!fs.existsSync('/etc/resolv.conf.netbird.bak')) throw new Error('${label}: no backup');
        if (!(await m.restoreHostDns({ mode: 'file' }))) throw new Error('${label}: nothing restored');
      });
    "
    cmp /etc/resolv.conf ${dir}/expected
    test ! -e /etc/resolv.conf.netbird.bak
  `;
  const script = `
    set -e
    mount --make-rprivate /
    cp -a /etc ${dir}/etc
    printf '# test\\nnameserver 192.0.2.1\\nsearch lan\\n' > ${dir}/etc/resolv.conf
    cp ${dir}/etc/resolv.conf ${dir}/expected
    mount --bind ${dir}/etc /etc
    ${run('plain file')}
    cp ${dir}/expected ${dir}/scratch
    mount --bind ${dir}/scratch /etc/resolv.conf
    ${run('bind-mounted file')}
  `;
  const before = await fs.readFile('/etc/resolv.conf').catch(() => Buffer.alloc(0));
  const r = spawnSync('unshare', ['-m', 'sh', '-c', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.deepEqual(await fs.readFile('/etc/resolv.conf').catch(() => Buffer.alloc(0)), before, 'host resolv.conf unchanged');
});

test('hostDnsSettings: search vs match domains, primary routing, reverse zones', () => {
  const cfg = dnsConfig({
    CustomZones: [
      { Domain: 'netbird.cloud.', Records: [], SearchDomainDisabled: false, NonAuthoritative: false },
      { Domain: 'User.Example.', Records: [], SearchDomainDisabled: true, NonAuthoritative: true },
    ],
    NameServerGroups: [
      nsGroup([53], { Domains: ['corp.example'], SearchDomainsEnabled: true }),
      nsGroup([53], { Domains: ['lab.example.'] }),
    ],
  });
  const s = hostDnsSettings(cfg, ['100.64.0.0/10', 'fd00:1234::/64']);
  assert.deepEqual(s.domains, ['netbird.cloud', 'corp.example']);
  assert.deepEqual(s.matchDomains, ['netbird.cloud', 'user.example', 'corp.example', 'lab.example', '100.in-addr.arpa', '0.0.0.0.0.0.0.0.4.3.2.1.0.0.d.f.ip6.arpa']);
  assert.equal(s.routeAll, false);
  assert.equal(hostDnsSettings(dnsConfig({ NameServerGroups: [nsGroup([53], { Primary: true })] })).routeAll, true);
  assert.equal(hostDnsSettings(dnsConfig({ NameServerGroups: [nsGroup([], { Primary: true })] })).routeAll, false, 'a group without servers routes nothing');
  assert.equal(reverseZoneOf('100.92.0.0/16'), '92.100.in-addr.arpa');
  assert.equal(reverseZoneOf('bogus/8'), undefined);
});
