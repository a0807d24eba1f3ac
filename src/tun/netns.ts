import { openSync, closeSync } from 'node:fs';
import { native } from './native.js';

/**
 * Runs `fn` with Node's main thread inside network namespace `name`
 * (/run/netns/<name>, as made by `ip netns add`), then switches back.
 * `fn` must be synchronous: sockets and TUN devices created inside stay in
 * that namespace, but nothing else may run while the thread is switched.
 */
export function inNetns<T>(name: string | undefined, fn: () => T): T {
  if (!name) return fn();
  const addon = native();
  const self = openSync('/proc/thread-self/ns/net', 'r');
  let target: number;
  try {
    target = openSync(`/run/netns/${name}`, 'r');
  } catch (e) {
    closeSync(self);
    throw new Error(`network namespace "${name}" not found (ip netns add ${name}?): ${(e as Error).message}`);
  }
  try {
    addon.setNetns(target);
    try {
      return fn();
    } finally {
      addon.setNetns(self);
    }
  } finally {
    closeSync(target);
    closeSync(self);
  }
}
