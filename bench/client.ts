/**
 * Client benchmark: netbird-server plus two peers behind NAT running the real daemon.
 * - time from `netbird up` (both peers) to the first successful ping between them;
 * - iperf3 TCP throughput and ping RTT between the peers through the NetBird relay, against plain
 *   WireGuard (a wireguard-go pair over one veth, built in the same lab) measured in the same run.
 * Environment: BENCH_SECONDS (iperf3 duration, default 3). Needs root, iperf3, wireguard-go.
 */
import { sleep, type Netns } from '../test/lab/index.js';
import { B_TUN, wireguardGoPair } from '../test/lab/wgpair.js';
import { MeshLab } from '../test/client/mesh-lab.js';

async function iperf(client: Netns, server: Netns, addr: string, seconds: number): Promise<number> {
  const srv = server.spawn('iperf3', ['-s', '-1', '-B', addr]);
  try {
    for (let i = 0; i < 60 && !/listening/i.test(srv.output()); i++) await sleep(50);
    const r = await client.exec('iperf3', ['-c', addr, '-t', String(seconds), '-J'], { timeoutMs: (seconds + 20) * 1000, check: false });
    const j = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
    if (!j.end?.sum_received?.bits_per_second) throw new Error(`iperf3 failed: ${j.error ?? r.stderr}`);
    return j.end.sum_received.bits_per_second / 1e6;
  } finally {
    await srv.kill();
  }
}

async function rttMs(from: Netns, addr: string): Promise<number> {
  const r = await from.exec('ping', ['-c', '30', '-i', '0.05', '-W', '1', '-n', addr], { check: false });
  const times = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((x, y) => x - y);
  if (times.length < 20) throw new Error(`ping failed: ${r.stdout}`);
  return times[Math.floor(times.length / 2)]!;
}

export async function benchClient(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 3);
  const mesh = await MeshLab.create('nbcb');
  try {
    const a = await mesh.addPeer('ba');
    const b = await mesh.addPeer('bb');
    const t0 = Date.now();
    await Promise.all([mesh.up(a), mesh.up(b)]);
    const ipB = await mesh.ip(b);
    const ok = await a.nat.host.waitPing(ipB, 60_000);
    if (!ok) throw new Error(`no ping after up\n${mesh.logs()}`);
    const upToPing = Date.now() - t0;
    const ref = await wireguardGoPair(mesh.lab, { tag: 'ref' });
    if (!(await ref.a.waitPing(B_TUN, 10_000))) throw new Error('wireguard-go pair does not come up');
    const relayed = { mbps: await iperf(a.nat.host, b.nat.host, ipB, seconds), rtt: await rttMs(a.nat.host, ipB) };
    const plain = { mbps: await iperf(ref.a, ref.b, B_TUN, seconds), rtt: await rttMs(ref.a, B_TUN) };
    console.log(`client: netbird up (2 peers behind NAT) -> first ping: ${upToPing} ms`);
    console.log(`  ${''.padEnd(26)} ${'netbird (relayed)'.padStart(18)} ${'plain WireGuard'.padStart(16)}  ratio`);
    console.log(`  ${'TCP 1 stream, Mbit/s'.padEnd(26)} ${relayed.mbps.toFixed(0).padStart(18)} ${plain.mbps.toFixed(0).padStart(16)}  ${(relayed.mbps / plain.mbps).toFixed(2)}x`);
    console.log(`  ${'ping RTT median, ms'.padEnd(26)} ${relayed.rtt.toFixed(3).padStart(18)} ${plain.rtt.toFixed(3).padStart(16)}  ${(relayed.rtt / plain.rtt).toFixed(2)}x`);
    console.log('  (plain WireGuard = wireguard-go <-> wireguard-go over one veth in the same lab, no NAT, no relay)');
  } finally {
    await mesh.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  benchClient().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
