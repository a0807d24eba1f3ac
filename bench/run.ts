// `npm run bench [suite ...] [-- --option ...]`: runs the benchmark suites. Each compares against a
// reference (or a target) measured in the same run and prints both figures and the ratio. Arguments
// starting with "--" go to the suites (e.g. `npm run bench management -- --peers 100,500`).
import { benchClient } from './client.js';
import { benchIce } from './ice.js';
import { benchManagement } from './management.js';
import { benchSignalRelay } from './signal-relay.js';
import { benchWireguard } from './wireguard.js';

const suites: Record<string, (args: string[]) => Promise<void>> = {
  wireguard: benchWireguard,
  management: benchManagement,
  'signal-relay': benchSignalRelay,
  client: benchClient,
  ice: benchIce,
};

async function main(): Promise<void> {
  const argv = process.argv.slice(2).filter((a) => a !== '--');
  const firstOption = argv.findIndex((a) => a.startsWith('--'));
  const wanted = firstOption < 0 ? argv : argv.slice(0, firstOption);
  const options = firstOption < 0 ? [] : argv.slice(firstOption);
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
    await run(options);
  }
}
await main();
