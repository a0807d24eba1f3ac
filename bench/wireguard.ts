/**
 * WireGuard data-plane benchmark, three pairs built the same way (two namespaces over one veth, see
 * test/lab/wgpair.ts) and measured in the same run: wireguard-go <-> wireguard-go (the reference,
 * Debian's wireguard-go), ours <-> wireguard-go (our Device in this process in namespace a) and
 * ours <-> ours (`netbird wg-quick` processes on both sides). Prints iperf3 TCP throughput (1 and 4
 * streams, both directions for 1 stream) and ping RTT, with the ratios ours / wireguard-go.
 *
 * Environment: BENCH_SECONDS (iperf3 duration, default 3), BENCH_REPEAT (runs per figure, the median
 * is printed; default 3). Needs root, wireguard-go, wireguard-tools, iperf3, iputils-ping.
 */
import { Lab, type Netns } from '../test/lab/index.js';
import { oursVsWireguardGo, oursPair, wireguardGoPair, B_TUN } from '../test/lab/wgpair.js';

interface Figures {
  tcp1: number;
  tcp1rev: number;
  tcp4: number;
  rttMs: number;
  rttBusyMs: number;
}

async function iperf(a: Netns, b: Netns, streams: number, reverse: boolean, seconds: number): Promise<number> {
  const server = b.spawn('iperf3', ['-s', '-1', '-B', B_TUN]);
  try {
    if (!(await b.waitListening(5201))) throw new Error(`iperf3 server did not start: ${server.output()}`);
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

/**
 * Median ping round trip: 30 pings at 20/s (mostly idle: includes waking the processes) or
 * 500 pings at 500/s (busy). The median ignores the odd scheduling hiccup on a shared machine.
 */
async function rtt(a: Netns, busy = false): Promise<number> {
  const args = busy ? ['-c', '500', '-i', '0.002'] : ['-c', '30', '-i', '0.05'];
  const r = await a.exec('ping', [...args, '-W', '1', '-n', B_TUN], { check: false });
  const times = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (times.length < (busy ? 400 : 20)) throw new Error(`ping failed: ${r.stdout.slice(-500)} ${r.stderr}`);
  return median(times);
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

type Metric = 'tcp1' | 'tcp1rev' | 'tcp4' | 'rttMs' | 'rttBusyMs';

async function one(metric: Metric, a: Netns, b: Netns, seconds: number): Promise<number> {
  switch (metric) {
    case 'tcp1': return iperf(a, b, 1, false, seconds);
    case 'tcp1rev': return iperf(a, b, 1, true, seconds);
    case 'tcp4': return iperf(a, b, 4, false, seconds);
    case 'rttMs': return rtt(a);
    case 'rttBusyMs': return rtt(a, true);
  }
}

interface Side {
  label: string;
  a: Netns;
  b: Netns;
}

/**
 * Measures every setup with their runs interleaved (ref, ours, ours2, ref, ...) so that load from
 * other work on the machine hits all about equally; reports the median per metric.
 */
async function measureAll(sides: Side[], seconds: number, repeat: number): Promise<Figures[]> {
  for (const s of sides) if (!(await s.a.waitPing(B_TUN, 10_000))) throw new Error(`${s.label}: tunnel does not come up`);
  const metrics: Metric[] = ['rttMs', 'rttBusyMs', 'tcp1', 'tcp1rev', 'tcp4'];
  const runs = sides.map(() => new Map<Metric, number[]>(metrics.map((m) => [m, []])));
  for (const m of metrics) {
    for (let i = 0; i < repeat; i++) {
      for (let k = 0; k < sides.length; k++) runs[k]!.get(m)!.push(await one(m, sides[k]!.a, sides[k]!.b, seconds));
    }
  }
  return runs.map((r) => ({
    tcp1: median(r.get('tcp1')!), tcp1rev: median(r.get('tcp1rev')!), tcp4: median(r.get('tcp4')!), rttMs: median(r.get('rttMs')!), rttBusyMs: median(r.get('rttBusyMs')!),
  }));
}

export async function benchWireguard(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 3);
  const repeat = Number(process.env.BENCH_REPEAT ?? 3);
  const lab = await Lab.create({ prefix: 'nbtn-bench' });
  let figs: Figures[];
  try {
    // All labs exist side by side (an idle pair costs nothing) so their runs can alternate.
    const g = await wireguardGoPair(lab, { tag: 'ref' });
    const p = await oursVsWireguardGo(lab, { tag: 'mix' });
    const o = await oursPair(lab, { tag: 'ours' });
    try {
      figs = await measureAll(
        [{ label: 'wg-go<->wg-go', ...g }, { label: 'ours<->wg-go', ...p }, { label: 'ours<->ours', ...o }],
        seconds,
        repeat,
      );
    } finally {
      await p.device.close();
    }
  } finally {
    await lab.cleanup();
  }
  const [ref, mix, ours] = figs as [Figures, Figures, Figures];
  const num = (x: number, ms: boolean): string => x.toFixed(ms ? 3 : 0).padStart(9);
  const ratio = (o: number, r: number, higherBetter: boolean): string => `${(higherBetter ? o / r : r / o).toFixed(2)}x`.padStart(7);
  const row = (name: string, k: keyof Figures, unit: string, higherBetter: boolean): string => {
    const ms = unit === 'ms';
    return `  ${name.padEnd(24)} ${unit.padEnd(6)} ${num(ref[k], ms)} ${num(mix[k], ms)} ${num(ours[k], ms)}   ${ratio(mix[k], ref[k], higherBetter)} ${ratio(ours[k], ref[k], higherBetter)}`;
  };
  console.log(`wireguard: iperf3 TCP ${seconds} s, ping 20/s and 500/s, median of ${repeat} interleaved runs; "a" sends, "b" receives`);
  console.log(`  ${''.padEnd(31)} ${'wg-go:wg-go'.padStart(9)} ${'ours:wg-go'.padStart(9)} ${'ours:ours'.padStart(9)}   ratios vs wg-go:wg-go (>1 = ours better)`);
  console.log(row('TCP 1 stream a->b', 'tcp1', 'Mbit/s', true));
  console.log(row('TCP 1 stream b->a', 'tcp1rev', 'Mbit/s', true));
  console.log(row('TCP 4 streams a->b', 'tcp4', 'Mbit/s', true));
  console.log(row('ping RTT 20/s (median)', 'rttMs', 'ms', false));
  console.log(row('ping RTT 500/s (median)', 'rttBusyMs', 'ms', false));
}

// Stand-alone: node --import tsx bench/wireguard.ts
if (import.meta.url === `file://${process.argv[1]}`) {
  benchWireguard().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
