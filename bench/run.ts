// `npm run bench [suite ...]`: runs the benchmark suites. Each compares against a reference measured
// in the same run and prints both figures and the ratio.
import { benchClient } from './client.js';
import { benchIce } from './ice.js';
import { benchManagement } from './management.js';
import { benchSignalRelay } from './signal-relay.js';
import { benchWireguard } from './wireguard.js';

const suites: Record<string, () => Promise<void>> = {
  wireguard: benchWireguard,
  management: benchManagement,
  'signal-relay': benchSignalRelay,
  client: benchClient,
  ice: benchIce,
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const names = wanted.length > 0 ? wanted : Object.keys(suites);
  if (names.length === 0) {
    console.log('no benchmark suites yet');
    return;
  }
  for (const name of names) {
    const run = suites[name];
    if (!run) {
      console.error(`unknown suite ${JSON.stringify(name)}; suites: ${Object.keys(suites).join(', ')}`);
      process.exitCode = 2;
      return;
    }
    console.log(`\n=== ${name} ===`);
    await run();
  }
}
await main();
