/**
 * Client benchmark: netbird-server plus two peers behind NAT running the real daemon.
 * - time from `netbird up` (both peers) to the first successful ping between them;
 * - iperf3 TCP throughput and ping RTT between the peers through the NetBird relay, against plain
 *   WireGuard (a wireguard-go pair over one veth, built in the same lab) measured in the same run.
 * Environment: BENCH_SECONDS (iperf3 duration, default 3). Needs root, iperf3, wireguard-go.
 */
import { B_TUN, wireguardGoPair } from '../test/lab/wgpair.js';
import { iperf3Mbps, pingRttMs } from './measure.js';
import { MeshLab } from '../test/client/mesh-lab.js';

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
    const relayed = { mbps: await iperf3Mbps(a.nat.host, b.nat.host, ipB, seconds), rtt: await pingRttMs(a.nat.host, ipB) };
    const plain = { mbps: await iperf3Mbps(ref.a, ref.b, B_TUN, seconds), rtt: await pingRttMs(ref.a, B_TUN) };
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
