// Runs the netbird CLI from source (tests spawn it with `node --import tsx` inside namespaces).
import { main } from '../../src/client/cli.js';

process.exitCode = await main(process.argv.slice(2));
