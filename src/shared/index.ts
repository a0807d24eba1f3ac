/** Small helpers shared by several components. */
export { PrefixFormatError, bytesToIp, decodeCompactPrefix, encodeCompactPrefix, ipToBytes, unmapIPv4 } from './prefix.js';
export { VERSION, packageRoot } from './version.js';
