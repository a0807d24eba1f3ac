// Stand-alone entry (for tests and until bin/netbird dispatches `wg-quick`):
//   node --import tsx src/wgquick/main.ts <file.conf>
import { runWgQuick } from './index.js';

process.exitCode = await runWgQuick(process.argv.slice(2));
