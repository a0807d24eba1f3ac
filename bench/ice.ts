/**
 * ICE benchmark with the real daemon: netbird-server (embedded STUN) and two peers behind cone NATs.
 * - time from the first OFFER to ICE P2P (from the daemons' logs) and from `netbird up` to P2P status;
 * - iperf3 TCP throughput and ping RTT between the peers over the direct path, then, in the same run,
 *   over the NetBird relay (the direct UDP path cut with nftables on one NAT router), with the ratio;
 * - how long the fallback to the relay and the return to P2P take.
 * Environment: BENCH_SECONDS (iperf3 duration, default 3). Needs root, iperf3, nftables.
 */
import { waitUntil } from '../test/lab/index.js';
import { iperf3Mbps, pingRttMs } from './measure.js';
import { MeshLab, type Member } from '../test/client/mesh-lab.js';

async function connType(mesh: MeshLab, m: Member): Promise<string> {
  try {
    return (await mesh.status(m)).peers.details[0]?.connectionType ?? '';
  } catch {
    return '';
  }
}

export async function benchIce(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 3);
  const mesh = await MeshLab.create('nbicb', ['--stun-port', '3478']);
  try {
    const a = await mesh.addPeer('xa', 'cone');
    const b = await mesh.addPeer('xb', 'cone');
    const both = async (type: string): Promise<boolean> => (await connType(mesh, a)) === type && (await connType(mesh, b)) === type;
    const t0 = Date.now();
    // The daemons log the moment ICE moves the WireGuard peer to the direct path.
    const iceUp = Promise.all([a, b].map((m) => m.daemon.waitFor(/ICE connected P2P/, 60_000)));
    await Promise.all([mesh.up(a), mesh.up(b)]);
    await iceUp;
    const upToP2P = Date.now() - t0;
    if (!(await waitUntil(() => both('P2P'), 30_000, 100))) throw new Error(`status never showed P2P\n${mesh.logs()}`);
    const offerToP2P = [a, b].map((m) => /ICE connected P2P .* (\d+) ms after the offer/.exec(m.daemon.output())?.[1]).filter((x): x is string => x !== undefined).map(Number);
    const ipB = await mesh.ip(b);
    if (!(await a.nat.host.waitPing(ipB, 10_000))) throw new Error('no ping over P2P');
    const direct = { mbps: await iperf3Mbps(a.nat.host, b.nat.host, ipB, seconds), rtt: await pingRttMs(a.nat.host, ipB) };

    const cut = Date.now();
    await a.nat.router!.nft(`table ip nbicbcut {
  chain cut {
    type filter hook forward priority -10; policy accept;
    ip daddr ${b.nat.publicIp} meta l4proto udp drop
    ip saddr ${b.nat.publicIp} meta l4proto udp drop
  }
}
`);
    if (!(await waitUntil(() => both('Relayed'), 30_000, 100))) throw new Error('no relay fallback');
    const toRelay = Date.now() - cut;
    if (!(await a.nat.host.waitPing(ipB, 10_000))) throw new Error('no ping over the relay');
    const relayed = { mbps: await iperf3Mbps(a.nat.host, b.nat.host, ipB, seconds), rtt: await pingRttMs(a.nat.host, ipB) };
    const restore = Date.now();
    await a.nat.router!.exec('nft', ['delete', 'table', 'ip', 'nbicbcut']);
    const back = (await waitUntil(() => both('P2P'), 90_000, 100)) ? `${Date.now() - restore} ms` : 'not within 90 s';

    console.log(`ice: netbird up (2 peers behind cone NATs) -> ICE P2P on both: ${upToP2P} ms; first OFFER -> ICE P2P: ${offerToP2P.map((x) => `${x} ms`).join(', ') || 'n/a'}`);
    console.log(`  direct path cut -> both Relayed: ${toRelay} ms; path restored (after ${restore - cut} ms outage) -> P2P: ${back}`);
    console.log(`  ${''.padEnd(26)} ${'P2P (ICE)'.padStart(12)} ${'relayed'.padStart(10)}  ratio P2P/relayed`);
    console.log(`  ${'TCP 1 stream, Mbit/s'.padEnd(26)} ${direct.mbps.toFixed(0).padStart(12)} ${relayed.mbps.toFixed(0).padStart(10)}  ${(direct.mbps / relayed.mbps).toFixed(2)}x`);
    console.log(`  ${'ping RTT median, ms'.padEnd(26)} ${direct.rtt.toFixed(3).padStart(12)} ${relayed.rtt.toFixed(3).padStart(10)}  ${(direct.rtt / relayed.rtt).toFixed(2)}x`);
  } finally {
    await mesh.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  benchIce().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
