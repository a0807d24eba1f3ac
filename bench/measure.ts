// Measurements shared by the lab benchmarks: iperf3 TCP throughput and ping RTT between namespaces.
import { sleep, type Netns } from '../test/lab/index.js';

/** One iperf3 TCP stream from `client` to the iperf3 server started in `server` on `addr`, in Mbit/s. */
export async function iperf3Mbps(client: Netns, server: Netns, addr: string, seconds: number): Promise<number> {
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

/** Median RTT of 30 pings (the median ignores the odd scheduling hiccup on a shared machine), in ms. */
export async function pingRttMs(from: Netns, addr: string): Promise<number> {
  const r = await from.exec('ping', ['-c', '30', '-i', '0.05', '-W', '1', '-n', addr], { check: false });
  const times = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).sort((x, y) => x - y);
  if (times.length < 20) throw new Error(`ping failed: ${r.stdout}`);
  return times[Math.floor(times.length / 2)]!;
}
