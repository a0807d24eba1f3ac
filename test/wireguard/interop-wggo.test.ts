/**
 * Protocol interop with Debian's wireguard-go, inside a network namespace made
 * by this test: wireguard-go owns a kernel TUN (nbwpwg0, 10.9.0.1, fd09::1),
 * our Device runs in a child process on 127.0.0.1:51821 with an in-memory
 * TUN that answers pings as 10.9.0.2 / fd09::2. Skipped without root or
 * wireguard-go.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { generatePrivateKey, keyToBase64, publicKeyOf } from '../../src/wireguard/index.js';

const NS = 'nbwp-wggo';
const IF = 'nbwpwg0';
const haveTools =
  process.getuid?.() === 0 &&
  spawnSync('which', ['wireguard-go', 'wg', 'ip', 'ping']).status === 0;

function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

function nsExec(args: string[]): string {
  return sh('ip', ['netns', 'exec', NS, ...args]);
}

type Child = ChildProcessByStdio<Writable, Readable, null>;

interface Lab {
  wgPub: string;
  child: Child;
  ask(cmd: string): Promise<Record<string, unknown>>;
}

async function startLab(t: import('node:test').TestContext, opts: { psk?: boolean; timers?: Record<string, number> } = {}): Promise<Lab> {
  const dir = mkdtempSync(join(tmpdir(), 'nbwp-'));
  let wgPid: number | undefined;
  let child: Child | undefined;
  t.after(() => {
    if (child?.pid) try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
    if (wgPid) try { process.kill(wgPid, 'SIGTERM'); } catch { /* gone */ }
    spawnSync('ip', ['netns', 'del', NS]);
    rmSync(dir, { recursive: true, force: true });
    rmSync(`/var/run/wireguard/${IF}.sock`, { force: true });
  });
  spawnSync('ip', ['netns', 'del', NS]);
  sh('ip', ['netns', 'add', NS]);
  nsExec(['ip', 'link', 'set', 'lo', 'up']);
  const wg = spawn('ip', ['netns', 'exec', NS, 'wireguard-go', '-f', IF], { env: { ...process.env, WG_PROCESS_FOREGROUND: '1' }, stdio: 'ignore' });
  wgPid = wg.pid;
  for (let i = 0; i < 200 && !existsSync(`/var/run/wireguard/${IF}.sock`); i++) await new Promise((r) => setTimeout(r, 10));
  const wgPriv = generatePrivateKey();
  const ourPriv = generatePrivateKey();
  const psk = opts.psk ? keyToBase64(generatePrivateKey()) : undefined;
  writeFileSync(join(dir, 'key'), keyToBase64(wgPriv) + '\n');
  const wgArgs = ['wg', 'set', IF, 'listen-port', '51820', 'private-key', join(dir, 'key'),
    'peer', keyToBase64(publicKeyOf(ourPriv)), 'allowed-ips', '10.9.0.2/32,fd09::2/128', 'endpoint', '127.0.0.1:51821'];
  if (psk) {
    writeFileSync(join(dir, 'psk'), psk + '\n');
    wgArgs.push('preshared-key', join(dir, 'psk'));
  }
  nsExec(wgArgs);
  nsExec(['ip', 'addr', 'add', '10.9.0.1/24', 'dev', IF]);
  nsExec(['ip', '-6', 'addr', 'add', 'fd09::1/64', 'dev', IF, 'nodad']);
  nsExec(['ip', 'link', 'set', IF, 'up']);
  const args = {
    privateKey: keyToBase64(ourPriv), peerPublicKey: keyToBase64(publicKeyOf(wgPriv)), peerEndpoint: '127.0.0.1:51820',
    port: 51821, presharedKey: psk, timers: opts.timers,
  };
  const c: Child = spawn('ip', ['netns', 'exec', NS, process.execPath, '--import', 'tsx', join(import.meta.dirname, 'wggo-peer.ts'), JSON.stringify(args)], { stdio: ['pipe', 'pipe', 'inherit'] });
  child = c;
  const lines = createInterface({ input: c.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, unknown>> => {
    const r = await lines.next();
    if (r.done) throw new Error('our device process exited');
    return JSON.parse(r.value) as Record<string, unknown>;
  };
  assert.equal((await next()).ready, true);
  return {
    wgPub: keyToBase64(publicKeyOf(wgPriv)),
    child: c,
    async ask(cmd: string) {
      c.stdin.write(cmd + '\n');
      return next();
    },
  };
}

function wgHandshakes(): number {
  const out = nsExec(['wg', 'show', IF, 'latest-handshakes']).trim();
  return Number(out.split(/\s+/)[1] ?? 0);
}

test('wireguard-go initiates: ping our device over IPv4 and IPv6, small and padded-to-MTU sizes', { skip: !haveTools && 'needs root, wireguard-go, wg, ip' }, async (t) => {
  await startLab(t);
  const r4 = spawnSync('ip', ['netns', 'exec', NS, 'ping', '-c', '3', '-i', '0.2', '-W', '3', '10.9.0.2'], { encoding: 'utf8' });
  assert.equal(r4.status, 0, r4.stdout + r4.stderr);
  const big = spawnSync('ip', ['netns', 'exec', NS, 'ping', '-c', '2', '-s', '1372', '-M', 'do', '-W', '3', '10.9.0.2'], { encoding: 'utf8' });
  assert.equal(big.status, 0, big.stdout + big.stderr);
  const r6 = spawnSync('ip', ['netns', 'exec', NS, 'ping', '-6', '-c', '3', '-i', '0.2', '-W', '3', 'fd09::2'], { encoding: 'utf8' });
  assert.equal(r6.status, 0, r6.stdout + r6.stderr);
  assert.ok(wgHandshakes() > 0, 'wireguard-go records a handshake');
});

test('our device initiates with a preshared key, and rekeys with wireguard-go under shortened timers', { skip: !haveTools && 'needs root, wireguard-go, wg, ip' }, async (t) => {
  const lab = await startLab(t, { psk: true, timers: { rekeyAfterTime: 1500, rekeyTimeout: 300, keepaliveTimeout: 1000 } });
  const r = await lab.ask('ping4 3');
  assert.equal(r.replies, 3);
  const first = await lab.ask('stats');
  const h1 = first.handshakesCompleted as number;
  // ~4 s of pings: our side, the initiator, must rekey after 1.5 s and keep talking.
  const r2 = await lab.ask('ping4 40');
  assert.ok((r2.replies as number) >= 39, `replies ${String(r2.replies)}`);
  const after = await lab.ask('stats');
  assert.ok((after.handshakesCompleted as number) > h1, 'a new handshake completed during the run');
  const drops = after.drops as Record<string, number>;
  assert.equal(drops.badAuth, 0);
  assert.equal(drops.badMac, 0);
  await lab.ask('quit').catch(() => undefined);
});
