/** Starts coturn's turnserver on loopback for tests and benchmarks; stopped by PID. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stunBinding } from '../../src/stun/index.js';

export interface Coturn {
  port: number;
  username: string;
  password: string;
  realm: string;
  proc: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

export async function startCoturn(extraArgs: string[] = []): Promise<Coturn> {
  const port = await freeUdpPort();
  const dir = mkdtempSync(join(tmpdir(), 'nbsr-turn-'));
  const minPort = 50000 + Math.floor(Math.random() * 150) * 100;
  const username = 'nbsr';
  const password = 'nbsr-pass';
  const realm = 'nbsr.test';
  const args = [
    '-n', '--no-cli', '--no-tls', '--no-dtls', '--log-file', 'stdout', '--simple-log',
    '--listening-ip', '127.0.0.1', '--listening-port', String(port), '--relay-ip', '127.0.0.1',
    '--min-port', String(minPort), '--max-port', String(minPort + 99), '--allow-loopback-peers',
    '-a', '-u', `${username}:${password}`, '-r', realm,
    '--pidfile', join(dir, 'turn.pid'), '--userdb', join(dir, 'turndb'),
    ...extraArgs,
  ];
  let out = '';
  const proc = spawn('turnserver', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20000)));
  proc.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20000)));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const spawnError = new Promise<never>((_, rej) => proc.once('error', (e) => rej(new Error(`cannot run turnserver (apt-get install -y coturn): ${e.message}`))));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Ready when it answers a STUN binding.
    const deadline = Date.now() + 8000;
    for (;;) {
      try {
        await Promise.race([stunBinding({ host: '127.0.0.1', port, timeoutMs: 300 }), spawnError]);
        break;
      } catch (e) {
        if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`turnserver did not come up: ${(e as Error).message}\n${out}`);
      }
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, username, password, realm, proc, log: () => out, stop };
}
