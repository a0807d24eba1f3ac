/** The netbird client: CLI (and, later, the daemon and engine). */
export { main } from './cli.js';
