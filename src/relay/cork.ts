import type WebSocket from 'ws';

const corked = new WeakSet<object>();

/**
 * Holds a WebSocket's socket writes until the end of the current tick, so that the frames of a burst
 * (a batch of WireGuard packets) leave in one writev instead of one syscall per frame.
 */
export function corkForTick(ws: WebSocket): void {
  const sock = (ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
  if (!sock || corked.has(sock)) return;
  corked.add(sock);
  sock.cork();
  process.nextTick(() => {
    corked.delete(sock);
    sock.uncork();
  });
}
