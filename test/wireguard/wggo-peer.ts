/**
 * Child process for interop tests, run inside the test's network namespace:
 * our Device on a DgramBind (127.0.0.1:PORT) with a MemoryTun that answers
 * pings. Commands on stdin, one JSON result per line on stdout:
 *   "ping4 N"  send N echo requests 10.9.0.2 -> 10.9.0.1 through the tunnel, report replies
 *   "stats"    print device stats
 */
import { createInterface } from 'node:readline';
import { Device, DgramBind, MemoryTun } from '../../src/wireguard/index.js';
import { echoReply, echoRequest4, isEchoReply4 } from './icmp.js';

interface Args {
  privateKey: string;
  peerPublicKey: string;
  peerEndpoint: string;
  port: number;
  presharedKey?: string;
  timers?: Record<string, number>;
}

const args = JSON.parse(process.argv[2]!) as Args;
const bind = await DgramBind.open(args.port, '127.0.0.1');
const tun = new MemoryTun('mem0', 1420);
const dev = new Device({ privateKey: args.privateKey, tun, binds: [bind], timers: args.timers });
dev.setPeer({
  publicKey: args.peerPublicKey,
  allowedIps: ['10.9.0.1/32', 'fd09::1/128'],
  endpoint: bind.endpoint(args.peerEndpoint),
  presharedKey: args.presharedKey,
});

// Answer every echo request the tunnel delivers; remember everything else.
const received: Buffer[] = [];
let seen = 0;
const origWrite = tun.write.bind(tun);
tun.write = (batch) => {
  origWrite(batch);
  const replies: Buffer[] = [];
  for (; seen < tun.written.length; seen++) {
    const r = echoReply(tun.written[seen]!);
    if (r) replies.push(r);
    else received.push(tun.written[seen]!);
  }
  if (replies.length > 0) setImmediate(() => tun.inject(replies));
};

async function ping4(n: number): Promise<number> {
  const id = 0x4242;
  let got = 0;
  for (let seq = 1; seq <= n; seq++) {
    const before = received.length;
    tun.inject([echoRequest4('10.9.0.2', '10.9.0.1', id, seq)]);
    const end = Date.now() + 3000;
    while (Date.now() < end) {
      if (received.slice(before).some((p) => isEchoReply4(p, id, seq))) {
        got++;
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return got;
}

const rl = createInterface({ input: process.stdin });
process.stdout.write(JSON.stringify({ ready: true, port: bind.port }) + '\n');
for await (const line of rl) {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === 'ping4') process.stdout.write(JSON.stringify({ replies: await ping4(Number(arg)) }) + '\n');
  else if (cmd === 'stats') process.stdout.write(JSON.stringify(dev.stats()) + '\n');
  else if (cmd === 'quit') break;
}
await dev.close();
process.exit(0);
