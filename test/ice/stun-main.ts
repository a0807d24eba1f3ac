/** Runs the embedded STUN server (src/stun) inside a lab namespace: argv[2] = port. */
import { startStunServer } from '../../src/stun/index.js';

const srv = await startStunServer({ host: '0.0.0.0', port: Number(process.argv[2] ?? 3478) });
process.stdout.write(`stun ready on ${srv.port}\n`);
process.on('SIGTERM', () => void srv.close().then(() => process.exit(0)));
