/** Small helpers shared by several components. */
export { PrefixFormatError, bytesToIp, decodeCompactPrefix, encodeCompactPrefix, ipToBytes } from './prefix.js';
export { VERSION, packageRoot } from './version.js';
