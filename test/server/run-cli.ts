// Runs the netbird-server CLI from source (what bin/netbird-server does with the build), for tests.
import { main } from '../../src/server/cli.js';

process.exitCode = await main(process.argv.slice(2));
