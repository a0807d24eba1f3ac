/**
 * Micro-benchmark (not a test): packets/s through PacketFilter.inbound()+outbound() for
 * established TCP flows, next to a reference loop that only reads the same header bytes.
 * Run: node --import tsx test/filter/bench-filter.ts
 */
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { PacketFilter } from '../../src/filter/index.js';
import { management } from '../../src/proto/index.js';
import { ACK, PSH, SYN, rule, tcp } from './packets.js';

export async function benchFilter(flows = 1000, rounds = 400): Promise<{ pps: number; refPps: number; minorGcs: number; packets: number }> {
  const f = new PacketFilter({ sweepIntervalMs: 0 });
  f.setRules([rule({ PeerIP: '0.0.0.0', Protocol: management.RuleProtocol.TCP, Port: '22' })], { rulesIsEmpty: false });
  const ins: Buffer[] = [], outs: Buffer[] = [];
  for (let i = 0; i < flows; i++) {
    const peer = `100.64.${(i >> 8) & 255}.${i & 255}`;
    f.inbound(tcp(peer, '100.64.200.1', 10000 + i, 22, SYN));
    f.outbound(tcp('100.64.200.1', peer, 22, 10000 + i, SYN | ACK));
    ins.push(tcp(peer, '100.64.200.1', 10000 + i, 22, ACK | PSH, 1200));
    outs.push(tcp('100.64.200.1', peer, 22, 10000 + i, ACK | PSH, 1200));
  }
  const run = (fn: (b: Buffer, o: Buffer) => void): number => {
    const t0 = process.hrtime.bigint();
    for (let r = 0; r < rounds; r++) for (let i = 0; i < flows; i++) fn(ins[i]!, outs[i]!);
    return (2 * flows * rounds) / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  let sink = 0;
  const filterStep = (b: Buffer, o: Buffer): void => { if (!f.inbound(b) || !f.outbound(o)) throw new Error('dropped'); };
  const refStep = (b: Buffer, o: Buffer): void => { sink += b[9]! + b[12]! + b[22]! + o[9]! + o[16]! + o[20]!; };
  run(filterStep); run(refStep); // warm-up
  // Count young-generation collections while packets flow: the data path should allocate nothing.
  let minorGcs = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) minorGcs++;
  });
  obs.observe({ entryTypes: ['gc'] });
  const pps = run(filterStep);
  await new Promise((r) => setTimeout(r, 50)); // gc entries are delivered asynchronously
  obs.disconnect();
  const refPps = run(refStep);
  f.close();
  if (sink === -1) console.log(sink);
  return { pps, refPps, minorGcs, packets: 2 * flows * rounds };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { pps, refPps, minorGcs, packets } = await benchFilter();
  console.log(`filter: ${(pps / 1e6).toFixed(2)} Mpps (inbound+outbound, 1000 established TCP flows); ` +
    `header-read reference ${(refPps / 1e6).toFixed(2)} Mpps; ratio ${(pps / refPps).toFixed(3)}; ` +
    `minor GCs during ${packets} packets: ${minorGcs}`);
}
