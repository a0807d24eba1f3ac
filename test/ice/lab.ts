/** Lab pieces for ICE tests: servers in the "internet" namespace and host addresses of a namespace. */
import { join } from 'node:path';
import { Lab, Netns, sleep, type LabProcess } from '../lab/index.js';
import { turnCredentials } from '../../src/crypto/index.js';

export const TURN_SECRET = 'nbic-turn-secret';

/** Global IPv4 addresses of the namespace (the host candidates a peer there would offer). */
export async function hostAddresses(ns: Netns): Promise<string[]> {
  const out = await ns.ip('-j', '-4', 'addr', 'show', 'scope', 'global');
  const list = JSON.parse(out) as { addr_info: { local: string }[] }[];
  return list.flatMap((l) => l.addr_info.map((a) => a.local));
}

async function waitStun(probeFrom: Netns, ip: string, port: number, proc: LabProcess): Promise<void> {
  for (let i = 0; i < 60; i++) {
    if (!proc.running) throw new Error(`server exited:\n${proc.output()}`);
    const r = await probeFrom.exec('turnutils_stunclient', ['-p', String(port), ip], { check: false, timeoutMs: 3000 });
    if (r.code === 0 && /UDP reflexive addr/.test(r.stdout + r.stderr)) return;
    await sleep(100);
  }
  throw new Error(`STUN on ${ip}:${port} never answered:\n${proc.output()}`);
}

/** coturn on 10.77.0.1 (the internet bridge) with TURN REST (time-limited) credentials, as NetBird deploys it. */
export async function startLabCoturn(lab: Lab, probeFrom: Netns, port = 3478, extraArgs: string[] = []): Promise<{ url: string; username: string; password: string; proc: LabProcess }> {
  const inet = await lab.internet();
  // The lab internet has no default route, so relaying to a peer's private host candidate fails with
  // ENETUNREACH, which leaves coturn's relay socket failing later sends too. A real TURN server has a
  // default route: give the namespace one into a dead-end veth, where such packets vanish quietly.
  if (!(await inet.ns.ip('route', 'show', 'default')).trim()) {
    await inet.ns.ip('link', 'add', 'nowhere', 'type', 'veth', 'peer', 'name', 'nowhere2');
    await inet.ns.ip('link', 'set', 'nowhere', 'up');
    await inet.ns.ip('link', 'set', 'nowhere2', 'up');
    await inet.ns.ip('route', 'add', 'default', 'dev', 'nowhere');
  }
  const dir = lab.tmpdir();
  const proc = inet.ns.spawn('turnserver', [
    '-n', '--no-cli', '--no-tls', '--no-dtls', '--log-file', 'stdout', '--simple-log',
    '--listening-ip', '10.77.0.1', '--listening-port', String(port), '--relay-ip', '10.77.0.1',
    '--min-port', '49152', '--max-port', '49999', '--use-auth-secret', '--static-auth-secret', TURN_SECRET,
    '--realm', 'nbic.test', '--pidfile', join(dir, 'turn.pid'), '--userdb', join(dir, 'turndb'),
    ...extraArgs,
  ]);
  await waitStun(probeFrom, '10.77.0.1', port, proc);
  const cred = turnCredentials(TURN_SECRET, 3600);
  return { url: `turn:10.77.0.1:${port}?transport=udp`, username: cred.user, password: cred.password, proc };
}

/** Our embedded STUN server (src/stun) on 10.77.0.1. */
export async function startLabStun(lab: Lab, probeFrom: Netns, port = 3479): Promise<{ url: string; proc: LabProcess }> {
  const inet = await lab.internet();
  const proc = inet.ns.spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'stun-main.ts'), String(port)]);
  await proc.waitFor(/stun ready/, 15_000);
  await waitStun(probeFrom, '10.77.0.1', port, proc);
  return { url: `stun:10.77.0.1:${port}`, proc };
}
