/**
 * WireGuard data-plane benchmark: our userspace Device (TUN + batched UDP, in this process) against
 * Debian's wireguard-go, compared in the same run with a wireguard-go <-> wireguard-go pair built the
 * same way (two namespaces over one veth, see test/lab/wgpair.ts). Prints iperf3 TCP throughput
 * (1 and 4 streams, both directions for 1 stream) and ping RTT, with the ratio ours / wireguard-go.
 *
 * Environment: BENCH_SECONDS (iperf3 duration, default 3), BENCH_REPEAT (runs per figure, the median
 * is printed; default 3). Needs root, wireguard-go, wireguard-tools, iperf3, iputils-ping.
 */
import { Lab, sleep, type Netns } from '../test/lab/index.js';
import { oursVsWireguardGo, wireguardGoPair, B_TUN } from '../test/lab/wgpair.js';

interface Figures {
  tcp1: number;
  tcp1rev: number;
  tcp4: number;
  rttMs: number;
}

async function iperf(a: Netns, b: Netns, streams: number, reverse: boolean, seconds: number): Promise<number> {
  const server = b.spawn('iperf3', ['-s', '-1', '-B', B_TUN]);
  try {
    for (let i = 0; i < 50 && !/listening/i.test(server.output()); i++) await sleep(50);
    const args = ['-c', B_TUN, '-t', String(seconds), '-P', String(streams), '-J'];
    if (reverse) args.push('-R');
    const r = await a.exec('iperf3', args, { timeoutMs: (seconds + 20) * 1000, check: false });
    const j = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
    if (!j.end?.sum_received?.bits_per_second) throw new Error(`iperf3 failed: ${j.error ?? r.stderr}`);
    return j.end.sum_received.bits_per_second / 1e6;
  } finally {
    await server.kill();
  }
}

/** Median of 30 ping round trips (the median ignores the odd scheduling hiccup on a shared machine). */
async function rtt(a: Netns): Promise<number> {
  const r = await a.exec('ping', ['-c', '30', '-i', '0.05', '-W', '1', '-n', B_TUN], { check: false });
  const times = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (times.length < 20) throw new Error(`ping failed: ${r.stdout} ${r.stderr}`);
  return median(times);
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

type Metric = 'tcp1' | 'tcp1rev' | 'tcp4' | 'rttMs';

async function one(metric: Metric, a: Netns, b: Netns, seconds: number): Promise<number> {
  switch (metric) {
    case 'tcp1': return iperf(a, b, 1, false, seconds);
    case 'tcp1rev': return iperf(a, b, 1, true, seconds);
    case 'tcp4': return iperf(a, b, 4, false, seconds);
    case 'rttMs': return rtt(a);
  }
}

/**
 * Measures both setups with their runs interleaved (ref, ours, ref, ours, ...) so that load from
 * other work on the machine hits both about equally; reports the median per metric.
 */
async function measureBoth(
  sides: { ours: { a: Netns; b: Netns }; ref: { a: Netns; b: Netns } },
  seconds: number,
  repeat: number,
): Promise<{ ours: Figures; ref: Figures }> {
  for (const s of [sides.ours, sides.ref]) if (!(await s.a.waitPing(B_TUN, 10_000))) throw new Error('tunnel does not come up');
  const metrics: Metric[] = ['rttMs', 'tcp1', 'tcp1rev', 'tcp4'];
  const runs = { ours: new Map<Metric, number[]>(), ref: new Map<Metric, number[]>() };
  for (const m of metrics) {
    runs.ours.set(m, []);
    runs.ref.set(m, []);
    for (let i = 0; i < repeat; i++) {
      runs.ref.get(m)!.push(await one(m, sides.ref.a, sides.ref.b, seconds));
      runs.ours.get(m)!.push(await one(m, sides.ours.a, sides.ours.b, seconds));
    }
  }
  const fig = (r: Map<Metric, number[]>): Figures => ({
    tcp1: median(r.get('tcp1')!), tcp1rev: median(r.get('tcp1rev')!), tcp4: median(r.get('tcp4')!), rttMs: median(r.get('rttMs')!),
  });
  return { ours: fig(runs.ours), ref: fig(runs.ref) };
}

export async function benchWireguard(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 3);
  const repeat = Number(process.env.BENCH_REPEAT ?? 3);
  const lab = await Lab.create({ prefix: 'nbtn-bench' });
  let ours: Figures;
  let ref: Figures;
  try {
    // Both labs exist side by side (an idle pair costs nothing) so their runs can alternate.
    const g = await wireguardGoPair(lab, { tag: 'ref' });
    const p = await oursVsWireguardGo(lab, { tag: 'ours' });
    try {
      ({ ours, ref } = await measureBoth({ ours: p, ref: g }, seconds, repeat));
    } finally {
      await p.device.close();
    }
  } finally {
    await lab.cleanup();
  }
  const row = (name: string, o: number, r: number, unit: string, higherBetter: boolean): string => {
    const ratio = higherBetter ? o / r : r / o;
    return `  ${name.padEnd(28)} ${o.toFixed(unit === 'ms' ? 3 : 0).padStart(9)} ${unit.padEnd(7)} ${r.toFixed(unit === 'ms' ? 3 : 0).padStart(9)} ${unit.padEnd(7)} ${ratio.toFixed(2)}x`;
  };
  console.log(`wireguard: iperf3 TCP ${seconds} s, ping x30 (median), median of ${repeat}; peer is wireguard-go in both columns`);
  console.log(`  ${''.padEnd(28)} ${'ours<->wg-go'.padStart(17)} ${'wg-go<->wg-go'.padStart(17)}  ratio (>1 = ours better)`);
  console.log(row('TCP 1 stream (we send)', ours.tcp1, ref.tcp1, 'Mbit/s', true));
  console.log(row('TCP 1 stream (we receive)', ours.tcp1rev, ref.tcp1rev, 'Mbit/s', true));
  console.log(row('TCP 4 streams (we send)', ours.tcp4, ref.tcp4, 'Mbit/s', true));
  console.log(row('ping RTT (median)', ours.rttMs, ref.rttMs, 'ms', false));
}

// Stand-alone: node --import tsx bench/wireguard.ts
if (import.meta.url === `file://${process.argv[1]}`) {
  benchWireguard().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
